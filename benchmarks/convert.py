"""Checkpoint conversion at full size, side by side with copying the same bytes: seconds, CPU, peak RSS, bit-exact.

A random model of a preset's full shape (default opencoder-1.5b: 24 layers, hidden 2240, 14 heads of dim 160,
FFN 6144, vocab 96,640) is written as a HF safetensors directory (with the ``safetensors`` package, 1 GB shards).
Then, ``--repeats`` rounds, alternating (the order flips every round):

* ``oc-megatron convert from-hf HF CKPT`` against ``cp -r HF`` + fsync of every copied file;
* ``oc-megatron convert to-hf CKPT OUT`` against ``cp -r CKPT`` + fsync (the checkpoint from-hf wrote).

Every run is a fresh process measured from outside (wall seconds including start-up, CPU seconds, peak RSS; see
``sidebyside.py``, ``measure.py``); before each, its input is read once so that both sides start from the page cache,
and the previous output is deleted. The round trip must be bit-exact (every tensor of to-hf's output, read with
``safetensors``, against the SHA-256 of its bytes taken when the input was made); ``--logits`` also compares
transformers' logits of the input with a Megatron-Core forward of the checkpoint. ``--low-disk`` skips the ``cp``
peer and deletes the HF input once from-hf has run, so that a model needs twice its weights of disk, not four times.

    python benchmarks/convert.py                                  # opencoder-1.5b, bf16, 3 rounds
    python benchmarks/convert.py --dtype fp32 --logits            # 1.5B in fp32, plus the logits check
    python benchmarks/convert.py --preset opencoder-8b --repeats 1  # 8B: 14.5 GiB of weights, ~60 GiB of disk
    python benchmarks/convert.py --preset opencoder-8b --repeats 1 --low-disk  # ~31 GB of disk, no cp figures
    python benchmarks/convert.py --out result.json

Peak memory of a conversion is a few windows of the files, not the model: compare the peak RSS with the weights.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from measure import REPO, alternate, fmt, load_average, summarize  # noqa: E402
from sidebyside import run_command  # noqa: E402

GIB = 2**30


def _model_config(args):
    from oc_megatron.models.opencoder import ModelConfig

    overrides = {"num_layers": args.layers} if args.layers else {}
    return ModelConfig.from_preset(args.preset, **overrides)


# ---- steps (each in its own process) --------------------------------------------------------------------------------
def step_make(args) -> dict:
    """A random HF LlamaForCausalLM of the preset's shape, written with safetensors.torch.save_file, 1 GB shards;
    the SHA-256 of every tensor's bytes goes to ``digests.json`` (what the round trip must give back)."""
    import hashlib

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
    weight_map, digests = {}, {}
    for shard in plan_shards(shapes, dtype, 10**9):
        tensors = {}
        for name in shard.names:
            t = torch.empty(shapes[name], dtype=torch.float32)
            # Norm weights around 1, matrices N(0, 0.02): every tensor distinct, so a swap would show.
            t.normal_(1.0 if name.endswith("norm.weight") else 0.0, 0.02, generator=gen)
            tensors[name] = t.to(dtype)
            weight_map[name] = shard.file
            digests[name] = _digest(tensors[name], hashlib)
        save_file(tensors, str(out / shard.file), metadata={"format": "pt"})
        del tensors
    total = sum(t_bytes(shapes[n], dtype) for n in shapes)
    (out / "model.safetensors.index.json").write_text(json.dumps(
        {"metadata": {"total_size": total}, "weight_map": weight_map}, indent=2))
    (out / "config.json").write_text(json.dumps(hf_config(model, dtype, None, None), indent=2))
    (Path(args.work) / "digests.json").write_text(json.dumps(digests))
    return {"model_gib": total / GIB, "tensors": len(shapes), "parameters": model.num_parameters()}


def t_bytes(shape, dtype) -> int:
    n = dtype.itemsize
    for s in shape:
        n *= s
    return n


def _digest(t, hashlib) -> list:  # noqa: ANN001 - a tensor, the hashlib module
    import torch

    return [str(t.dtype), list(t.shape), hashlib.sha256(t.contiguous().view(torch.uint8).numpy()).hexdigest()]


