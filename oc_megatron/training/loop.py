"""The training loop for pretraining, annealing and SFT: Megatron-Core parts, no ``megatron.training``.

``run_training(cfg)`` does, on every rank (torchrun, srun, or one process), through ``setup``:

1. ``prepare_run``: config checks that need the world size; data checks (prefixes exist, every split has documents,
   the tokenizer fits the model); how the run starts (``training.start``: resume, ``init_from`` with explicit
   keep/reset, or scratch). Nothing is built yet;
2. process group (NCCL / gloo) and Megatron parallel state (TP, PP, virtual PP, DP);
3. ``build_data``: the batch source of each step. Pretraining / annealing: the blended GPTDataset of the step's
   phase (the realised blend is logged and written to ``data_blend.json``); SFT: ``SFTBatches`` (``train.iters``
   from the epochs). Then the schedule the run follows (a resumed run must continue its own, or say how not to;
   a finished run stops here with nothing to do);
4. ``build_model_and_optimizer``: model chunks (``models.opencoder.build_model``: TE or local spec, layout-invariant
   init), each wrapped in Megatron-Core DDP (fp32 grad buffers; the distributed optimizer shards optimizer state
   over DP), ``get_megatron_optimizer`` (Adam, grad clipping) and ``OptimizerParamScheduler`` (WSD / cosine);
5. the start point's checkpoint verified (checksums) and loaded into them;
6. steps: ``get_forward_backward_func`` (1F1B, interleaved with virtual PP) with a per-token loss
   (``calculate_per_token_loss``: the loss is the mean over all trained tokens of the global batch, whatever the
   layout or packing), ``optimizer.step``, scheduler step, metrics (samples and tokens per step), periodic validation
   and checkpoints, preemption checks.

A step's batch comes from ``step(position)`` of the batch source (``data.blend.StepBatch``): pretraining steps have a
fixed number of microbatches per phase; SFT steps take ``global_batch_size`` samples and, packed, as many microbatches
as the samples fill. Packed SFT sequences carry ``segment_ids``: with Transformer Engine they become THD
``PackedSeqParams`` (``cu_seqlens``; the microbatch is laid out as one [1, b*s] sequence), on the local spec a
block-diagonal causal mask plus per-sample ``position_ids`` for RoPE. Every pipeline stage receives them, not only
the first and last.

Returns a ``TrainResult``; raises ``Preempted`` after saving when a signal asked the run to stop.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import torch

from oc_common.config import dump_config
from oc_common.errors import ConfigError
from oc_common.fileio import atomic_write_json
from oc_common.log import get_logger
from oc_megatron.config import Phase, TrainConfig
from oc_megatron.data.blend import (
    BatchLayout,
    PretrainBatches,
    StepBatch,
    blend_report,
    build_datasets,
    format_blend,
    phase_position,
)
from oc_megatron.training import checkpoint as ckpt
from oc_megatron.training.distributed import DistEnv, init_distributed, init_model_parallel, seed_everything
from oc_megatron.training.metrics import MetricsLogger, device_peak_tflops, format_line, throughput
from oc_megatron.training.preemption import PreemptionHandler
from oc_megatron.training.start import StartPoint, continue_schedule, finished, plan_start, restore

log = get_logger(__name__)


class Preempted(Exception):
    """A preemption signal stopped the run after a checkpoint was saved."""

    def __init__(self, iteration: int, checkpoint: Path) -> None:
        super().__init__(f"preempted: saved {checkpoint} at iteration {iteration}; rerun the same command to resume")
        self.iteration = iteration
        self.checkpoint = checkpoint


@dataclass
class TrainResult:
    iteration: int
    losses: dict[int, float] = field(default_factory=dict)  # step -> train loss (on the logging rank)
    valid_losses: dict[int, float] = field(default_factory=dict)
    last_checkpoint: Path | None = None
    nothing_to_do: str | None = None  # why a finished run did not train
    start_iteration: int = 0
    tokens: int = 0  # real tokens trained by this run (padding excluded), counted on the logging rank
    seconds: float = 0.0

    def summary(self, output_dir: Path) -> str:
        """The closing line of a run: what it trained and where the model is."""
        parts = [f"trained steps {self.start_iteration}->{self.iteration}", f"{self.tokens:,} tokens"]
        if self.losses:
            parts.append(f"final loss {self.losses[max(self.losses)]:.4f}")
        if self.valid_losses:
            parts.append(f"validation loss {self.valid_losses[max(self.valid_losses)]:.4f}")
        parts.append(f"{self.seconds:.0f} s")
        where = f"checkpoint {self.last_checkpoint}" if self.last_checkpoint else "no checkpoint saved"
        return f"done: {', '.join(parts)}; {where}; metrics in {output_dir / 'metrics.jsonl'}"


# Loggers whose setup messages every rank would repeat: only rank 0 reports at INFO.
QUIET_ON_OTHER_RANKS = ("oc", "megatron")


class NothingToDo(Exception):
    """A resumed run has already reached ``train.iters``."""

    def __init__(self, iteration: int, reason: str) -> None:
        super().__init__(reason)
        self.iteration = iteration


# ---- the objects of a run -------------------------------------------------------------------------------------------
@dataclass
class RunPlan:
    """What ``prepare_run`` decides before anything is built."""

    start: StartPoint
    eod_id: int


@dataclass
class RunData:
    """Batch sources: ``train`` for the run's current phase (``build`` makes another phase's), ``valid`` fixed."""

    train: Any  # PretrainBatches | SFTBatches
    valid: Any | None
    phase: Phase
    position: int  # the data position of the run's first step (in samples of its phase)
    build: Callable[[Phase, int], Any] | None = None  # (phase, data position) -> train batch source (pretraining)


@dataclass
class ModelParts:
    model: list[torch.nn.Module]  # DDP-wrapped chunks
    chunks: list[torch.nn.Module]  # unwrapped GPTModel chunks (checkpointing, conversion)
    optimizer: Any
    scheduler: Any
    backend: str  # layer spec: te | local


@dataclass
class Trainer:
    """The objects of one run. Built by ``setup``; tests drive ``train_step`` / ``evaluate`` directly."""

    cfg: TrainConfig
    env: DistEnv
    parts: ModelParts
    data: RunData
    state: ckpt.TrainState
    is_logging_rank: bool
    device: torch.device
    schedule: dict  # the schedule record saved with checkpoints (training.schedule.schedule_record)
    thd: bool = False  # packed SFT sequences as THD PackedSeqParams (Transformer Engine) rather than a mask
    _causal_masks: dict[int, torch.Tensor] = field(default_factory=dict)

    @property
    def model(self) -> list[torch.nn.Module]:
        return self.parts.model

    @property
    def optimizer(self):
        return self.parts.optimizer

    def causal_mask(self, seq_length: int) -> torch.Tensor | None:
        """TE attention is causal by itself (no mask tensor); the local spec gets an explicit causal mask (True =
        masked), since Megatron's default one is created on "cuda"."""
        if self.parts.backend == "te":
            return None
        if seq_length not in self._causal_masks:
            self._causal_masks[seq_length] = torch.triu(
                torch.ones(1, 1, seq_length, seq_length, dtype=torch.bool, device=self.device), diagonal=1)
        return self._causal_masks[seq_length]

    # ---- one step --------------------------------------------------------------------------------------------------
    def _forward_step(self, seq_length: int, data_iterator, model):
        batch = next(data_iterator)
        if batch is None:  # pretraining, a pipeline stage in the middle: its input comes from the previous stage
            output = model(None, None, self.causal_mask(seq_length))
            return output, None
        batch = {k: v.to(self.device, non_blocking=True) for k, v in batch.items()}
        position_ids, attention_mask, packed = batch["position_ids"], self.causal_mask(seq_length), None
        if "segment_ids" in batch:  # packed SFT sequences: each sample sees only itself, from position 0
            if self.thd:
                from oc_megatron.data.sft import packed_seq_params

                packed = packed_seq_params(batch["segment_ids"])
                attention_mask = None
                batch = {k: v.reshape(1, -1) for k, v in batch.items()}  # THD: the microbatch is one token stream
                position_ids = batch["position_ids"]
            else:
                from oc_megatron.data.sft import packed_attention_mask

                attention_mask = packed_attention_mask(batch["segment_ids"])
        if "tokens" not in batch:  # a middle stage of a packed batch: boundaries only
            return model(None, position_ids, attention_mask, packed_seq_params=packed), None
        output = model(batch["tokens"], position_ids, attention_mask, labels=batch["labels"],
                       packed_seq_params=packed)
        return output, partial(_loss_func, batch["loss_mask"])

    def _data_iterators(self, step: StepBatch):
        from megatron.core import parallel_state as ps

        def needs_data(vp_stage: int | None) -> bool:
            return (ps.is_pipeline_first_stage(ignore_virtual=False, vp_stage=vp_stage)
                    or ps.is_pipeline_last_stage(ignore_virtual=False, vp_stage=vp_stage))

        if len(self.model) == 1:
            return step.microbatches(needs_data(None))
        return [step.microbatches(needs_data(i)) for i in range(len(self.model))]

    def _run_microbatches(self, step: StepBatch, forward_only: bool) -> tuple[float, float] | None:
        from megatron.core.pipeline_parallel import get_forward_backward_func

        seq_length, micro_batch_size = step.seq_length, step.micro_batch_size
        if self.thd:  # activations are [b*s, 1, h] between pipeline stages
            seq_length, micro_batch_size = seq_length * micro_batch_size, 1
        results = get_forward_backward_func()(
            forward_step_func=partial(self._forward_step, step.seq_length),
            data_iterator=self._data_iterators(step),
            model=self.model if len(self.model) > 1 else self.model[0],
            num_microbatches=step.num_microbatches,
            seq_length=seq_length,
            micro_batch_size=micro_batch_size,
            forward_only=forward_only,
        )
        return _reduce_loss(results)

    def enter_phase(self, iteration: int) -> None:
        """Switch to the batch phase of step ``iteration`` (pretraining with ``train.phases``): a dataset of the new
        sequence length, read from the token position the previous phase reached. Collective."""
        phase = self.cfg.phase_at(iteration)
        if phase == self.data.phase:
            return
        position = phase_position(self.state.consumed_samples, self.data.phase.seq_length, phase.seq_length)
        log.info("step %d: phase %d x %d tokens (was %d x %d); data continues at sample %d (token %d)", iteration + 1,
                 phase.global_batch_size, phase.seq_length, self.data.phase.global_batch_size,
                 self.data.phase.seq_length, position, position * phase.seq_length)
        self.data.train = self.data.build(phase, position)
        self.data.phase = phase
        self.state.consumed_samples = position

    def train_step(self) -> dict[str, float]:
        """One optimizer step on the next global batch. Returns metrics (loss only on the last pipeline stage)."""
        if self.data.build is not None:
            self.enter_phase(self.state.iteration)
        for m in self.model:
            m.zero_grad_buffer()
        self.optimizer.zero_grad()
        start = time.perf_counter()
        step = self.data.train.step(self.state.consumed_samples)
        reduced = self._run_microbatches(step, forward_only=False)
        ok, grad_norm, _ = self.optimizer.step()
        lr = self.optimizer.param_groups[0]["lr"]  # the LR this step used
        self.parts.scheduler.step(increment=1)
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        seconds = time.perf_counter() - start
        self.state.iteration += 1
        self.state.consumed_samples += step.samples
        out: dict[str, float] = {"lr": lr, "step_seconds": seconds, "update_ok": float(bool(ok)),
                                 "samples": step.samples, "tokens": step.tokens, "positions": step.positions,
                                 "microbatches": step.num_microbatches, **step.extra}
        if grad_norm is not None:
            out["grad_norm"] = float(grad_norm)
        if reduced is not None:
            out["loss"], out["trained_tokens"] = reduced
        return out

    def evaluate(self) -> float | None:
        """Mean token loss over the fixed validation batches (None on stages without the loss)."""
        if self.data.valid is None:
            return None
        for m in self.model:
            m.eval()
        total, count = 0.0, 0.0
        with torch.no_grad():
            for i in range(self.cfg.train.eval_iters):
                # The first phase's batches, whatever phase the run is in: comparable all along.
                r = self._run_microbatches(self.data.valid.step(i * self.cfg.phases[0].global_batch_size),
                                           forward_only=True)
                if r is not None:
                    total += r[0]
                    count += 1
        for m in self.model:
            m.train()
        return total / count if count else None

    def save(self, saver: ckpt.CheckpointSaver) -> Path:
        self.state.layout = ckpt.current_layout()
        self.state.model = self.cfg.model.model_dump()
        self.state.tokenizer = str(Path(self.cfg.data.tokenizer).resolve())
        self.state.lr = self.optimizer.param_groups[0]["lr"]  # set by the scheduler for the next step
        self.state.schedule = self.schedule
        return saver.save(self.parts.chunks, self.optimizer, self.parts.scheduler, self.state,
                          ddp_models=self.model)


