"""Every data command on ``--executor ray`` against a real Ray cluster of separate processes on this machine (a head
started with ``ray start --head`` and a worker node with ``ray start --address``: separate raylets and object
stores), reached through ``RAY_ADDRESS``, writes what ``--executor local`` writes; a worker node killed mid-run costs
nothing, and a job killed mid-run resumes on rerun. The cluster is started once for this module (~15 s) and shut
down at its end.

The commands run through the real CLI: in this process (a Ray driver, as `oc-synth` is) or, for the jobs sent from
outside, as `python -m oc_synth.cli` with RAY_ADDRESS in its environment.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
from pathlib import Path

import psutil
import pytest
from cli_run import one_line_error

from oc_common.outputs import META_DIR
from oc_common.records import read_file_records, write_records
from oc_synth.pipeline.ray_cluster import LocalRayCluster

REPO = Path(__file__).resolve().parents[3]
STDLIB = Path(sysconfig.get_paths()["stdlib"])
IGNORED = {"seconds", "runtime_s", "signal_seconds", "index_s", "decide_s", "remove_s", "peak_rss_bytes",
           "index_docs_per_s", "runtime_s_total"}  # timings: the only things allowed to differ


def _disconnect() -> None:
    import ray

    if ray.is_initialized():
        ray.shutdown()


@pytest.fixture(scope="module")
def cluster():
    """Head (1 CPU) + one worker node (1 CPU), each its own raylet and 100 MB object store; RAY_ADDRESS points at it
    for the module's tests, and every process of it is gone afterwards."""
    root = Path(tempfile.mkdtemp(prefix="ocray-", dir="/tmp"))  # short: Ray's socket paths live under it
    saved = os.environ.get("RAY_ADDRESS")
    c = LocalRayCluster(root, head_cpus=1)
    try:
        c.start()
        c.add_worker(cpus=1)
        _disconnect()  # a local Ray another test module started in this process
        os.environ["RAY_ADDRESS"] = c.address
        yield c
    finally:
        _disconnect()
        if saved is None:
            os.environ.pop("RAY_ADDRESS", None)
        else:
            os.environ["RAY_ADDRESS"] = saved
        c.stop()
        shutil.rmtree(root, ignore_errors=True)


# ---- comparing two output directories -----------------------------------------------------------------------------
def _strip(value):
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items() if k not in IGNORED}
    if isinstance(value, list):
        return [_strip(v) for v in value]
    return value


def record_files(root: Path) -> dict[str, Path]:
    return {p.relative_to(root).as_posix(): p for p in sorted(root.rglob("*"))
            if p.is_file() and META_DIR not in p.relative_to(root).parts}


def assert_same_output(local: Path, ray: Path, *, volatile: tuple[str, ...] = ()) -> int:
    """The same record files with the same bytes (records compared without ``volatile`` fields where given), and the
    same stats but for timings; returns the number of records compared."""
    a, b = record_files(local), record_files(ray)
    assert sorted(a) == sorted(b)
    records = 0
    for name in a:
        if volatile:
            ra, rb = (read_file_records(p)[0] for p in (a[name], b[name]))
            assert [{k: v for k, v in r.items() if k not in volatile} for r in ra] == \
                [{k: v for k, v in r.items() if k not in volatile} for r in rb], name
            records += len(ra)
        else:
            assert a[name].read_bytes() == b[name].read_bytes(), name
            records += len(read_file_records(a[name])[0])
    stats = [local / META_DIR / "stats.json", ray / META_DIR / "stats.json"]
    if stats[0].exists():
        sa, sb = (json.loads(p.read_text()) for p in stats)
        if volatile:  # a volatile field's digits change the output's size
            sa["counters"].pop("bytes_out"), sb["counters"].pop("bytes_out")
        assert _strip({k: v for k, v in sa.items() if k != "resume"}) == \
            _strip({k: v for k, v in sb.items() if k != "resume"})
    return records


