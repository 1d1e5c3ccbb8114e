"""Checkpoint conversion at full size: seconds and peak RSS of from-hf and to-hf, and an exact round trip.

A random model of a preset's full shape (default opencoder-1.5b: 24 layers, hidden 2240, 14 heads of dim 160,
FFN 6144, vocab 96,640) is written as a HF safetensors directory (with the ``safetensors`` package, shard by shard),
then converted HF -> Megatron (torch_dist) -> HF. Each step runs in a fresh process, so its peak RSS (``VmHWM``) is
its own. The round trip must be bit-exact (compared tensor by tensor with ``safetensors``); ``--logits`` also
compares transformers' logits of the input with a Megatron-Core forward of the converted checkpoint.

    python benchmarks/convert.py                                  # opencoder-1.5b, bf16
    python benchmarks/convert.py --dtype fp32 --logits            # 1.5B in fp32, plus the logits check
    python benchmarks/convert.py --preset opencoder-8b --layers 4 # 8B's layer shape, 4 layers
    python benchmarks/convert.py --out result.json

Peak memory of a conversion is about one layer plus the largest single tensor (embedding or output matrix), not
the model: compare ``peak_rss_gib`` with ``model_gib``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GIB = 2**30


def _peak_rss_gib() -> float:
    """This process's peak resident set (VmHWM), in GiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024 / GIB
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / GIB


def _model_config(args):
    from oc_megatron.models.opencoder import ModelConfig

    overrides = {"num_layers": args.layers} if args.layers else {}
    return ModelConfig.from_preset(args.preset, **overrides)


# ---- steps (each in its own process) --------------------------------------------------------------------------------
def step_make(args) -> dict:
    """A random HF LlamaForCausalLM of the preset's shape, written with safetensors.torch.save_file, 1 GB shards."""
    import torch
    from safetensors.torch import save_file

    from oc_megatron.convert import llama_mapping as lm
    from oc_megatron.convert.hf import DTYPES, hf_config, plan_shards

    model = _model_config(args)
    dtype = DTYPES[args.dtype]
    shapes = lm.Table.of(model).hf_tensor_shapes(lm.Dims.of(model), model.num_layers)
    out = Path(args.work) / "hf"
    out.mkdir(parents=True)
    gen = torch.Generator().manual_seed(0)
    weight_map = {}
    for shard in plan_shards(shapes, dtype, 10**9):
        tensors = {}
        for name in shard.names:
            t = torch.empty(shapes[name], dtype=torch.float32)
            # Norm weights around 1, matrices N(0, 0.02): every tensor distinct, so a swap would show.
            t.normal_(1.0 if name.endswith("norm.weight") else 0.0, 0.02, generator=gen)
            tensors[name] = t.to(dtype)
            weight_map[name] = shard.file
        save_file(tensors, str(out / shard.file), metadata={"format": "pt"})
        del tensors
    total = sum(t_bytes(shapes[n], dtype) for n in shapes)
    (out / "model.safetensors.index.json").write_text(json.dumps(
        {"metadata": {"total_size": total}, "weight_map": weight_map}, indent=2))
    (out / "config.json").write_text(json.dumps(hf_config(model, dtype, None, None), indent=2))
    return {"model_gib": total / GIB, "tensors": len(shapes), "parameters": model.num_parameters()}


def t_bytes(shape, dtype) -> int:
    n = dtype.itemsize
    for s in shape:
        n *= s
    return n


def step_from_hf(args) -> dict:
    from oc_megatron.convert.from_hf import from_hf

    r = from_hf(Path(args.work) / "hf", Path(args.work) / "ckpt", tp=args.tp, pp=args.pp)
    return {"seconds": r.seconds}


def step_to_hf(args) -> dict:
    from oc_megatron.convert.to_hf import to_hf

    r = to_hf(Path(args.work) / "ckpt", Path(args.work) / "hf_out", no_tokenizer=True, max_shard_size="2GB")
    return {"seconds": r.seconds, "shards": r.shards}


def step_compare(args) -> dict:
    """Bit-exact, tensor by tensor, read with the safetensors package (not with our reader)."""
    import torch
    from safetensors import safe_open

    def index(d: Path) -> dict[str, Path]:
        weight_map = json.loads((d / "model.safetensors.index.json").read_text())["weight_map"]
        return {k: d / v for k, v in weight_map.items()}

    a, b = index(Path(args.work) / "hf"), index(Path(args.work) / "hf_out")
    if a.keys() != b.keys():
        return {"bit_exact": False, "detail": f"names differ: {sorted(set(a) ^ set(b))[:5]}"}
    for name in a:
        with safe_open(str(a[name]), "pt") as fa, safe_open(str(b[name]), "pt") as fb:
            x, y = fa.get_tensor(name), fb.get_tensor(name)
        if x.dtype != y.dtype or x.shape != y.shape or not torch.equal(x.view(torch.uint8), y.view(torch.uint8)):
            return {"bit_exact": False, "detail": f"{name} differs"}
    return {"bit_exact": True, "tensors_compared": len(a)}