def _loss_func(loss_mask: torch.Tensor, output_tensor: torch.Tensor):
    """Per-token loss: (sum of masked token losses, number of tokens, report). Megatron divides by the global count."""
    losses = output_tensor.float().reshape(-1)
    mask = loss_mask.float().reshape(-1)
    loss_sum = torch.sum(losses * mask)
    num_tokens = mask.sum().to(torch.int)
    report = torch.stack([loss_sum.detach().clone(), mask.sum().detach()])
    return loss_sum, num_tokens, {"lm loss": report}


def _reduce_loss(results: list[dict[str, torch.Tensor]] | None) -> tuple[float, float] | None:
    """(mean token loss, trained tokens) of a global batch: summed over microbatches, then over data-parallel ranks."""
    from megatron.core import parallel_state as ps

    if not results or not ps.is_pipeline_last_stage(ignore_virtual=True):
        return None
    total = torch.stack([r["lm loss"] for r in results]).sum(0)
    if ps.get_data_parallel_world_size() > 1:
        torch.distributed.all_reduce(total, group=ps.get_data_parallel_group())
    return float(total[0] / total[1]), float(total[1])


# ---- setup, in pieces ----------------------------------------------------------------------------------------------
def prepare_run(cfg: TrainConfig) -> RunPlan:
    """Checks and the start point, before any process group, model or dataset exists (rank-local reads only)."""
    from oc_megatron.training.distributed import detect_launcher

    cfg.check(detect_launcher()[2])
    eod_id = cfg.check_data()
    return RunPlan(plan_start(cfg), eod_id)


