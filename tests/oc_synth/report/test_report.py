"""``oc-synth report``: every section drawn from a run's real outputs, figures that say what the stats say, missing
inputs named, damaged files costing one section, and the output file handled like any output of ours."""

import base64
import json
import re
import shutil

import pytest
from report_fixtures import ANNEAL_LOSSES, PRETRAIN_LOSSES, PRETRAIN_TOKENS_PER_STEP
from typer.testing import CliRunner

from oc_common.outputs import read_stats
from oc_synth.cli import app, main
from oc_synth.report import build_report
from oc_synth.report.inventory import scan
from oc_synth.report.sections import SECTIONS

SECTION_IDS = ["overview", "funnel", "languages", "dedup", "recall", "synthesis", "training", "eval"]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def full_report(full_run, tmp_path_factory):
    return build_report(full_run, tmp_path_factory.mktemp("report") / "report.html")


def section(report, sid):
    return next(s for s in report.sections if s.id == sid)


def table(sec, caption_start):
    return next(t for t in sec.tables if t.caption.startswith(caption_start))


def column(t, name):
    i = t.columns.index(name)
    return [row[i] for row in t.rows]


def test_every_section_has_data_and_a_figure(full_report, tmp_path):
    report = full_report
    assert [s.id for s in report.sections] == SECTION_IDS == [f(scan(tmp_path)).id for f in SECTIONS]
    for s in report.sections:
        assert s.has_data, f"{s.id}: {s.missing}"
        assert s.figures, s.id
        for f in s.figures:
            assert f.uri.startswith("data:image/png;base64,")
            assert base64.b64decode(f.uri.split(",", 1)[1])[:8] == PNG_MAGIC
    assert not report.inventory.problems
    html = report.path.read_text()
    for sid in SECTION_IDS:
        assert f'<section id="{sid}"' in html
    # self-contained: nothing is fetched from anywhere
    assert not re.search(r'(src|href)="(?!data:|#)', html)


def test_funnel_rows_are_the_stages_stats(full_run, full_report):
    funnel = section(full_report, "funnel")
    per_stage = table(funnel, "per stage")
    stages = column(per_stage, "stage")
    assert stages == ["curate ingest (ingest)", "curate dedup (dedup)", "curate transform (transform)",
                      "curate filter (filtered)", "curate sample (sampled)",
                      "curate select-algorithmic (algorithmic)"]
    for stage, records_out, dropped in zip(stages, column(per_stage, "records out"), column(per_stage, "dropped"),
                                           strict=True):
        stats = read_stats(full_run / stage.split("(")[1].rstrip(")"))
        assert records_out == f"{stats['counters']['records_out']:,}"
        assert dropped == f"{stats['counters'].get('records_dropped', 0):,}" or dropped == "–"
    reasons = table(funnel, "drop reasons")
    assert ["curate dedup (dedup)", "exact_duplicate", "1"] in reasons.rows  # the fork's copy of tokenize.py
    tokenized = [t for t in funnel.tables if t.caption.startswith("tokenized")]
    assert not tokenized  # no preprocess output in this run: no empty table either


def test_language_mix_is_sample_before_and_after(full_run, full_report):
    langs = section(full_report, "languages")
    stats = read_stats(full_run / "sampled")
    t = langs.tables[0]
    for lang, before, after in zip(column(t, "language"), column(t, "before"), column(t, "after"), strict=True):
        assert before == f"{stats['groups']['language_in'][lang]:,}"
        assert after == f"{stats['groups'].get('language_out', {}).get(lang, 0):,}"
    assert "Python 0.5" in " ".join(langs.notes)


def test_dedup_cluster_sizes_count_the_duplicate(full_run, tmp_path):
    from oc_synth.report.sections import cluster_sizes

    inv = scan(full_run)
    [out] = inv.of("curate dedup")
    sizes, n, capped = cluster_sizes(out)
    assert not capped and n == read_stats(full_run / "dedup")["counters"]["records_out"]
    assert sizes["exact (SHA-256)"][2] == 1  # textkit/tokenize.py and its fork's copy: one cluster of two
    assert sum(sizes["exact (SHA-256)"].values()) == n


def test_recall_rounds_and_domains(full_run, full_report):
    rec = section(full_report, "recall")
    rounds = json.loads((full_run / "recall" / "report.json").read_text())["rounds"]
    t = table(rec, "rounds")
    assert column(t, "round") == [1, 2]
    assert column(t, "recalled") == [f"{r['recalled_pages']:,}" for r in rounds]
    domains = table(rec, "domains after round 2")
    assert any(row[3] == "yes" for row in domains.rows) and any(row[3] == "no" for row in domains.rows)
    assert len(rec.figures) == 3


def test_synthesis_shows_the_generate_funnel_and_verdicts(full_report):
    syn = section(full_report, "synthesis")
    gen = table(syn, "generate: samples")
    assert gen.rows[0][:2] == ["annealing-snippets", "no-code-answers"]
    assert gen.rows[0][gen.columns.index("generated")] == "2" and gen.rows[0][gen.columns.index("parsed")] == "0"
    why = table(syn, "generate: why")
    assert why.rows == [["annealing-snippets", "parse:no_code_block", "2"]]
    ver = table(syn, "verify: pass rate")
    row = dict(zip(ver.columns, ver.rows[0], strict=True))
    assert (row["set"], row["output"]) == ("annealing-snippets", "verified")
    assert (row["samples"], row["passed"], row["failed"], row["no_tests"]) == ("3", "1", "1", "1")
    assert row["pass rate"] == "33.3%"