def step_compare(args) -> dict:
    """Bit-exact: every tensor of to-hf's output, read with the safetensors package (not with our reader), against
    the dtype, shape and SHA-256 of the input's tensor."""
    import hashlib

    from safetensors import safe_open

    want = json.loads((Path(args.work) / "digests.json").read_text())
    out = Path(args.work) / "out"
    weight_map = json.loads((out / "model.safetensors.index.json").read_text())["weight_map"]
    if want.keys() != weight_map.keys():
        return {"bit_exact": False, "detail": f"names differ: {sorted(set(want) ^ set(weight_map))[:5]}"}
    for name, file in weight_map.items():
        with safe_open(str(out / file), "pt") as f:
            got = _digest(f.get_tensor(name), hashlib)
        if got != want[name]:
            return {"bit_exact": False, "detail": f"{name} differs"}
    return {"bit_exact": True, "tensors_compared": len(want)}


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

    from oc_megatron.convert.verify import load_megatron_model, megatron_logits, single_process_group

    with single_process_group(model_parallel=True):
        got = megatron_logits(load_megatron_model(Path(args.work) / "ckpt"), _tokens())
    want = torch.load(Path(args.work) / "hf_logits.pt")
    return {"max_abs_logit_diff": (got - want).abs().max().item()}


STEPS = {"make": step_make, "compare": step_compare, "logits-hf": step_logits_hf,
         "logits-megatron": step_logits_megatron}


# ---- driver ---------------------------------------------------------------------------------------------------------
def child_env() -> dict[str, str]:
    """The children import this checkout's packages whatever is installed (and from wherever this is started)."""
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)
    return {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2"), "PYTHONWARNINGS": "ignore",
            "PYTHONPATH": path}


def run_step(name: str, args) -> dict:
    cmd = [sys.executable, __file__, "--step", name, "--work", args.work, "--preset", args.preset,
           "--dtype", args.dtype, "--tp", str(args.tp), "--pp", str(args.pp)]
    if args.layers:
        cmd += ["--layers", str(args.layers)]
    run = run_command(cmd, env=child_env(), capture=True)
    line = next(line for line in reversed(run["stdout"].splitlines()) if line.startswith("{"))
    return {**json.loads(line), "seconds": run["wall_s"], "peak_rss_gib": run["peak_rss_mib"] / 1024}


def read_through(path: Path) -> None:
    """Read every file under ``path`` once (into the page cache), so that each side starts from the same state."""
    buf = bytearray(16 << 20)
    for p in sorted(path.rglob("*")):
        if p.is_file():
            with open(p, "rb", buffering=0) as f:
                while f.readinto(buf):
                    pass


def copy_and_fsync(src: Path, dst: Path) -> list[str]:
    """The peer: ``cp -r`` then an fsync of every copied file (what a conversion's output gets too)."""
    code = ("import os, subprocess, sys\n"
            "subprocess.run(['cp', '-r', sys.argv[1], sys.argv[2]], check=True)\n"
            "for root, _, files in os.walk(sys.argv[2]):\n"
            "    for name in files:\n"
            "        fd = os.open(os.path.join(root, name), os.O_RDONLY)\n"
            "        os.fsync(fd)\n"
            "        os.close(fd)\n")
    return [sys.executable, "-c", code, str(src), str(dst)]