def both(oc_synth, tmp_path: Path, name: str, *args: str, out_at: int = 1, dropped: bool = False) -> tuple[Path, Path]:
    """Run one command with -e local and with -e ray (OUT is ``args[out_at]``, under tmp_path/local|ray/)."""
    outs = []
    for executor in ("local", "ray"):
        out = tmp_path / executor / name
        argv = list(args)
        argv.insert(out_at, str(out))
        if dropped:
            argv += ["--dropped", str(tmp_path / executor / f"{name}_dropped")]
        r = oc_synth(*argv, "-e", executor, "-q")
        assert r.returncode == 0, r.stderr[-3000:]
        outs.append(out)
    if dropped:
        assert_same_output(tmp_path / "local" / f"{name}_dropped", tmp_path / "ray" / f"{name}_dropped")
    return outs[0], outs[1]


def code_corpus(root: Path, shards: int = 4, per_shard: int = 12, skip: int = 0) -> Path:
    """Real files (this Python's standard library) as code records, plus exact and near copies across shards for
    dedup, and LeetCode-style files for select-algorithmic."""
    files = [p for p in [*sorted(STDLIB.glob("*.py")), *sorted(STDLIB.glob("[a-z]*/*.py"))]
             if 1_000 <= p.stat().st_size <= 20_000 and "site-packages" not in p.parts]
    files = files[skip:skip + shards * per_shard]
    assert len(files) == shards * per_shard
    for s in range(shards):
        recs = [{"id": f"{s}-{i}", "text": f.read_text(encoding="utf-8"), "path": f.name, "language": "Python",
                 "doc_type": "code", "stars": (s * 7 + i) % 11, "repo": f"org/r{s}"}
                for i, f in enumerate(files[s * per_shard:(s + 1) * per_shard])]
        if s:
            first = recs[0]["text"] if s % 2 else files[0].read_text(encoding="utf-8")
            recs.append({"id": f"{s}-copy", "text": first, "path": "copy.py", "language": "Python",
                         "doc_type": "code", "stars": 1})
            recs.append({"id": f"{s}-near", "text": files[s].read_text(encoding="utf-8") + "\n# edited\n",
                         "path": "near.py", "language": "Python", "doc_type": "code", "stars": 2})
        recs.append({"id": f"{s}-leet", "text": f"class Solution:\n    def twoSum{s}(self, nums, target):\n"
                     "        seen = {}\n        for i, n in enumerate(nums):\n            if target - n in seen:\n"
                     "                return [seen[target - n], i]\n            seen[n] = i\n",
                     "path": "leet.py", "language": "Python", "doc_type": "code", "stars": 3})
        write_records(root / f"part-{s}.jsonl", recs)
    return root


def test_the_wait_for_nodes_command_slurm_runs(cluster):
    """`python -m oc_synth.pipeline.ray_cluster wait ADDRESS NODES TIMEOUT` (slurm/curate_ray.sbatch): 0 once the
    nodes are alive; 2, saying how many joined, when they are not in time."""
    run = [sys.executable, "-m", "oc_synth.pipeline.ray_cluster", "wait", cluster.address]
    ok = subprocess.run([*run, "2", "60"], capture_output=True, text=True, timeout=120, check=False)
    assert ok.returncode == 0 and ok.stdout.strip() == "2 Ray nodes alive at " + cluster.address, ok.stderr
    short = subprocess.run([*run, "5", "1"], capture_output=True, text=True, timeout=120, check=False)
    assert short.returncode == 2 and "2 of 5 Ray nodes joined the cluster" in short.stderr


