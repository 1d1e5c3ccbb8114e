"""``curate dedup --level repo``: a repository is the unit; a duplicate repository goes whole, and files shared by
otherwise different repositories stay (what file-level dedup would remove)."""

import json

from typer.testing import CliRunner

from oc_common.records import read_file_records, write_records
from oc_synth.curate.dedup.repo_level import run_repo_dedup
from oc_synth.curate.dedup.settings import build_settings
from oc_synth.curate.dedup.workflow import run_dedup


def body(k):
    return "\n".join(f"def helper_{k}_{i}(value):\n    return value * {i} + {k}" for i in range(30))


def corpus(path):
    recs = []
    for repo, k, stars in [("alpha", 1, 5), ("alpha-fork", 1, 1), ("beta", 2, 3), ("gamma", 3, 9)]:
        for f in range(3):
            recs.append({"id": f"{repo}/f{f}.py", "repo": repo, "path": f"f{f}.py", "text": body(k * 10 + f),
                         "stars": stars, "language": "Python"})
    recs[-1]["text"] = recs[6]["text"]  # gamma/f2.py is a copy of beta/f0.py
    recs.append({"id": "loose.py", "text": body(99), "language": "Python"})  # no repo: kept
    write_records(path / "in" / "a.jsonl", recs)


def settings():
    return build_settings(mode="both", engine="cpu", preset="opencoder", workers=1, shingle=None, ngram=None,
                          num_perm=None, bands=None, rows=None, seed=None, lowercase=None, jaccard_check=None)


def kept_ids(folder):
    return sorted(r["id"] for f in sorted(folder.glob("*.jsonl")) for r in read_file_records(f)[0])


def test_repo_level_removes_duplicate_repositories_whole(tmp_path):
    corpus(tmp_path)
    stats = run_repo_dedup(tmp_path / "in", tmp_path / "repo", settings(), dropped=tmp_path / "dropped",
                           removed_ids=tmp_path / "removed.jsonl", quiet=True)
    assert kept_ids(tmp_path / "repo") == ["alpha/f0.py", "alpha/f1.py", "alpha/f2.py", "beta/f0.py", "beta/f1.py",
                                           "beta/f2.py", "gamma/f0.py", "gamma/f1.py", "gamma/f2.py", "loose.py"]
    gone = read_file_records(tmp_path / "dropped" / "a.jsonl")[0]
    assert {r["id"] for r in gone} == {"alpha-fork/f0.py", "alpha-fork/f1.py", "alpha-fork/f2.py"}
    assert all(r["duplicate_of_repo"] == "alpha" and r["drop_reasons"] == ["exact_duplicate"] for r in gone)
    (removed,) = [json.loads(line) for line in (tmp_path / "removed.jsonl").read_text().splitlines()]
    assert removed["repo"] == "alpha-fork" and removed["duplicate_of_repo"] == "alpha"  # more stars wins
    assert stats.counters["repos"] == 4 and stats.counters["repos_removed"] == 1
    assert stats.counters["files_without_repo"] == 1
    assert not list(tmp_path.glob(".repo.repo-level-*"))  # the work folder is cleaned up
    # file level removes the shared file too (gamma has more stars than beta): repo level keeps more
    run_dedup(tmp_path / "in", tmp_path / "file", settings(), quiet=True)
    assert "beta/f0.py" not in kept_ids(tmp_path / "file") and len(kept_ids(tmp_path / "file")) == 9


def test_near_duplicate_repositories_and_the_cli(tmp_path):
    corpus(tmp_path)
    recs = read_file_records(tmp_path / "in" / "a.jsonl")[0]
    for r in recs:  # alpha-fork: one line changed in one file, a near-duplicate of alpha
        if r["id"] == "alpha-fork/f1.py":
            r["text"] = r["text"].replace("return value * 29 + 11", "return value * 29 + 12")
    write_records(tmp_path / "in" / "a.jsonl", recs)
    from oc_synth.cli import app

    result = CliRunner().invoke(app, ["curate", "dedup", str(tmp_path / "in"), str(tmp_path / "out"), "--level",
                                      "repo", "--engine", "cpu", "--rows", "8", "--bands", "16", "-q"])
    assert result.exit_code == 0, result.output
    assert not [i for i in kept_ids(tmp_path / "out") if i.startswith("alpha-fork/")]