def build_data(cfg: TrainConfig, plan: RunPlan, rank: int) -> RunData:
    """The batch sources of the run (collective: dataset caches are built by rank 0 first). Sets ``train.iters`` of
    an SFT run from its epochs."""
    from megatron.core import parallel_state as ps

    dp, dp_rank = ps.get_data_parallel_world_size(), ps.get_data_parallel_rank()
    p, start = cfg.parallel, plan.start
    if cfg.data.sft is not None:
        from oc_megatron.data.sft import build_sft_batches

        # The interleaved schedule needs a multiple of PP microbatches: packed steps are padded to one.
        multiple = p.pipeline if p.virtual_pipeline is not None else 1
        train, valid = build_sft_batches(cfg, pad_id=plan.eod_id, data_parallel_size=dp, data_parallel_rank=dp_rank,
                                         microbatch_multiple=multiple)
        _sft_iters(cfg, train, valid, start)
        return RunData(train, valid, cfg.phases[0], start.consumed_samples)

    first = cfg.phases[0]
    valid = None

    def phase_batches(phase: Phase, position: int) -> PretrainBatches:
        nonlocal valid
        layout = BatchLayout(phase.global_batch_size, phase.micro_batch_size, dp, dp_rank)
        run_samples = max(_phase_end(cfg, phase) - max(start.iteration, phase.from_step), 0) * phase.global_batch_size
        with_valid = cfg.train.eval_interval > 0 and valid is None and phase == first
        train, valid_ds = build_datasets(cfg, plan.eod_id, position + run_samples, phase=phase, valid=with_valid)
        if with_valid:
            valid = PretrainBatches(valid_ds, layout, phase.seq_length)
        _log_blend(cfg, train, position, run_samples, phase, rank == 0)
        return PretrainBatches(train, layout, phase.seq_length)

    # The phase of the first step, and the data position in its samples (a checkpoint saved in another phase
    # counted samples of that phase's length).
    phase = cfg.phase_at(start.iteration)
    saved_phase = cfg.phase_at(max(start.iteration - 1, 0))
    position = phase_position(start.consumed_samples, saved_phase.seq_length, phase.seq_length)
    if position != start.consumed_samples:
        log.info("data position: sample %d of %d tokens = sample %d of this phase's %d", start.consumed_samples,
                 saved_phase.seq_length, position, phase.seq_length)
    train = phase_batches(phase, position)
    if cfg.train.eval_interval > 0 and valid is None:  # validation: the first phase's batches, all run long
        _, valid_ds = build_datasets(cfg, plan.eod_id, first.global_batch_size, phase=first)
        valid = PretrainBatches(valid_ds, BatchLayout(first.global_batch_size, first.micro_batch_size, dp, dp_rank),
                                first.seq_length)
    return RunData(train, valid, phase, position, phase_batches if len(cfg.phases) > 1 else None)


