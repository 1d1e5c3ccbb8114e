"""LR schedules: OpenCoder's WSD (2,000 warmup steps, constant 3e-4, exponential decay to 1e-5) and cosine, through
Megatron-Core's OptimizerParamScheduler exactly as the trainer builds it."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest

from oc_megatron.config import OptimizerConfig, ScheduleConfig
from oc_megatron.training.schedule import build_scheduler

PEAK, MIN = 3e-4, 1e-5


def lr_at(scheduler, step: int) -> float:
    scheduler.num_steps = step
    return scheduler.get_lr(scheduler.optimizer.param_groups[0])


@pytest.fixture
def wsd():
    # 100k steps; the last 20k decay (OpenCoder's annealing phase). Optimizer: anything with param_groups.
    opt = SimpleNamespace(param_groups=[{"params": []}])
    sched = ScheduleConfig(style="wsd", warmup_steps=2000, decay_steps=20_000, wsd_decay_style="exponential")
    return build_scheduler(opt, OptimizerConfig(lr=PEAK, min_lr=MIN), sched, train_iters=100_000)


def test_wsd_warmup(wsd):
    assert lr_at(wsd, 0) == 0.0
    assert lr_at(wsd, 1000) == pytest.approx(PEAK / 2)
    assert lr_at(wsd, 2000) == pytest.approx(PEAK)  # end of warmup: the peak


def test_wsd_plateau(wsd):
    for step in (2001, 30_000, 79_999, 80_000):  # constant until the decay phase starts at 100k - 20k
        assert lr_at(wsd, step) == pytest.approx(PEAK)


def test_wsd_exponential_decay(wsd):
    def expected(step):  # Megatron-Core's exponential WSD: c = 2 * 0.5**r - 1 goes from 1 to 0 over the phase
        r = (step - 80_000) / 20_000
        return MIN + (2 * 0.5**r - 1) * (PEAK - MIN)

    for step in (85_000, 90_000, 95_000, 99_999):
        assert lr_at(wsd, step) == pytest.approx(expected(step), rel=1e-12)
    assert lr_at(wsd, 90_000) == pytest.approx(MIN + (math.sqrt(2) - 1) * (PEAK - MIN))
    assert lr_at(wsd, 100_000) == pytest.approx(MIN)
    assert lr_at(wsd, 120_000) == pytest.approx(MIN)  # past the end: stays at min_lr
    values = [lr_at(wsd, s) for s in range(80_000, 100_001, 500)]
    assert all(a > b for a, b in zip(values, values[1:], strict=False))  # strictly decreasing


def test_wsd_without_decay_is_constant_after_warmup():
    opt = SimpleNamespace(param_groups=[{"params": []}])
    s = build_scheduler(opt, OptimizerConfig(lr=PEAK, min_lr=MIN), ScheduleConfig(warmup_steps=2000), 10_000)
    assert [lr_at(s, k) for k in (2000, 5000, 10_000)] == pytest.approx([PEAK] * 3)


def test_cosine():
    opt = SimpleNamespace(param_groups=[{"params": []}])
    s = build_scheduler(opt, OptimizerConfig(lr=PEAK, min_lr=MIN),
                        ScheduleConfig(style="cosine", warmup_steps=100), train_iters=1100)
    assert lr_at(s, 100) == pytest.approx(PEAK)
    assert lr_at(s, 600) == pytest.approx(MIN + 0.5 * (PEAK - MIN))  # half-way through the decay
    assert lr_at(s, 1100) == pytest.approx(MIN)


def test_step_updates_param_groups(wsd):
    wsd.num_steps = 0
    wsd.step(increment=1000)
    assert wsd.optimizer.param_groups[0]["lr"] == pytest.approx(PEAK / 2)