# ---- the curation commands ------------------------------------------------------------------------------------------
def test_ingest_sent_with_ray_address_writes_what_local_writes(cluster, tmp_path):
    """A job sent from outside: `oc-synth curate ingest ... -e ray` with RAY_ADDRESS in its environment (a tree of
    repositories)."""
    src = REPO / "examples" / "sample_repos"
    env = {**os.environ, "RAY_ADDRESS": cluster.address}
    for executor in ("local", "ray"):
        r = subprocess.run([sys.executable, "-m", "oc_synth.cli", "curate", "ingest", str(src),
                            str(tmp_path / executor / "tree"), "--shard-size", "4", "--dropped",
                            str(tmp_path / executor / "tree_dropped"), "-e", executor, "-q"],
                           capture_output=True, text=True, env=env, timeout=300, check=False)
        assert r.returncode == 0, r.stderr[-3000:]
    assert assert_same_output(tmp_path / "local" / "tree", tmp_path / "ray" / "tree") > 10
    assert_same_output(tmp_path / "local" / "tree_dropped", tmp_path / "ray" / "tree_dropped")
    assert len(record_files(tmp_path / "ray" / "tree")) >= 3  # several shards, so both nodes had work


def test_ingest_of_stack_v2_records_matches_local(cluster, oc_synth, tmp_path):
    stack = tmp_path / "stack"
    files = sorted(STDLIB.glob("[a-c]*.py"))[:12]
    for s in range(3):
        rows = [{"blob_id": f"b{s}-{i}", "content": f.read_text(encoding="utf-8"), "path": f"lib/{f.name}",
                 "repo_name": f"org/r{s}", "star_events_count": i} for i, f in enumerate(files[s::3])]
        rows.append({"blob_id": f"b{s}-csv", "content": "1,2\n", "path": "t.csv", "repo_name": "org/r"})
        write_records(stack / (f"s{s}.parquet" if s == 2 else f"s{s}.jsonl"), rows)
    local, ray = both(oc_synth, tmp_path, "stack", "curate", "ingest", str(stack), out_at=3, dropped=True)
    assert assert_same_output(local, ray) == 12


def test_transform_filter_sample_select_match_local(cluster, oc_synth, tmp_path):
    inp = code_corpus(tmp_path / "in")
    local, ray = both(oc_synth, tmp_path, "transform", "curate", "transform", str(inp), out_at=3)
    assert assert_same_output(local, ray) == 4 * 12 + 3 * 2 + 4
    local, ray = both(oc_synth, tmp_path, "filter", "curate", "filter", str(inp), "--signals", out_at=3,
                      dropped=True)
    assert assert_same_output(local, ray) > 0
    local, ray = both(oc_synth, tmp_path, "sample", "curate", "sample", str(inp), "-s", "keep_fraction.Python=0.5",
                      out_at=3, dropped=True)
    assert 10 < assert_same_output(local, ray) < 4 * 15
    local, ray = both(oc_synth, tmp_path, "select", "curate", "select-algorithmic", str(inp), out_at=3)
    assert assert_same_output(local, ray) >= 4


def test_dedup_exact_and_fuzzy_all_passes_match_local(cluster, oc_synth, tmp_path):
    inp = code_corpus(tmp_path / "in")
    local, ray = both(oc_synth, tmp_path, "dedup", "curate", "dedup", str(inp), "--mode", "both", out_at=3,
                      dropped=True)
    assert_same_output(local, ray)
    summary = {e: json.loads((tmp_path / e / "dedup" / META_DIR / "stats.json").read_text())["dedup"]
               for e in ("local", "ray")}
    clusters = summary["local"]["clusters"]
    assert clusters == summary["ray"]["clusters"]
    assert clusters["exact_removed"] == 3 and clusters["fuzzy_removed"] >= 3