def _phase_end(cfg: TrainConfig, phase: Phase) -> int:
    later = [ph.from_step for ph in cfg.phases if ph.from_step > phase.from_step]
    return min(later[0], cfg.train.iters) if later else cfg.train.iters


def _log_blend(cfg: TrainConfig, dataset, first_sample: int, num_samples: int, phase: Phase, write: bool) -> None:
    blend = blend_report(cfg, dataset, first_sample, num_samples)
    log.info("data blend over samples %d..%d of %d tokens: %s", first_sample, first_sample + num_samples,
             phase.seq_length, format_blend(blend))
    if write:
        out = Path(cfg.output_dir)
        out.mkdir(parents=True, exist_ok=True)
        name = "data_blend.json" if phase.from_step == 0 else f"data_blend_from_step_{phase.from_step}.json"
        atomic_write_json(out / name, blend)


def _sft_iters(cfg: TrainConfig, train, valid, start: StartPoint) -> None:
    """Log what an SFT step is, and derive ``train.iters`` from the epochs."""
    t, d = cfg.train, cfg.data.sft
    st, g = train.samples.stats, train.global_batch_size
    per_epoch = train.samples.steps_per_epoch(g)
    remaining = _sft_steps_from(train.samples, start.consumed_samples, g)
    epoch_steps = start.iteration + remaining
    log.info("SFT data: %d samples x %d epochs, %d samples per step (%d steps per epoch), each in %s sequence of %d "
             "positions; %d samples truncated to %d tokens, %d dropped as longer, %d with fewer than 2 tokens",
             st.samples, d.epochs, g, per_epoch, "a packed" if d.packing else "its own", cfg.seq_length,
             st.truncated, cfg.seq_length, st.dropped_too_long, st.dropped_empty)
    if t.iters is None:
        log.info("train.iters: %d (%d samples over %d epochs, %d samples per step)", epoch_steps, st.samples,
                 d.epochs, g)
        t.iters = epoch_steps
    elif t.iters != epoch_steps:
        log.info("train.iters %d given: stops after %d of the %d steps of %d epochs", t.iters, t.iters, epoch_steps,
                 d.epochs)
    if t.iters <= start.iteration and start.kind != "resume":
        raise ConfigError(f"train.iters: {t.iters} leaves nothing to train after step {start.iteration}")
    if valid is not None:
        batches = min(t.eval_iters, valid.samples.steps_per_epoch(g))
        if batches < t.eval_iters:
            log.info("validation: %d samples make %d of the %d batches of train.eval_iters", len(valid.samples),
                     batches, t.eval_iters)
            t.eval_iters = batches


