"""Measured runs for the throughput benchmarks: each in a fresh child process that times its own work.

``sidebyside.py`` times whole commands from outside (start-up and imports included, as a user waits for them).
The throughput benchmarks (filter, dedup, verify) compare the work itself with a peer's: the child imports
everything first, then reports the CPU seconds (user + system of the process and the children it waited for), wall
seconds and items of the measured part, and its peak RSS (the largest of the process and its children), as one JSON
line on stdout. The driver runs the compared sides alternately, so that a change in the machine's load falls on
both, and summarizes each side as the median with the spread (min-max).
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def cpu_seconds() -> float:
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def peak_rss_mib() -> float:
    return max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
               resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024


@contextmanager
def measured(result: dict):
    """Times the ``with`` body into ``result`` (cpu_s, wall_s); peak_rss_mib is taken at the end."""
    cpu, wall = cpu_seconds(), time.perf_counter()
    yield result
    result.update(cpu_s=cpu_seconds() - cpu, wall_s=time.perf_counter() - wall, peak_rss_mib=peak_rss_mib())


def run_child(python: str, script: str, args: list[str], env: dict[str, str] | None = None) -> dict:
    """Run ``script --child ARGS`` with ``python``; returns the JSON it printed last (a failure ends the benchmark
    with the child's stderr)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO), **(env or {})}
    proc = subprocess.run([python, script, "--child", *args], capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"a measured run failed ({' '.join(args[:2])}):\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def alternate(sides: dict[str, Callable[[], dict]], rounds: int, log: bool = True) -> dict[str, list[dict]]:
    """``rounds`` rounds, each running every side once, in an order that reverses every round."""
    names = list(sides)
    runs: dict[str, list[dict]] = {n: [] for n in names}
    for r in range(rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            runs[name].append(sides[name]())
        if log:
            shown = ", ".join(f"{n} {runs[n][-1]['wall_s']:.1f} s wall / {runs[n][-1]['cpu_s']:.1f} CPU-s"
                              for n in names)
            print(f"  round {r + 1}/{rounds}: {shown} (load {os.getloadavg()[0]:.1f})", file=sys.stderr, flush=True)
    return runs


def spread(values: list[float]) -> dict:
    return {"median": round(statistics.median(values), 3), "min": round(min(values), 3),
            "max": round(max(values), 3)}


def summarize(runs: list[dict], rate_of: str = "items") -> dict:
    """Medians and spreads of a side's runs; ``<rate_of>_per_s`` (wall) and ``_per_cpu_s`` from the medians."""
    out = {"runs": len(runs), **{k: spread([r[k] for r in runs]) for k in ("cpu_s", "wall_s", "peak_rss_mib")}}
    for key, value in runs[0].items():
        if key not in out and not isinstance(value, float):
            out[key] = value
    items = runs[0].get(rate_of)
    if isinstance(items, (int, float)) and items:
        out[f"{rate_of}_per_s"] = round(items / out["wall_s"]["median"], 1)
        out[f"{rate_of}_per_cpu_s"] = round(items / out["cpu_s"]["median"], 1)
    return out


def fmt(s: dict, key: str, digits: int = 1) -> str:
    return f"{s[key]['median']:.{digits}f} ({s[key]['min']:.{digits}f}-{s[key]['max']:.{digits}f})"


def load_average() -> str:
    return f"{' / '.join(f'{x:.1f}' for x in os.getloadavg())} (1 / 5 / 15 min) on {os.cpu_count()} CPUs"
