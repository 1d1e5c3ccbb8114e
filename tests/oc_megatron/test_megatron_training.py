"""Real training of the tiny model on CPU (gloo): parallel layouts agree with TP=1, checkpoints resume and reshard.

One TP=1 reference run (CLI, 12 steps) is the oracle. A single 4-rank spawn then runs four layouts in turn:
TP2 x DP2 + sequence parallel, PP2 x VPP2 x DP2 (resumed from the reference's TP1 step-4 checkpoint), TP2 x PP2 + SP,
and DP4, all with the distributed optimizer; each must reproduce the reference losses at fp32 tolerance. The TP2 x PP2
checkpoint is then resumed at TP1 (model, optimizer, scheduler and data position resharded) and must continue the
reference curve. A run killed with SIGKILL, then stopped with SIGTERM, then finished must log the reference curve,
and leave no process behind. Batch phases switch batch and sequence length at a step, and a run resumed before or
after the switch continues the same curve. A resumed run must continue its schedule (or say how not to), a finished
one has nothing to do, and a checkpoint whose file changed after it was saved is refused by name.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from megatron_test_helpers import (
    assert_same_losses,
    cli,
    cli_env,
    read_losses,
    read_metrics,
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


def _group_alive(pgid: int) -> list[int]:
    """Processes still in process group ``pgid`` (Linux /proc)."""
    alive = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == pgid and fields[0] != "Z":
                alive.append(int(entry.name))
    return alive


def _kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL the trainer and everything it started (as Slurm kills a job step): the checkpoint writer's spawned
    manager and its resource tracker must not outlive the run."""
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    deadline = time.time() + 30
    while _group_alive(proc.pid) and time.time() < deadline:
        time.sleep(0.1)
    assert not _group_alive(proc.pid), f"processes left behind: {_group_alive(proc.pid)}"


def test_kill_then_preempt_then_finish_continues_the_curve(reference, tiny_data, tmp_path):
    run = tmp_path / "killed"
    cfg = write_config(tiny_train_config(tiny_data, run, checkpoint={"interval": 2}), tmp_path / "killed.yaml")

    def start() -> subprocess.Popen:  # its own process group, so that nothing it starts can be left behind
        return subprocess.Popen(cli(cfg), env=cli_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                text=True, start_new_session=True)

    # 1. SIGKILL mid-run (possibly mid-save): only complete checkpoints count.
    p = start()
    _wait_for_step(run, p, 3)
    _kill_group(p)
    latest = int((run / "checkpoints" / "latest_checkpointed_iteration.txt").read_text())
    assert 2 <= latest < 12

    # 2. Resume, then SIGTERM (Slurm preemption): saves at a step boundary and exits with 124.
    p = start()
    _wait_for_step(run, p, latest + 2)
    p.send_signal(signal.SIGTERM)
    try:
        assert p.wait(timeout=120) == 124, p.stderr.read()[-3000:]
    finally:
        if p.poll() is None:
            _kill_group(p)
    deadline = time.time() + 30
    while _group_alive(p.pid) and time.time() < deadline:
        time.sleep(0.1)
    assert not _group_alive(p.pid), "a preempted run left processes behind"
    preempted_at = int((run / "checkpoints" / "latest_checkpointed_iteration.txt").read_text())
    assert latest + 2 <= preempted_at < 12

    # 3. Resume to the end.
    run_cli(cfg)
    assert_same_losses(read_losses(run), reference["losses"], range(1, 13), "killed, preempted and resumed run")
    assert not list((run / "checkpoints").glob("*.tmp")), "a stale partial checkpoint was left behind"


# ---- batch phases ----------------------------------------------------------------------------------------------------
def test_batch_phases_switch_at_a_step_and_resume_on_either_side(tiny_data, tmp_path):
    """OpenCoder-8B's schedule in small: 16 x 64 tokens from step 0, 8 x 128 from step 6 (the same tokens per step);
    runs resumed before and after the switch continue the uninterrupted curve."""
    phases = [{"from_step": 0, "global_batch_size": 16, "seq_length": 64},
              {"from_step": 6, "global_batch_size": 8, "seq_length": 128}]
    base = tiny_train_config(tiny_data, tmp_path / "full", train={"iters": 10, "global_batch_size": None,
                                                                   "phases": phases},
                             schedule={"warmup_steps": 2, "decay_steps": 2})
    full = tmp_path / "full"
    proc = run_cli(write_config(base, tmp_path / "full.yaml"))
    assert "step 7: phase 8 x 128 tokens (was 16 x 64); data continues at sample 48 (token 6144)" in proc.stderr
    metrics = read_metrics(full)
    assert [(m["samples"], m["tokens"]) for m in metrics.values()] == [(16, 1024)] * 6 + [(8, 1024)] * 4
    blend = json.loads((full / "data_blend_from_step_6.json").read_text())
    assert (blend["first_sample"], blend["samples"]) == (48, 4 * 8)
    for at in (4, 8):  # resumed in phase 0 (switching later) and in phase 1 (its position counted in 128s)
        run = tmp_path / f"from_{at}"
        run_cli(write_config({**base, "output_dir": str(run)}, tmp_path / f"from_{at}.yaml"),
                f"checkpoint.load_from={full / 'checkpoints' / f'iter_{at:07d}'}")
        got = read_losses(run)
        assert min(got) == at + 1
        assert_same_losses(got, read_losses(full), range(at + 1, 11), f"resumed at step {at}")


