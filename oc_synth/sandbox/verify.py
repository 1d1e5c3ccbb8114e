"""Execution-verified filtering: records with ``code`` and ``tests`` in, the same records with a verdict out.

``verify_records`` is the streaming API (generation pipeline, eval harness); ``stage.VerifyStage`` is the same thing
as a NeMo Curator stage for the sharded, resumable ``oc-synth verify``. A bad record (no ``code``, a field of the wrong
type, an unknown language, a missing toolchain) gets verdict ``error`` with the reason: counted, written, never
fatal to the run.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from oc_synth.sandbox.config import SandboxConfig
from oc_synth.sandbox.languages import Program, UnsupportedLanguage, build_program
from oc_synth.sandbox.runner import RunResult, Sandbox

VERDICT_FIELDS = ("verdict", "passed", "verdict_detail", "verdict_reason", "stderr_tail", "runtime_s")


def program_for_record(record: dict[str, Any]) -> Program | RunResult:
    """The program a record describes, or a RunResult with verdict ``error`` saying why there is none."""
    code, tests = record.get("code"), record.get("tests")
    lang = record.get("language")
    reason = None
    if not isinstance(code, str):
        reason = "bad record: missing field 'code'" if code is None else \
            f"bad record: field 'code' must be a string, got {type(code).__name__}"
    elif tests is not None and not isinstance(tests, str):
        reason = f"bad record: field 'tests' must be a string, got {type(tests).__name__}"
    elif lang is not None and not isinstance(lang, str):
        reason = f"bad record: field 'language' must be a string, got {type(lang).__name__}"
    rid = None if record.get("id") is None else str(record.get("id"))
    if reason is None:
        try:
            return build_program(lang, code, tests or "", id=rid)
        except UnsupportedLanguage as e:
            reason = str(e)
    code_name = "bad_record" if reason.startswith("bad record") else "unsupported_language"
    return RunResult("error", reason, 0.0, language=str(lang or "python"), id=rid, reason=code_name)


def verify_one(sandbox: Sandbox, record: dict[str, Any]) -> dict[str, Any]:
    prepared = program_for_record(record)
    result = prepared if isinstance(prepared, RunResult) else sandbox.run(prepared)
    return {**record, **result.record_fields()}


def verify_records(records: Iterable[dict[str, Any]], *, workers: int = 2, timeout: float = 10.0,
                   config: SandboxConfig | None = None, sandbox: Sandbox | None = None) -> Iterator[dict[str, Any]]:
    """Yield each record (in order) with ``verdict``, ``passed``, ``verdict_detail``, ``verdict_reason``,
    ``stderr_tail``, ``runtime_s`` added. Uses ``sandbox`` if given (left open), else one built from ``config`` or from
    ``workers``/``timeout`` (closed at the end)."""
    own = sandbox is None
    sb = sandbox or Sandbox(config or SandboxConfig(workers=workers, timeout_s=timeout))
    try:
        yield from sb.ordered_map(lambda rec: verify_one(sb, rec), records)
    finally:
        if own:
            sb.close()