def _sft_steps_from(samples, position: int, global_batch_size: int) -> int:
    """SFT steps from data ``position`` to the end of the last epoch (each epoch ends with a partial step)."""
    epoch, offset = divmod(position, len(samples))
    if epoch >= samples.epochs:
        return 0
    return (math.ceil((len(samples) - offset) / global_batch_size)
            + (samples.epochs - epoch - 1) * samples.steps_per_epoch(global_batch_size))


def build_model_and_optimizer(cfg: TrainConfig, schedule_shape: dict | None) -> tuple[ModelParts, Any]:
    """Model chunks wrapped in DDP, the optimizer and the LR scheduler (``schedule_shape``: a kept checkpoint
    schedule). Returns them and the TransformerConfig. Call after the parallel state exists."""
    from megatron.core.distributed import DistributedDataParallel, DistributedDataParallelConfig, finalize_model_grads
    from megatron.core.optimizer import OptimizerConfig, get_megatron_optimizer

    from oc_megatron.models.opencoder import build_model, transformer_config
    from oc_megatron.models.specs import resolve_spec_backend
    from oc_megatron.training.schedule import build_scheduler

    p, pr = cfg.parallel, cfg.precision
    dtype = pr.resolved_dtype(torch.cuda.is_available())
    backend = resolve_spec_backend(pr.layer_spec)
    packed = cfg.data.sft is not None and cfg.data.sft.packing
    tconfig = transformer_config(
        cfg.model, tensor_parallel=p.tensor, pipeline_parallel=p.pipeline, virtual_pipeline=p.virtual_pipeline,
        num_layers_in_first_pipeline_stage=p.num_layers_in_first_pipeline_stage,
        num_layers_in_last_pipeline_stage=p.num_layers_in_last_pipeline_stage,
        sequence_parallel=p.sequence_parallel, context_parallel=p.context_parallel, precision=dtype,
        fp8=pr.fp8, fp8_recipe=pr.fp8_recipe, fp8_amax_history_len=pr.fp8_amax_history_len,
        recompute=pr.recompute, recompute_num_layers=pr.recompute_num_layers, calculate_per_token_loss=True,
        # The local spec restarts RoPE per sample from position_ids, which the fused RoPE kernel cannot do.
        **({"apply_rope_fusion": False} if packed and backend == "local" else {}),
    )
    chunks = build_model(cfg.model, tconfig, spec=backend, seed=cfg.train.seed)
    ddp_config = DistributedDataParallelConfig(
        grad_reduce_in_fp32=True,
        overlap_grad_reduce=p.overlap_grad_reduce,
        overlap_param_gather=p.overlap_param_gather,
        use_distributed_optimizer=p.distributed_optimizer,
        check_for_nan_in_grad=True,
    )
    model = [DistributedDataParallel(config=tconfig, ddp_config=ddp_config, module=c,
                                     disable_bucketing=(i > 0)) for i, c in enumerate(chunks)]
    o = cfg.optimizer
    optimizer = get_megatron_optimizer(
        OptimizerConfig(optimizer="adam", lr=o.lr, min_lr=o.min_lr, weight_decay=o.weight_decay,
                        adam_beta1=o.adam_beta1, adam_beta2=o.adam_beta2, adam_eps=o.adam_eps,
                        clip_grad=o.clip_grad, bf16=dtype == "bf16", params_dtype=tconfig.params_dtype,
                        use_distributed_optimizer=p.distributed_optimizer,
                        overlap_param_gather=p.overlap_param_gather),
        model,
    )
    scheduler = build_scheduler(optimizer, o, cfg.schedule, cfg.train.iters, schedule_shape)
    # The schedule calls these between microbatches and at the end of backward.
    tconfig.finalize_model_grads_func = finalize_model_grads
    tconfig.no_sync_func = [m.no_sync for m in model] if len(model) > 1 else model[0].no_sync
    if p.overlap_grad_reduce:
        tconfig.grad_sync_func = [m.start_grad_sync for m in model] if len(model) > 1 else model[0].start_grad_sync
    if p.overlap_param_gather and p.distributed_optimizer:
        tconfig.param_sync_func = ([m.start_param_sync for m in model] if len(model) > 1
                                   else model[0].start_param_sync)
    return ModelParts(model, chunks, optimizer, scheduler, backend), tconfig


