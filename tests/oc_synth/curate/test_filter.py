"""The filter as a whole: rule config and overrides, deterministic sampled rules, error isolation and time budget,
the NeMo Curator stage and filters, run_filter end to end and the CLI."""

import threading
import time

import pandas as pd
import pytest
from nemo_curator.stages.text.filters.score_filter import ScoreFilter
from nemo_curator.tasks import DocumentBatch
from typer.testing import CliRunner

from oc_common.errors import ConfigError
from oc_common.records import read_file_records, write_records
from oc_synth.curate.filter import RefineCodeFilterStage, refinecode_filters, run_filter
from oc_synth.curate.signals import SIGNALS, QualitySignal
from oc_synth.curate.signals.budget import SignalTimeout, TimeBudget
from oc_synth.curate.signals.rules import RuleSet, load_filter_config, stable_uniform
from oc_synth.curate.signals.scoring import DocumentScorer

PYTHON = '''"""Small geometry helpers."""

import math


def distance(a, b):
    dx = a[0] - b[0]
    dy = a[1] - b[1]
    return math.hypot(dx, dy)


def perimeter(points):
    total = 0.0
    for i, point in enumerate(points):
        following = points[(i + 1) % len(points)]
        total += distance(point, following)
    return total


def report(points):
    length = perimeter(points)
    print(f"{len(points)} points, perimeter {length:.2f}")
    return length
'''
PRINT_FRACTION = 1 / 15  # one print line among the 15 code lines of PYTHON (docstring and blank lines aside)


def record(rid="a", text=PYTHON, language="Python", doc_type="code", path="geo.py"):
    return {"id": rid, "text": text, "language": language, "doc_type": doc_type, "path": path}


def scorer(*overrides, all_signals=False):
    return DocumentScorer(RuleSet(load_filter_config(overrides=overrides)), all_signals=all_signals)


# --- config ----------------------------------------------------------------------------------------------------------
def test_profiles_inherit_and_override_condition_by_condition():
    rules = RuleSet(load_filter_config())
    data = {r.signal: r.spec for r in rules.profiles["data"].rules}
    assert (data["qsc_code_num_chars"].lt, data["qsc_code_num_chars"].gt) == (50, 5000)  # code's lt + data's gt
    assert "qsc_code_frac_lines_assert" not in data  # turned off with null
    python = {r.signal for r in rules.profiles["python"].rules}
    assert "qsc_code_num_words" in python and "qsc_codepython_cate_ast" in python
    assert rules.profile_for("code", "Python").name == "python"
    assert rules.profile_for("code", "Rust").name == "code"
    assert rules.profile_for("data", "YAML").name == "data"
    assert rules.profile_for("text", "Python").name == "text"
    assert rules.profile_for("excluded", "CSV") is None


def test_a_threshold_override_changes_the_decision():
    assert scorer().score(record()).keep
    tighter = "rules.python.qsc_codepython_frac_lines_print.gt=0.05"
    verdict = scorer(tighter).score(record())
    assert verdict.drop_reasons == ["qsc_codepython_frac_lines_print"]
    assert verdict.values["qsc_codepython_frac_lines_print"] == round(PRINT_FRACTION, 8)
    # lowering one bound keeps the other: code's num_lines is {lt: 10, gt: 100000}
    spec = {r.signal: r.spec for r in RuleSet(load_filter_config(
        overrides=["rules.python.qsc_code_num_lines.lt=5"])).profiles["python"].rules}["qsc_code_num_lines"]
    assert (spec.lt, spec.gt) == (5, 100000)
    assert "qsc_code_num_lines" not in {r.signal for r in RuleSet(load_filter_config(
        overrides=["rules.python.qsc_code_num_lines=null"])).profiles["python"].rules}


@pytest.mark.parametrize("override, message", [
    ("rules.python.qsc_codepython_no_such_signal.gt=1", "rules.python.qsc_codepython_no_such_signal: unknown signal"),
    ("rules.python.qsc_doc_num_words.gt=1", "never computed for this profile"),
    ("rules.python.qsc_codepython_frac_lines_print.gtt=1", "unknown key"),
    ("rules.code.qsc_code_num_chars.lt=null", "no condition left"),
    ("languages.Rust=nope", "unknown profile"),
    ("signal_time_budget_s=0", "signal_time_budget_s"),
])
def test_bad_configs_fail_early_naming_the_key(override, message):
    with pytest.raises(ConfigError, match=message):
        load_filter_config(overrides=[override])


def test_a_config_file_holds_only_changes(tmp_path):
    changes = tmp_path / "rules.yaml"
    changes.write_text("rules:\n  python:\n    qsc_codepython_frac_lines_print: {gt: 0.05}\n")
    config = load_filter_config(changes)
    assert DocumentScorer(RuleSet(config)).score(record()).drop_reasons == ["qsc_codepython_frac_lines_print"]
    assert len(RuleSet(config).profiles["code"].rules) == len(RuleSet(load_filter_config()).profiles["code"].rules)