def _tokens():
    import torch

    return torch.randint(0, 1000, (1, 32), generator=torch.Generator().manual_seed(1))


def step_logits_hf(args) -> dict:
    import torch

    from oc_megatron.convert.verify import hf_logits

    torch.save(hf_logits(Path(args.work) / "hf", _tokens()), Path(args.work) / "hf_logits.pt")
    return {}


def step_logits_megatron(args) -> dict:
    import torch

    from oc_megatron.convert.megatron_ckpt import single_process_group
    from oc_megatron.convert.verify import load_megatron_model, megatron_logits

    with single_process_group(model_parallel=True):
        got = megatron_logits(load_megatron_model(Path(args.work) / "ckpt"), _tokens())
    want = torch.load(Path(args.work) / "hf_logits.pt")
    return {"max_abs_logit_diff": (got - want).abs().max().item()}


STEPS = {"make": step_make, "from-hf": step_from_hf, "to-hf": step_to_hf, "compare": step_compare,
         "logits-hf": step_logits_hf, "logits-megatron": step_logits_megatron}


# ---- driver ---------------------------------------------------------------------------------------------------------
def run_step(name: str, args) -> dict:
    cmd = [sys.executable, __file__, "--step", name, "--work", args.work, "--preset", args.preset,
           "--dtype", args.dtype, "--tp", str(args.tp), "--pp", str(args.pp)]
    if args.layers:
        cmd += ["--layers", str(args.layers)]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True,
                          env={**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2"),
                               "PYTHONWARNINGS": "ignore"})
    if proc.returncode != 0:
        sys.exit(f"step {name} failed:\n{proc.stderr[-4000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result.setdefault("seconds", time.perf_counter() - start)
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", default="opencoder-1.5b")
    p.add_argument("--layers", type=int, default=None, help="override the number of layers (quick runs)")
    p.add_argument("--dtype", default="bf16", choices=["bf16", "fp16", "fp32"])
    p.add_argument("--tp", type=int, default=1, help="from-hf --tp")
    p.add_argument("--pp", type=int, default=1, help="from-hf --pp")
    p.add_argument("--logits", action="store_true", help="also compare transformers' and Megatron's logits")
    p.add_argument("--work", default=None, help="scratch directory (default: a temp dir, removed afterwards)")
    p.add_argument("--out", default=None, help="write the results as JSON here")
    p.add_argument("--step", default=None, choices=list(STEPS), help=argparse.SUPPRESS)
    args = p.parse_args()

    if args.step:  # a child: one step, then one JSON line with its own peak RSS
        result = STEPS[args.step](args)
        result["peak_rss_gib"] = _peak_rss_gib()
        print(json.dumps(result))
        return

    keep = args.work is not None
    args.work = args.work or tempfile.mkdtemp(prefix="oc-convert-bench-")
    if Path(args.work).exists() and any(Path(args.work).iterdir()):
        sys.exit(f"{args.work}: must be empty")
    results: dict = {"preset": args.preset, "layers": args.layers, "dtype": args.dtype, "tp": args.tp, "pp": args.pp,
                     "cpus": os.cpu_count()}
    try:
        steps = ["make", "from-hf", "to-hf", "compare"] + (["logits-hf", "logits-megatron"] if args.logits else [])
        for name in steps:
            results[name] = run_step(name, args)
            print(f"{name:16s} {json.dumps(results[name])}", flush=True)
    finally:
        if not keep:
            shutil.rmtree(args.work, ignore_errors=True)
    model_gib = results["make"]["model_gib"]
    print(f"\n{args.preset} ({results['make']['parameters'] / 1e9:.2f}B parameters, {args.dtype}, "
          f"{model_gib:.2f} GiB of weights)")
    print(f"{'step':10s} {'seconds':>8s} {'peak RSS GiB':>13s}")
    for name in ("from-hf", "to-hf"):
        print(f"{name:10s} {results[name]['seconds']:8.1f} {results[name]['peak_rss_gib']:13.2f}")
    print(f"round trip bit-exact: {results['compare']['bit_exact']}")
    if args.logits:
        print(f"max |logit diff| transformers vs Megatron: {results['logits-megatron']['max_abs_logit_diff']:.2e}")
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    if not results["compare"]["bit_exact"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
