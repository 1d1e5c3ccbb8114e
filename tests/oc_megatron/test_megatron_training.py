"""Real training of the tiny model on CPU (gloo): parallel layouts agree with TP=1, checkpoints resume and reshard.

One TP=1 reference run (CLI, 12 steps) is the oracle. A single 4-rank spawn then runs four layouts in turn:
TP2 x DP2 + sequence parallel, PP2 x VPP2 x DP2 (resumed from the reference's TP1 step-4 checkpoint), TP2 x PP2 + SP,
and DP4, all with the distributed optimizer; each must reproduce the reference losses at fp32 tolerance. The TP2 x PP2
checkpoint is then resumed at TP1 (model, optimizer, scheduler and data position resharded) and must continue the
reference curve. A run killed with SIGKILL, then stopped with SIGTERM, then finished must log the reference curve.
"""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import pytest
from megatron_test_helpers import (
    assert_same_losses,
    cli,
    cli_env,
    read_losses,
    run_cli,
    run_distributed_test,
    tiny_train_config,
    train_layouts,
    write_config,
)


def test_tiny_model_learns(reference):
    losses = reference["losses"]
    assert sorted(losses) == list(range(1, 13))
    assert losses[1] == pytest.approx(6.93, abs=0.05)  # ln(1024): uniform prediction at init
    assert losses[12] < losses[1] - 0.5
    assert (reference["dir"] / "checkpoints" / "latest_checkpointed_iteration.txt").read_text().strip() == "12"
    assert sorted(reference["valid"]) == [6, 12] and reference["valid"][12] < reference["valid"][6]
    assert list((reference["dir"] / "tensorboard").glob("events.out.tfevents.*"))


def test_init_from_loads_weights_only(reference, tiny_data, tmp_path):
    run = tmp_path / "anneal"
    cfg = write_config(tiny_train_config(tiny_data, run, train={"iters": 2},
                                          schedule={"warmup_steps": 0, "decay_steps": 0},
                                          checkpoint={"init_from": str(reference["dir"] / "checkpoints")}),
                        tmp_path / "anneal.yaml")
    run_cli(cfg)
    losses = read_losses(run)
    assert sorted(losses) == [1, 2]  # a new run (step 1), not a resume at step 13
    assert losses[1] < reference["losses"][1] - 0.5  # but with the trained weights


def test_parallel_layouts_and_resharded_resume_match_tp1(reference, tiny_data, tmp_path):
    ref = reference["losses"]
    base = tiny_train_config(tiny_data, tmp_path / "unused")
    runs = {name: tmp_path / name for name in ("tp2_dp2_sp", "pp2_vpp2_dp2", "tp2_pp2_sp", "dp4")}
    common = ["train.exit_interval=4", "checkpoint.interval=0", "checkpoint.save_final=false"]
    layouts = [
        ("tp2_dp2_sp", [f"output_dir={runs['tp2_dp2_sp']}", "parallel.tensor=2", "parallel.sequence_parallel=true",
                        "precision.recompute=selective", *common]),
        # Resumes the TP1 reference at step 4 (TP1 -> PP2 x VPP2 x DP2 resharding) and runs steps 5..8.
        ("pp2_vpp2_dp2", [f"output_dir={runs['pp2_vpp2_dp2']}", "parallel.pipeline=2", "parallel.virtual_pipeline=2",
                          f"checkpoint.load_from={reference['dir'] / 'checkpoints' / 'iter_0000004'}",
                          "train.exit_interval=8", "checkpoint.interval=0", "checkpoint.save_final=false"]),
        # Saves its step-4 checkpoint (TP2 x PP2), resumed at TP1 below.
        ("tp2_pp2_sp", [f"output_dir={runs['tp2_pp2_sp']}", "parallel.tensor=2", "parallel.pipeline=2",
                        "parallel.sequence_parallel=true", "train.exit_interval=4", "checkpoint.interval=0"]),
        ("dp4", [f"output_dir={runs['dp4']}", "precision.recompute=full", *common]),
    ]
    run_distributed_test(train_layouts, 4, base, layouts)

    assert_same_losses(read_losses(runs["tp2_dp2_sp"]), ref, range(1, 5),
                        "TP2 x DP2 + SP, distributed optimizer, selective recompute")
    assert_same_losses(read_losses(runs["tp2_pp2_sp"]), ref, range(1, 5), "TP2 x PP2 + SP")
    assert_same_losses(read_losses(runs["dp4"]), ref, range(1, 5), "DP4, distributed optimizer, full recompute")
    resumed = read_losses(runs["pp2_vpp2_dp2"])
    assert min(resumed) == 5, "the PP2 run must resume at step 5 from the TP1 checkpoint"
    assert_same_losses(resumed, ref, range(5, 9), "PP2 x VPP2 x DP2 resumed from a TP1 checkpoint")

    # TP2 x PP2 checkpoint -> TP1: continue steps 5..8 exactly as the uninterrupted TP1 run.
    tp1 = tmp_path / "tp1_from_tp2pp2"
    cfg = write_config(tiny_train_config(tiny_data, tp1), tmp_path / "tp1.yaml")
    run_cli(cfg, f"checkpoint.load_from={runs['tp2_pp2_sp'] / 'checkpoints'}", "train.exit_interval=8",
             "checkpoint.interval=0", "checkpoint.save_final=false")
    got = read_losses(tp1)
    assert min(got) == 5
    assert_same_losses(got, ref, range(5, 9), "TP1 resumed from a TP2 x PP2 checkpoint")


def _wait_for_step(run: Path, proc: subprocess.Popen, step: int, timeout: float = 240) -> int:
    deadline = time.time() + timeout
    metrics = run / "metrics.jsonl"
    while time.time() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"training exited early ({proc.returncode}): {proc.stderr.read()[-3000:]}")
        if metrics.is_file():
            losses = read_losses(run)
            if losses and max(losses) >= step:
                return max(losses)
        time.sleep(0.02)
    raise AssertionError(f"step {step} not reached in {timeout} s")


def test_kill_then_preempt_then_finish_continues_the_curve(reference, tiny_data, tmp_path):
    run = tmp_path / "killed"
    cfg = write_config(tiny_train_config(tiny_data, run, checkpoint={"interval": 2}), tmp_path / "killed.yaml")

    # 1. SIGKILL mid-run (possibly mid-save): only complete checkpoints count.
    p = subprocess.Popen(cli(cfg), env=cli_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    _wait_for_step(run, p, 3)
    p.kill()
    p.wait(timeout=60)
    latest = int((run / "checkpoints" / "latest_checkpointed_iteration.txt").read_text())
    assert 2 <= latest < 12

    # 2. Resume, then SIGTERM (Slurm preemption): saves at a step boundary and exits with 124.
    p = subprocess.Popen(cli(cfg), env=cli_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    _wait_for_step(run, p, latest + 2)
    p.send_signal(signal.SIGTERM)
    assert p.wait(timeout=120) == 124, p.stderr.read()[-3000:]
    preempted_at = int((run / "checkpoints" / "latest_checkpointed_iteration.txt").read_text())
    assert latest + 2 <= preempted_at < 12

    # 3. Resume to the end.
    run_cli(cfg)
    assert_same_losses(read_losses(run), reference["losses"], range(1, 13), "killed, preempted and resumed run")
    assert not list((run / "checkpoints").glob("*.tmp")), "a stale partial checkpoint was left behind"