@pytest.mark.parametrize("jaccard", [False, True], ids=["lsh", "jaccard-checked"])
def test_dedup_band_key_partitions_as_ray_tasks_match_local(cluster, oc_synth, tmp_path, monkeypatch, jaccard):
    """Pass 2's band-key partitions (oc_synth/curate/dedup/bands.py) as Ray tasks: partitions made small here, so
    the run has many; the clusters and every output byte are those of the local loop over partitions."""
    from oc_synth.curate.dedup import bands

    monkeypatch.setattr(bands, "PARTITION_ENTRIES", 64)
    inp = code_corpus(tmp_path / "in")
    extra = ("--jaccard-check", "0.8") if jaccard else ()
    said = {}
    for executor in ("local", "ray"):
        r = oc_synth("curate", "dedup", str(inp), str(tmp_path / executor), "--mode", "fuzzy", *extra, "-e", executor)
        assert r.returncode == 0, r.stderr[-3000:]
        said[executor] = " ".join(r.stderr.split())
    assert_same_output(tmp_path / "local", tmp_path / "ray")
    summary = {e: json.loads((tmp_path / e / META_DIR / "stats.json").read_text())["dedup"]["clusters"]
               for e in ("local", "ray")}
    assert summary["local"] == summary["ray"] and summary["ray"]["band_key_partitions"] > 5
    assert summary["ray"]["fuzzy_removed"] >= 3
    count = summary["ray"]["band_key_partitions"]
    assert f"{count} band-key partitions as Ray tasks" in said["ray"] and "as Ray tasks" not in said["local"]


def test_recall_score_matches_local(cluster, oc_synth, tmp_path):
    import importlib.util

    from oc_synth.recall.config import load_recall_config
    from oc_synth.recall.training import train_classifier

    spec = importlib.util.spec_from_file_location("make_corpus", REPO / "examples" / "recall" / "make_corpus.py")
    maker = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(maker)
    maker.generate(tmp_path / "web", scale=0.4, seed=1)
    classifier = tmp_path / "classifier"
    train_classifier([tmp_path / "web" / "seeds.jsonl"], tmp_path / "web" / "web", classifier,
                     load_recall_config(REPO / "examples" / "recall" / "config.yaml"))
    local, ray = both(oc_synth, tmp_path, "scored", "recall", "score", str(tmp_path / "web" / "web"),
                      "--model", str(classifier), out_at=3)
    assert assert_same_output(local, ray) > 100


def test_verify_runs_sandbox_slots_on_each_worker(cluster, oc_synth, tmp_path):
    samples = [r for r in read_file_records(REPO / "examples" / "synth" / "verify_sample.jsonl")[0]]
    for s in range(2):
        write_records(tmp_path / "in" / f"p{s}.jsonl", [{**r, "id": f"{r['id']}-{s}"} for r in samples])
    local, ray = both(oc_synth, tmp_path, "verified", "verify", str(tmp_path / "in"), "--all", "--timeout", "2",
                      "--workers", "1", out_at=2)
    assert assert_same_output(local, ray, volatile=("runtime_s",)) == 2 * len(samples)
    stats = json.loads((ray / META_DIR / "stats.json").read_text())
    assert sum(stats["groups"]["isolation"].values()) == 2 * len(samples)
    # a worker without the full sandbox: the driver says how many records ran degraded (the workers' own warnings
    # stay in their logs)
    r = oc_synth("verify", str(tmp_path / "in"), str(tmp_path / "degraded"), "-s", "isolation=rlimits",
                 "--timeout", "2", "-w", "1", "-e", "ray", "-q")
    assert r.returncode == 0, r.stderr[-3000:]
    said = " ".join(r.stderr.split())
    assert f"{2 * len(samples)} of {2 * len(samples)} records ran without the full sandbox (rlimits" in said
    # a sandbox that cannot start on the workers fails the run with its own one-line error
    r = oc_synth("verify", str(tmp_path / "in"), str(tmp_path / "broken"), "-s", "python=/no/such/python3",
                 "-w", "1", "-e", "ray", "-q")
    one_line_error(r, "/no/such/python3: no such interpreter")
    # 2 slots need a node with 2 CPUs: said at once, not a wait for a worker that cannot be placed
    r = oc_synth("verify", str(tmp_path / "in"), str(tmp_path / "too_wide"), "-w", "2", "-e", "ray", "-q")
    one_line_error(r, "no node of the Ray cluster has 2 CPUs", "--workers")


