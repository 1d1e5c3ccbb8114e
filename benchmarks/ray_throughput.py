"""Throughput of a curation command on ``--executor ray`` against the number of Ray worker processes.

    python benchmarks/ray_throughput.py [--workers 1 2] [--runs 3] [--max-files 3000] [--shards 8]
    RAY_ADDRESS=head:6379 python benchmarks/ray_throughput.py --cluster [--runs 3] [--max-files 200000]

Input: ``--max-files`` real files of this machine (benchmarks/corpus.py, classified as ``curate ingest`` does), written
as ``--shards`` JSONL shards. Measured: the whole command ``oc-synth curate <--command> IN OUT -e ray -q`` sent to a
running cluster through ``RAY_ADDRESS``, as a user runs it: its wall seconds from outside (the driver's imports
included) and its pipeline's (the runner's ``seconds`` in ``OUT/.oc/stats.json``: Ray's connection, the workers'
start and set-up, every shard). Throughput = input files and MB over the pipeline's seconds; per worker = that over
the worker count.

- Without ``--cluster``: for each ``--workers`` N, a Ray cluster of separate processes on this machine
  (``oc_synth.pipeline.ray_cluster.LocalRayCluster``: a head that takes no work and N worker nodes of one CPU each,
  every node its own raylet and object store). All the clusters are up at once and the runs alternate between them
  (and ``--executor local`` in one process, the reference), in an order that reverses every round, so a change in
  the machine's load falls on every side. The clusters are shut down at the end.
- With ``--cluster``: the cluster named by ``RAY_ADDRESS`` (e.g. inside slurm/curate_ray.sbatch), whatever its size;
  the worker count is its number of CPUs, one actor each. Run it on allocations of several sizes for the curve.

Printed: one row per side, medians with the spread (min-max) over ``--runs``, and the load average before and after
(the box may be shared: compare rows of one run, not runs of different days).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path[:0] = [str(HERE), str(REPO)]

from measure import load_average, spread  # noqa: E402


def write_corpus(root: Path, max_files: int, shards: int) -> tuple[int, int]:
    """``max_files`` files of this machine as ``shards`` JSONL files; returns (files, bytes of text)."""
    from corpus import code_records, describe

    from oc_common.records import write_records

    records = code_records(max_files=max_files)
    for s in range(shards):
        write_records(root / f"part-{s:03d}.jsonl", records[s::shards])
    print(f"input: {describe(records)} in {shards} shards", file=sys.stderr)
    return len(records), sum(len(r["text"].encode()) for r in records)


def run_command(command: str, inp: Path, out: Path, executor: str, address: str | None) -> tuple[float, float]:
    """Wall seconds of one whole ``oc-synth curate <command>`` (a fresh OUT each time), and of its pipeline alone
    (the runner's ``seconds``: from the executor's start, Ray's connection and the workers' set-up included, to the
    last shard written; without the driver's imports)."""
    shutil.rmtree(out, ignore_errors=True)
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env.update(OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    if address:
        env["RAY_ADDRESS"] = address
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "oc_synth.cli", "curate", command, str(inp), str(out), "-e", executor,
                           "-q"], capture_output=True, text=True, env=env, check=False)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"curate {command} -e {executor} failed:\n{proc.stderr[-3000:]}")
    stats = json.loads((out / ".oc" / "stats.json").read_text())
    return wall, float(stats["counters"]["seconds"])


class ActorSampler:
    """Samples, while a run lasts, the Ray worker processes holding our shard actors on a local cluster's nodes (Ray
    names the process after the actor class): the largest resident memory seen, and the CPU seconds (user + system)
    each used, as last seen (up to 0.2 s before it ended). CPU seconds are what a worker costs whatever the load of
    the machine, so MB per CPU-second is the rate to size a cluster of dedicated cores with."""

    def __init__(self, cluster) -> None:  # noqa: ANN001
        self.cluster, self.peak_mib, self._stop = cluster, 0.0, threading.Event()
        self._cpu: dict[int, float] = {}
        self._thread = threading.Thread(target=self._sample, daemon=True)

    @property
    def cpu_s(self) -> float:
        return sum(self._cpu.values())

    def _sample(self) -> None:
        import psutil

        while not self._stop.wait(0.2):
            for node in self.cluster.nodes:
                for proc in node.tree():
                    try:
                        if "_ShardActor" in " ".join(proc.cmdline()):
                            self.peak_mib = max(self.peak_mib, proc.memory_info().rss / 2**20)
                            t = proc.cpu_times()
                            self._cpu[proc.pid] = t.user + t.system
                    except psutil.Error:
                        continue

    def __enter__(self) -> ActorSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def cluster_cpus(address: str) -> int:
    import ray

    ray.init(address=address, log_to_driver=False)
    try:
        return int(ray.cluster_resources().get("CPU", 0))
    finally:
        ray.shutdown()