# ---- schedule continuity -----------------------------------------------------------------------------------------
def test_a_changed_schedule_is_refused_unless_said_and_a_finished_run_has_nothing_to_do(reference, tiny_data,
                                                                                          tmp_path):
    """issue 13: extending a finished run (train.iters 12 -> 14) used to re-stretch the WSD decay silently (the LR
    jumped back up); now it is refused unless schedule.on_change says how the schedule continues."""
    run = tmp_path / "more"
    shutil.copytree(reference["dir"] / "checkpoints", run / "checkpoints")  # this run's own checkpoints
    cfg = write_config(tiny_train_config(tiny_data, run, checkpoint={"interval": 0}), tmp_path / "more.yaml")
    done = run_cli(cfg)  # the same config: finished
    assert "nothing to do: " in done.stderr and "is at iteration 12 and train.iters is 12" in done.stderr
    assert not (run / "metrics.jsonl").exists()
    proc = subprocess.run(cli(cfg, "train.iters=14"), capture_output=True, text=True, timeout=300, env=cli_env(),
                          check=False)
    assert proc.returncode == 2
    line = proc.stderr.strip().splitlines()[-1]
    assert line.startswith("error: schedule.on_change: ") and "train.iters 12 -> 14" in line
    assert "lr_decay_steps 12 -> 14" in line and "apply_new" in line and "keep_saved" in line
    final_lr = 3e-4  # the reference's LR after its decay: min_lr
    lrs = {}
    for choice in ("keep_saved", "apply_new"):
        branch = tmp_path / choice
        shutil.copytree(run / "checkpoints", branch / "checkpoints")
        run_cli(cfg, "train.iters=14", f"schedule.on_change={choice}", f"output_dir={branch}")
        lrs[choice] = {k: m["lr"] for k, m in read_metrics(branch).items()}
    assert lrs["keep_saved"] == {13: pytest.approx(final_lr), 14: pytest.approx(final_lr)}  # past its end: min_lr
    # apply_new: the WSD decay now spans steps 11-14, so step 13 is back up the curve.
    assert lrs["apply_new"][13] > 2 * final_lr and lrs["apply_new"][14] > final_lr


# ---- checkpoint integrity -----------------------------------------------------------------------------------------
def _zero_4k(path: Path, offset: int = 8192) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(b"\0" * 4096)


def test_a_corrupt_checkpoint_is_refused_by_name(reference, tiny_data, tmp_path):
    """issue 13: 4 KB zeroed inside a .distcp shard used to convert into a model with zeroed embedding rows."""
    from oc_common.errors import CheckpointError
    from oc_megatron.training.checksums import CHECKSUMS_FILE, verify_checkpoint

    saved = reference["dir"] / "checkpoints" / "iter_0000012"
    recorded = json.loads((saved / CHECKSUMS_FILE).read_text())
    assert recorded["algorithm"] == "sha256"
    assert set(recorded["files"]) == {p.name for p in saved.iterdir() if p.name != CHECKSUMS_FILE}
    assert verify_checkpoint(saved)
    ckpts = tmp_path / "ckpts"
    shutil.copytree(reference["dir"] / "checkpoints", ckpts)
    shard = sorted((ckpts / "iter_0000012").glob("*.distcp"))[0]
    _zero_4k(shard)
    convert = subprocess.run([sys.executable, "-m", "oc_megatron.cli", "convert", "to-hf", str(ckpts),
                              str(tmp_path / "hf")], capture_output=True, text=True, timeout=300, env=cli_env(),
                             check=False)
    assert convert.returncode == 2, convert.stderr[-2000:]
    assert f"{shard}: content changed since it was saved (sha256 mismatch)" in convert.stderr
    assert not (tmp_path / "hf").exists()
    cfg = write_config(tiny_train_config(tiny_data, tmp_path / "resume", train={"iters": 14},
                                         schedule={"on_change": "apply_new"}), tmp_path / "resume.yaml")
    for key in ("load_from", "init_from"):  # train resume and init_from refuse it too
        proc = subprocess.run(cli(cfg, f"checkpoint.{key}={ckpts}"), capture_output=True, text=True, timeout=300,
                              env=cli_env(), check=False)
        assert proc.returncode == 2 and str(shard) in proc.stderr.strip().splitlines()[-1], (key, proc.stderr[-2000:])
    # A truncated file is found by its size, a checkpoint without checksums (someone else's) loads with a warning.
    second = sorted((ckpts / "iter_0000008").glob("*.distcp"))[0]
    with open(second, "r+b") as f:
        f.truncate(100)
    with pytest.raises(CheckpointError, match=r"100 bytes, \d+ when saved"):
        verify_checkpoint(ckpts / "iter_0000008")
    (ckpts / "iter_0000004" / CHECKSUMS_FILE).unlink()
    assert verify_checkpoint(ckpts / "iter_0000004") is False