# ---- model backends: generate (ranks on Ray) and recall label (copies of the backend) --------------------------------
@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    from oc_synth.backends.tiny import build_tiny_llama

    return str(build_tiny_llama(tmp_path_factory.mktemp("tiny-llama")))


def test_generate_ranks_on_ray_match_one_local_process(cluster, oc_synth, tiny_model, tmp_path):
    seeds = REPO / "examples" / "synth" / "algorithmic.jsonl"
    outs = {}
    for executor, dp in (("local", "1"), ("ray", "2")):
        outs[executor] = tmp_path / executor
        r = oc_synth("generate", "code-textbook", "--seeds", str(seeds), "--out", str(outs[executor]), "-b", "hf",
                     "-m", tiny_model, "--max-tokens", "8", "--dp", dp, "-e", executor, "-q")
        assert r.returncode == 0, r.stderr[-3000:]
    assert_same_output(outs["local"], outs["ray"])  # the random model's answers rarely pass: often no record kept
    rejected = [sorted(json.dumps(x, sort_keys=True) for x in read_file_records(outs[e] / META_DIR / "rejected"
                                                                               / "algorithmic.jsonl")[0])
                for e in ("local", "ray")]
    assert rejected[0] == rejected[1] and len(rejected[0]) == 5  # one sample per seed, each with its reasons
    assert sorted(p.name for p in (outs["ray"] / META_DIR / "generations").iterdir()) == [
        "algorithmic.rank00000.jsonl", "algorithmic.rank00001.jsonl"]


def test_recall_label_with_backend_copies_on_ray_matches_local(cluster, oc_synth, tiny_model, tmp_path):
    pages = [{"url": f"https://site{i % 3}.example/p/{i}", "text": f"def f{i}(x):\n    return x * {i}\n"
              if i % 2 else f"A page about the weather in town number {i}."} for i in range(12)]
    write_records(tmp_path / "pages.jsonl", pages)
    for executor, extra in (("local", ()), ("ray", ("-w", "2"))):
        r = oc_synth("recall", "label", str(tmp_path / "pages.jsonl"), str(tmp_path / executor), "-b", "hf", "-m",
                     tiny_model, "--batch-size", "6", "-e", executor, *extra, "-q")
        assert r.returncode == 0, r.stderr[-3000:]
    for name in ("labels.jsonl", "code.jsonl", "other.jsonl"):
        assert (tmp_path / "local" / name).read_bytes() == (tmp_path / "ray" / name).read_bytes()
    assert len(read_file_records(tmp_path / "ray" / "labels.jsonl")[0]) == 12


# ---- a worker node lost mid-run -------------------------------------------------------------------------------------
def _running_shard_on(node) -> bool:  # noqa: ANN001
    """A Ray worker of ``node`` is inside a shard (Ray names the process after the method it runs)."""
    for p in node.tree():
        try:
            if "_ShardActor.run" in " ".join(p.cmdline()):
                return True
        except psutil.Error:
            continue
    return False


