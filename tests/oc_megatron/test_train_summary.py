"""`oc-megatron train` ends with one closing line (the steps it trained, the tokens, the final losses, the
checkpoint), equal to what metrics.jsonl and the checkpoint directory hold; a run on several ranks prints its setup
and that line once, not once per rank."""

import re
import subprocess
import sys

from megatron_test_helpers import cli_env, read_metrics, tiny_train_config, write_config


def test_a_two_rank_run_reports_once_and_ends_with_its_summary(tiny_data, tmp_path):
    run = tmp_path / "run"
    cfg = tiny_train_config(tiny_data, run, train={"iters": 4, "eval_interval": 4, "eval_iters": 1},
                            schedule={"warmup_steps": 1, "decay_steps": 2}, checkpoint={"interval": 0})
    config = write_config(cfg, tmp_path / "run.yaml")
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
                           "--log-dir", str(tmp_path / "torchrun"),  # not a torchelastic_* dir left in /tmp
                           "-m", "oc_megatron.cli", "train", str(config)],
                          capture_output=True, text=True, timeout=600, env=cli_env(), check=False)
    assert proc.returncode == 0, proc.stderr[-4000:]
    log = proc.stdout + proc.stderr
    for header in ("layer spec:", "data blend over samples", "training tiny: TP 1 x PP 1 (VPP -) x DP 2",
                   "step 4/4 | loss", "done: trained steps"):
        assert log.count(header) == 1, (header, log[-3000:])
    [line] = [x for x in log.splitlines() if "done: trained steps" in x]
    metrics = read_metrics(run)
    tokens = sum(int(m["tokens"]) for m in metrics.values())
    assert tokens == 4 * 16 * 128
    assert f"trained steps 0->4, {tokens:,} tokens, final loss {metrics[4]['loss']:.4f}" in line
    assert f"validation loss {read_metrics(run, split='valid')[4]['loss']:.4f}" in line
    checkpoint = re.search(r"checkpoint (\S+);", line).group(1)
    assert checkpoint.endswith("iter_0000004") and (run / "checkpoints" / "iter_0000004").is_dir()
    assert line.rstrip().endswith(str(run / "metrics.jsonl"))