def table(rows: list[tuple[str, int, list[float], list[float]]], files: int, mb: float) -> str:
    """Per side: whole-command and pipeline seconds (median, min-max); rates from the pipeline's median."""
    lines = ["| side | workers | command s | pipeline s | files/s | MB/s | MB/s per worker | speed-up vs 1 worker |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    base = next((statistics.median(p) for name, n, _, p in rows if name.startswith("ray") and n == 1), None)
    for name, workers, walls, pipes in rows:
        w, p = spread(walls), spread(pipes)
        rate = mb / p["median"]
        speedup = f"{base / p['median']:.2f}x" if base and name.startswith("ray") else ""
        lines.append(f"| {name} | {workers} | {w['median']:.1f} ({w['min']:.1f}-{w['max']:.1f}) | "
                     f"{p['median']:.1f} ({p['min']:.1f}-{p['max']:.1f}) | {files / p['median']:.0f} | "
                     f"{rate:.2f} | {rate / workers:.2f} | {speedup} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="Ray worker processes per local cluster.")
    ap.add_argument("--cluster", action="store_true", help="Use the running cluster named by RAY_ADDRESS instead.")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--max-files", type=int, default=3000)
    ap.add_argument("--shards", type=int, default=8)
    ap.add_argument("--command", default="filter", choices=["filter", "transform", "sample"],
                    help="The curation command measured (filter: the CPU-heaviest per byte).")
    ap.add_argument("--json", type=Path, help="Also write the runs here.")
    args = ap.parse_args()
    if args.cluster and not os.environ.get("RAY_ADDRESS"):
        raise SystemExit("--cluster: set RAY_ADDRESS to the head's address")

    from oc_synth.pipeline.ray_cluster import LocalRayCluster

    tmp = Path(tempfile.mkdtemp(prefix="ocraybench-", dir="/tmp"))  # short: Ray's socket paths live under it
    clusters: list[LocalRayCluster] = []
    try:
        files, nbytes = write_corpus(tmp / "in", args.max_files, args.shards)
        sides: dict[str, tuple[str, str | None, int]] = {}  # name -> (executor, address, workers)
        cluster_of: dict[str, LocalRayCluster] = {}
        if args.cluster:
            address = os.environ["RAY_ADDRESS"]
            sides["ray (cluster)"] = ("ray", address, cluster_cpus(address))
        else:
            sides["local, 1 process"] = ("local", None, 1)
            for n in args.workers:
                c = LocalRayCluster(tmp / f"ray{n}", head_cpus=0, object_store_mb=200).start()
                clusters.append(c)
                for _ in range(n):
                    c.add_worker(cpus=1)
                sides[f"ray, {n} worker node{'s' * (n > 1)}"] = ("ray", c.address, n)
                cluster_of[f"ray, {n} worker node{'s' * (n > 1)}"] = c
        load_before = load_average()
        walls: dict[str, list[float]] = {name: [] for name in sides}
        pipes: dict[str, list[float]] = {name: [] for name in sides}
        actor_mib: dict[str, float] = {}
        actor_cpu: dict[str, list[float]] = {}
        names = list(sides)
        for r in range(args.runs):
            for name in names if r % 2 == 0 else names[::-1]:
                executor, address, _ = sides[name]
                with contextlib.ExitStack() as stack:
                    sampler = stack.enter_context(ActorSampler(cluster_of[name])) if name in cluster_of else None
                    wall, pipe = run_command(args.command, tmp / "in", tmp / "out", executor, address)
                walls[name].append(wall)
                pipes[name].append(pipe)
                if sampler is not None:
                    actor_mib[name] = max(actor_mib.get(name, 0.0), sampler.peak_mib)
                    actor_cpu.setdefault(name, []).append(sampler.cpu_s)
            shown = ", ".join(f"{n} {walls[n][-1]:.1f} s ({pipes[n][-1]:.1f} s pipeline)" for n in names)
            print(f"  round {r + 1}/{args.runs}: {shown} (load {os.getloadavg()[0]:.1f})", file=sys.stderr, flush=True)
        rows = [(name, sides[name][2], walls[name], pipes[name]) for name in names]
        print(f"curate {args.command}: {files:,} files, {nbytes / 1e6:.1f} MB, {args.shards} shards; "
              f"{args.runs} runs per side; wall seconds of the whole command and of its pipeline")
        print(f"load average before: {load_before}; after: {load_average()}")
        print(table(rows, files, nbytes / 1e6))
        for name, mib in actor_mib.items():
            cpu = spread(actor_cpu[name])
            print(f"{name}: shard workers used {cpu['median']:.1f} CPU-s ({cpu['min']:.1f}-{cpu['max']:.1f}) in all: "
                  f"{nbytes / 1e6 / cpu['median']:.2f} MB per worker CPU-second; peak RSS of one worker {mib:.0f} MiB")
        if args.json:
            args.json.write_text(json.dumps({"command": args.command, "files": files, "bytes": nbytes,
                                             "shards": args.shards, "load_before": load_before,
                                             "load_after": load_average(),
                                             "sides": {n: {"workers": w, "wall_s": walls[n], "pipeline_s": pipes[n],
                                                           "actor_peak_rss_mib": actor_mib.get(n),
                                                           "actor_cpu_s": actor_cpu.get(n)}
                                                       for n, (_, _, w) in sides.items()}}, indent=1))
    finally:
        for c in clusters:
            c.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