# --- deterministic sampled rules -----------------------------------------------------------------------------------
GO_TEST = "package geometry\n\nimport \"testing\"\n\n" + "".join(
    f"func TestDistance{i}(t *testing.T) {{\n\tgot := Distance(Point{{0, {i}}}, Point{{0, 0}})\n"
    f"\tif got != {i} {{\n\t\tt.Fatalf(\"want {i}, got %v\", got)\n\t}}\n}}\n\n" for i in range(4))


def test_sampled_rules_decide_by_id_and_drop_the_configured_share():
    testfile = next(r for r in RuleSet(load_filter_config()).profiles["go"].rules
                    if r.signal == "qsc_codego_cate_testfile")
    assert testfile.spec.drop_probability == 0.8
    decisions = [testfile.drops(1.0, f"repo/file-{i}", seed=0) for i in range(4000)]
    assert 0.77 < sum(decisions) / len(decisions) < 0.83
    assert decisions == [testfile.drops(1.0, f"repo/file-{i}", seed=0) for i in range(4000)]
    assert decisions != [testfile.drops(1.0, f"repo/file-{i}", seed=1) for i in range(4000)]
    assert not testfile.drops(0.0, "repo/file-0", seed=0)  # never drops a file the rule does not fire on


def test_sampled_rules_in_the_scorer_follow_the_record_id():
    s = scorer()
    records = [record(f"repo/file-{i}", GO_TEST, "Go", path=f"pkg/geometry_{i}_test.go") for i in range(40)]
    verdicts = [s.score(r) for r in records]
    dropped = ["qsc_codego_cate_testfile" in v.drop_reasons for v in verdicts]
    assert 0 < sum(dropped) < len(dropped)
    assert dropped == ["qsc_codego_cate_testfile" in s.score(r).drop_reasons for r in records]
    spared = verdicts[dropped.index(False)]
    assert spared.keep and spared.spared_by_sampling == ["qsc_codego_cate_testfile"]
    never = scorer("rules.go.qsc_codego_cate_testfile.drop_probability=0")
    assert not any("qsc_codego_cate_testfile" in never.score(r).drop_reasons for r in records)


def test_stable_uniform_is_a_pure_function_of_seed_rule_and_id():
    assert stable_uniform(0, "r", "id") == stable_uniform(0, "r", "id")
    assert stable_uniform(0, "r", "id") != stable_uniform(0, "r2", "id")
    assert 0.0 <= stable_uniform(3, "r", "x") < 1.0


# --- errors and the time budget ------------------------------------------------------------------------------------
def test_a_signal_that_raises_drops_only_that_document(monkeypatch):
    real = SIGNALS["qsc_code_num_lines"].compute

    def explode_on_boom(doc):
        if "BOOM" in doc.text:
            raise RuntimeError("broken signal")
        return real(doc)

    monkeypatch.setitem(SIGNALS, "qsc_code_num_lines", QualitySignal("qsc_code_num_lines", explode_on_boom))
    s = scorer(all_signals=True)
    bad = s.score(record("bad", PYTHON + "# BOOM\n"))
    assert bad.drop_reasons == ["error:qsc_code_num_lines"]
    assert bad.values["qsc_code_num_lines"] is None
    assert bad.values["qsc_code_num_words"] > 0 and bad.values["qsc_codepython_cate_ast"] == 1.0  # others computed
    assert s.score(record("good")).keep


def test_a_signal_past_its_budget_is_interrupted(monkeypatch):
    def spin(doc):
        while True:
            pass

    with scorer() as s:  # the lexer's tables are built on first use: not part of what the budget is tested on
        s.score(record())
    monkeypatch.setitem(SIGNALS, "qsc_code_num_lines", QualitySignal("qsc_code_num_lines", spin))
    start = time.perf_counter()
    with scorer("signal_time_budget_s=1.0") as s:  # every other signal takes milliseconds, even on a loaded box
        verdict = s.score(record())
    assert time.perf_counter() - start < 6
    assert verdict.drop_reasons == ["error:qsc_code_num_lines"]
    assert verdict.values["qsc_code_num_words"] > 0


def test_off_the_main_thread_the_budget_is_checked_after_the_signal():
    outcome = []

    def run():
        with TimeBudget(0.05) as budget:
            try:
                budget.call(time.sleep, 0.15)
            except SignalTimeout:
                outcome.append("timeout")
            outcome.append(budget.call(len, "ok"))

    worker = threading.Thread(target=run)
    worker.start()
    worker.join()
    assert outcome == ["timeout", 2]


