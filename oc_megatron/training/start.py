"""How a run starts: resume a run, start a new run from another run's checkpoint (``init_from``), or from scratch.

In order of precedence:

1. **resume** this run (its own latest checkpoint in ``checkpoint.dir``), else another run's checkpoint given as
   ``checkpoint.load_from``: model, optimizer, scheduler, data position, iteration and RNG, all continued;
2. **init** from ``checkpoint.init_from`` (annealing from pretraining, SFT from a base model): a *new* run whose
   weights come from the checkpoint and whose other state is kept or reset one piece at a time, as the config says:

   | ``keep_*``       | kept                                                | reset                            |
   |------------------|-----------------------------------------------------|----------------------------------|
   | ``optimizer``    | Adam moments and step counts                        | fresh Adam                       |
   | ``lr``           | the schedule's peak = the checkpoint's current LR   | the peak is ``optimizer.lr``     |
   | ``iteration``    | step count and schedule position continue           | step 0                           |
   | ``data_position``| ``consumed_samples`` continue (in this run's data)  | sample 0 of this run's data      |

   The optimizer's hyperparameters (betas, weight decay, ...) always come from this run's config, as does the schedule
   shape. OpenCoder's annealing keeps the optimizer and the LR and decays it exponentially to 1e-5 over the annealing
   steps, on the annealing blend (``examples/anneal_*.yaml``); SFT keeps only the weights (``examples/sft_*.yaml``).
   What was kept and reset is logged from the loaded objects (Adam's step count, the LR) and recorded in the
   checkpoints' ``train_state.init``, so that a resumed annealing run keeps the same peak LR;
3. **scratch**: initialised weights, step 0.

Before a checkpoint is loaded its files are checked against the checksums recorded when it was saved
(``training.checksums``; a corrupt file is refused by name). A resumed run must continue the schedule it was trained
under (``continue_schedule``): another LR shape in the config is refused unless ``schedule.on_change`` says how the
schedule continues, and a run that has reached ``train.iters`` says there is nothing to do (``finished``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from oc_common.errors import ConfigError
from oc_common.log import get_logger
from oc_megatron.config import TrainConfig
from oc_megatron.training import checkpoint as ckpt

log = get_logger(__name__)


@dataclass(frozen=True)
class StartPoint:
    kind: Literal["resume", "init", "scratch"]
    source: Path | None = None
    saved: ckpt.TrainState | None = None  # the source checkpoint's train_state
    iteration: int = 0  # where this run's step count starts
    consumed_samples: int = 0  # where this run's data position starts
    peak_lr: float | None = None  # the schedule's peak LR when it comes from a checkpoint (else optimizer.lr)

    def describe(self) -> str:
        if self.kind == "scratch":
            return "from scratch"
        return f"{self.kind} from {self.source} (iteration {self.saved.iteration})"


def _init_source(cfg: TrainConfig) -> Path:
    init = cfg.checkpoint.init_from
    root = Path(init.path)
    if init.iteration is None:
        try:
            return ckpt.resolve_checkpoint(root)
        except (FileNotFoundError, ValueError) as e:
            raise ConfigError(f"checkpoint.init_from.path: {e}") from None
    path = ckpt.iteration_dir(root, init.iteration)
    if not (path / "metadata.json").is_file():
        available = sorted(p.name for p in root.glob("iter_[0-9]*") if (p / "metadata.json").is_file())
        raise ConfigError(f"checkpoint.init_from.iteration: {path} is not a checkpoint (available in {root}: "
                          f"{', '.join(available) or 'none'})")
    return path


def plan_start(cfg: TrainConfig) -> StartPoint:
    """Decide how the run starts, reading only train states (cheap, rank-local, before any model exists)."""
    c = cfg.checkpoint
    own = ckpt.latest_checkpoint(cfg.checkpoint_dir)
    resume = own or (ckpt.resolve_checkpoint(c.load_from) if c.load_from else None)
    if resume is not None:
        saved = ckpt.read_train_state(resume)
        peak = (saved.init or {}).get("peak_lr")  # an annealing run resumed: the same peak as when it started
        return StartPoint("resume", resume, saved, saved.iteration, saved.consumed_samples, peak)
    if c.init_from is None:
        return StartPoint("scratch")
    init = c.init_from
    source = _init_source(cfg)
    saved = ckpt.read_train_state(source)
    peak = None
    if init.keep_lr:
        if saved.lr is None:
            raise ConfigError(f"checkpoint.init_from.keep_lr: {source} records no learning rate (not written by "
                              "`oc-megatron train`, e.g. converted from HF): set keep_lr: false and optimizer.lr")
        peak = saved.lr
        if cfg.optimizer.min_lr > peak:
            raise ConfigError(f"optimizer.min_lr: {cfg.optimizer.min_lr} is above the checkpoint's LR {peak:g} "
                              "(init_from.keep_lr): the schedule would rise")
    if init.keep_optimizer and not ckpt.has_optimizer_state(source):
        raise ConfigError(f"checkpoint.init_from.keep_optimizer: {source} has no optimizer state (a converted or "
                          "weights-only checkpoint): set keep_optimizer: false")
    iteration = saved.iteration if init.keep_iteration else 0
    consumed = saved.consumed_samples if init.keep_data_position else 0
    if cfg.train.iters is not None and iteration >= cfg.train.iters:
        raise ConfigError(f"train.iters: {cfg.train.iters} is not beyond the checkpoint's iteration {iteration} "
                          "(init_from.keep_iteration counts on from there)")
    return StartPoint("init", source, saved, iteration, consumed, peak)


_ON_CHANGE_HELP = ("set schedule.on_change: apply_new (this config's schedule from the next step, as if the run had "
                   "always had it; the LR may jump) or keep_saved (the checkpoint's schedule continues; steps past its "
                   "end run at its final LR), or restore the old values")


def continue_schedule(start: StartPoint, cfg: TrainConfig) -> dict | None:
    """The LR shape a resumed run follows: None = this config's; a dict = the checkpoint's (``keep_saved``).

    Refuses (``ConfigError``, naming the changed keys) a config whose schedule differs from the one the checkpoint
    was trained under, unless ``schedule.on_change`` says how to continue. Call once ``train.iters`` is known."""
    from oc_megatron.training.schedule import schedule_record

    if start.kind != "resume":
        return None
    saved = start.saved.schedule
    if saved is None:
        log.warning("%s records no schedule (an older checkpoint): cannot check that this config continues it",
                    start.source)
        return None
    now = schedule_record(cfg.optimizer, cfg.schedule, cfg.train.iters)
    if saved["shape"] == now["shape"]:
        return None
    changed = [f"{k} {saved['keys'].get(k)} -> {v}" for k, v in now["keys"].items() if saved["keys"].get(k) != v]
    shape = [f"{k} {saved['shape'].get(k)} -> {v}" for k, v in now["shape"].items() if saved["shape"].get(k) != v]
    what = f"{', '.join(changed) or 'the schedule'} (scheduler: {', '.join(shape)})"
    on = cfg.schedule.on_change
    if on == "refuse":
        raise ConfigError(f"schedule.on_change: {start.source} (iteration {start.iteration}) was trained under "
                          f"another schedule: {what}; {_ON_CHANGE_HELP}")
    if on == "apply_new":
        log.warning("schedule changed at iteration %d: %s; schedule.on_change apply_new: the new schedule applies "
                    "from the next step", start.iteration, what)
        return None
    log.warning("schedule changed at iteration %d: %s; schedule.on_change keep_saved: the checkpoint's schedule "
                "continues", start.iteration, what)
    return dict(saved["shape"])


def finished(start: StartPoint, cfg: TrainConfig) -> str | None:
    """Why a resumed run has nothing to do (it has reached train.iters), or None."""
    if start.kind != "resume" or start.iteration < cfg.train.iters:
        return None
    return (f"nothing to do: {start.source} is at iteration {start.iteration} and train.iters is "
            f"{cfg.train.iters}; to train longer raise train.iters and set schedule.on_change (apply_new or "
            "keep_saved)")


def restore(start: StartPoint, cfg: TrainConfig, chunks, optimizer, scheduler) -> ckpt.TrainState:
    """Load what ``start`` says into the built model / optimizer / scheduler; the run's initial TrainState.

    Collective (checksum verification, checkpoint loading): call on every rank.
    """
    from oc_megatron.training.checksums import verify_checkpoint

    c = cfg.checkpoint
    if start.kind != "scratch":
        verify_checkpoint(start.source, "resume checkpoint" if start.kind == "resume" else "init_from checkpoint")
    if start.kind == "resume":
        log.info("resuming from %s", start.source)
        saved = ckpt.load_checkpoint(start.source, chunks, optimizer, scheduler, c.optimizer_format)
        return ckpt.TrainState(saved.iteration, saved.consumed_samples, init=saved.init)
    if start.kind == "scratch":
        return ckpt.TrainState()

    init = c.init_from
    ckpt.load_checkpoint(start.source, chunks, optimizer if init.keep_optimizer else None, None, c.optimizer_format,
                         restore_rng=False)
    # The new schedule: at the kept step (keep_iteration) or step 0, applied to the param groups now (an optimizer
    # load has just rewritten them).
    scheduler.step(increment=start.iteration)
    lr = optimizer.param_groups[0]["lr"]
    kept, reset = ["weights"], []
    (kept if init.keep_optimizer else reset).append(f"optimizer (Adam step {ckpt.adam_step(optimizer)})")
    (kept if init.keep_lr else reset).append(
        f"LR (schedule peak {scheduler.max_lr:g}{' = the checkpoint LR' if init.keep_lr else ' = optimizer.lr'})")
    (kept if init.keep_iteration else reset).append(f"iteration ({start.iteration})")
    (kept if init.keep_data_position else reset).append(f"data position (sample {start.consumed_samples})")
    log.info("init from %s (iteration %d, LR %s): kept %s; reset %s; first step LR %g", start.source,
             start.saved.iteration, f"{start.saved.lr:g}" if start.saved.lr is not None else "unknown",
             ", ".join(kept), ", ".join(reset) or "nothing", lr)
    record = {"path": str(start.source), "iteration": start.saved.iteration, "kept": init.kept,
              "peak_lr": start.peak_lr}
    return ckpt.TrainState(start.iteration, start.consumed_samples, init=record)