def test_training_runs_in_order_with_final_losses_and_tokens(full_report):
    tr = section(full_report, "training")
    t = tr.tables[0]
    assert column(t, "run") == ["pretrain", "anneal"]
    assert column(t, "kind") == ["pretrain", "anneal / continued pretraining"]
    assert column(t, "final train loss") == [f"{PRETRAIN_LOSSES[20]:.4f}", f"{ANNEAL_LOSSES[4]:.4f}"]
    assert column(t, "final validation loss")[0] == f"{PRETRAIN_LOSSES[20] + 0.1:.4f}"
    assert column(t, "steps") == ["20", "4"]
    # each logged step stands for the steps since the last log: 20 steps of 2,048 tokens
    assert column(t, "tokens (from the logged steps)")[0] == f"≈{20 * PRETRAIN_TOKENS_PER_STEP:,}"
    assert column(t, "checkpoint")[0].endswith("(iteration 20)")


def test_eval_beside_opencoders_published_scores(full_report):
    from oc_synth.eval.reference import PUBLISHED

    ev = section(full_report, "eval")
    rows = dict((r[0], r[1]) for r in ev.tables[0].rows)
    assert rows["pass@1"] == "0.5" and rows["problems"] == "2"
    assert len(PUBLISHED) == 4 and ev.figures[0].caption.startswith("humaneval (base)")


def test_an_empty_run_says_what_each_section_misses(tmp_path):
    (tmp_path / "run").mkdir()
    report = build_report(tmp_path / "run")
    assert report.path == tmp_path / "run" / "report.html"
    assert [s.id for s in report.missing] == SECTION_IDS
    html = report.path.read_text()
    assert html.count('data-has-data="false"') == len(SECTION_IDS)
    missing = {s.id: s.missing for s in report.sections}
    assert "curate sample" in missing["languages"] and "oc-synth recall run" in missing["recall"]
    assert "metrics.jsonl" in missing["training"] and "oc-synth eval" in missing["eval"]


def test_a_damaged_file_costs_its_section_only(full_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(full_run, run, symlinks=True)
    (run / "recall" / "report.json").write_text("{not json")
    with open(run / "pretrain" / "metrics.jsonl", "a") as f:
        f.write('{"step": 25, "loss": 4.')  # a torn last line of a killed run
    report = build_report(run, tmp_path / "r.html")
    assert not section(report, "recall").has_data
    assert section(report, "training").has_data and section(report, "eval").has_data
    problems = " ".join(report.inventory.problems)
    assert "report.json: unreadable" in problems and "metrics.jsonl:6: not JSON" in problems


def test_an_unexpected_file_shape_is_one_section_that_says_why(full_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(full_run, run, symlinks=True)
    (run / "recall" / "report.json").write_text(json.dumps({"rounds": [{"round": 1}]}))  # another version's shape
    report = build_report(run, tmp_path / "r.html")
    rec = section(report, "recall")
    assert not rec.has_data and "could not be drawn" in rec.missing
    assert all(s.has_data for s in report.sections if s.id != "recall")


def test_replaces_its_own_report_and_refuses_other_files(full_run, tmp_path):
    out = tmp_path / "r.html"
    build_report(full_run, out)
    first = out.read_text()
    build_report(full_run, out)  # an earlier report of ours: replaced
    assert out.read_text() != "" and 'name="generator" content="oc-cookbook' in first
    theirs = tmp_path / "notes.html"
    theirs.write_text("<html>my notes</html>")
    result = CliRunner().invoke(app, ["report", str(full_run), "--out", str(theirs)])
    assert result.exit_code != 0 and theirs.read_text() == "<html>my notes</html>"


def test_cli_prints_the_path_and_mistakes_are_one_line(full_run, tmp_path, capsys, monkeypatch):
    out = tmp_path / "page.html"
    result = CliRunner().invoke(app, ["report", str(full_run), "-o", str(out), "-q"], catch_exceptions=False)
    assert result.exit_code == 0 and result.stdout.strip() == str(out) and out.is_file()
    monkeypatch.setattr("sys.argv", ["oc-synth", "report", str(tmp_path / "nowhere")])
    with pytest.raises(SystemExit) as e:
        main()
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and len(err.splitlines()) == 1 and err.startswith("error:") and "nowhere" in err
    theirs = tmp_path / "theirs.html"
    theirs.write_text("mine")
    monkeypatch.setattr("sys.argv", ["oc-synth", "report", str(full_run), "-o", str(theirs)])
    with pytest.raises(SystemExit) as e:
        main()
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and "not a report of ours" in err and theirs.read_text() == "mine"


def test_the_page_has_no_script_and_escapes_what_it_shows(tmp_path):
    run = tmp_path / "<img src=x onerror=alert(1)>"
    run.mkdir()
    html = build_report(run, tmp_path / "r.html").path.read_text()
    assert "<script" not in html and "onerror" not in html.replace("&lt;img src=x onerror=alert(1)&gt;", "")
