import pytest

from oc_common.errors import ConfigError
from oc_synth.recall.pages import page_problem, stable_key, url_domain, url_host_path
from oc_synth.recall.urls import NegativeExclusion, UrlPattern, load_url_patterns, match_pattern


@pytest.mark.parametrize("url, expected", [
    ("https://www.StackOverflow.com:443/questions/1?x=1#a", ("stackoverflow.com", "/questions/1")),
    ("stackoverflow.com/questions/1", ("stackoverflow.com", "/questions/1")),  # no scheme
    ("http://docs.python.org", ("docs.python.org", "/")),  # sub-domains stay apart
    ("https:///nohost", None),
    ("http://[::1", None),  # invalid IPv6 literal
])
def test_url_host_path(url, expected):
    assert url_host_path(url) == expected


def test_page_problem_reasons():
    assert page_problem({"url": "https://a.org/x", "text": "hello"}) is None
    assert page_problem({"text": "hello"}) == "missing_url"
    assert page_problem({"url": "  ", "text": "hello"}) == "missing_url"
    assert page_problem({"url": 3, "text": "hello"}) == "missing_url"
    assert page_problem({"url": "https:///x", "text": "hello"}) == "bad_url"
    assert page_problem({"url": "https://a.org/x", "text": " \n"}) == "missing_text"
    assert page_problem({"url": "https://a.org/x", "text": b"bytes"}) == "missing_text"
    assert page_problem({"url": "https://a.org/x", "text": "bad \ud800 surrogate"}) == "not_utf8"
    assert page_problem({"text": "code file"}, url_field=None) is None  # code files need no URL


def test_stable_key_is_salted_and_stable():
    assert stable_key("https://a.org/x") == stable_key(" https://a.org/x ")
    assert stable_key("https://a.org/x", 1) != stable_key("https://a.org/x", 2)
    assert stable_key("https://a.org/x") == 3933169225390911734  # the same in every process and run


def test_url_patterns_match_host_and_path():
    pats = [UrlPattern.parse(p) for p in ("https://www.StackOverflow.com/questions/*", "*.readthedocs.io",
                                          "gist.github.com/*/raw")]
    assert pats[0].host == "stackoverflow.com" and pats[0].path == "/questions/*"
    assert match_pattern("https://stackoverflow.com/questions/12/how-to", pats) is pats[0]
    assert match_pattern("https://www.stackoverflow.com/questions/12?tab=votes", pats) is pats[0]
    assert match_pattern("https://stackoverflow.com/users/12", pats) is None
    assert match_pattern("https://stackoverflow.com/Questions/12", pats) is None  # paths are case-sensitive
    assert match_pattern("https://requests.readthedocs.io/en/latest/", pats) is pats[1]
    assert match_pattern("https://gist.github.com/kim/raw", pats) is pats[2]
    assert match_pattern("not a url https:///", pats) is None


def test_load_url_patterns_list_or_mapping(tmp_path):
    f = tmp_path / "p.yaml"
    f.write_text("- a.org/q/*\n- b.org\n")
    assert [p.text for p in load_url_patterns(f)] == ["a.org/q/*", "b.org"]
    f.write_text("url_patterns:\n  - a.org/q/*\n")
    assert [p.host for p in load_url_patterns(f)] == ["a.org"]
    f.write_text("")
    assert load_url_patterns(f) == []


@pytest.mark.parametrize("content, message", [
    ("- a.org/q/*\n- 3\n", r"p.yaml: url_patterns\[1\]: expected a non-empty string, got 3"),
    ("- /questions/*\n", r"url_patterns\[0\]: '/questions/\*' has no host"),
    ("patterns: [a.org]\n", "mapping with only `url_patterns`"),
    ("a.org/q/*\n", "expected a list of URL patterns"),
    ("- a.org\n- [b\n", r"p.yaml:\d+:\d+: invalid YAML"),
])
def test_load_url_patterns_errors_name_file_and_item(tmp_path, content, message):
    f = tmp_path / "p.yaml"
    f.write_text(content)
    with pytest.raises(ConfigError, match=message):
        load_url_patterns(f)


def test_load_url_patterns_not_utf8_and_missing(tmp_path):
    f = tmp_path / "p.yaml"
    f.write_bytes(b"- caf\xe9.org\n")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_url_patterns(f)
    with pytest.raises(ConfigError, match="not found"):
        load_url_patterns(tmp_path / "missing.yaml")


def test_negative_exclusion_modes():
    code = frozenset({"qa.dev.org"})
    pats = (UrlPattern.parse("qa.dev.org/questions/*"),)
    annotated = NegativeExclusion(code, pats, "annotated")
    assert annotated.reason("https://qa.dev.org/questions/1") == "annotated_code_url"
    assert annotated.reason("https://qa.dev.org/users/1") is None  # non-code pages of a code domain stay negatives
    assert annotated.reason("https://other.org/questions/1") is None
    assert NegativeExclusion(code, pats, "domains").reason("https://qa.dev.org/users/1") == "code_domain"
    assert NegativeExclusion(code, pats, "none").reason("https://qa.dev.org/questions/1") is None
    assert url_domain("https://WWW.qa.dev.org/x") == "qa.dev.org"