# --- NeMo Curator integration ----------------------------------------------------------------------------------------
def test_rules_work_as_curator_document_filters_in_score_filter():
    filters = refinecode_filters("python")
    assert {f.name for f in filters} >= {"qsc_codepython_cate_ast", "qsc_code_num_lines"}
    frame = pd.DataFrame({"text": [PYTHON, "def broken(:\n" * 12, "print('hi')\n"]})
    stage = ScoreFilter(filter_obj=filters)
    kept = stage.process(DocumentBatch(dataset_name="d", data=frame)).to_pandas()
    assert kept["text"].tolist() == [PYTHON]


def test_stage_marks_records_and_writes_signals_on_request():
    frame = pd.DataFrame([record("ok"), record("short", "x = 1\n")], dtype=object)
    batch = DocumentBatch(dataset_name="d", data=frame)
    out = RefineCodeFilterStage(keep_signals=True).process(batch)
    rows = out.to_pandas().set_index("id")
    assert bool(rows.loc["ok", "keep"]) and not bool(rows.loc["short", "keep"])
    assert "qsc_code_num_lines" in rows.loc["short", "drop_reasons"]
    assert rows.loc["short", "qsc_codepython_cate_ast"] == 1.0
    assert "signal_seconds" in out._metadata["stats"].groups


def _write_input(tmp_path):
    inp = tmp_path / "in"
    write_records(inp / "part-0.jsonl", [
        record("py-ok"),
        record("py-bad", "def f(:\n    pass\n" * 10, path="bad.py"),
        record("readme", "Too short.", "Markdown", "text", "README.md"),
        record("weird", "whatever", "CSV", "excluded", "x.csv"),
    ])
    write_records(inp / "part-1.jsonl", [record("js-bad", "const x = ;\n" * 12, "JavaScript", path="a.js")])
    return inp


def test_run_filter_end_to_end_with_signals_and_dropped(tmp_path):
    inp, out, dropped = _write_input(tmp_path), tmp_path / "out", tmp_path / "dropped"
    stats = run_filter(inp, out, signals=True, dropped=dropped, quiet=True)
    kept = read_file_records(out / "part-0.jsonl")[0]
    assert [r["id"] for r in kept] == ["py-ok"]
    assert kept[0]["keep"] is True and kept[0]["drop_reasons"] == []
    assert kept[0]["qsc_codepython_frac_lines_print"] == round(PRINT_FRACTION, 8)
    profiles = RuleSet(load_filter_config()).profiles
    # every profile's signals are columns of every record (the shards load as one table); its own profile's have values
    assert {k for k in kept[0] if k.startswith("qsc_")} == {n for p in profiles.values() for n in p.all_signals}
    with_values = {k for k, v in kept[0].items() if k.startswith("qsc_") and v is not None}
    assert with_values == set(profiles["python"].all_signals)
    gone = {r["id"]: r for r in read_file_records(dropped / "part-0.jsonl")[0] + read_file_records(
        dropped / "part-1.jsonl")[0]}
    assert "qsc_codepython_cate_ast" in gone["py-bad"]["drop_reasons"]
    assert "qsc_doc_num_chars" in gone["readme"]["drop_reasons"]
    assert gone["weird"]["drop_reasons"] == ["unknown_doc_type"]
    assert "qsc_codejavascript_cate_ast" in gone["js-bad"]["drop_reasons"]
    assert gone["readme"]["qsc_doc_num_chars"] == 10.0  # --signals: dropped records carry their signals too
    assert stats.counters["records_out"] == 1
    assert stats.groups["drop_reasons"]["qsc_codepython_cate_ast"] == 1
    assert stats.groups["filter_profile"]["python"] == 2


def test_cli_filter_with_an_override(tmp_path):
    from oc_synth.cli import app

    inp = tmp_path / "in"
    write_records(inp / "part-0.jsonl", [record("py-ok")])
    runner = CliRunner()
    result = runner.invoke(app, ["curate", "filter", str(inp), str(tmp_path / "out"), "-q"])
    assert result.exit_code == 0, result.output
    assert [r["id"] for r in read_file_records(tmp_path / "out" / "part-0.jsonl")[0]] == ["py-ok"]
    tighter = "rules.python.qsc_codepython_frac_lines_print.gt=0.05"
    result = runner.invoke(app, ["curate", "filter", str(inp), str(tmp_path / "out2"), "-q", "--dropped",
                                 str(tmp_path / "dropped"), "-s", tighter])
    assert result.exit_code == 0, result.output
    assert read_file_records(tmp_path / "out2" / "part-0.jsonl")[0] == []
    gone = read_file_records(tmp_path / "dropped" / "part-0.jsonl")[0]
    assert gone[0]["drop_reasons"] == ["qsc_codepython_frac_lines_print"]
    result = runner.invoke(app, ["curate", "filter", str(inp), str(tmp_path / "out3"), "-s", "rules.python.nope.gt=1"])
    assert isinstance(result.exception, ConfigError) and "rules.python.nope: unknown signal" in str(result.exception)
    assert not (tmp_path / "out3").exists()  # refused before any work started
