"""`oc-megatron train` ends with one closing line: the steps it trained, the tokens, the final losses and the
checkpoint, equal to what metrics.jsonl and the checkpoint directory hold."""

import re

from megatron_test_helpers import read_metrics, run_cli, tiny_train_config, write_config


def test_train_ends_with_a_summary_of_what_it_trained(tiny_data, tmp_path):
    run = tmp_path / "run"
    cfg = tiny_train_config(tiny_data, run, train={"iters": 4, "eval_interval": 4, "eval_iters": 1},
                            schedule={"warmup_steps": 1, "decay_steps": 2}, checkpoint={"interval": 0})
    proc = run_cli(write_config(cfg, tmp_path / "run.yaml"))
    [line] = [x for x in proc.stderr.splitlines() if "done: trained steps" in x]
    metrics = read_metrics(run)
    tokens = sum(int(m["tokens"]) for m in metrics.values())
    assert tokens == 4 * 16 * 128
    assert f"trained steps 0->4, {tokens:,} tokens, final loss {metrics[4]['loss']:.4f}" in line
    valid = read_metrics(run, split="valid")
    assert f"validation loss {valid[4]['loss']:.4f}" in line
    checkpoint = re.search(r"checkpoint (\S+);", line).group(1)
    assert checkpoint.endswith("iter_0000004") and (run / "checkpoints" / "iter_0000004").is_dir()
    assert line.rstrip().endswith(str(run / "metrics.jsonl"))