def _continuation(plan: RunPlan, cfg: TrainConfig) -> dict | None:
    """The checkpoint's LR shape when the run keeps it (else None); raises NothingToDo for a finished run."""
    kept_shape = continue_schedule(plan.start, cfg)
    done = finished(plan.start, cfg)
    if done is not None:
        raise NothingToDo(plan.start.iteration, done)
    return kept_shape


def setup(cfg: TrainConfig) -> Trainer:
    """Everything up to the first step (including resume / init). Collective: call on all ranks. Raises
    ``NothingToDo`` for a finished run.

    Values the run derives are written back into ``cfg`` (and so into OUTPUT/config.yaml): ``train.iters`` of an SFT
    run (from the epochs) and ``optimizer.lr`` when it comes from the checkpoint (``init_from.keep_lr``).
    """
    from oc_megatron.models.cpu_compat import apply_cpu_shims
    from oc_megatron.training.schedule import schedule_record

    plan = prepare_run(cfg)  # a bad config fails here, before any process group or model exists
    if plan.start.peak_lr is not None and plan.start.peak_lr != cfg.optimizer.lr:
        log.info("optimizer.lr: %g -> %g, the LR of %s (init_from.keep_lr)", cfg.optimizer.lr, plan.start.peak_lr,
                 (plan.start.saved.init or {}).get("path", plan.start.source))
        cfg.optimizer.lr = plan.start.peak_lr
    # A resumed run continues its schedule (or says how not to), and a finished one stops here; SFT knows its
    # train.iters only from the data, so it is checked once the data is read.
    kept_shape = _continuation(plan, cfg) if cfg.train.iters is not None else None
    apply_cpu_shims()  # before Megatron-Core builds anything (see cpu_compat)
    from megatron.core import parallel_state as ps

    env = init_distributed()
    if env.rank != 0:  # every rank builds the same run: rank 0 alone reports it (run_training: the losses)
        for name in QUIET_ON_OTHER_RANKS:
            logging.getLogger(name).setLevel(logging.WARNING)
    if env.launcher == "external":  # a process group created by the caller (tests): check its real size
        cfg.check(env.world_size)
    elif cfg.cluster is not None and cfg.cluster.world_size != env.world_size:
        log.info("cluster: the recipe is written for %d ranks (%d x %d); running on %d", cfg.cluster.world_size,
                 cfg.cluster.nodes, cfg.cluster.gpus_per_node, env.world_size)
    p = cfg.parallel
    init_model_parallel(p.tensor, p.pipeline, p.virtual_pipeline, p.context_parallel)
    seed_everything(cfg.train.seed)
    iters_known = cfg.train.iters is not None
    data = build_data(cfg, plan, env.rank)
    cfg.check_schedule(cfg.train.iters)
    if not iters_known:
        kept_shape = _continuation(plan, cfg)
    parts, _ = build_model_and_optimizer(cfg, kept_shape)
    record = schedule_record(cfg.optimizer, cfg.schedule, cfg.train.iters)
    if kept_shape is not None:
        record = plan.start.saved.schedule
    state = restore(plan.start, cfg, parts.chunks, parts.optimizer, parts.scheduler)
    state.consumed_samples = data.position
    cuda = torch.cuda.is_available()
    device = torch.device("cuda", torch.cuda.current_device()) if cuda else torch.device("cpu")
    is_logging_rank = (ps.is_pipeline_last_stage(ignore_virtual=True) and ps.get_tensor_model_parallel_rank() == 0
                       and ps.get_data_parallel_rank() == 0)
    return Trainer(cfg, env, parts, data, state, is_logging_rank, device, record,
                   thd=cfg.data.sft is not None and cfg.data.sft.packing and parts.backend == "te")


