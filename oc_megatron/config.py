"""``TrainConfig``: everything a pretraining, annealing or SFT run needs, validated before any work starts.

One YAML recipe (e.g. ``examples/pretrain_tiny.yaml``) plus dotted CLI overrides (``optimizer.lr=1e-4``) is loaded by
``load_train_config``; field errors come from pydantic (``oc_common.config`` names the key), cross-field problems
from ``TrainConfig.check(world_size)`` / ``check_data``, which raise ``ConfigError`` naming the key, e.g.
``parallel.tensor: 4 does not divide model.num_attention_heads (14)``.

Numbers OpenCoder did not publish (weight decay, Adam betas, clipping) are our defaults and are marked so.

The three stages differ only in config: pretraining has ``data.blend``; annealing adds ``checkpoint.init_from`` (the
pretraining checkpoint, with what is kept spelled out) and the annealing blend; SFT has ``data.sft`` instead of a
blend and usually ``checkpoint.init_from`` with nothing but the weights kept.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, NonNegativeInt, PositiveFloat, PositiveInt, field_validator, model_validator

from oc_common.config import StrictModel, load_config
from oc_common.errors import ConfigError
from oc_megatron.models.opencoder import FP8Format, FP8Recipe, ModelConfig, Recompute


class ParallelConfig(StrictModel):
    tensor: PositiveInt = Field(1, description="tensor-parallel size; must divide the attention and KV heads")
    pipeline: PositiveInt = 1
    virtual_pipeline: PositiveInt | None = Field(None, description="model chunks per pipeline rank (interleaved)")
    num_layers_in_first_pipeline_stage: PositiveInt | None = Field(
        None, description="uneven pipeline split (Megatron-Core's key): layers on the first stage; the stages "
                          "between first and last share the rest evenly")
    num_layers_in_last_pipeline_stage: PositiveInt | None = Field(
        None, description="uneven pipeline split (Megatron-Core's key): layers on the last stage")
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


# OpenCoder's annealing mixture (docs/opencoder.md §3: the paper's annealing-data table, v1) in billions of tokens: the
# original RefineCode distribution, the algorithmic corpus (`oc-synth curate select-algorithmic`), synthetic code
# snippets, synthetic code textbooks. They are the default weights of blend sources with these names; Megatron
# normalises weights, so each component is sampled by its token share (83.98%, 12.41%, 2.70%, 0.91%).
OPENCODER_ANNEALING_TOKENS_B: dict[str, float] = {
    "original": 84.21, "algorithmic": 12.44, "synthetic_snippets": 2.71, "synthetic_textbooks": 0.91,
}


class DataSource(StrictModel):
    path: str = Field(description="Megatron indexed dataset prefix (PATH.bin + PATH.idx, from oc-megatron preprocess)")
    name: str | None = Field(None, description="label in logs and data_blend.json; the annealing components "
                                               f"{', '.join(OPENCODER_ANNEALING_TOKENS_B)} get OpenCoder's weights")
    weight: PositiveFloat = Field(1.0, description="sampling weight, normalised over the blend (default 1.0, or "
                                                   "OpenCoder's annealing token count in billions for those names)")

    @model_validator(mode="before")
    @classmethod
    def _annealing_default_weight(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("weight") is None and data.get("name") in OPENCODER_ANNEALING_TOKENS_B:
            data = {**data, "weight": OPENCODER_ANNEALING_TOKENS_B[data["name"]]}
        return data

    @property
    def label(self) -> str:
        return self.name or Path(self.path).name


class SFTDataConfig(StrictModel):
    """SFT samples (``oc-megatron sft-data`` output). The defaults are OpenCoder's released SFT scripts
    (docs/opencoder.md §4): one sample per sequence, truncated to ``train.seq_length`` tokens (their
    ``model_max_length``: 1216 in stage 1, 1500 in stage 2), ``train.global_batch_size`` samples per step."""

    paths: list[str] = Field(min_length=1, description="prefixes written by `oc-megatron sft-data`; every sample of "
                                                       "each is used once per epoch")
    valid_paths: list[str] | None = Field(None, description="validation prefixes (sft-data output), if any")
    epochs: PositiveInt = Field(1, description="passes over the data (OpenCoder: stage 1: 1, stage 2: 3); sets "
                                               "train.iters when that is not given")
    packing: bool = Field(False, description="false (OpenCoder): one sample per sequence, padded; true: a speed "
                                             "option that packs each step's samples into as few sequences as fit "
                                             "(no attention across samples, positions restart); a step holds the "
                                             "same train.global_batch_size samples either way")
    too_long: Literal["truncate", "drop"] = Field(
        "truncate", description="a sample longer than train.seq_length tokens: truncate (OpenCoder: the tokenizer "
                                "cuts at model_max_length) or drop it (counted)")
    shuffle: bool = Field(True, description="a new seeded sample order every epoch")


class DataConfig(StrictModel):
    tokenizer: str = Field(description="HF tokenizer directory used by preprocess (vocab size and EOD id)")
    blend: list[DataSource] = Field(default_factory=list, description="pretraining / annealing: weighted dataset "
                                                                      "prefixes, sampled by weight")
    valid_blend: list[DataSource] | None = Field(None, description="separate validation data (else split)")
    split: str = Field("99,1,0", description="train,valid,test proportions of each prefix (without valid_blend)")
    cache_dir: str | None = Field(None, description="where GPTDataset index caches go (default: next to data)")
    sft: SFTDataConfig | None = Field(None, description="SFT: chat samples with loss masks (instead of a blend)")

    @model_validator(mode="after")
    def _one_kind_of_data(self) -> DataConfig:
        if bool(self.blend) == (self.sft is not None):
            raise ValueError("give exactly one of data.blend (pretraining / annealing) and data.sft (SFT)")
        return self

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


class PhaseConfig(StrictModel):
    """One batch phase of a pretraining run: from ``from_step`` on, each step takes ``global_batch_size`` samples of
    ``seq_length`` tokens. OpenCoder-8B: 2048 x 4096 from step 0, 1024 x 8192 from step 130,000 (docs/opencoder.md
    §6)."""

    from_step: NonNegativeInt = Field(description="the first step (0-based, = the iteration count before it) of this "
                                                  "phase; the first phase starts at 0")
    global_batch_size: PositiveInt = Field(description="samples (sequences) per step in this phase")
    seq_length: PositiveInt = Field(description="tokens per sample in this phase")
    micro_batch_size: PositiveInt | None = Field(None, description="default: train.micro_batch_size")


class TrainLoopConfig(StrictModel):
    iters: NonNegativeInt | None = Field(None, description="optimizer steps in total, counted from step 0 (a resumed "
                                                           "run, or an init_from run keeping the iteration, too); "
                                                           "SFT default: data.sft.epochs of the data")
    micro_batch_size: PositiveInt = 1
    global_batch_size: PositiveInt | None = Field(
        None, description="samples per step (SFT: conversations, OpenCoder 4096 / 512; pretraining: sequences of "
                          "seq_length tokens) = micro x DP x microbatches; or give train.phases")
    seq_length: PositiveInt | None = Field(None, description="default: model.seq_length (SFT: the truncation length)")
    phases: list[PhaseConfig] | None = Field(
        None, description="pretraining whose batch and sequence length change at given steps (instead of "
                          "global_batch_size and seq_length)")
    seed: int = 1234
    eval_interval: NonNegativeInt = Field(0, description="validation loss every N steps (0: never)")
    eval_iters: PositiveInt = Field(1, description="global batches per validation")
    exit_interval: NonNegativeInt | None = Field(None, description="save and stop after this step (for tests)")

    @model_validator(mode="after")
    def _batch_or_phases(self) -> TrainLoopConfig:
        if self.phases is None:
            if self.global_batch_size is None:
                raise ValueError("give train.global_batch_size (samples per step), or train.phases")
            return self
        if self.global_batch_size is not None or self.seq_length is not None:
            raise ValueError("train.phases gives each phase's global_batch_size and seq_length: remove "
                             "train.global_batch_size / train.seq_length")
        if not self.phases or self.phases[0].from_step != 0:
            raise ValueError("train.phases: the first phase must have from_step 0")
        starts = [ph.from_step for ph in self.phases]
        if starts != sorted(set(starts)):
            raise ValueError(f"train.phases: from_step must increase from phase to phase (got {starts})")
        return self


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
    on_change: Literal["refuse", "apply_new", "keep_saved"] = Field(
        "refuse", description="resuming a checkpoint whose schedule differs from this config's (train.iters or a "
                              "schedule/LR key changed): refuse (name the changes); apply_new: this config's "
                              "schedule from the next step, as if the run had always had it (the LR may jump); "
                              "keep_saved: the checkpoint's schedule continues, steps past its end run at its final "
                              "LR")


class InitFromConfig(StrictModel):
    """Start a new run from another run's checkpoint (annealing from pretraining, SFT from a base model).

    The weights are always loaded; every other piece of state is kept or reset as said here (no defaults: a recipe
    states each one, and the run logs what it kept). A bare path (``init_from: DIR``) means weights only.
    """

    path: str = Field(description="a run's checkpoint dir (its latest checkpoint), or one iter_N dir; HF models: "
                                  "`oc-megatron convert from-hf` first")
    iteration: NonNegativeInt | None = Field(None, description="use iter_N of `path` instead of its latest")
    keep_optimizer: bool = Field(description="Adam moments and step counts from the checkpoint (else fresh)")
    keep_lr: bool = Field(description="the new schedule's peak LR is the checkpoint's current LR (optimizer.lr is "
                                      "then ignored); annealing decays from there to optimizer.min_lr")
    keep_iteration: bool = Field(description="continue the step count (and the schedule position) from the "
                                             "checkpoint's iteration; else start at step 0")
    keep_data_position: bool = Field(description="start at the checkpoint's consumed_samples in this run's data "
                                                 "(only meaningful with the same data); else at sample 0")

    @property
    def kept(self) -> dict[str, bool]:
        return {"optimizer": self.keep_optimizer, "lr": self.keep_lr, "iteration": self.keep_iteration,
                "data_position": self.keep_data_position}


class CheckpointConfig(StrictModel):
    dir: str | None = Field(None, description="save here and auto-resume from here (default: OUTPUT/checkpoints)")
    interval: NonNegativeInt = Field(0, description="save every N steps (0: only at the end and on signals)")
    save_final: bool = Field(True, description="save when the run ends (train.iters or train.exit_interval)")
    load_from: str | None = Field(None, description="resume (model, optimizer, schedule, data) from this dir/step "
                                                    "when `dir` has no checkpoint yet")
    init_from: InitFromConfig | None = Field(None, description="start a new run from another run's checkpoint "
                                                               "(annealing, SFT); see InitFromConfig")
    async_save: bool = Field(False, description="write checkpoints in the background (GPU)")
    keep_last: NonNegativeInt = Field(0, description="delete older checkpoints, keeping this many (0: keep all)")
    optimizer_format: Literal["fully_reshardable", "dp_reshardable"] = Field(
        "fully_reshardable",
        description="distributed-optimizer state on disk: fully_reshardable reloads at any TP/PP/DP; "
                    "dp_reshardable saves without gathering but reloads only at the same TP/PP")
    signals: list[str] = Field(["SIGTERM", "SIGUSR1"], description="save a checkpoint and exit on these signals")

    @field_validator("init_from", mode="before")
    @classmethod
    def _weights_only_shorthand(cls, v: Any) -> Any:
        if isinstance(v, str):  # `init_from: DIR`: the weights, nothing else
            return {"path": v, "keep_optimizer": False, "keep_lr": False, "keep_iteration": False,
                    "keep_data_position": False}
        return v

    @model_validator(mode="after")
    def _resume_or_init(self) -> CheckpointConfig:
        if self.load_from and self.init_from:
            raise ValueError("checkpoint.load_from (resume a run) and checkpoint.init_from (start a new run from a "
                             "checkpoint) exclude each other")
        return self


class ClusterConfig(StrictModel):
    """The machines a recipe is written for. ``train --plan`` computes the layout (DP, microbatches) for
    ``nodes x gpus_per_node`` ranks; a run takes its rank count from the launcher (torchrun / srun)."""

    nodes: PositiveInt = Field(description="nodes")
    gpus_per_node: PositiveInt = Field(8, description="GPUs (ranks) per node")
    gpu: str | None = Field(None, description="GPU model, e.g. H100-SXM (documentation)")

    @property
    def world_size(self) -> int:
        return self.nodes * self.gpus_per_node


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
    cluster: ClusterConfig | None = Field(None, description="the machines this recipe is written for (--plan)")

    @model_validator(mode="after")
    def _iters_known(self) -> TrainConfig:
        if self.train.iters is None and self.data.sft is None:
            raise ValueError("train.iters: required for pretraining and annealing (only SFT derives it from "
                             "data.sft.epochs)")
        if self.train.phases is not None and self.data.sft is not None:
            raise ValueError("train.phases: pretraining and annealing only (SFT has one batch size and length)")
        return self

    # ---- derived values ---------------------------------------------------------------------------------------
    @property
    def phases(self) -> list[Phase]:
        """The run's batch phases (one unless ``train.phases`` is given), with every value resolved."""
        t = self.train
        if t.phases is None:
            return [Phase(0, t.global_batch_size, t.micro_batch_size, t.seq_length or self.model.seq_length)]
        return [Phase(ph.from_step, ph.global_batch_size, ph.micro_batch_size or t.micro_batch_size, ph.seq_length)
                for ph in t.phases]

    def phase_at(self, step: int) -> Phase:
        """The phase that step ``step`` (0-based: the run's iteration count before it) runs in."""
        return [ph for ph in self.phases if ph.from_step <= step][-1]

    @property
    def seq_length(self) -> int:
        """The sequence length of the first phase (the only one, except with ``train.phases``)."""
        return self.phases[0].seq_length

    @property
    def checkpoint_dir(self) -> Path:
        return Path(self.checkpoint.dir) if self.checkpoint.dir else Path(self.output_dir) / "checkpoints"

    def data_parallel_size(self, world_size: int) -> int:
        p = self.parallel
        return world_size // (p.tensor * p.pipeline * p.context_parallel)

    def num_microbatches(self, world_size: int, phase: Phase | None = None) -> int:
        ph = phase or self.phases[0]
        return ph.global_batch_size // (ph.micro_batch_size * self.data_parallel_size(world_size))

    # ---- cross-field checks -------------------------------------------------------------------------------------
    def check(self, world_size: int = 1, cuda: bool | None = None, te: bool | None = None) -> None:
        """Layout, batch and precision checks that need the world size / hardware. Raises ConfigError naming the key."""
        import torch

        from oc_megatron.models.specs import te_available

        cuda = torch.cuda.is_available() if cuda is None else cuda
        te = te_available() if te is None else te
        m, p = self.model, self.parallel
        conflicts = m.tensor_parallel_conflicts(p.tensor)
        if conflicts:
            raise ConfigError(f"parallel.tensor: {p.tensor} does not divide model.{', model.'.join(conflicts)}; "
                              f"valid sizes: {', '.join(map(str, m.valid_tensor_parallel_sizes()))}")
        if p.sequence_parallel and p.tensor == 1:
            raise ConfigError("parallel.sequence_parallel: needs parallel.tensor > 1")
        self.pipeline_stage_layers()
        if p.context_parallel > 1:
            raise ConfigError("parallel.context_parallel: > 1 is not supported by this trainer yet")
        mp = p.tensor * p.pipeline * p.context_parallel
        if world_size % mp:
            raise ConfigError(f"parallel: world size {world_size} is not divisible by tensor x pipeline x context "
                              f"({mp})")
        dp = self.data_parallel_size(world_size)
        t = self.train
        packed_sft = self.data.sft is not None and self.data.sft.packing
        for i, ph in enumerate(self.phases):
            where = f"train.phases[{i}]." if t.phases is not None else "train."
            # Packed SFT fills each step's samples into as many sequences as they need (padded to a multiple of
            # micro x DP), so only unpacked batches must divide evenly.
            if not packed_sft and ph.global_batch_size % (ph.micro_batch_size * dp):
                raise ConfigError(f"{where}global_batch_size: {ph.global_batch_size} is not divisible by "
                                  f"micro_batch_size x data-parallel size ({ph.micro_batch_size} x {dp})")
            if not packed_sft and p.virtual_pipeline is not None and self.num_microbatches(world_size, ph) % p.pipeline:
                raise ConfigError(f"{where}global_batch_size: the interleaved schedule needs the number of "
                                  f"microbatches ({self.num_microbatches(world_size, ph)}) to be a multiple of "
                                  "parallel.pipeline")
            if ph.seq_length % p.tensor and p.sequence_parallel:
                raise ConfigError(f"{where}seq_length: {ph.seq_length} is not divisible by parallel.tensor with "
                                  "sequence parallelism")
            if t.iters is not None and ph.from_step >= max(t.iters, 1) and i > 0:
                raise ConfigError(f"train.phases[{i}].from_step: {ph.from_step} is not below train.iters "
                                  f"({t.iters}): the phase would never run")
        pr = self.precision
        if pr.fp8 is not None and not te:
            from oc_megatron.models.specs import te_unavailable_reason

            raise ConfigError(f"precision.fp8: {pr.fp8!r} needs Transformer Engine and a CUDA GPU "
                              f"({'no CUDA device' if not cuda else te_unavailable_reason()})")
        if pr.fp8 is not None and pr.layer_spec == "local":
            raise ConfigError("precision.fp8: needs precision.layer_spec te or auto (FP8 runs in TE modules)")
        if pr.layer_spec == "te" and not te:
            from oc_megatron.models.specs import te_unavailable_reason

            raise ConfigError(f"precision.layer_spec: 'te' needs Transformer Engine and a CUDA GPU "
                              f"({te_unavailable_reason()})")
        if pr.dtype == "bf16" and not cuda:
            raise ConfigError("precision.dtype: bf16 needs a CUDA GPU (on CPU the trainer runs fp32)")
        if self.checkpoint.async_save and not cuda:
            raise ConfigError("checkpoint.async_save: needs a CUDA GPU (saves are synchronous on CPU)")
        if t.iters is not None:
            self.check_schedule(t.iters)
        init = self.checkpoint.init_from
        if not (init and init.keep_lr) and self.optimizer.min_lr > self.optimizer.lr:
            raise ConfigError(f"optimizer.min_lr: {self.optimizer.min_lr} is above optimizer.lr {self.optimizer.lr}")

    def pipeline_stage_layers(self) -> list[int]:
        """Decoder layers per pipeline stage (Megatron-Core's rules); ConfigError naming the key when they fail."""
        from oc_megatron.models.opencoder import pipeline_stage_layers

        p = self.parallel
        if p.virtual_pipeline is not None and p.pipeline == 1:
            raise ConfigError("parallel.virtual_pipeline: needs parallel.pipeline > 1")
        uneven = p.num_layers_in_first_pipeline_stage is not None or p.num_layers_in_last_pipeline_stage is not None
        try:
            return pipeline_stage_layers(self.model.num_layers, p.pipeline, p.virtual_pipeline,
                                         p.num_layers_in_first_pipeline_stage, p.num_layers_in_last_pipeline_stage)
        except ValueError as e:
            key = "parallel.num_layers_in_first/last_pipeline_stage" if uneven else "parallel.pipeline"
            raise ConfigError(f"{key}: model.num_layers ({self.model.num_layers}): {e}") from None

    def check_schedule(self, iters: int) -> None:
        """The schedule fits in ``iters`` steps (SFT knows its iters only once the data is read)."""
        s = self.schedule
        total = s.total_steps or iters
        if s.style == "wsd" and total and (s.decay_steps or 0) > max(total - s.warmup_steps, 0):
            raise ConfigError(f"schedule.decay_steps: {s.decay_steps} does not fit after {s.warmup_steps} warmup "
                              f"steps in {total} steps")

    def check_data(self) -> int:
        """Data prefixes exist, every split a run builds has documents, and the tokenizer fits the model. Reads only
        index files. Returns the tokenizer's EOD id."""
        from oc_megatron.data.preprocess import LOSS_MASK_SUFFIX

        for key, blend in (("data.blend", self.data.blend), ("data.valid_blend", self.data.valid_blend or [])):
            for i, src in enumerate(blend):
                missing = [s for s in (".bin", ".idx") if not Path(src.path + s).is_file()]
                if missing:
                    raise ConfigError(f"{key}[{i}].path: {src.path}{' and '.join(missing)} not found (run "
                                      f"`oc-megatron preprocess` to create the indexed dataset)")
        if self.data.blend:
            from oc_megatron.data.blend import check_splits

            check_splits(self)  # a split without documents would make Megatron-Core's GPTDataset loop forever
        sft = self.data.sft
        for key, paths in (("data.sft.paths", sft.paths if sft else []),
                           ("data.sft.valid_paths", (sft.valid_paths or []) if sft else [])):
            for i, prefix in enumerate(paths):
                missing = [prefix + s for s in (".bin", ".idx", f"{LOSS_MASK_SUFFIX}.bin", f"{LOSS_MASK_SUFFIX}.idx")
                           if not Path(prefix + s).is_file()]
                if missing:
                    raise ConfigError(f"{key}[{i}]: {', '.join(missing)} not found (run `oc-megatron sft-data` to "
                                      "create the SFT dataset)")
        from oc_megatron.data.tokenizer import load_tokenizer_info

        try:
            info = load_tokenizer_info(self.data.tokenizer)
        except (OSError, ValueError) as e:
            raise ConfigError(f"data.tokenizer: {e}") from None
        if info.vocab_size > self.model.vocab_size:
            raise ConfigError(f"data.tokenizer: vocabulary of {info.vocab_size} tokens is larger than "
                              f"model.vocab_size ({self.model.vocab_size})")
        return info.eod_id


@dataclass(frozen=True)
class Phase:
    """A resolved batch phase: from ``from_step`` on, ``global_batch_size`` samples of ``seq_length`` per step."""

    from_step: int
    global_batch_size: int
    micro_batch_size: int
    seq_length: int

    @property
    def tokens_per_step(self) -> int:
        return self.global_batch_size * self.seq_length


def load_train_config(path: str | Path, overrides: Iterable[str] = ()) -> TrainConfig:
    """YAML recipe + dotted overrides -> validated TrainConfig (field-level checks; call ``check`` for the rest)."""
    return load_config(path, list(overrides), TrainConfig)  # type: ignore[return-value]
