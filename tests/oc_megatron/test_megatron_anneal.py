"""Annealing from a pretraining checkpoint (docs/opencoder.md §3, §6): the optimizer state kept, the LR decaying
exponentially from the checkpoint's LR to 1e-5, the data switched to the annealing blend in OpenCoder's proportions.

The four annealing components are indexed datasets whose token ids lie in disjoint ranges, so the source of every
sample the run trains on can be read off its tokens and compared with the configured shares and with the run's own
``data_blend.json``. The run is stopped half-way and resumed, which must not change the LR curve.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from megatron_test_helpers import read_metrics, run_cli, tiny_train_config, write_config

COMPONENTS = ("original", "algorithmic", "synthetic_snippets", "synthetic_textbooks")
SHARES = np.array([84.21, 12.44, 2.71, 0.91]) / 100.27  # docs/opencoder.md §3 token counts, normalised
TOKEN_RANGE = 200  # component k uses token ids [FIRST_ID + k * TOKEN_RANGE, FIRST_ID + (k + 1) * TOKEN_RANGE)
FIRST_ID = 8  # above the special tokens (<|endoftext|> = 0 is the EOD between documents)
STEPS, GBS = 6, 16


@pytest.fixture(scope="module")
def components(tmp_path_factory):
    from megatron.core.datasets.indexed_dataset import IndexedDatasetBuilder

    root = tmp_path_factory.mktemp("anneal_components")
    rng = np.random.default_rng(0)
    prefixes = {}
    for k, name in enumerate(COMPONENTS):
        builder = IndexedDatasetBuilder(str(root / f"{name}.bin"), dtype=np.uint16)
        for _ in range(40):
            doc = rng.integers(FIRST_ID + k * TOKEN_RANGE, FIRST_ID + (k + 1) * TOKEN_RANGE, rng.integers(50, 300))
            builder.add_document(np.append(doc, 0), [len(doc) + 1])
        builder.finalize(str(root / f"{name}.idx"))
        prefixes[name] = root / name
    return prefixes


def _source_of(tokens: np.ndarray) -> int:
    sources = set(((tokens[tokens >= FIRST_ID] - FIRST_ID) // TOKEN_RANGE).tolist())
    assert len(sources) == 1, f"a sample mixes components {sources}"
    return sources.pop()


def test_anneal_keeps_the_optimizer_decays_from_the_checkpoint_lr_on_the_annealing_blend(
        reference, tiny_data, components, tmp_path):
    from oc_megatron.training.checkpoint import read_train_state

    ckpt = reference["dir"] / "checkpoints"
    pretrain_lr = read_train_state(ckpt / "iter_0000008").lr  # WSD stable phase: the peak
    assert pretrain_lr == pytest.approx(3e-3)
    run = tmp_path / "anneal"
    cfg = tiny_train_config(
        tiny_data, run,
        data={"blend": [{"name": n, "path": str(p)} for n, p in components.items()]},  # default weights: §3
        train={"iters": STEPS, "global_batch_size": GBS},
        optimizer={"lr": 1e-3, "min_lr": 1e-5},  # lr: ignored, the checkpoint's LR is the peak (keep_lr)
        schedule={"style": "wsd", "warmup_steps": 0, "decay_steps": STEPS, "wsd_decay_style": "exponential"},
        checkpoint={"interval": 0, "init_from": {"path": str(ckpt), "iteration": 8, "keep_optimizer": True,
                                                 "keep_lr": True, "keep_iteration": False,
                                                 "keep_data_position": False}})
    config = write_config(cfg, tmp_path / "anneal.yaml")
    first = run_cli(config, "train.exit_interval=3")
    log = first.stderr
    assert "kept weights, optimizer (Adam step 8), LR (schedule peak 0.003 = the checkpoint LR)" in log, log[-3000:]
    assert "reset iteration (0), data position (sample 0)" in log
    second = run_cli(config)  # resumes at step 3 from the run's own checkpoint
    assert "resuming from" in second.stderr

    # LR: step k (1-based) runs at Megatron's exponential WSD value for k-1 steps into a decay over all STEPS steps,
    # from the checkpoint LR; after the last step the schedule is at the floor.
    metrics = read_metrics(run)
    assert sorted(metrics) == list(range(1, STEPS + 1))  # a new run: steps count from 1, not from 9
    for k, rec in metrics.items():
        r = (k - 1) / STEPS
        assert rec["lr"] == pytest.approx(1e-5 + (2 * 0.5**r - 1) * (pretrain_lr - 1e-5), rel=1e-9), k
    assert metrics[1]["lr"] == pytest.approx(pretrain_lr)
    final = read_train_state(run / "checkpoints")
    assert final.iteration == STEPS and final.lr == pytest.approx(1e-5)
    assert final.init["iteration"] == 8 and final.init["kept"]["optimizer"] and final.init["peak_lr"] == pretrain_lr

    # The blend: the run's report, and an independent count of the components in the samples it trained on.
    report = json.loads((run / "data_blend.json").read_text())  # written by the resumed run: samples 48..96
    assert [s["name"] for s in report["sources"]] == list(COMPONENTS)
    assert [s["share"] for s in report["sources"]] == pytest.approx(SHARES.tolist())
    from oc_common.config import load_config
    from oc_megatron.config import TrainConfig
    from oc_megatron.data.blend import blend_report, build_datasets

    resolved = load_config(run / "config.yaml", [], TrainConfig)
    train, _ = build_datasets(resolved, eod_id=0, train_samples=STEPS * GBS)
    counts = np.bincount([_source_of(np.asarray(train[i]["tokens"])) for i in range(STEPS * GBS)], minlength=4)
    whole_run = blend_report(resolved, train, 0, STEPS * GBS)
    assert [s["samples"] for s in whole_run["sources"]] == counts.tolist()
    assert [s["samples"] for s in report["sources"]] == np.bincount(
        [_source_of(np.asarray(train[i]["tokens"])) for i in range(report["first_sample"], STEPS * GBS)],
        minlength=4).tolist()
    # Megatron's blending keeps every component within one sample of its share at every prefix of the order.
    assert np.all(np.abs(counts - SHARES * STEPS * GBS) <= 1), (counts, SHARES * STEPS * GBS)
    print(f"annealing blend over {STEPS * GBS} samples: {dict(zip(COMPONENTS, counts.tolist(), strict=True))}, "
          f"expected {dict(zip(COMPONENTS, np.round(SHARES * STEPS * GBS, 2).tolist(), strict=True))}; LR "
          f"{metrics[1]['lr']:.3g} -> {metrics[STEPS]['lr']:.3g} -> floor {final.lr:g}")
