"""kill -9 at random points, then a rerun, gives the output of an undisturbed run: filter, dedup, transform, verify,
generate and preprocess.

Each command runs once undisturbed through ``killpoints.py``, which counts its write points (every os.write, fsync,
rename, unlink, mkdir ...); then each trial SIGKILLs it at a point drawn from that range (a seeded draw: the points are
printed on failure and ``OC_KILL_SEED`` reproduces them), kills what is left of its process group as a scheduler would,
kills the rerun at a second point, and finally reruns it to the end. The output must equal the undisturbed one byte
for byte (run metadata and timings aside; verify's wall-clock ``runtime_s`` aside). verify and preprocess are marked
slow (a fresh interpreter per run is the point, and theirs pay the sandbox / Megatron-Core start); ``pytest -m slow``
runs them, ``OC_KILL_TRIALS=20`` runs more trials.
"""

from __future__ import annotations

import hashlib
import os
import random
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest
from fake_openai import FakeOpenAI

from oc_common.records import read_file_records, write_records

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
SEED = int(os.environ.get("OC_KILL_SEED", "13"))
TRIALS = int(os.environ.get("OC_KILL_TRIALS", "1"))  # each trial kills twice, then finishes the run


def run_killed(module: str, args: list[str], kill_at: int, count_file: Path, timeout: float = 300) -> int:
    """Run ``python -m module args`` under killpoints.py; after it ends, SIGKILL whatever its process group left."""
    proc = subprocess.Popen([sys.executable, str(HERE / "killpoints.py"), str(kill_at), str(count_file), module,
                             *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, env={**os.environ, "OC_LOG_LEVEL": "WARNING"})
    try:
        _, err = proc.communicate(timeout=timeout)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # pool workers, sandbox supervisors: a scheduler kills the job
        except ProcessLookupError:
            pass
    survivors = [p for p in psutil.process_iter(["pid"]) if _pgid(p.pid) == proc.pid and not _zombie(p)]
    assert not survivors, f"processes of the killed run still alive: {survivors}"
    if kill_at == 0 or proc.returncode != -signal.SIGKILL:
        assert proc.returncode == 0, f"exit {proc.returncode} (kill point {kill_at}):\n{err[-3000:]}"
    return proc.returncode


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None


def _zombie(p: psutil.Process) -> bool:
    try:
        return p.status() == psutil.STATUS_ZOMBIE
    except psutil.Error:
        return True


def kill_and_resume(tmp_path: Path, module: str, make_args: Callable[[Path], list[str]],
                    snapshot: Callable[[Path], object]) -> None:
    """The reference run (counting write points), then TRIALS trials of kill, kill, finish; outputs must match."""
    count = tmp_path / "points"
    ref = tmp_path / "reference"
    run_killed(module, make_args(ref), 0, count)
    points = int(count.read_text())
    assert points > 10, points
    want = snapshot(ref)
    rng = random.Random(f"{SEED}:{module}:{make_args(Path('x'))[:2]}")
    for trial in range(TRIALS):
        where = tmp_path / f"trial{trial}"
        kills = []
        for k in range(2):
            at = rng.randint(1, points)
            kills.append(at)
            code = run_killed(module, make_args(where), at, count)
            if k == 0:  # the first run goes through the same points as the reference: the kill must land
                assert code == -signal.SIGKILL, f"trial {trial}: kill point {at} of {points} was not reached"
        run_killed(module, make_args(where), 0, count)
        assert snapshot(where) == want, f"output differs after kills at write points {kills} of {points} " \
                                        f"(OC_KILL_SEED={SEED})"


# ---- what is compared ----------------------------------------------------------------------------------------------
def record_files(*dirs: str, drop_fields: tuple[str, ...] = ()) -> Callable[[Path], object]:
    """Every record file under each of ``dirs`` (relative to the run's folder), as lists of records; hidden run
    metadata under .oc/ is skipped except where named (generate's rejected records)."""
    def snap(run: Path) -> object:
        out = {}
        for d in dirs:
            base = run / d
            for p in sorted(base.rglob("*.jsonl")):
                rel = p.relative_to(run).as_posix()
                if "/.oc/" in f"/{p.relative_to(base).as_posix()}" :
                    continue
                recs = read_file_records(p)[0]
                out[rel] = [{k: v for k, v in r.items() if k not in drop_fields} for r in recs]
        assert out, f"no records under {run}"
        return out

    return snap


def file_bytes(*names: str) -> Callable[[Path], object]:
    def snap(run: Path) -> object:
        return {n: hashlib.sha256((run / n).read_bytes()).hexdigest() for n in names}

    return snap


# ---- inputs --------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """The shipped sample repositories, ingested into 4 shards, with exact and near duplicates across shards."""
    from oc_synth.curate.ingest import run_ingest

    root = tmp_path_factory.mktemp("kill_corpus")
    run_ingest(ROOT / "examples" / "sample_repos", root / "ingest", shard_size=3, quiet=True)
    records = [r for p in sorted((root / "ingest").glob("*.jsonl")) for r in read_file_records(p)[0]]
    extra = [{**r, "id": r["id"] + "#copy", "stars": 1} for r in records[:4]]
    extra += [{**r, "id": r["id"] + "#near", "text": r["text"] + "\n# one more line\n"} for r in records[4:7]]
    allrecs = records + extra
    for s in range(4):
        write_records(root / "in" / f"part-{s}.jsonl", allrecs[s::4])
    return root / "in"


def test_filter(corpus, tmp_path):
    kill_and_resume(tmp_path, "oc_synth.cli",
                    lambda run: ["curate", "filter", str(corpus), str(run / "out"), "--dropped", str(run / "dropped"),
                                 "--signals", "-q"],
                    record_files("out", "dropped"))


def test_transform(corpus, tmp_path):
    kill_and_resume(tmp_path, "oc_synth.cli",
                    lambda run: ["curate", "transform", str(corpus), str(run / "out"), "-q"], record_files("out"))


def test_dedup(corpus, tmp_path):
    kill_and_resume(tmp_path, "oc_synth.cli",
                    lambda run: ["curate", "dedup", str(corpus), str(run / "out"), "--mode", "both", "--dropped",
                                 str(run / "dropped"), "-q"],
                    record_files("out", "dropped"))


@pytest.mark.slow  # each of its four runs starts an interpreter and the sandbox (~12 s on 2 cores)
def test_verify(tmp_path):
    records = read_file_records(ROOT / "examples" / "synth" / "verify_sample.jsonl")[0]
    inp = tmp_path / "in"
    for s, rec in enumerate(records):
        write_records(inp / f"s{s}.jsonl", [rec])
    kill_and_resume(tmp_path, "oc_synth.cli",
                    lambda run: ["verify", str(inp), str(run / "out"), "--all", "--workers", "1", "--timeout", "10",
                                 "--dropped", str(run / "dropped"), "-q"],
                    record_files("out", "dropped", drop_fields=("runtime_s",)))


def canned_textbook(prompt: str) -> str:
    """The 'model' of the generate test: a function of the prompt only (so a rerun is answered exactly as the first
    run was): a textbook section with a code block, different words for each prompt."""
    rng = random.Random(hashlib.sha256(prompt.encode()).hexdigest())
    words = " ".join(rng.choice(["loop", "list", "key", "cache", "node", "tree", "index", "value", "state", "graph",
                                 "queue", "stack", "hash", "range", "sum", "path"]) + str(rng.randint(0, 999))
                     for _ in range(90))
    return f"# Section\n\n{words}\n\n```python\nprint({rng.randint(0, 10**6)})\n```\n"


def test_generate(corpus, tmp_path):
    seeds = tmp_path / "seeds"
    recs = [r for p in sorted(corpus.glob("*.jsonl")) for r in read_file_records(p)[0]][:12]
    for s in range(3):
        write_records(seeds / f"part-{s}.jsonl", [{"id": r["id"], "language": "python", "text": r["text"][:800]}
                                                  for r in recs[s::3]])
    with FakeOpenAI(respond=canned_textbook) as server:
        kill_and_resume(tmp_path, "oc_synth.cli",
                        lambda run: ["generate", "code-textbook", "--seeds", str(seeds), "--out", str(run / "out"),
                                     "--backend", "openai", "--model", "canned", "--base-url", server.base_url,
                                     "--batch-size", "2", "--no-decontaminate", "-q"],
                        record_files("out", "out/.oc/rejected"))


@pytest.mark.slow  # each of its four runs starts an interpreter and imports Megatron-Core (~15 s on 2 cores)
def test_preprocess(tmp_path):
    from oc_megatron.data.tiny import stdlib_code_records, train_bpe_tokenizer

    records = list(stdlib_code_records(max_files=24, max_bytes=8_000))
    inp = tmp_path / "in"
    for s in range(4):
        write_records(inp / f"part-{s}.jsonl", records[s::4])
    tokenizer = train_bpe_tokenizer((r["text"] for r in records), 512, tmp_path / "tokenizer")
    kill_and_resume(tmp_path, "oc_megatron.cli",
                    lambda run: ["preprocess", str(inp), str(run / "code"), "--tokenizer", str(tokenizer),
                                 "--append-eod", "--batch-size", "4"],
                    file_bytes("code.bin", "code.idx"))