def test_a_worker_node_killed_mid_run_costs_nothing(cluster, tmp_path):
    """A third node joins; `oc-synth curate filter -e ray` runs from outside with RAY_ADDRESS; the new node is killed
    (every process of it, SIGKILL) while one of its workers is inside a shard. The job finishes, its shard is run
    again on a surviving node, and the output is byte for byte the local run's: nothing lost, nothing twice."""
    inp = code_corpus(tmp_path / "in", shards=12, per_shard=20, skip=60)
    r = subprocess.run([sys.executable, "-m", "oc_synth.cli", "curate", "filter", str(inp), str(tmp_path / "local"),
                        "--dropped", str(tmp_path / "local_dropped"), "-q"], capture_output=True, text=True,
                       timeout=300, check=False)
    assert r.returncode == 0, r.stderr[-3000:]
    victim = cluster.add_worker(cpus=1)
    env = {**os.environ, "RAY_ADDRESS": cluster.address}
    job = subprocess.Popen([sys.executable, "-m", "oc_synth.cli", "curate", "filter", str(inp), str(tmp_path / "ray"),
                            "--dropped", str(tmp_path / "ray_dropped"), "-e", "ray", "-q"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    killed = threading.Event()

    def kill_when_busy() -> None:
        deadline = time.monotonic() + 240
        while job.poll() is None and time.monotonic() < deadline:
            if _running_shard_on(victim):
                cluster.kill(victim)
                killed.set()
                return
            time.sleep(0.05)

    killer = threading.Thread(target=kill_when_busy, daemon=True)
    killer.start()
    try:
        _, err = job.communicate(timeout=400)
    finally:
        if job.poll() is None:
            job.kill()
            job.wait()
        killer.join(30)
    assert killed.is_set(), "the job ended before a worker of the extra node took a shard"
    assert job.returncode == 0, err[-3000:]
    assert "its Ray worker died" in err and "running it again on another worker" in err
    assert assert_same_output(tmp_path / "local", tmp_path / "ray") > 0
    assert_same_output(tmp_path / "local_dropped", tmp_path / "ray_dropped")
    stats = json.loads((tmp_path / "ray" / META_DIR / "stats.json").read_text())
    records_in = sum(len(read_file_records(f)[0]) for f in inp.iterdir())
    assert stats["counters"]["records_in"] == records_in and stats["counters"]["shards"] == 12


def test_a_job_killed_mid_run_resumes_on_rerun(cluster, tmp_path):
    """The driver of `oc-synth curate filter -e ray` is killed (SIGKILL) once a few shards are done, which ends its
    Ray job and the workers' shards in flight; the rerun skips the finished shards, does the rest, and the output is
    byte for byte the local run's: nothing lost, nothing twice."""
    inp = code_corpus(tmp_path / "in", shards=12, per_shard=20, skip=60)
    r = subprocess.run([sys.executable, "-m", "oc_synth.cli", "curate", "filter", str(inp), str(tmp_path / "local"),
                        "--dropped", str(tmp_path / "local_dropped"), "-q"], capture_output=True, text=True,
                       timeout=300, check=False)
    assert r.returncode == 0, r.stderr[-3000:]
    env = {**os.environ, "RAY_ADDRESS": cluster.address}
    argv = [sys.executable, "-m", "oc_synth.cli", "curate", "filter", str(inp), str(tmp_path / "ray"), "--dropped",
            str(tmp_path / "ray_dropped"), "-e", "ray", "-q"]
    markers = tmp_path / "ray" / META_DIR / "shards"
    job = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.monotonic() + 240
        while job.poll() is None and time.monotonic() < deadline:
            if markers.is_dir() and len(list(markers.glob("*.json"))) >= 2:
                job.kill()
                break
            time.sleep(0.05)
    finally:
        if job.poll() is None:
            job.kill()
        job.communicate(timeout=60)
    assert job.returncode == -9, "the job ended before two shards were done"
    done = len(list(markers.glob("*.json")))
    assert 2 <= done < 12
    rerun = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=300, check=False)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert assert_same_output(tmp_path / "local", tmp_path / "ray") > 0
    assert_same_output(tmp_path / "local_dropped", tmp_path / "ray_dropped")
    stats = json.loads((tmp_path / "ray" / META_DIR / "stats.json").read_text())
    assert stats["resume"]["done_earlier"] >= done
    records_in = sum(len(read_file_records(f)[0]) for f in inp.iterdir())
    assert stats["counters"]["records_in"] == records_in and stats["counters"]["shards"] == 12

