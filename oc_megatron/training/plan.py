"""``oc-megatron train CONFIG --plan [--json]``: what a run will do, without doing it.

``build_plan(cfg)`` validates the config for the world size it is written for (``cluster``, else the launcher's,
else 1) and computes, from the config and at most the datasets' index files (never a model, a process group or a
dataset cache): the model and its parameter count, the parallel layout, each batch phase (global batch in samples,
sequence length, tokens and model FLOPs per step, the step range), total steps and tokens, the LR schedule, SFT
epochs and packing, the checkpoint cadence, how the run starts, and what the data holds. A number that needs data
which is not there (an SFT run's steps come from its samples) is ``None``, with the reason in ``unknown``.

FLOPs per step = ``ModelConfig.flops_per_token(seq_length, TP)`` x the step's positions (samples x sequence length:
for SFT every sample is padded to the sequence length unless packed, so this is what the GPUs compute; packed SFT
computes fewer). ``tokens_per_step`` counts the same positions; an SFT step's real tokens are fewer (``data``).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from oc_common.errors import OcError
from oc_megatron.config import Phase, TrainConfig


def embedding_rows(cfg: TrainConfig) -> int:
    """Rows of the embedding and output layer at this TP size (the padded vocabulary)."""
    return cfg.model.padded_vocab_size(cfg.parallel.tensor)


def _world_size(cfg: TrainConfig) -> tuple[int, str]:
    from oc_megatron.training.distributed import detect_launcher

    if cfg.cluster is not None:
        c = cfg.cluster
        return c.world_size, f"cluster: {c.nodes} nodes x {c.gpus_per_node} GPUs" + (f" ({c.gpu})" if c.gpu else "")
    launcher, _, world, _ = detect_launcher()
    if launcher != "single":
        return world, f"{launcher} environment"
    return 1, "one process (no cluster in the config, no launcher)"


def _phases(cfg: TrainConfig, train_steps: int | None, world: int, packed: bool) -> list[dict[str, Any]]:
    out = []
    phases = cfg.phases
    for i, ph in enumerate(phases):
        end = phases[i + 1].from_step if i + 1 < len(phases) else train_steps
        if end is not None and train_steps is not None:
            end = min(end, train_steps)
        flops = cfg.model.flops_per_token(ph.seq_length, cfg.parallel.tensor) * ph.tokens_per_step
        out.append({
            "from_step": ph.from_step,
            "to_step": end,  # exclusive; None: until the data-dependent end
            "steps": None if end is None else max(end - ph.from_step, 0),
            "global_batch_samples": ph.global_batch_size,
            "micro_batch_size": ph.micro_batch_size,
            "num_microbatches": None if packed else cfg.num_microbatches(world, ph),
            "seq_length": ph.seq_length,
            "tokens_per_step": ph.tokens_per_step,
            "flops_per_step": flops,
        })
    return out


def _sft_data(cfg: TrainConfig, phase: Phase) -> dict[str, Any]:
    """Samples, truncation and format of the SFT data (reads the index and sft-data's stats.json)."""
    from oc_megatron.data.sft import SFTSamples

    d = cfg.data.sft
    samples = SFTSamples(d.paths, phase.seq_length, too_long=d.too_long, epochs=d.epochs, seed=cfg.train.seed,
                         shuffle=False)
    formats = []
    for prefix in d.paths:
        stats = Path(f"{prefix}.stats.json")
        manifest = json.loads(stats.read_text()).get("manifest", {}) if stats.is_file() else {}
        template = manifest.get("template")
        formats.append({"path": prefix, "target": manifest.get("target"),
                        "system_prompt": manifest.get("system_prompt"),
                        "template": None if template is None else "chatml" if template == "chatml" else "tokenizer"})
    st = samples.stats
    return {"samples_per_epoch": st.samples, "truncated": st.truncated, "dropped_too_long": st.dropped_too_long,
            "dropped_empty": st.dropped_empty, "tokens_per_epoch": st.tokens,
            "steps_per_epoch": samples.steps_per_epoch(phase.global_batch_size), "formats": formats}


def _pretrain_data(cfg: TrainConfig, phases: list[dict[str, Any]]) -> dict[str, Any]:
    """Each source's documents and tokens per split, and how many passes over its training split the run needs."""
    from oc_megatron.data.blend import SPLIT_NAMES, source_splits

    total_weight = sum(s.weight for s in cfg.data.blend)
    run_tokens = sum(p["steps"] * p["tokens_per_step"] for p in phases if p["steps"] is not None)
    out = []
    for s in source_splits(cfg):
        entry = {"key": s.key, "path": s.path, "documents": s.documents, "tokens": s.tokens,
                 "splits": {name: {"documents": d, "tokens": t}
                            for name, d, t in zip(SPLIT_NAMES, s.split_documents, s.split_tokens, strict=True)
                            if d is not None}}
        if s.key.startswith("data.blend"):
            i = int(s.key.split("[")[1].rstrip("]"))
            share = cfg.data.blend[i].weight / total_weight
            train_tokens = s.split_tokens[0] or 0
            entry.update(share=share, passes=(run_tokens * share / train_tokens) if train_tokens else None)
        out.append(entry)
    return {"sources": out}


def _start(cfg: TrainConfig) -> tuple[dict[str, Any] | None, str | None]:
    from oc_megatron.training.start import plan_start

    try:
        start = plan_start(cfg)
    except (OcError, OSError, ValueError) as e:
        return None, str(e)
    return {"kind": start.kind, "from": str(start.source) if start.source else None, "iteration": start.iteration,
            "data_position": start.consumed_samples, "peak_lr": start.peak_lr}, None


def build_plan(cfg: TrainConfig, config_path: str | Path | None = None) -> dict[str, Any]:
    """The plan of a run (see the module docstring). Raises ConfigError for an invalid config."""
    world, world_source = _world_size(cfg)
    on_gpus = cfg.cluster is not None
    # A recipe for a GPU cluster is checked as it will run there (CUDA and Transformer Engine present).
    cfg.check(world, cuda=True if on_gpus else None, te=True if on_gpus else None)
    unknown: dict[str, str] = {}
    m, p, t = cfg.model, cfg.parallel, cfg.train
    sft = cfg.data.sft
    packed = bool(sft and sft.packing)

    data: dict[str, Any] | None = None
    try:
        cfg.check_data()
    except OcError as e:
        unknown["data"] = str(e)
    else:
        data = _sft_data(cfg, cfg.phases[0]) if sft else None

    train_steps = t.iters
    if train_steps is None and sft is not None:
        if data is not None:
            train_steps = sft.epochs * data["steps_per_epoch"]
        else:
            unknown["train_steps"] = (f"SFT steps come from the data's samples ({sft.epochs} epochs x "
                                      "ceil(samples / global batch)), and the data is not there (see data)")
    if train_steps is not None:
        cfg.check_schedule(train_steps)
    phases = _phases(cfg, train_steps, world, packed)
    if sft is None and "data" not in unknown:
        data = _pretrain_data(cfg, phases)

    if sft is None:
        total_tokens = sum(ph["steps"] * ph["tokens_per_step"] for ph in phases)
    elif data is not None:
        total_tokens = sft.epochs * data["tokens_per_epoch"]
    else:
        total_tokens = None
        unknown["total_tokens"] = unknown["train_steps"]

    start, why = _start(cfg)
    if why:
        unknown["start"] = why
    s, o = cfg.schedule, cfg.optimizer
    lr: float | None = o.lr
    init = cfg.checkpoint.init_from
    if init is not None and init.keep_lr:
        lr = start["peak_lr"] if start else None
        if lr is None:
            unknown["lr"] = "the peak LR is the init_from checkpoint's (keep_lr), which is not readable: " + (why or "")
    schedule_total = s.total_steps or train_steps
    decay_start = None
    if schedule_total is not None:
        decay_start = (schedule_total - (s.decay_steps or 0)) if s.style == "wsd" else s.warmup_steps
    flops_total = (sum(ph["flops_per_step"] * ph["steps"] for ph in phases)
                   if all(ph["steps"] is not None for ph in phases) else None)
    c = cfg.checkpoint
    return {
        "config": str(config_path) if config_path is not None else None,
        "model": {"preset": m.preset, "parameters": m.num_parameters(),
                  "non_embedding_parameters": m.num_parameters(include_embeddings=False),
                  "num_layers": m.num_layers, "hidden_size": m.hidden_size,
                  "num_attention_heads": m.num_attention_heads, "num_query_groups": m.num_query_groups,
                  "ffn_hidden_size": m.ffn_hidden_size, "vocab_size": m.vocab_size,
                  "embedding_rows": embedding_rows(cfg), "max_seq_length": m.seq_length},
        "parallel": {"world_size": world, "world_size_from": world_source, "tensor": p.tensor, "pipeline": p.pipeline,
                     "virtual_pipeline": p.virtual_pipeline, "context": p.context_parallel,
                     "data": cfg.data_parallel_size(world), "sequence_parallel": p.sequence_parallel,
                     "distributed_optimizer": p.distributed_optimizer,
                     "layers_per_pipeline_stage": cfg.pipeline_stage_layers()},
        "phases": phases,
        "train_steps": train_steps,
        "total_tokens": total_tokens,
        "flops_per_step": phases[0]["flops_per_step"],
        "total_flops": flops_total,
        "lr": lr,
        "min_lr": o.min_lr,
        "init_lr": o.init_lr,
        "warmup_steps": s.warmup_steps,
        "schedule": {"style": s.style, "total_steps": schedule_total, "decay_steps": s.decay_steps,
                     "decay_start": decay_start, "wsd_decay_style": s.wsd_decay_style if s.style == "wsd" else None,
                     "on_change": s.on_change},
        "packing": ("packed" if packed else "none") if sft else "concatenated",
        "epochs": sft.epochs if sft else None,
        "sft": ({"too_long": sft.too_long, "shuffle": sft.shuffle, "valid_paths": sft.valid_paths} if sft else None),
        "checkpoint": {"dir": str(cfg.checkpoint_dir), "interval": c.interval, "keep_last": c.keep_last,
                       "save_final": c.save_final, "async_save": c.async_save,
                       "init_from": ({"path": init.path, "iteration": init.iteration, "kept": init.kept}
                                     if init else None),
                       "load_from": c.load_from},
        "start": start,
        "data": data,
        "unknown": unknown,
    }


def _n(x: float | None, unit: str = "") -> str:
    if x is None:
        return "unknown"
    for div, suffix in ((1e18, "E"), (1e15, "P"), (1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= div:
            return f"{x / div:.3g}{suffix}{unit}"
    return f"{x:g}{unit}"


def format_plan(plan: dict[str, Any]) -> str:
    """The plan as text for a terminal."""
    m, p = plan["model"], plan["parallel"]
    lines = [f"plan of {plan['config'] or 'the config'}",
             f"model       {m['preset'] or 'custom'}: {_n(m['parameters'])} parameters "
             f"({_n(m['non_embedding_parameters'])} without embeddings), {m['num_layers']} layers x "
             f"{m['hidden_size']}, heads {m['num_attention_heads']}/"
             f"{m['num_query_groups']}, FFN {m['ffn_hidden_size']}, vocabulary {m['vocab_size']:,} "
             f"({m['embedding_rows']:,} embedding rows)",
             f"layout      {p['world_size']} ranks ({p['world_size_from']}): TP {p['tensor']} x PP {p['pipeline']}"
             f"{' (VPP ' + str(p['virtual_pipeline']) + ')' if p['virtual_pipeline'] else ''} x DP {p['data']}"
             f"{', sequence parallel' if p['sequence_parallel'] else ''}"
             f"{', distributed optimizer' if p['distributed_optimizer'] else ''}; layers per stage "
             f"{p['layers_per_pipeline_stage']}"]
    for i, ph in enumerate(plan["phases"]):
        rng = f"steps {ph['from_step']}..{ph['to_step'] if ph['to_step'] is not None else '?'}"
        micro = (f"{ph['num_microbatches']} microbatches of {ph['micro_batch_size']}" if ph["num_microbatches"]
                 else f"microbatches of {ph['micro_batch_size']} sequences, as many as the packed samples fill")
        lines.append(f"phase {i}     {rng}: {ph['global_batch_samples']:,} samples x {ph['seq_length']:,} tokens = "
                     f"{ph['tokens_per_step']:,} tokens/step, {micro}; {_n(ph['flops_per_step'], 'FLOP')}/step")
    lines.append(f"total       {plan['train_steps'] if plan['train_steps'] is not None else 'unknown'} steps, "
                 f"{_n(plan['total_tokens'])} tokens, {_n(plan['total_flops'], 'FLOP')}")
    s = plan["schedule"]
    if s["style"] == "wsd" and not s["decay_steps"]:
        decay = "constant after warmup to the end (no decay)"
    elif s["style"] == "wsd":
        decay = (f"constant after warmup, then {s['wsd_decay_style']} decay over the last {s['decay_steps']} steps "
                 f"(from step {s['decay_start']})")
    else:
        decay = f"{s['style']} decay to step {s['total_steps'] if s['total_steps'] is not None else 'the last'}"
    lines.append(f"LR          {plan['warmup_steps']} warmup steps from {plan['init_lr']:g} to "
                 f"{plan['lr'] if plan['lr'] is not None else 'the checkpoint LR'}, {decay}, floor {plan['min_lr']:g}")
    if plan["epochs"] is not None:
        sft = plan["sft"]
        lines.append(f"SFT         {plan['epochs']} epochs, packing {plan['packing']}, samples longer than the "
                     f"sequence {sft['too_long']}d")
    else:
        lines.append(f"data        documents {plan['packing']} into sequences (GPTDataset)")
    d = plan["data"]
    if d and "sources" in d:
        for src in d["sources"]:
            splits = ", ".join(f"{k} {v['documents']:,} docs / {_n(v['tokens'])} tokens"
                               for k, v in src["splits"].items())
            extra = (f"; share {src['share']:.2%}, {src['passes']:.2f} passes over its train split"
                     if src.get("passes") is not None else "")
            lines.append(f"  {src['key']} {src['path']}: {splits}{extra}")
    elif d:
        lines.append(f"  {d['samples_per_epoch']:,} samples per epoch ({d['truncated']:,} truncated, "
                     f"{d['dropped_too_long']:,} dropped as too long, {d['dropped_empty']:,} empty), "
                     f"{_n(d['tokens_per_epoch'])} tokens, {d['steps_per_epoch']:,} steps per epoch")
        for f in d["formats"]:
            lines.append(f"  {f['path']}: target {f['target']}, system prompt {f['system_prompt']!r}, "
                         f"template {f['template']}")
    c = plan["checkpoint"]
    line = f"checkpoint  {c['dir']}: every {c['interval'] or 'end-only'} steps, keep {c['keep_last'] or 'all'}"
    if c["init_from"]:
        kept = ", ".join(k for k, v in c["init_from"]["kept"].items() if v) or "weights only"
        line += f"; init_from {c['init_from']['path']} (kept: {kept})"
    lines.append(line)
    st = plan["start"]
    if st is None:
        lines.append("start       unknown")
    else:
        lines.append(f"start       {st['kind']}" + (f" from {st['from']} (iteration {st['iteration']})"
                                                   if st["from"] else ""))
    for key, why in plan["unknown"].items():
        lines.append(f"unknown     {key}: {why}")
    return "\n".join(lines)


def plan_json(plan: dict[str, Any]) -> str:
    return json.dumps(plan, indent=2, default=lambda x: None if isinstance(x, float) and math.isnan(x) else str(x))
