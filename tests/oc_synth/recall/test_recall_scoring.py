
import pytest

from oc_common.outputs import read_stats, shard_marker
from oc_common.records import read_file_records, write_records
from oc_synth.recall.classifier import ClassifierFiles, InputError
from oc_synth.recall.scoring import run_score
from oc_synth.recall.training import train_classifier

CODE = "import os\n\ndef walk(root):\n    for name in os.listdir(root):\n        yield os.path.join(root, name)\n"
PROSE = "Preheat the oven to 200 degrees. Mix the flour with the butter and a pinch of salt."


@pytest.fixture(scope="module")
def classifier(tmp_path_factory, small_corpus, example_config):
    data, _ = small_corpus
    out = tmp_path_factory.mktemp("score") / "classifier"
    train_classifier([data / "seeds.jsonl"], data / "web", out, example_config)
    return out


@pytest.fixture
def messy_corpus(tmp_path):
    """Good pages plus every kind of bad record, in two shards."""
    web = tmp_path / "web"
    write_records(web / "a.jsonl", [
        {"url": "https://code.example/p/1", "text": CODE, "lang": "en"},
        {"url": "https://www.food.example/r/1", "text": PROSE},
        {"text": CODE},                                             # no url
        {"url": "https://food.example/r/2"},                        # no text
        {"url": "https://food.example/r/3", "text": "   "},         # blank text
        {"url": "https:///nohost", "text": PROSE},                  # no host
    ])
    with open(web / "a.jsonl", "ab") as f:
        f.write(b'{"url": "https://food.example/r/4", "text": "x \\ud800 y"}\n')  # a lone surrogate
        f.write(b'{"url": "https://food.example/r/5", "text": "caf\xe9"}\n')  # not UTF-8
        f.write(b'{"url": "https://food.example/r/6", "text": \n')               # malformed JSON
    write_records(web / "b.jsonl", [{"url": "https://code.example/p/2", "text": CODE}])
    return web


def test_score_writes_probability_on_each_record_and_counts_drops(classifier, messy_corpus, tmp_path):
    out, dropped = tmp_path / "scored", tmp_path / "dropped"
    stats = run_score(messy_corpus, out, ClassifierFiles.resolve(classifier), dropped=dropped, quiet=True)
    kept, _ = read_file_records(out / "a.jsonl")
    assert [r["url"] for r in kept] == ["https://code.example/p/1", "https://www.food.example/r/1"]
    code, prose = kept
    assert code["code_score"] > 0.5 > prose["code_score"]
    assert code["domain"] == "code.example" and prose["domain"] == "food.example"
    assert code["lang"] == "en"  # fields are added, never removed
    assert stats.groups["drop_reasons"] == {"missing_url": 1, "missing_text": 2, "bad_url": 1, "not_utf8": 1}
    assert stats.counters["bad_records"] == 2  # the non-UTF-8 and the malformed line, with file:line in the log
    assert stats.counters["positive"] == 2 and stats.counters["negative"] == 1
    gone, _ = read_file_records(dropped / "a.jsonl")
    assert len(gone) == 5 and all(r["keep"] is False and r["drop_reasons"] for r in gone)
    # a page without text is not scored: its code_score is null (every record has the field: docs/outputs.md)
    assert all(r["code_score"] is None for r in gone if r["drop_reasons"] == ["missing_text"])
    assert read_stats(out)["counters"]["records_out"] == 3


def test_score_resumes_per_shard(classifier, messy_corpus, tmp_path):
    out = tmp_path / "scored"
    files = ClassifierFiles.resolve(classifier)
    run_score(messy_corpus, out, files, quiet=True)
    before = (out / "b.jsonl").read_bytes()
    shard_marker(out, "b").unlink()  # as if killed before shard b finished
    (out / "a.jsonl").write_text("tampered\n")  # a finished shard is not redone
    stats = run_score(messy_corpus, out, files, quiet=True)
    assert (out / "b.jsonl").read_bytes() == before
    assert (out / "a.jsonl").read_text() == "tampered\n"
    assert stats.counters["records_out"] == 3


def test_bring_your_own_model_on_code_files(tmp_path):
    """A user's fastText model (no tokenizer, own labels) scoring code files that have no URL."""
    import fasttext

    train = tmp_path / "train.txt"
    train.write_text("\n".join(["__label__hq def return import class self yield"] * 20
                               + ["__label__lq TODO FIXME pass pass pass"] * 20) + "\n")
    model = fasttext.train_supervised(str(train), dim=8, epoch=10, lr=0.5, bucket=1000, thread=1, seed=0, verbose=0)
    model.save_model(str(tmp_path / "quality.bin"))
    files_in = tmp_path / "code.jsonl"
    write_records(files_in, [{"path": "a.py", "content": "def f():\n    return 1"},
                             {"path": "b.py", "content": "pass  # TODO FIXME"}, {"path": "c.py"}])
    out = tmp_path / "out"
    stats = run_score(files_in, out, ClassifierFiles.resolve(tmp_path / "quality.bin", label="__label__hq"),
                      text_field="content", url_field=None, score_field="quality", min_score=0.5,
                      dropped=tmp_path / "dropped", quiet=True)
    kept, _ = read_file_records(out / "code.jsonl")
    gone, _ = read_file_records(tmp_path / "dropped" / "code.jsonl")
    assert [r["path"] for r in kept] == ["a.py"] and kept[0]["quality"] > 0.5 and "domain" not in kept[0]
    assert {r["path"]: r["drop_reasons"] for r in gone} == {"b.py": ["below_min_score"], "c.py": ["missing_text"]}
    assert stats.counters["scored"] == 2


def test_corrupt_model_fails_before_any_shard(messy_corpus, tmp_path, classifier):
    bad = tmp_path / "model.bin"
    bad.write_bytes((classifier / "model.bin").read_bytes()[:-100])
    with pytest.raises(InputError, match="model.bin: corrupt or truncated fastText model"):
        run_score(messy_corpus, tmp_path / "out", ClassifierFiles.resolve(bad), quiet=True)
    assert not (tmp_path / "out").exists()
