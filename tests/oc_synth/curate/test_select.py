import pytest

from oc_common.errors import ConfigError
from oc_common.records import read_file_records, write_records
from oc_synth.curate.select import run_sample, run_select_algorithmic, stable_unit_interval


def test_downsampling_is_deterministic_and_close_to_the_fraction(tmp_path):
    recs = [{"id": f"f{i}", "language": "Java" if i % 2 else "Python", "text": "x"} for i in range(4000)]
    write_records(tmp_path / "in" / "a.jsonl", recs)
    stats = run_sample(tmp_path / "in", tmp_path / "out", overrides=["keep_fraction={Java: 0.25}"],
                       dropped=tmp_path / "dropped", quiet=True)
    kept = read_file_records(tmp_path / "out" / "a.jsonl")[0]
    java = [r for r in kept if r["language"] == "Java"]
    assert len([r for r in kept if r["language"] == "Python"]) == 2000  # other languages untouched
    assert 0.22 < len(java) / 2000 < 0.28
    assert stats.groups["drop_reasons"]["downsampled:Java"] == 2000 - len(java)
    run_sample(tmp_path / "in", tmp_path / "out2", overrides=["keep_fraction={Java: 0.25}"], quiet=True)
    assert read_file_records(tmp_path / "out2" / "a.jsonl")[0] == kept
    run_sample(tmp_path / "in", tmp_path / "out3", overrides=["keep_fraction={Java: 0.25}", "seed=7"], quiet=True)
    assert read_file_records(tmp_path / "out3" / "a.jsonl")[0] != kept


def test_stable_unit_interval():
    assert stable_unit_interval("a", 0) == stable_unit_interval("a", 0)
    assert stable_unit_interval("a", 0) != stable_unit_interval("a", 1)
    assert 0 <= stable_unit_interval("zzz", 3) < 1


def test_bad_fraction_names_the_key(tmp_path):
    write_records(tmp_path / "in" / "a.jsonl", [{"id": "1", "language": "Java"}])
    with pytest.raises(ConfigError, match="keep_fraction"):
        run_sample(tmp_path / "in", tmp_path / "out", overrides=["keep_fraction={Java: 1.5}"], quiet=True)


def test_select_algorithmic(tmp_path):
    write_records(tmp_path / "in" / "a.jsonl", [
        {"id": "1", "text": "# LeetCode 1: two sum\nclass Solution:\n    pass\n"},
        {"id": "2", "text": "class Solution {\n public:\n};\n"},
        {"id": "3", "text": "def helper():\n    return 1\n"},
    ])
    stats = run_select_algorithmic(tmp_path / "in", tmp_path / "out", quiet=True)
    kept = {r["id"]: r["algorithmic_keyword"] for r in read_file_records(tmp_path / "out" / "a.jsonl")[0]}
    assert kept == {"1": "leetcode", "2": "class Solution"}
    assert dict(stats.groups["matched_keyword"]) == {"leetcode": 1, "class Solution": 1}
    run_select_algorithmic(tmp_path / "in", tmp_path / "cs", overrides=["case_sensitive=true", "keywords=[LeetCode]"],
                           quiet=True)
    assert [r["id"] for r in read_file_records(tmp_path / "cs" / "a.jsonl")[0]] == ["1"]


def test_default_keep_fractions_are_the_papers_v1_sizes():
    from oc_synth.curate.select import LanguageDownsample, SampleConfig

    # paper §2.1.1 (v1 text): Java 409 GB -> 200 GB, HTML 213 GB -> 64 GB
    assert SampleConfig().keep_fraction == {"Java": 200 / 409, "HTML": 64 / 213}
    assert isinstance(LanguageDownsample().config, SampleConfig)  # the stage carries a typed config
