"""oc-megatron preprocess: JSONL/Parquet text -> Megatron indexed dataset, multi-process, resumable."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from cli_run import Ran, one_line_error, run_main

from oc_megatron.data.preprocess import preprocess
from oc_megatron.data.tokenizer import load_tokenizer, load_tokenizer_info


@pytest.fixture
def inputs(tiny_data, tmp_path):
    records = [json.loads(line) for line in tiny_data["corpus"].read_text().splitlines()[:30]]
    d = tmp_path / "in"
    d.mkdir()
    lines = [json.dumps(r) for r in records[:15]]
    lines.insert(3, "{not json")  # a bad line is counted and skipped, not fatal
    lines.insert(5, json.dumps({"id": "empty", "text": ""}))
    (d / "a.jsonl").write_text("\n".join(lines) + "\n")
    pq.write_table(pa.Table.from_pylist(records[15:]), d / "b.parquet")
    return d, [r["text"] for r in records]


def _read_dataset(prefix):
    from megatron.core.datasets.indexed_dataset import IndexedDataset

    ds = IndexedDataset(str(prefix))
    return ds, [np.asarray(ds[i]).tolist() for i in range(len(ds))]


def test_preprocess_matches_direct_tokenization(tiny_data, inputs, tmp_path):
    in_dir, texts = inputs
    stats = preprocess(in_dir, tmp_path / "out" / "code", tiny_data["tokenizer"], workers=2, append_eod=True,
                       batch_size=4, progress=False)
    tok, eod = load_tokenizer(tiny_data["tokenizer"]), load_tokenizer_info(tiny_data["tokenizer"]).eod_id
    want = [tok.encode(t, add_special_tokens=False).ids + [eod] for t in texts]
    ds, got = _read_dataset(tmp_path / "out" / "code")
    assert got == want  # order kept across files and worker batches
    assert ds.index.dtype == np.uint16  # 1,024-token vocabulary
    assert (stats.documents, stats.bad_records, stats.empty_documents) == (30, 1, 1)
    assert stats.tokens == sum(map(len, want)) and stats.tokens_per_second > 0
    assert not (tmp_path / "out" / "code.parts").exists()


def test_preprocess_resumes_after_interruption(tiny_data, inputs, tmp_path):
    in_dir, _ = inputs
    prefix = tmp_path / "code"
    preprocess(in_dir, prefix, tiny_data["tokenizer"], append_eod=True, keep_parts=True, progress=False)
    full = (prefix.with_suffix(".bin").read_bytes(), prefix.with_suffix(".idx").read_bytes())
    # A run killed while tokenizing the second file: first part finished, no merged output yet.
    for name in ("code.bin", "code.idx", "code.stats.json", "code.parts/00001.done.json"):
        (tmp_path / name).unlink()
    stats = preprocess(in_dir, prefix, tiny_data["tokenizer"], append_eod=True, progress=False)
    assert stats.files_skipped_done == 1 and stats.documents == 30
    assert (prefix.with_suffix(".bin").read_bytes(), prefix.with_suffix(".idx").read_bytes()) == full
    # A finished dataset is not rebuilt.
    assert preprocess(in_dir, prefix, tiny_data["tokenizer"], append_eod=True, progress=False).files_skipped_done == 2


def test_cli_preprocess(tiny_data, inputs, tmp_path):
    in_dir, _ = inputs
    help_text = subprocess.run([sys.executable, "-m", "oc_megatron.cli", "preprocess", "--help"],
                               capture_output=True, text=True, timeout=60).stdout
    for option in ("--tokenizer", "--workers", "--append-eod", "--text-key", "--keep-parts"):
        assert option in help_text
    proc = subprocess.run([sys.executable, "-m", "oc_megatron.cli", "preprocess", str(in_dir), str(tmp_path / "x"),
                           "--tokenizer", str(tiny_data["tokenizer"]), "--append-eod"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "30 documents" in proc.stderr and "tokens/s" in proc.stderr
    bad = subprocess.run([sys.executable, "-m", "oc_megatron.cli", "preprocess", str(in_dir), str(tmp_path / "y"),
                          "--tokenizer", str(tmp_path / "missing")], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "missing" in bad.stderr and "Traceback" not in bad.stderr


# ---- the output contract (oc_common/outputs.py, docs/outputs.md) --------------------------------------------------
def _cli(capfd, *args: str) -> Ran:
    from oc_megatron.cli import main

    return run_main(main, capfd, *args)


def test_a_rerun_sees_appended_new_and_vanished_inputs(tiny_data, inputs, tmp_path, capfd, caplog):
    in_dir, texts = inputs
    prefix = tmp_path / "code"
    tok = tiny_data["tokenizer"]
    preprocess(in_dir, prefix, tok, progress=False)
    with open(in_dir / "a.jsonl", "a") as f:  # the repro: one record appended after a finished run
        f.write(json.dumps({"id": "new", "text": "def appended():\n    return 42\n"}) + "\n")
    stats = preprocess(in_dir, prefix, tok, progress=False)
    assert "a.jsonl: size" in caplog.text + capfd.readouterr().err  # says what changed (a CLI run logs to stderr)
    ds, got = _read_dataset(prefix)
    assert stats.documents == 31 and len(ds) == 31
    assert got[15] == load_tokenizer(tok).encode("def appended():\n    return 42\n", add_special_tokens=False).ids
    (in_dir / "b.parquet").unlink()  # a vanished input leaves the dataset
    (in_dir / "c.jsonl").write_text(json.dumps({"text": "x = 1\n"}) + "\n")  # a new one joins it
    stats = preprocess(in_dir, prefix, tok, progress=False)
    assert stats.documents == 17 and _read_dataset(prefix)[1][-1] == load_tokenizer(tok).encode(
        "x = 1\n", add_special_tokens=False).ids
    os.utime(in_dir / "a.jsonl")  # touched, same content: nothing to redo
    assert preprocess(in_dir, prefix, tok, progress=False).files_skipped_done == 2


def test_outputs_inside_the_input_or_over_a_foreign_dataset_are_refused(tiny_data, inputs, tmp_path, capfd):
    in_dir, _ = inputs
    tok = str(tiny_data["tokenizer"])
    one_line_error(_cli(capfd, "preprocess", str(in_dir), str(in_dir / "tok"), "--tokenizer", tok),
                    "lies inside the input")
    theirs = tmp_path / "theirs"
    (tmp_path / "theirs.bin").write_bytes(b"someone's dataset")
    one_line_error(_cli(capfd, "preprocess", str(in_dir), str(theirs), "--tokenizer", tok),
                    "no run of ours wrote it")
    assert (tmp_path / "theirs.bin").read_bytes() == b"someone's dataset"
    assert sorted(p.name for p in in_dir.iterdir()) == ["a.jsonl", "b.parquet"]


def test_a_full_disk_leaves_no_temp_file_and_the_rerun_completes(tiny_data, tmp_path, mount_tmpfs, capfd):
    corpus = tiny_data["corpus"]  # ~80 files of Python: a few hundred KB of tokens
    tok = str(tiny_data["tokenizer"])
    reference = tmp_path / "ref" / "code"
    assert _cli(capfd, "preprocess", str(corpus), str(reference), "--tokenizer", tok).returncode == 0
    disk = mount_tmpfs(tmp_path / "disk", size="48k")
    one_line_error(_cli(capfd, "preprocess", str(corpus), str(disk / "code"), "--tokenizer", tok),
                    str(disk), "no space left on device")
    assert not [p for p in disk.rglob("*") if ".tmp" in p.name]  # the issue: a .bin.tmp was left behind
    mount_tmpfs.remount(disk, "8m")
    assert _cli(capfd, "preprocess", str(corpus), str(disk / "code"), "--tokenizer", tok).returncode == 0
    for ext in (".bin", ".idx"):
        assert (disk / f"code{ext}").read_bytes() == reference.with_suffix(ext).read_bytes()


def test_too_many_open_files_is_one_line(tiny_data, inputs, tmp_path):
    in_dir, _ = inputs
    # Lower the open-files limit after start-up, leaving too few descriptors for two workers' pipes.
    script = ("import os, resource, sys\n"
              "from oc_megatron.cli import main\n"
              "import oc_megatron.data.indexed, tokenizers, rich._emoji_codes  # what runs after the limit\n"
              "n = len(os.listdir('/proc/self/fd'))\n"
              "resource.setrlimit(resource.RLIMIT_NOFILE, (n + 1, n + 1))\n"
              "main(sys.argv[1:])\n")
    proc = subprocess.run([sys.executable, "-c", script, "preprocess", str(in_dir), str(tmp_path / "x"),
                           "--tokenizer", str(tiny_data["tokenizer"]), "--workers", "2"],
                          capture_output=True, text=True, timeout=300)
    one_line_error(proc, "--workers 2", "raise the limit (ulimit -n", "fewer --workers")


# ---- no child process outlives preprocess (issue 20) ----------------------------------------------------------------
def _living(session: int) -> list[str]:
    """The processes of a session that have not exited (zombies have: they only wait to be reaped)."""
    import psutil

    out = []
    for proc in psutil.process_iter(["pid", "status", "cmdline"]):
        try:
            if os.getsid(proc.pid) == session and proc.info["status"] != psutil.STATUS_ZOMBIE:
                out.append(" ".join(proc.info["cmdline"] or [])[-80:])
        except (ProcessLookupError, psutil.Error):
            pass
    return out


@pytest.mark.parametrize("how", ["completes", "SIGINT", "SIGTERM", "SIGKILL"])
def test_no_child_process_outlives_preprocess(tiny_data, tmp_path, how):
    """Its workers and multiprocessing's helper end with it, however it ends: after a SIGKILL or SIGTERM (which skip
    the pool's shutdown) a worker in the middle of a batch used to go on tokenizing it for seconds."""
    import signal
    import time

    import psutil

    corpus = tmp_path / "corpus.jsonl"
    lines = tiny_data["corpus"].read_text().splitlines()
    if how != "completes":  # one huge document first: a worker is busy with it for seconds when the signal comes
        texts = "\n".join(json.loads(line)["text"] for line in lines)
        lines.insert(0, json.dumps({"id": "huge", "text": texts * 3}))
    corpus.write_text("\n".join(lines) + "\n")
    proc = subprocess.Popen([sys.executable, "-m", "oc_megatron.cli", "preprocess", str(corpus), str(tmp_path / "out"),
                             "--tokenizer", str(tiny_data["tokenizer"]), "--workers", "2"],
                            start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        if how != "completes":
            deadline = time.time() + 120
            while len([c for c in psutil.Process(proc.pid).children(recursive=True)
                       if "spawn_main" in " ".join(c.cmdline())]) < 2:
                assert time.time() < deadline and proc.poll() is None, "the workers never started"
                time.sleep(0.1)
            time.sleep(1.0)
            proc.send_signal(getattr(signal, how))
        proc.wait(timeout=300)
        if how == "completes":
            assert proc.returncode == 0, proc.stderr.read()[-2000:]
        deadline = time.time() + 2
        while (left := _living(proc.pid)) and time.time() < deadline:
            time.sleep(0.1)
        assert not left, f"after {how}: {left}"
    finally:
        for p in psutil.process_iter():
            try:
                if os.getsid(p.pid) == proc.pid:
                    p.kill()
            except (ProcessLookupError, psutil.Error):
                pass