def run_training(cfg: TrainConfig) -> TrainResult:
    """Train until ``train.iters`` (or a signal, or ``train.exit_interval``). See the module docstring."""
    level = logging.getLogger("oc").level
    try:
        trainer = setup(cfg)
    except NothingToDo as e:
        log.warning("%s", e)
        return TrainResult(e.iteration, nothing_to_do=str(e))
    from megatron.core import parallel_state as ps

    if trainer.is_logging_rank:  # the last pipeline stage holds the loss: it reports the steps and the summary
        logging.getLogger("oc").setLevel(level)

    t, c, lg = cfg.train, cfg.checkpoint, cfg.logging
    out_dir = Path(cfg.output_dir)
    if trainer.env.rank == 0:
        out_dir.mkdir(parents=True, exist_ok=True)
        dump_config(cfg, out_dir / "config.yaml")
    start_iteration = trainer.state.iteration
    resumed = start_iteration > 0
    metrics = MetricsLogger(out_dir, trainer.is_logging_rank, lg.tensorboard, lg.wandb_project,
                            cfg.model_dump(mode="json"), append=resumed)
    saver = ckpt.CheckpointSaver(cfg.checkpoint_dir, c.optimizer_format, c.async_save, c.keep_last)
    world = trainer.env.world_size
    peak = device_peak_tflops(cfg.precision.fp8 is not None, lg.peak_tflops)
    result = TrainResult(trainer.state.iteration, start_iteration=start_iteration)
    began = time.perf_counter()
    phase = trainer.data.phase
    log.info("training %s: TP %d x PP %d (VPP %s) x DP %d, %d samples of %d tokens per step in microbatches of %d, "
             "from step %d to %d", cfg.model.preset or "custom model", cfg.parallel.tensor, cfg.parallel.pipeline,
             cfg.parallel.virtual_pipeline or "-", ps.get_data_parallel_world_size(), phase.global_batch_size,
             phase.seq_length, phase.micro_batch_size, trainer.state.iteration, t.iters)

    def save() -> Path:
        result.last_checkpoint = trainer.save(saver)
        return result.last_checkpoint

    try:
        with PreemptionHandler(c.signals) as preemption:
            while trainer.state.iteration < t.iters:
                values = trainer.train_step()
                step = trainer.state.iteration
                saver.finalize()
                if "loss" in values and trainer.is_logging_rank:
                    if not math.isfinite(values["loss"]):
                        log.warning("step %d: loss is %s", step, values["loss"])
                    flops = cfg.model.flops_per_token(trainer.data.phase.seq_length, cfg.parallel.tensor) \
                        * values["positions"]
                    values.update(throughput(values["step_seconds"], values["tokens"], flops, world, peak))
                    result.losses[step] = values["loss"]
                    result.tokens += int(values["tokens"])
                    if step % lg.interval == 0 or step == t.iters:
                        metrics.log(step, {**values, "consumed_samples": trainer.state.consumed_samples})
                        log.info(format_line(step, t.iters, values))
                if t.eval_interval and step % t.eval_interval == 0:
                    vloss = trainer.evaluate()
                    if vloss is not None and trainer.is_logging_rank:
                        result.valid_losses[step] = vloss
                        metrics.log(step, {"loss": vloss, "ppl": math.exp(min(vloss, 50.0))}, prefix="valid")
                        log.info("step %d/%d | validation loss %.6f", step, t.iters, vloss)
                stop = preemption.should_stop()
                exiting = bool(t.exit_interval) and step == t.exit_interval
                if stop or (c.interval and step % c.interval == 0) or (exiting and c.save_final):
                    save()
                if stop:
                    raise Preempted(step, result.last_checkpoint)
                if exiting:
                    log.info("train.exit_interval reached at step %d", step)
                    break
            final = ckpt.iteration_dir(cfg.checkpoint_dir, trainer.state.iteration)
            ran = trainer.state.iteration > start_iteration or not resumed
            if c.save_final and ran and (result.last_checkpoint is None or result.last_checkpoint.name != final.name):
                save()  # the end of the run (train.iters, or train.exit_interval); iters=0 saves the initial model
    finally:
        saver.close()
        metrics.close()
    result.iteration = trainer.state.iteration
    result.seconds = time.perf_counter() - began
    if trainer.is_logging_rank:
        log.info("%s", result.summary(out_dir))
    return result
