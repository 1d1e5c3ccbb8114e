import os
import subprocess
import sys

import pytest

from oc_common.errors import OcError
from oc_common.outputs import shard_marker
from oc_common.records import read_file_records, write_records
from oc_synth.curate.ingest import classify_file, run_ingest
from oc_synth.curate.linguist import default_table


@pytest.fixture()
def tree(tmp_path):
    src = tmp_path / "src"
    (src / "alpha" / "pkg").mkdir(parents=True)
    (src / "beta").mkdir()
    (src / "alpha" / "pkg" / "mod.py").write_text("def add(a, b):\n    return a + b\n")
    (src / "alpha" / "main.c").write_text("#include <stdio.h>\nint main(void) { return 0; }\n")
    (src / "alpha" / "data.csv").write_text("a,b\n1,2\n")
    (src / "alpha" / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n\0\0\0")
    (src / "alpha" / "latin1.py").write_bytes("x = 'caf\xe9'\n".encode("latin-1"))
    (src / "alpha" / "empty.py").write_text("   \n")
    (src / "alpha" / "big.js").write_text("x" * 2000)
    (src / "alpha" / ".git").mkdir()
    (src / "alpha" / ".git" / "config").write_text("[core]\n")
    (src / "beta" / "README.md").write_text("# Beta\n\nDocs.\n")
    (src / "beta" / "Makefile").write_text("all:\n\techo hi\n")
    os.symlink("/etc/hostname", src / "beta" / "leak.py")
    os.symlink(src / "alpha" / "pkg" / "mod.py", src / "beta" / "inside.py")
    (src / "repos.jsonl").write_text('{"repo": "alpha", "stars": 42, "commit_time": "2024-05-01T00:00:00Z", '
                                     '"license": "MIT"}\n')
    return src


def test_tree_ingest_records_and_drop_reasons(tree, tmp_path):
    out, dropped = tmp_path / "out", tmp_path / "dropped"
    stats = run_ingest(tree, out, max_file_bytes=1000, dropped=dropped, quiet=True)
    kept = {r["id"]: r for r in read_file_records(out / "part-00000.jsonl")[0]}
    assert set(kept) == {"alpha/pkg/mod.py", "alpha/main.c", "beta/README.md", "beta/Makefile", "beta/inside.py"}
    mod = kept["alpha/pkg/mod.py"]
    assert mod["language"] == "Python" and mod["doc_type"] == "code" and mod["ext"] == ".py"
    assert mod["stars"] == 42 and mod["license"] == "MIT" and mod["commit_time"] == "2024-05-01T00:00:00Z"
    assert mod["repo"] == "alpha" and mod["path"] == "pkg/mod.py" and mod["size_bytes"] == len(mod["text"])
    assert kept["beta/README.md"]["doc_type"] == "text" and kept["beta/Makefile"]["language"] == "Makefile"
    reasons = {r["id"]: r["drop_reasons"] for r in read_file_records(dropped / "part-00000.jsonl")[0]}
    assert reasons == {
        "alpha/data.csv": ["excluded_language:CSV"],
        "alpha/logo.png": ["binary"],
        "alpha/latin1.py": ["not_utf8"],
        "alpha/empty.py": ["empty"],
        "alpha/big.js": ["too_large"],
        "beta/leak.py": ["symlink_outside_src"],
    }
    assert all("text" not in r for r in read_file_records(dropped / "part-00000.jsonl")[0])
    assert stats.counters["files_in"] == 11 and stats.counters["records_out"] == 5
    assert stats.counters["repos"] == 2
    assert stats.groups["drop_reasons"]["binary"] == 1


def test_tree_ingest_shards_and_resume(tree, tmp_path):
    out = tmp_path / "out"
    run_ingest(tree, out, shard_size=3, quiet=True)
    parts = sorted(p.name for p in out.glob("part-*.jsonl"))
    assert parts == ["part-00000.jsonl", "part-00001.jsonl", "part-00002.jsonl", "part-00003.jsonl"]
    before = {p.name: p.read_bytes() for p in out.glob("part-*.jsonl")}
    shard_marker(out, "part-00002").unlink()
    (out / "part-00002.jsonl").unlink()
    stats = run_ingest(tree, out, shard_size=3, quiet=True)
    assert {p.name: p.read_bytes() for p in out.glob("part-*.jsonl")} == before
    assert stats.counters["records_out"] == 6  # the 5 of the single-shard test + big.js (default 8 MB limit)


def test_stack_v2_records(tmp_path):
    inp = tmp_path / "stack"
    write_records(inp / "a.jsonl", [
        {"blob_id": "b1", "content": "print('hi')\n", "path": "x/hello.py", "repo_name": "org/r",
         "star_events_count": 7, "committer_date": "2023-01-02T03:04:05Z", "detected_licenses": ["MIT", "BSD"]},
        {"blob_id": "b2", "content": "1,2\n", "path": "t.csv", "repo_name": "org/r"},
        {"blob_id": "b3", "content": 5, "path": "bad.py", "repo_name": "org/r"},
    ])
    write_records(inp / "b.parquet", [{"blob_id": "b4", "content": "fn main() {}\n", "path": "m.rs",
                                       "repo_name": "o/rust", "star_events_count": 1}])
    out, dropped = tmp_path / "out", tmp_path / "dropped"
    run_ingest(inp, out, dropped=dropped, quiet=True)
    (rec,), _ = read_file_records(out / "a.jsonl")
    assert rec["id"] == "b1" and rec["text"] == "print('hi')\n" and rec["repo"] == "org/r"
    assert rec["stars"] == 7 and rec["license"] == "MIT,BSD" and rec["language"] == "Python"
    assert read_file_records(out / "b.jsonl")[0][0]["language"] == "Rust"
    reasons = {r["id"]: r["drop_reasons"] for r in read_file_records(dropped / "a.jsonl")[0]}
    assert reasons == {"b2": ["excluded_language:CSV"], "b3": ["bad_record:field 'text': expected str, got int"]}


def test_classify_file_rules():
    t = default_table()
    assert classify_file("a.py", b"x" * 11, t, max_bytes=10).reason == "too_large"
    assert classify_file("a.py", b"x = 1\x00", t).reason == "binary"
    assert classify_file("a.unknownext", b"x", t).reason == "unknown_language"
    assert classify_file("robots.txt", b"User-agent: *\n", t).reason == "excluded_language:Robots Exclusion Rules"
    assert classify_file("a.py", "\ufeffx = 1\n".encode(), t).text == "x = 1\n"  # BOM stripped
    assert classify_file("x.h", b"namespace a { class B {}; }\n", t).language == "C++"
    assert classify_file("x.h", b"int f(void);\n", t).language == "C"


def test_linguist_table_coverage():
    t = default_table()
    assert "linguist-languages" in t.source
    assert len(t.kept_languages()) > 600 and t.extensions() > 1300 and t.filenames() > 300
    assert t.languages["Markdown"].doc_type == "text" and t.languages["JSON"].doc_type == "data"
    assert t.languages["SQL"].doc_type == "code" and t.languages["CSV"].excluded


def test_bad_inputs_give_clear_errors(tmp_path):
    with pytest.raises(OcError, match="no such file"):
        run_ingest(tmp_path / "missing", tmp_path / "out", quiet=True)
    src = tmp_path / "src"
    (src / "r").mkdir(parents=True)
    (src / "r" / "a.py").write_text("x = 1\n")
    (src / "repos.jsonl").write_text('{"repo": "r", "stars": "many"}\n')
    with pytest.raises(OcError, match=r"repos.jsonl:1: field 'stars': expected int, got str"):
        run_ingest(src, tmp_path / "out", quiet=True)


def test_cli_ingest_reports_errors_without_traceback(tmp_path):
    r = subprocess.run([sys.executable, "-m", "oc_synth.cli", "curate", "ingest", str(tmp_path / "nope"),
                        str(tmp_path / "out")], capture_output=True, text=True)
    assert r.returncode == 2
    assert "no such file or directory" in r.stderr and "Traceback" not in r.stderr


def test_huge_one_line_file_is_dropped_without_being_read(tmp_path):
    src = tmp_path / "src" / "r"
    src.mkdir(parents=True)
    with open(src / "huge.js", "wb") as f:  # 50 MB, one line
        f.write(b"x" * (50 * 2**20))
    (src / "ok.py").write_text("x = 1\n")
    out, dropped = tmp_path / "out", tmp_path / "dropped"
    run_ingest(tmp_path / "src", out, dropped=dropped, quiet=True)
    assert [r["id"] for r in read_file_records(out / "part-00000.jsonl")[0]] == ["r/ok.py"]
    (rec,), _ = read_file_records(dropped / "part-00000.jsonl")
    assert rec["drop_reasons"] == ["too_large"] and rec["size_bytes"] == 50 * 2**20


def test_opencoder_table_is_the_released_one():
    from oc_synth.curate.opencoder_languages import opencoder_table

    t = opencoder_table()
    assert "OpenCoder-llm/opc_data_filtering" in t.source and t.commit in t.source and t.license.startswith("MIT")
    assert (t.extensions(), t.filenames(), len(t.languages)) == (1347, 369, 731)
    # 42 listed exclusions; 'Checksums' repeats 'checksums' and 'Gerber Image' matches no (lower-case) key
    assert len(t.kept_languages()) == 731 - 40
    assert t.languages["CSS"].doc_type == "data" and t.languages["Diff"].doc_type == "code"
    assert t.languages["Pickle"].excluded and t.languages["WebVTT"].excluded
    assert not t.languages["Gerber Image"].excluded


@pytest.mark.parametrize(("path", "language", "doc_type", "reason"), [
    ("src/a.py", "Python", "code", None),
    ("inc/x.h", "C", "code", None),                  # OpenCoder: .h is C, whatever the content
    ("x.C", "C++", "code", None),                    # extensions are case-sensitive
    ("conf.yaml", "YAML", "data", None),             # Linguist 9.5 would say MiniYAML
    ("site.css", "CSS", "data", None),
    ("fix.patch", "Diff", "code", None),
    ("CMakeLists.txt", "CMake", "code", None),       # whole file name before the extension
    ("Makefile", "Makefile", "code", None),
    ("notes.txt", "Text", "text", None),
    ("model.pkl", "Pickle", "data", "excluded_language:Pickle"),
    ("robots.txt", "robots.txt", "data", "excluded_language:robots.txt"),
    ("a.PY", None, None, "unknown_language"),
])
def test_opencoder_table_classifies_like_the_reference(path, language, doc_type, reason):
    from oc_synth.curate.languages import language_table

    cf = classify_file(path, b"namespace a { class B {}; }\nx\n", language_table("opencoder"))
    assert (cf.language, cf.doc_type, cf.reason) == (language, doc_type, reason)


def test_languages_option_picks_the_table(tmp_path):
    src = tmp_path / "src" / "r"
    src.mkdir(parents=True)
    (src / "site.css").write_text("body { color: red; }\n")
    (src / "x.sln").write_text("Microsoft Visual Studio Solution File\n")
    for table, css_type, sln in (("opencoder", "data", ["excluded_language:Microsoft Visual Studio Solution"]),
                                 ("linguist", "code", None)):
        out, dropped = tmp_path / table, tmp_path / f"{table}-dropped"
        run_ingest(tmp_path / "src", out, languages=table, dropped=dropped, quiet=True)
        kept = {r["path"]: r for r in read_file_records(out / "part-00000.jsonl")[0]}
        assert kept["site.css"]["doc_type"] == css_type
        gone = {r["path"]: r["drop_reasons"] for r in read_file_records(dropped / "part-00000.jsonl")[0]} \
            if (dropped / "part-00000.jsonl").exists() else {}
        assert gone.get("x.sln") == sln
    with pytest.raises(OcError, match="--languages"):
        run_ingest(tmp_path / "src", tmp_path / "bad", languages="nope", quiet=True)
