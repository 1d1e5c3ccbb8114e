"""The training loop for pretraining, annealing and SFT: Megatron-Core parts, no ``megatron.training``.

``run_training(cfg)`` does, on every rank (torchrun, srun, or one process):

1. config checks that need the world size; data checks (prefixes exist, tokenizer fits the model); how the run
   starts (``training.start``: resume, ``init_from`` with explicit keep/reset, or scratch);
2. process group (NCCL / gloo) and Megatron parallel state (TP, PP, virtual PP, DP);
3. model chunks (``models.opencoder.build_model``: TE or local spec, layout-invariant init), each wrapped in
   Megatron-Core DDP (fp32 grad buffers; the distributed optimizer shards optimizer state over DP);
4. data: the blended GPTDataset (pretraining / annealing; the realised blend is logged and written to
   ``data_blend.json``) or the SFT sequences (``data.sft``: packed, with ``train.iters`` from the epochs);
5. optimizer (``get_megatron_optimizer``: Adam, grad clipping) and ``OptimizerParamScheduler`` (WSD / cosine), then
   the start point's state loaded into them;
6. steps: ``get_forward_backward_func`` (1F1B, interleaved with virtual PP) with a per-token loss
   (``calculate_per_token_loss``: the loss is the mean over all trained tokens of the global batch, whatever the
   layout), ``optimizer.step``, scheduler step, metrics, periodic validation and checkpoints, preemption checks.

Packed SFT sequences carry ``segment_ids``: with Transformer Engine they become THD ``PackedSeqParams``
(``cu_seqlens``; the microbatch is laid out as one [1, b*s] sequence), on the local spec a block-diagonal causal mask
plus per-sample ``position_ids`` for RoPE. Every pipeline stage receives them (``collate_metadata``), not only the
first and last.

Returns a ``TrainResult``; raises ``Preempted`` after saving when a signal asked the run to stop.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import torch

from oc_common.config import dump_config
from oc_common.errors import ConfigError
from oc_common.fileio import atomic_write_json
from oc_common.log import get_logger
from oc_megatron.config import TrainConfig
from oc_megatron.data.blend import BatchLayout, blend_report, build_datasets, format_blend, microbatch_iterator
from oc_megatron.training import checkpoint as ckpt
from oc_megatron.training.distributed import DistEnv, init_distributed, init_model_parallel, seed_everything
from oc_megatron.training.metrics import MetricsLogger, device_peak_tflops, format_line, throughput
from oc_megatron.training.preemption import PreemptionHandler
from oc_megatron.training.start import plan_start, restore

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


@dataclass
class Trainer:
    """The objects of one run. Built by ``setup``; tests drive ``train_step`` / ``evaluate`` directly."""

    cfg: TrainConfig
    env: DistEnv
    model: list[torch.nn.Module]  # DDP-wrapped chunks
    chunks: list[torch.nn.Module]  # unwrapped GPTModel chunks (checkpointing, conversion)
    optimizer: Any
    scheduler: Any
    batch: BatchLayout
    train_data: Any
    valid_data: Any
    state: ckpt.TrainState
    is_logging_rank: bool
    attention_mask: torch.Tensor | None  # causal mask for the local spec (None with TE: causal by itself)
    device: torch.device
    thd: bool = False  # packed sequences as THD PackedSeqParams (Transformer Engine) rather than a mask

    # ---- one step --------------------------------------------------------------------------------------------------
    def _forward_step(self, data_iterator, model):
        batch = next(data_iterator)
        if batch is None:  # pretraining, a pipeline stage in the middle: its input comes from the previous stage
            output = model(None, None, self.attention_mask)
            return output, None
        batch = {k: v.to(self.device, non_blocking=True) for k, v in batch.items()}
        position_ids, attention_mask, packed = batch["position_ids"], self.attention_mask, None
        if "segment_ids" in batch:  # SFT sequences: each sample sees only itself, from position 0
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

    def _data_iterators(self, dataset, first_sample: int):
        from megatron.core import parallel_state as ps

        def needs_data(vp_stage: int | None) -> bool:
            return (ps.is_pipeline_first_stage(ignore_virtual=False, vp_stage=vp_stage)
                    or ps.is_pipeline_last_stage(ignore_virtual=False, vp_stage=vp_stage))

        if len(self.model) == 1:
            return microbatch_iterator(dataset, self.batch, first_sample, needs_data(None))
        return [microbatch_iterator(dataset, self.batch, first_sample, needs_data(i))
                for i in range(len(self.model))]

    def _run_microbatches(self, dataset, first_sample: int, forward_only: bool) -> float | None:
        from megatron.core.pipeline_parallel import get_forward_backward_func

        seq_length, micro_batch_size = self.cfg.seq_length, self.cfg.train.micro_batch_size
        if self.thd:  # activations are [b*s, 1, h] between pipeline stages
            seq_length, micro_batch_size = seq_length * micro_batch_size, 1
        results = get_forward_backward_func()(
            forward_step_func=self._forward_step,
            data_iterator=self._data_iterators(dataset, first_sample),
            model=self.model if len(self.model) > 1 else self.model[0],
            num_microbatches=self.batch.num_microbatches,
            seq_length=seq_length,
            micro_batch_size=micro_batch_size,
            forward_only=forward_only,
        )
        return _reduce_loss(results)

    def train_step(self) -> dict[str, float]:
        """One optimizer step on the next global batch. Returns metrics (loss only on the last pipeline stage)."""
        for m in self.model:
            m.zero_grad_buffer()
        self.optimizer.zero_grad()
        start = time.perf_counter()
        loss = self._run_microbatches(self.train_data, self.state.consumed_samples, forward_only=False)
        ok, grad_norm, _ = self.optimizer.step()
        lr = self.optimizer.param_groups[0]["lr"]  # the LR this step used
        self.scheduler.step(increment=1)
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        seconds = time.perf_counter() - start
        self.state.iteration += 1
        self.state.consumed_samples += self.batch.global_batch_size
        out: dict[str, float] = {"lr": lr, "step_seconds": seconds, "update_ok": float(bool(ok))}
        if grad_norm is not None:
            out["grad_norm"] = float(grad_norm)
        if loss is not None:
            out["loss"] = loss
        return out

    def evaluate(self) -> float | None:
        """Mean token loss over the fixed validation batches (None on stages without the loss)."""
        if self.valid_data is None:
            return None
        for m in self.model:
            m.eval()
        total, count = 0.0, 0.0
        with torch.no_grad():
            for i in range(self.cfg.train.eval_iters):
                r = self._run_microbatches(self.valid_data, i * self.batch.global_batch_size, forward_only=True)
                if r is not None:
                    total += r
                    count += 1
        for m in self.model:
            m.train()
        return total / count if count else None

    def save(self, saver: ckpt.CheckpointSaver) -> Path:
        self.state.layout = ckpt.current_layout()
        self.state.model = self.cfg.model.model_dump()
        self.state.tokenizer = str(Path(self.cfg.data.tokenizer).resolve())
        self.state.lr = self.optimizer.param_groups[0]["lr"]  # set by the scheduler for the next step
        return saver.save(self.chunks, self.optimizer, self.scheduler, self.state)


def _loss_func(loss_mask: torch.Tensor, output_tensor: torch.Tensor):
    """Per-token loss: (sum of masked token losses, number of tokens, report). Megatron divides by the global count."""
    losses = output_tensor.float().reshape(-1)
    mask = loss_mask.float().reshape(-1)
    loss_sum = torch.sum(losses * mask)
    num_tokens = mask.sum().to(torch.int)
    report = torch.stack([loss_sum.detach().clone(), mask.sum().detach()])
    return loss_sum, num_tokens, {"lm loss": report}


def _reduce_loss(results: list[dict[str, torch.Tensor]] | None) -> float | None:
    """Mean token loss of a global batch: sum over microbatches, then over data-parallel ranks."""
    from megatron.core import parallel_state as ps

    if not results or not ps.is_pipeline_last_stage(ignore_virtual=True):
        return None
    total = torch.stack([r["lm loss"] for r in results]).sum(0)
    if ps.get_data_parallel_world_size() > 1:
        torch.distributed.all_reduce(total, group=ps.get_data_parallel_group())
    return float(total[0] / total[1])


def setup(cfg: TrainConfig) -> Trainer:
    """Everything up to the first step (including resume / init). Collective: call on all ranks.

    Values the run derives are written back into ``cfg`` (and so into OUTPUT/config.yaml): ``train.iters`` of an SFT
    run (from the epochs) and ``optimizer.lr`` when it comes from the checkpoint (``init_from.keep_lr``).
    """
    from oc_megatron.models.cpu_compat import apply_cpu_shims
    from oc_megatron.training.distributed import detect_launcher

    # A bad config fails here, before any process group or model exists.
    cfg.check(detect_launcher()[2])
    eod_id = cfg.check_data()
    start = plan_start(cfg)
    apply_cpu_shims()  # before Megatron-Core builds anything (see cpu_compat)
    from megatron.core import parallel_state as ps
    from megatron.core.distributed import DistributedDataParallel, DistributedDataParallelConfig, finalize_model_grads
    from megatron.core.optimizer import OptimizerConfig, get_megatron_optimizer

    from oc_megatron.models.opencoder import build_model, transformer_config
    from oc_megatron.models.specs import resolve_spec_backend
    from oc_megatron.training.schedule import build_scheduler

    env = init_distributed()
    cuda = torch.cuda.is_available()
    if env.launcher == "external":  # a process group created by the caller (tests): check its real size
        cfg.check(env.world_size)
    p, pr = cfg.parallel, cfg.precision
    init_model_parallel(p.tensor, p.pipeline, p.virtual_pipeline, p.context_parallel)
    seed_everything(cfg.train.seed)
    batch = BatchLayout(cfg.train.global_batch_size, cfg.train.micro_batch_size, ps.get_data_parallel_world_size(),
                        ps.get_data_parallel_rank())
    train_data, valid_data = _build_data(cfg, eod_id, start, env.rank == 0)
    cfg.check_schedule(cfg.train.iters)
    if start.peak_lr is not None and start.peak_lr != cfg.optimizer.lr:
        log.info("optimizer.lr: %g -> %g, the LR of %s (init_from.keep_lr)", cfg.optimizer.lr, start.peak_lr,
                 (start.saved.init or {}).get("path", start.source))
        cfg.optimizer.lr = start.peak_lr

    dtype = pr.resolved_dtype(cuda)
    backend = resolve_spec_backend(pr.layer_spec)
    packed = cfg.data.sft is not None
    tconfig = transformer_config(
        cfg.model, tensor_parallel=p.tensor, pipeline_parallel=p.pipeline, virtual_pipeline=p.virtual_pipeline,
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
    scheduler = build_scheduler(optimizer, o, cfg.schedule, cfg.train.iters)
    # The schedule calls these between microbatches and at the end of backward.
    tconfig.finalize_model_grads_func = finalize_model_grads
    tconfig.no_sync_func = [m.no_sync for m in model] if len(model) > 1 else model[0].no_sync
    if p.overlap_grad_reduce:
        tconfig.grad_sync_func = [m.start_grad_sync for m in model] if len(model) > 1 else model[0].start_grad_sync
    if p.overlap_param_gather and p.distributed_optimizer:
        tconfig.param_sync_func = ([m.start_param_sync for m in model] if len(model) > 1
                                   else model[0].start_param_sync)

    state = restore(start, cfg, chunks, optimizer, scheduler)
    device = torch.device("cuda", torch.cuda.current_device()) if cuda else torch.device("cpu")
    s = cfg.seq_length
    # TE attention is causal by itself (attn_mask_type=causal, no mask tensor); the local spec gets an explicit
    # causal mask (True = masked), since Megatron's default one is created on "cuda".
    attention_mask = None if backend == "te" else torch.triu(
        torch.ones(1, 1, s, s, dtype=torch.bool, device=device), diagonal=1)
    is_logging_rank = (ps.is_pipeline_last_stage(ignore_virtual=True) and ps.get_tensor_model_parallel_rank() == 0
                       and ps.get_data_parallel_rank() == 0)
    return Trainer(cfg, env, model, chunks, optimizer, scheduler, batch, train_data, valid_data, state,
                   is_logging_rank, attention_mask, device, thd=packed and backend == "te")


def _build_data(cfg: TrainConfig, eod_id: int, start, report: bool):
    """(train, valid) datasets for the run's sample range; sets ``train.iters`` of SFT runs from the epochs."""
    t = cfg.train
    gbs = t.global_batch_size
    if cfg.data.sft is not None:
        from oc_megatron.data.sft import build_sft_datasets

        train, valid = build_sft_datasets(cfg, pad_id=eod_id)
        st = train.stats
        epoch_steps = start.iteration + math.ceil(max(len(train) - start.consumed_samples, 0) / gbs)
        log.info("SFT data: %d samples x %d epochs -> %d sequences of %d positions (%s, %.0f%% real tokens); %d "
                 "samples longer than the sequence dropped", st.samples, cfg.data.sft.epochs, st.sequences,
                 cfg.seq_length, "packed" if cfg.data.sft.packing else "one sample each", 100 * st.fill,
                 st.dropped_too_long)
        if t.iters is None:
            log.info("train.iters: %d (%d sequences over %d epochs, in global batches of %d)", epoch_steps,
                     len(train), cfg.data.sft.epochs, gbs)
            t.iters = epoch_steps
        elif t.iters != epoch_steps:
            log.info("train.iters %d given: stops after %d of the %d steps of %d epochs", t.iters, t.iters,
                     epoch_steps, cfg.data.sft.epochs)
        if t.iters <= start.iteration:
            raise ConfigError(f"train.iters: {t.iters} leaves nothing to train after step {start.iteration}")
        return train, valid

    run_samples = (t.iters - start.iteration) * gbs
    train, valid = build_datasets(cfg, eod_id, start.consumed_samples + run_samples)
    blend = blend_report(cfg, train, start.consumed_samples, run_samples)
    log.info("data blend over samples %d..%d: %s", start.consumed_samples, start.consumed_samples + run_samples,
             format_blend(blend))
    if report:
        out = Path(cfg.output_dir)
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_json(out / "data_blend.json", blend)
    return train, valid


