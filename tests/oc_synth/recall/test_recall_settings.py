"""fastText settings that scale with the training set (DeepSeekMath's at OpenCoder's scale), each one overridable,
and a quantized model for the large case."""

import json

import pytest
from typer.testing import CliRunner

from oc_synth.cli import app
from oc_synth.recall.classifier import ClassifierFiles, FastTextPageClassifier
from oc_synth.recall.config import AUTO_KEYS, FASTTEXT_TIERS, FastTextConfig
from oc_synth.recall.fasttext_file import check_fasttext_file


def test_auto_settings_follow_the_training_set_size():
    auto = FastTextConfig()
    sizes = [40, 100, 101, 800, 5_000, 50_000, 500_000, 2_000_000]
    chosen = [auto.resolved(n) for n in sizes]
    for small, large in zip(chosen, chosen[1:], strict=False):  # more pages: fewer passes, a lower rate, more room
        assert small.epoch >= large.epoch and small.lr >= large.lr
        assert small.dim * small.bucket <= large.dim * large.bucket and small.min_count <= large.min_count
    # OpenCoder's scale (~500k seeds + as many negatives): DeepSeekMath's settings
    big = chosen[-1]
    assert (big.dim, big.lr, big.word_ngrams, big.min_count, big.epoch, big.bucket) == (256, 0.1, 3, 3, 3, 2_000_000)
    assert FASTTEXT_TIERS[-1].max_pages == float("inf")
    tiny = chosen[0]  # a few dozen seeds: every word counts, many passes, a model of a few MB
    assert tiny.min_count == 1 and tiny.epoch == 50 and 4 * tiny.dim * tiny.bucket < 20 * 2**20
    # up to 1,000 pages the passes keep ~5,000 example updates: 50 epochs at 100 pages, 10 from 500 on
    assert [auto.resolved(n).epoch for n in (101, 200, 500, 1000)] == [50, 25, 10, 10]


def test_each_setting_can_be_fixed_and_the_others_stay_auto():
    cfg = FastTextConfig(epoch=7, bucket=1000)
    r = cfg.resolved(80)
    assert r.epoch == 7 and r.bucket == 1000 and r.lr == FastTextConfig().resolved(80).lr
    assert cfg.auto_keys() == [k for k in AUTO_KEYS if k not in ("epoch", "bucket")]
    assert cfg.resolved(10**6).epoch == 7  # a fixed value holds at every size


@pytest.fixture(scope="module")
def two_classifiers(tmp_path_factory, small_corpus):
    """The same training, plain and quantized (pruned to 1,000 rows and retrained), through `recall train`."""
    data, _ = small_corpus
    root = tmp_path_factory.mktemp("quantize")
    common = ["recall", "train", "--seeds", str(data / "seeds.jsonl"), "--corpus", str(data / "web"), "-q",
              "-s", "fasttext.dim=24", "-s", "train.evaluation=holdout"]  # one model to quantize, not 5 + 1
    for name, extra in (("plain", []), ("quantized", ["-s", "fasttext.quantize=true", "-s",
                                                      "fasttext.quantize_cutoff=1000"])):
        result = CliRunner().invoke(app, [*common, "-o", str(root / name), *extra], catch_exceptions=False)
        assert result.exit_code == 0, result.output
    return root / "plain", root / "quantized"


def test_train_records_the_settings_it_used(two_classifiers):
    meta = json.loads((two_classifiers[0] / "classifier.json").read_text())
    assert meta["fasttext"]["dim"] == 24 and "dim" not in meta["fasttext_auto"]
    assert meta["fasttext"] == {**meta["fasttext"], **{k: getattr(FastTextConfig().resolved(
        meta["train_positives"] + meta["train_negatives"]), k) for k in meta["fasttext_auto"]}}


def test_quantized_model_is_smaller_and_scores_alike(two_classifiers):
    plain, quantized = two_classifiers
    meta = json.loads((quantized / "classifier.json").read_text())
    assert meta["model_file"] == "model.ftz" and not (quantized / "model.bin").exists()
    assert check_fasttext_file(quantized / "model.ftz").quantized
    assert (quantized / "model.ftz").stat().st_size < (plain / "model.bin").stat().st_size / 3
    code = "def load(path):\n    with open(path) as f:\n        return [line.split(',') for line in f]\n"
    prose = "We walked to the old town and had dinner near the harbour. The buses leave every hour."
    for directory in (plain, quantized):
        clf = FastTextPageClassifier(ClassifierFiles.resolve(directory))
        assert clf.score_document(code) > 0.5 > clf.score_document(prose)
    ev_plain = json.loads((plain / "classifier.json").read_text())["evaluation"]
    assert meta["evaluation"]["auc"] >= ev_plain["auc"] - 0.05  # held-out quality survives quantization
