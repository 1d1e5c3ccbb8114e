import json
import math

import pandas as pd
import pytest
from nemo_curator.stages.text.filters.score_filter import Score
from nemo_curator.tasks import DocumentBatch

from oc_common.errors import OcError
from oc_common.records import write_records
from oc_synth.recall.classifier import (
    ClassifierFiles,
    FastTextPageClassifier,
    InputError,
    label_probability,
    load_fasttext,
    sha256_file,
)
from oc_synth.recall.evaluation import binary_metrics
from oc_synth.recall.tokenize import BpePretokenizer
from oc_synth.recall.training import train_classifier


@pytest.fixture(scope="module")
def trained(tmp_path_factory, small_corpus, example_config):
    data, _ = small_corpus
    out = tmp_path_factory.mktemp("clf") / "classifier"
    meta, stats = train_classifier([data / "seeds.jsonl"], data / "web", out, example_config)
    return out, meta, stats


def test_train_writes_classifier_dir_with_heldout_metrics(trained, small_corpus):
    out, meta, stats = trained
    assert {p.name for p in out.iterdir()} == {"model.bin", "tokenizer.json", "classifier.json"}  # no temp left
    on_disk = json.loads((out / "classifier.json").read_text())
    assert on_disk["model_sha256"] == sha256_file(out / "model.bin") and on_disk["model_file"] == "model.bin"
    ev = on_disk["evaluation"]
    h = ev["at_threshold"]
    # k-fold on a small set: every training page is also a held-out page, scored by a model that never saw it
    assert ev["method"] == "5-fold" and ev["passed"]
    assert h["positives"] == meta["train_positives"] == stats.counters["positives"]
    assert h["tp"] + h["fn"] == h["positives"] and h["fp"] + h["tn"] == h["negatives"]
    assert h["recall"] >= 0.6 and h["precision"] >= 0.6 and ev["auc"] > 0.9  # real training separates code/prose
    assert sum(ev["histogram"]["positives"]) == h["positives"]
    # 1 negative per positive (the example config), never a seed URL
    assert stats.counters["negatives"] == stats.counters["positives"] == small_corpus[1]["seeds"]
    assert stats.groups["corpus_not_negative"]["seed_url"] > 0


def test_training_is_deterministic(trained, small_corpus, example_config, tmp_path):
    data, _ = small_corpus
    meta, _ = train_classifier([data / "seeds.jsonl"], data / "web", tmp_path / "again", example_config)
    assert meta["model_sha256"] == trained[1]["model_sha256"]
    assert (tmp_path / "again" / "tokenizer.json").read_bytes() == (trained[0] / "tokenizer.json").read_bytes()


def test_score_in_nemo_curator_stage(trained):
    out, _, _ = trained
    clf = FastTextPageClassifier(ClassifierFiles.resolve(out))
    stage = Score(score_fn=clf, score_field="code_score", text_field="text")
    stage.setup_on_node()
    stage.setup()
    code = "def load(path):\n    with open(path) as f:\n        return [line.split(',') for line in f]\n"
    prose = "We walked to the old town and had dinner near the harbour. The buses leave every hour."
    batch = DocumentBatch(dataset_name="d", data=pd.DataFrame({"text": [code, prose, None]}))
    scores = stage.process(batch).to_pandas()["code_score"].tolist()
    assert scores[0] > 0.5 > scores[1]
    assert math.isnan(scores[2])  # a record without text gets no score
    assert clf.keep_document(0.5) and not clf.keep_document(0.49)  # a threshold, not random Pareto sampling


def test_bpe_pretokenizer_keeps_code_structure_and_never_emits_labels(trained):
    tok = BpePretokenizer.load(trained[0] / "tokenizer.json")
    line = tok("def f(x):\n    return x  # __label__code é")
    assert "\n" not in line and "  " not in line
    assert "Ċ" in line  # newline survives as a token (byte-level BPE)
    assert "__label__" not in line


def test_label_probability_multiclass(tmp_path):
    """A user-brought 3-label model (e.g. a language classifier): P(label) comes from all labels, not 1 - top."""
    import fasttext

    f = tmp_path / "train.txt"
    lines = ["__label__py def return import self", "__label__js const function let console",
             "__label__sh grep awk sed echo"] * 30
    f.write_text("\n".join(lines) + "\n")
    model = fasttext.train_supervised(str(f), dim=8, epoch=20, lr=0.5, bucket=1000, thread=1, seed=0, verbose=0)
    probs = {lab: label_probability(model, "const function", lab) for lab in model.get_labels()}
    assert max(probs, key=probs.get) == "__label__js"
    assert abs(sum(probs.values()) - 1) < 1e-3
    assert label_probability(model, "const function", "__label__missing") == 0.0


def test_corrupt_or_truncated_model_is_refused(trained, tmp_path):
    out, meta, _ = trained
    garbage = tmp_path / "garbage.bin"
    garbage.write_bytes(b"not a model at all")
    with pytest.raises(InputError, match="garbage.bin: not a fastText model"):
        load_fasttext(garbage)
    truncated = tmp_path / "truncated.bin"
    truncated.write_bytes((out / "model.bin").read_bytes()[:5000])
    with pytest.raises(InputError, match="truncated.bin: corrupt or truncated fastText model"):  # fastText loads it
        load_fasttext(truncated)
    with pytest.raises(InputError, match="missing.bin: fastText model not found"):
        load_fasttext(tmp_path / "missing.bin")
    with pytest.raises(InputError, match="does not match the SHA-256"):
        load_fasttext(out / "model.bin", expected_sha256="0" * 64)
    with pytest.raises(InputError, match="has no label '__label__hq'"):
        ClassifierFiles.resolve(out, label="__label__hq").check()
    with pytest.raises(InputError, match="not a classifier directory"):
        ClassifierFiles.resolve(tmp_path)
    bad_tok = tmp_path / "tok.json"
    bad_tok.write_text("{}")
    with pytest.raises(OcError, match="tok.json: not a `tokenizers` JSON file"):
        BpePretokenizer.load(bad_tok)


def test_empty_or_unusable_positive_set_is_a_clear_error(small_corpus, example_config, tmp_path):
    data, _ = small_corpus
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(OcError, match="empty.jsonl: no usable positive pages"):
        train_classifier([empty], data / "web", tmp_path / "c1", example_config)
    unusable = tmp_path / "unusable.jsonl"
    write_records(unusable, [{"url": "https://a.org/1"}, {"text": "  "}])
    with pytest.raises(OcError, match=r"no usable positive pages.*'missing_text': 2"):
        train_classifier([unusable], data / "web", tmp_path / "c2", example_config)


def test_fasttext_divergence_is_a_clear_error(small_corpus, example_config, tmp_path):
    data, _ = small_corpus
    cfg = example_config.model_copy(deep=True)
    cfg.fasttext.lr = 50.0
    with pytest.raises(OcError, match="lower fasttext.lr"):
        train_classifier([data / "seeds.jsonl"], data / "web", tmp_path / "c", cfg)


def test_binary_metrics():
    m = binary_metrics([0.9, 0.6, 0.2], [0.1, 0.7, 0.3, 0.0], 0.5)
    assert (m["tp"], m["fn"], m["fp"], m["tn"]) == (2, 1, 1, 3)
    assert m["precision"] == pytest.approx(2 / 3) and m["recall"] == pytest.approx(2 / 3)
    assert binary_metrics([], [0.1], 0.5)["recall"] is None