def run_training(cfg: TrainConfig) -> TrainResult:
    """Train until ``train.iters`` (or a signal, or ``train.exit_interval``). See the module docstring."""
    trainer = setup(cfg)
    from megatron.core import parallel_state as ps

    if trainer.env.rank != 0 and not trainer.is_logging_rank:
        logging.getLogger("oc").setLevel(logging.WARNING)  # rank 0 reports setup, the last stage the losses

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
    tokens_per_step = t.global_batch_size * cfg.seq_length
    flops_per_token = cfg.model.flops_per_token(cfg.seq_length)
    peak = device_peak_tflops(cfg.precision.fp8 is not None, lg.peak_tflops)
    result = TrainResult(trainer.state.iteration)
    log.info("training %s: TP %d x PP %d (VPP %s) x DP %d, %d microbatches of %d, from step %d to %d",
             cfg.model.preset or "custom model", cfg.parallel.tensor, cfg.parallel.pipeline,
             cfg.parallel.virtual_pipeline or "-", ps.get_data_parallel_world_size(), trainer.batch.num_microbatches,
             t.micro_batch_size, trainer.state.iteration, t.iters)

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
                    values.update(throughput(values["step_seconds"], tokens_per_step, flops_per_token, world, peak))
                    result.losses[step] = values["loss"]
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
    return result
