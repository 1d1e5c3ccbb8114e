"""Learning-rate schedules through Megatron-Core's ``OptimizerParamScheduler``, counted in optimizer steps.

``wsd`` (OpenCoder's warmup-stable-decay), with W = warmup_steps, T = total_steps, D = decay_steps, s = step:

* s <= W:             lr = init_lr + (lr - init_lr) * s / W          (linear warmup; OpenCoder W = 2,000)
* W < s <= T - D:     lr = peak lr                                   (stable)
* T - D < s <= T:     lr = min_lr + c * (lr - min_lr), r = (s - (T - D)) / D, and with the default
                      ``exponential`` decay c = 2 * 0.5**r - 1 (Megatron-Core's exponential WSD: c goes 1 -> 0;
                      OpenCoder decays "exponentially to 1e-5" in annealing)
* s > T:              lr = min_lr

Pretraining runs WSD with D = 0 (constant after warmup, as OpenCoder's 2T-token stage); the annealing run decays: a
new run from a stable-phase checkpoint (``checkpoint.init_from`` with ``keep_lr``: the peak is the checkpoint's LR)
with W = 0 and D = T, so step k of T runs at min_lr + (2 * 0.5**((k-1)/T) - 1) * (lr - min_lr) and the floor is
reached after the last step. SFT: ``cosine`` after ``warmup_steps`` (OpenCoder: 100).
``cosine`` / ``linear`` decay from the end of warmup to W + D (default T). ``constant`` holds the peak after warmup.
Weight decay is constant. The step counter is saved in checkpoints and restored on resume; every other value comes
from the config (``override_opt_param_scheduler``).

Checkpoints record the schedule they were trained under (``schedule_record``: the LR shape Megatron's scheduler gets,
and the config keys behind it). A resumed run whose config gives another shape (``train.iters`` raised after a
finished run, a new ``decay_steps``, ...) is refused unless ``schedule.on_change`` says how to continue
(``training.start.continue_schedule``): ``apply_new`` (this config's schedule from the next step, as if the run had
always had it; the LR may jump) or ``keep_saved`` (the checkpoint's schedule continues; steps past its end run at its
final LR, ``min_lr``).
"""

from __future__ import annotations

from oc_megatron.config import OptimizerConfig, ScheduleConfig

_STYLE = {"wsd": "WSD", "cosine": "cosine", "linear": "linear", "constant": "constant"}


def scheduler_kwargs(opt: OptimizerConfig, sched: ScheduleConfig, train_iters: int) -> dict:
    total = sched.total_steps or max(train_iters, 1)
    if sched.style == "wsd":
        decay_end, wsd_decay = total, sched.decay_steps or 0
    else:
        decay_end, wsd_decay = sched.warmup_steps + (sched.decay_steps or max(total - sched.warmup_steps, 0)), None
    return dict(
        init_lr=opt.init_lr,
        max_lr=opt.lr,
        min_lr=opt.min_lr,
        lr_warmup_steps=sched.warmup_steps,
        lr_decay_steps=max(decay_end, sched.warmup_steps + 1),
        lr_decay_style=_STYLE[sched.style],
        start_wd=opt.weight_decay,
        end_wd=opt.weight_decay,
        wd_incr_steps=total,
        wd_incr_style="constant",
        use_checkpoint_opt_param_scheduler=False,
        override_opt_param_scheduler=True,
        wsd_decay_steps=wsd_decay,
        lr_wsd_decay_style=sched.wsd_decay_style if sched.style == "wsd" else None,
    )


# The scheduler arguments that make the LR curve (the rest is weight decay and loading policy).
LR_SHAPE = ("init_lr", "max_lr", "min_lr", "lr_warmup_steps", "lr_decay_steps", "lr_decay_style", "wsd_decay_steps",
            "lr_wsd_decay_style")


def schedule_record(opt: OptimizerConfig, sched: ScheduleConfig, train_iters: int) -> dict:
    """What a checkpoint records of its schedule: ``shape`` (the LR-curve arguments of the scheduler) and ``keys``
    (the config values behind it, to name what changed)."""
    kwargs = scheduler_kwargs(opt, sched, train_iters)
    keys = {"train.iters": train_iters, "schedule.style": sched.style, "schedule.warmup_steps": sched.warmup_steps,
            "schedule.decay_steps": sched.decay_steps, "schedule.total_steps": sched.total_steps,
            "schedule.wsd_decay_style": sched.wsd_decay_style, "optimizer.lr": opt.lr, "optimizer.min_lr": opt.min_lr,
            "optimizer.init_lr": opt.init_lr}
    return {"shape": {k: kwargs[k] for k in LR_SHAPE}, "keys": keys}


def build_scheduler(optimizer, opt: OptimizerConfig, sched: ScheduleConfig, train_iters: int,
                    shape: dict | None = None):
    """An ``OptimizerParamScheduler`` driving ``optimizer``'s param groups; call ``.step(1)`` after each step.
    ``shape``: LR-curve arguments that replace the config's (a checkpoint's schedule kept with ``keep_saved``)."""
    from megatron.core.optimizer_param_scheduler import OptimizerParamScheduler

    return OptimizerParamScheduler(optimizer, **{**scheduler_kwargs(opt, sched, train_iters), **(shape or {})})