def side(cmd: list[str], input_dir: Path, output: Path) -> Callable[[], dict]:
    def go() -> dict:
        shutil.rmtree(output, ignore_errors=True)
        read_through(input_dir)
        return run_command(cmd, env=child_env())
    return go


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", default="opencoder-1.5b")
    p.add_argument("--layers", type=int, default=None, help="override the number of layers (quick runs)")
    p.add_argument("--dtype", default="bf16", choices=["bf16", "fp16", "fp32"])
    p.add_argument("--tp", type=int, default=1, help="from-hf --tp")
    p.add_argument("--pp", type=int, default=1, help="from-hf --pp")
    p.add_argument("--repeats", type=int, default=3, help="rounds of each side (default 3)")
    p.add_argument("--logits", action="store_true", help="also compare transformers' and Megatron's logits")
    p.add_argument("--low-disk", action="store_true",
                   help="no cp -r peer, and the HF input deleted once from-hf has run (disk: twice the weights)")
    p.add_argument("--work", default=None, help="scratch directory (default: a temp dir, removed afterwards)")
    p.add_argument("--out", default=None, help="write the results as JSON here")
    p.add_argument("--step", default=None, choices=list(STEPS), help=argparse.SUPPRESS)
    args = p.parse_args()

    if args.step:  # a child: one step, then one JSON line
        print(json.dumps(STEPS[args.step](args)))
        return

    keep = args.work is not None
    args.work = args.work or tempfile.mkdtemp(prefix="oc-convert-bench-")
    work = Path(args.work)
    if work.exists() and any(work.iterdir()):
        sys.exit(f"{args.work}: must be empty")
    if args.low_disk and args.logits:
        sys.exit("--logits needs the HF input, which --low-disk deletes")
    results: dict = {"preset": args.preset, "layers": args.layers, "dtype": args.dtype, "tp": args.tp, "pp": args.pp,
                     "cpus": os.cpu_count(), "load_before": load_average(), "low_disk": args.low_disk}
    cli = [sys.executable, "-m", "oc_megatron.cli", "convert"]
    hf, ckpt, out, copy = work / "hf", work / "ckpt", work / "out", work / "copy"

    try:
        results["make"] = run_step("make", args)
        model_gib = results["make"]["model_gib"]
        print(f"{args.preset}: {results['make']['parameters'] / 1e9:.2f}B parameters, {args.dtype}, "
              f"{model_gib:.2f} GiB of weights in {hf}; load {results['load_before']}", flush=True)
        from_hf_cmd = [*cli, "from-hf", str(hf), str(ckpt), "--tp", str(args.tp), "--pp", str(args.pp)]
        to_hf_cmd = [*cli, "to-hf", str(ckpt), str(out), "--no-tokenizer", "--max-shard-size", "2GB"]
        def peer(src: Path) -> dict[str, Callable[[], dict]]:
            return {} if args.low_disk else {"cp -r + fsync": side(copy_and_fsync(src, copy), src, copy)}

        print("from-hf vs cp -r + fsync of the HF directory:", flush=True)
        runs = alternate({"oc-megatron convert from-hf": side(from_hf_cmd, hf, ckpt), **peer(hf)}, args.repeats)
        shutil.rmtree(copy, ignore_errors=True)
        if not ckpt.is_dir():  # the last round ended with the peer: the checkpoint is still there
            raise RuntimeError("from-hf left no checkpoint")
        results["from-hf"] = {k: summarize(v) for k, v in runs.items()}
        if args.low_disk:
            shutil.rmtree(hf)
        print("to-hf vs cp -r + fsync of the checkpoint:", flush=True)
        runs = alternate({"oc-megatron convert to-hf": side(to_hf_cmd, ckpt, out), **peer(ckpt)}, args.repeats)
        shutil.rmtree(copy, ignore_errors=True)
        results["to-hf"] = {k: summarize(v) for k, v in runs.items()}
        results["compare"] = run_step("compare", args)
        if args.logits:
            results["logits-hf"] = run_step("logits-hf", args)
            results["logits-megatron"] = run_step("logits-megatron", args)
    finally:
        if not keep:
            shutil.rmtree(args.work, ignore_errors=True)
    results["load_after"] = load_average()
    print(f"\n{args.preset} ({results['make']['parameters'] / 1e9:.2f}B parameters, {args.dtype}, "
          f"{model_gib:.2f} GiB of weights); load before {results['load_before']}, after {results['load_after']}")
    print(f"{'':34s} {'wall s, median (spread)':>24s} {'CPU s':>20s} {'peak RSS MiB':>22s}")
    for direction in ("from-hf", "to-hf"):
        for name in (f"oc-megatron convert {direction}", "cp -r + fsync"):
            if name not in results[direction]:
                continue
            r = results[direction][name]
            print(f"{direction + ': ' + name:34s} {fmt(r, 'wall_s', 2):>24s} {fmt(r, 'cpu_s', 2):>20s} "
                  f"{fmt(r, 'peak_rss_mib', 0):>22s}")
        if args.low_disk:
            continue
        (ours, peer_wall), (ours_cpu, peer_cpu) = [[results[direction][k][m]["median"]
                                                    for k in (f"oc-megatron convert {direction}", "cp -r + fsync")]
                                                   for m in ("wall_s", "cpu_s")]
        results[direction].update(ratio=ours / peer_wall, cpu_ratio=ours_cpu / peer_cpu)
        print(f"{direction + ': ours / cp (medians)':34s} {ours / peer_wall:>23.2f}x {ours_cpu / peer_cpu:>19.2f}x")
    print(f"round trip bit-exact: {results['compare']['bit_exact']}")
    if args.logits:
        print(f"max |logit diff| transformers vs Megatron: {results['logits-megatron']['max_abs_logit_diff']:.2e}")
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    if not results["compare"]["bit_exact"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
