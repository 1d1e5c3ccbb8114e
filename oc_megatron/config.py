"""``TrainConfig``: everything a pretraining run needs, validated before any work starts.

One YAML recipe (e.g. ``examples/pretrain_tiny.yaml``) plus dotted CLI overrides (``optimizer.lr=1e-4``) is loaded by
``load_train_config``; field errors come from pydantic (``oc_common.config`` names the key), cross-field problems
from ``TrainConfig.check(world_size)`` / ``check_data``, which raise ``ConfigError`` naming the key, e.g.
``parallel.tensor: 4 does not divide model.num_attention_heads (14)``.

Numbers OpenCoder did not publish (weight decay, Adam betas, clipping) are our defaults and are marked so.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Literal

from pydantic import Field, NonNegativeInt, PositiveFloat, PositiveInt, field_validator

from oc_common.config import ConfigError, StrictModel, load_config
from oc_megatron.models.opencoder import FP8Format, FP8Recipe, ModelConfig, Recompute


class ParallelConfig(StrictModel):
    tensor: PositiveInt = Field(1, description="tensor-parallel size; must divide the attention and KV heads")
    pipeline: PositiveInt = 1
    virtual_pipeline: PositiveInt | None = Field(None, description="model chunks per pipeline rank (interleaved)")
    sequence_parallel: bool = Field(False, description="shard norms/dropout activations over TP ranks (TP > 1)")
    context_parallel: PositiveInt = 1
    distributed_optimizer: bool = Field(True, description="shard optimizer state over data-parallel ranks")
    overlap_grad_reduce: bool = Field(False, description="overlap DP grad reduction with backward (GPU)")
    overlap_param_gather: bool = Field(False, description="overlap dist-opt param all-gather with forward (GPU)")


class PrecisionConfig(StrictModel):
    dtype: Literal["auto", "fp32", "bf16"] = Field("auto", description="auto: bf16 with CUDA, fp32 on CPU")
    fp8: FP8Format | None = Field(None, description="FP8 through Transformer Engine: hybrid (E4M3 fwd, E5M2 bwd)")
    fp8_recipe: FP8Recipe = Field("delayed", description="delayed scaling, or tensorwise (current) scaling")
    fp8_amax_history_len: PositiveInt = 1024
    layer_spec: Literal["auto", "te", "local"] = Field("auto", description="auto: TE with TE+CUDA, else local")
    recompute: Recompute = "none"
    recompute_num_layers: PositiveInt = 1

    def resolved_dtype(self, cuda: bool) -> Literal["fp32", "bf16"]:
        if self.dtype == "auto":
            return "bf16" if cuda else "fp32"
        return self.dtype


class DataSource(StrictModel):
    path: str = Field(description="Megatron indexed dataset prefix (PATH.bin + PATH.idx, from oc-megatron preprocess)")
    weight: PositiveFloat = 1.0


class DataConfig(StrictModel):
    tokenizer: str = Field(description="HF tokenizer directory used by preprocess (vocab size and EOD id)")
    blend: list[DataSource] = Field(min_length=1, description="weighted dataset prefixes, sampled by weight")
    valid_blend: list[DataSource] | None = Field(None, description="separate validation data (else split)")
    split: str = Field("99,1,0", description="train,valid,test proportions of each prefix (without valid_blend)")
    cache_dir: str | None = Field(None, description="where GPTDataset index caches go (default: next to data)")

    @field_validator("split")
    @classmethod
    def _split(cls, v: str) -> str:
        parts = v.replace("/", ",").split(",")
        try:
            nums = [float(p) for p in parts]
        except ValueError:
            raise ValueError("expected comma-separated proportions like 99,1,0") from None
        if len(nums) != 3 or any(n < 0 for n in nums) or sum(nums) <= 0:
            raise ValueError("expected three non-negative proportions like 99,1,0")
        return ",".join(parts)


class TrainLoopConfig(StrictModel):
    iters: NonNegativeInt = Field(description="optimizer steps in total (resumed runs count from 0)")
    micro_batch_size: PositiveInt = 1
    global_batch_size: PositiveInt = Field(description="sequences per step; = micro x DP x microbatches")
    seq_length: PositiveInt | None = Field(None, description="default: model.seq_length")
    seed: int = 1234
    eval_interval: NonNegativeInt = Field(0, description="validation loss every N steps (0: never)")
    eval_iters: PositiveInt = Field(1, description="global batches per validation")
    exit_interval: NonNegativeInt | None = Field(None, description="save and stop after this step (for tests)")


class OptimizerConfig(StrictModel):
    lr: PositiveFloat = Field(3e-4, description="peak LR (OpenCoder: 3e-4)")
    min_lr: float = Field(1e-5, ge=0, description="LR at the end of decay (OpenCoder: 1e-5)")
    init_lr: float = Field(0.0, ge=0, description="LR at step 0 of warmup")
    weight_decay: float = Field(0.1, ge=0, description="ours: not published")
    adam_beta1: float = Field(0.9, gt=0, lt=1, description="ours: not published")
    adam_beta2: float = Field(0.95, gt=0, lt=1, description="ours: not published")
    adam_eps: PositiveFloat = 1e-8
    clip_grad: float = Field(1.0, ge=0, description="global grad-norm clip, 0 = off (ours: not published)")


class ScheduleConfig(StrictModel):
    style: Literal["wsd", "cosine", "linear", "constant"] = "wsd"
    warmup_steps: NonNegativeInt = Field(2000, description="linear warmup from optimizer.init_lr (OpenCoder: 2000)")
    decay_steps: NonNegativeInt | None = Field(
        None, description="wsd: length of the final decay phase; cosine/linear: decay ends at warmup+decay "
                          "(default: train.iters - warmup)")
    total_steps: PositiveInt | None = Field(None, description="step where the schedule ends (default: train.iters)")
    wsd_decay_style: Literal["exponential", "linear", "cosine", "minus_sqrt"] = "exponential"


class CheckpointConfig(StrictModel):
    dir: str | None = Field(None, description="save here and auto-resume from here (default: OUTPUT/checkpoints)")
    interval: NonNegativeInt = Field(0, description="save every N steps (0: only at the end and on signals)")
    save_final: bool = Field(True, description="save when the run ends (train.iters or train.exit_interval)")
    load_from: str | None = Field(None, description="resume (model, optimizer, schedule, data) from this dir/step "
                                                    "when `dir` has no checkpoint yet")
    init_from: str | None = Field(None, description="initialise weights only from this checkpoint (annealing)")
    async_save: bool = Field(False, description="write checkpoints in the background (GPU)")
    keep_last: NonNegativeInt = Field(0, description="delete older checkpoints, keeping this many (0: keep all)")
    optimizer_format: Literal["fully_reshardable", "dp_reshardable"] = Field(
        "fully_reshardable",
        description="distributed-optimizer state on disk: fully_reshardable reloads at any TP/PP/DP; "
                    "dp_reshardable saves without gathering but reloads only at the same TP/PP")
    signals: list[str] = Field(["SIGTERM", "SIGUSR1"], description="save a checkpoint and exit on these signals")


class LoggingConfig(StrictModel):
    interval: PositiveInt = 1
    tensorboard: bool = True
    wandb_project: str | None = Field(None, description="log to Weights & Biases too (needs `wandb`)")
    peak_tflops: PositiveFloat | None = Field(
        None, description="per-GPU peak for MFU (default: by device, e.g. H100 989 BF16 / 1979 FP8 dense)")


class TrainConfig(StrictModel):
    output_dir: str = Field(description="run directory: config.yaml, metrics.jsonl, tensorboard/, checkpoints/")
    model: ModelConfig
    parallel: ParallelConfig = ParallelConfig()
    precision: PrecisionConfig = PrecisionConfig()
    data: DataConfig
    train: TrainLoopConfig
    optimizer: OptimizerConfig = OptimizerConfig()
    schedule: ScheduleConfig = ScheduleConfig()
    checkpoint: CheckpointConfig = CheckpointConfig()
    logging: LoggingConfig = LoggingConfig()

    # ---- derived values ---------------------------------------------------------------------------------------
    @property
    def seq_length(self) -> int:
        return self.train.seq_length or self.model.seq_length

    @property
    def checkpoint_dir(self) -> Path:
        return Path(self.checkpoint.dir) if self.checkpoint.dir else Path(self.output_dir) / "checkpoints"

    def data_parallel_size(self, world_size: int) -> int:
        p = self.parallel
        return world_size // (p.tensor * p.pipeline * p.context_parallel)

    def num_microbatches(self, world_size: int) -> int:
        return self.train.global_batch_size // (self.train.micro_batch_size * self.data_parallel_size(world_size))

    # ---- cross-field checks -------------------------------------------------------------------------------------
    def check(self, world_size: int = 1, cuda: bool | None = None, te: bool | None = None) -> None:
        """Layout, batch and precision checks that need the world size / hardware. Raises ConfigError naming the key."""
        import torch

        from oc_megatron.models.specs import te_available

        cuda = torch.cuda.is_available() if cuda is None else cuda
        te = te_available() if te is None else te
        m, p = self.model, self.parallel
        if m.num_attention_heads % p.tensor:
            raise ConfigError(f"parallel.tensor: {p.tensor} does not divide model.num_attention_heads "
                              f"({m.num_attention_heads})")
        if m.num_query_groups % p.tensor:
            raise ConfigError(f"parallel.tensor: {p.tensor} does not divide model.num_query_groups "
                              f"({m.num_query_groups})")
        if m.vocab_size % p.tensor:
            raise ConfigError(f"parallel.tensor: {p.tensor} does not divide model.vocab_size ({m.vocab_size})")
        if m.ffn_hidden_size % p.tensor:
            raise ConfigError(f"parallel.tensor: {p.tensor} does not divide model.ffn_hidden_size "
                              f"({m.ffn_hidden_size})")
        if p.sequence_parallel and p.tensor == 1:
            raise ConfigError("parallel.sequence_parallel: needs parallel.tensor > 1")
        if p.virtual_pipeline is not None and p.pipeline == 1:
            raise ConfigError("parallel.virtual_pipeline: needs parallel.pipeline > 1")
        stages = p.pipeline * (p.virtual_pipeline or 1)
        if m.num_layers % stages:
            raise ConfigError(f"parallel.pipeline: model.num_layers ({m.num_layers}) is not divisible by pipeline x "
                              f"virtual_pipeline ({stages})")
        if p.context_parallel > 1:
            raise ConfigError("parallel.context_parallel: > 1 is not supported by this trainer yet")
        mp = p.tensor * p.pipeline * p.context_parallel
        if world_size % mp:
            raise ConfigError(f"parallel: world size {world_size} is not divisible by tensor x pipeline x context "
                              f"({mp})")
        dp = self.data_parallel_size(world_size)
        t = self.train
        if t.global_batch_size % (t.micro_batch_size * dp):
            raise ConfigError(f"train.global_batch_size: {t.global_batch_size} is not divisible by "
                              f"train.micro_batch_size x data-parallel size ({t.micro_batch_size} x {dp})")
        if p.virtual_pipeline is not None and self.num_microbatches(world_size) % p.pipeline:
            raise ConfigError(f"train.global_batch_size: the interleaved schedule needs the number of microbatches "
                              f"({self.num_microbatches(world_size)}) to be a multiple of parallel.pipeline")
        if self.seq_length % p.tensor and p.sequence_parallel:
            raise ConfigError(f"train.seq_length: {self.seq_length} is not divisible by parallel.tensor with "
                              "sequence parallelism")
        pr = self.precision
        if pr.fp8 is not None and not te:
            raise ConfigError(f"precision.fp8: {pr.fp8!r} needs Transformer Engine and a CUDA GPU "
                              f"({'no CUDA device' if not cuda else 'transformer_engine not importable'})")
        if pr.fp8 is not None and pr.layer_spec == "local":
            raise ConfigError("precision.fp8: needs precision.layer_spec te or auto (FP8 runs in TE modules)")
        if pr.layer_spec == "te" and not te:
            raise ConfigError("precision.layer_spec: 'te' needs Transformer Engine and a CUDA GPU")
        if pr.dtype == "bf16" and not cuda:
            raise ConfigError("precision.dtype: bf16 needs a CUDA GPU (on CPU the trainer runs fp32)")
        if self.checkpoint.async_save and not cuda:
            raise ConfigError("checkpoint.async_save: needs a CUDA GPU (saves are synchronous on CPU)")
        s = self.schedule
        total = s.total_steps or t.iters
        if s.style == "wsd" and total and (s.decay_steps or 0) > max(total - s.warmup_steps, 0):
            raise ConfigError(f"schedule.decay_steps: {s.decay_steps} does not fit after {s.warmup_steps} warmup "
                              f"steps in {total} steps")
        if self.optimizer.min_lr > self.optimizer.lr:
            raise ConfigError(f"optimizer.min_lr: {self.optimizer.min_lr} is above optimizer.lr {self.optimizer.lr}")

    def check_data(self) -> int:
        """Data prefixes exist and the tokenizer fits the model. Returns the tokenizer's EOD id."""
        for key, blend in (("data.blend", self.data.blend), ("data.valid_blend", self.data.valid_blend or [])):
            for i, src in enumerate(blend):
                missing = [s for s in (".bin", ".idx") if not Path(src.path + s).is_file()]
                if missing:
                    raise ConfigError(f"{key}[{i}].path: {src.path}{' and '.join(missing)} not found (run "
                                      f"`oc-megatron preprocess` to create the indexed dataset)")
        from oc_megatron.data.tokenizer import load_tokenizer_info

        try:
            info = load_tokenizer_info(self.data.tokenizer)
        except (OSError, ValueError) as e:
            raise ConfigError(f"data.tokenizer: {e}") from None
        if info.vocab_size > self.model.vocab_size:
            raise ConfigError(f"data.tokenizer: vocabulary of {info.vocab_size} tokens is larger than "
                              f"model.vocab_size ({self.model.vocab_size})")
        return info.eod_id


def load_train_config(path: str | Path, overrides: Iterable[str] = ()) -> TrainConfig:
    """YAML recipe + dotted overrides -> validated TrainConfig (field-level checks; call ``check`` for the rest)."""
    return load_config(path, list(overrides), TrainConfig)  # type: ignore[return-value]
