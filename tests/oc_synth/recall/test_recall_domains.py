import json

import pytest

from oc_common.errors import OcError
from oc_common.records import read_file_records, write_records
from oc_common.stats import Stats
from oc_synth.recall.domains import code_domains, domain_table, read_domains, write_domains
from oc_synth.recall.pages import stable_key
from oc_synth.recall.urls import UrlPattern, collect_pattern_seeds


def page(url, score, **extra):
    return {"url": url, "text": f"page {url}", "code_score": score, **extra}


@pytest.fixture
def scored(tmp_path):
    """qa.dev: 2 of 10 pages positive (20%); blog.dev: 1 of 10 (exactly 10%, not above); food: 0 of 5; tiny: 1 of 1.
    The first page of part-1 repeats a URL of part-0 (with another score): it must count once, as first seen."""
    d = tmp_path / "scored"
    qa = [page(f"https://qa.dev/questions/{i}/x", 0.9 if i < 2 else 0.1) for i in range(8)]
    qa += [page("https://qa.dev/users/1", 0.2), page("https://www.qa.dev/tags/py", 0.3)]
    blog = [page(f"https://blog.dev/posts/{i}", 0.8 if i == 0 else 0.2) for i in range(10)]
    food = [page(f"https://food.example/questions/{i}", 0.05) for i in range(5)]
    write_records(d / "part-0.jsonl", qa[:5] + blog + [page("https://tiny.dev/a", 0.7)])
    write_records(d / "part-1.jsonl", [page("https://qa.dev/questions/0/x", 0.0)] + qa[5:] + food
                  + [{"url": "https://qa.dev/questions/99", "text": "never scored"}])
    return d


def test_domain_table_threshold_is_strict_and_urls_count_once(scored, tmp_path):
    stats = Stats()
    table = domain_table(scored, score_threshold=0.5, domain_threshold=0.1, stats=stats)
    assert {k: (v.pages, v.positives) for k, v in table.items()} == {
        "tiny.dev": (1, 1), "qa.dev": (10, 2), "blog.dev": (10, 1), "food.example": (5, 0)}
    assert table["qa.dev"].positive_fraction == 0.2 and table["qa.dev"].code_related
    assert not table["blog.dev"].code_related  # 10% is not more than 10%
    assert code_domains(table) == {"qa.dev", "tiny.dev"}
    assert stats.groups["skipped"] == {"duplicate_url": 1, "not_scored": 1}
    assert list(table)[:2] == ["tiny.dev", "qa.dev"]  # most code-related first
    path = tmp_path / "domains.json"
    write_domains(path, table)
    on_disk = json.loads(path.read_text())
    assert on_disk["qa.dev"] == {"pages": 10, "positives": 2, "positive_fraction": 0.2, "code_related": True}
    assert read_domains(path)["blog.dev"].pages == 10


def test_min_pages_and_threshold_are_configurable(scored):
    table = domain_table(scored, score_threshold=0.5, domain_threshold=0.05, min_pages=2)
    assert code_domains(table) == {"qa.dev", "blog.dev"}  # tiny.dev has too few pages


def test_read_domains_errors(tmp_path):
    with pytest.raises(OcError, match="missing.json: domains file not found"):
        read_domains(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text('{"a.org": {"pages": 1, "bogus": 2}}')
    with pytest.raises(OcError, match="bad.json: not a domains.json file"):
        read_domains(bad)


def test_pattern_pages_scored_negative_in_code_domains_become_seeds(scored, tmp_path):
    patterns = [UrlPattern.parse(p) for p in ("qa.dev/questions/*", "food.example/questions/*", "blog.dev/posts/*")]
    out = tmp_path / "seeds.jsonl"
    known = {stable_key("https://qa.dev/questions/7/x")}
    stats = collect_pattern_seeds(scored, {"qa.dev", "tiny.dev"}, patterns, out, score_threshold=0.5,
                                  known_seeds=known)
    seeds, _ = read_file_records(out)
    # qa.dev questions 0..7: 0 and 1 are positive, 7 is already a seed; food and blog are not code domains
    assert sorted(r["url"] for r in seeds) == [f"https://qa.dev/questions/{i}/x" for i in range(2, 7)]
    assert all(r["seed_source"] == "url_pattern:qa.dev/questions/*" and r["code_score"] < 0.5 for r in seeds)
    assert stats.counters["pattern_matches"] == 8
    assert stats.counters["pattern_matches_positive"] == 2
    assert stats.counters["pattern_matches_already_seed"] == 1
    assert stats.counters["new_seeds"] == 5
