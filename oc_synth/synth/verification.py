"""Execution checks of generated samples, through the project sandbox (``oc_synth.sandbox``, as ``oc-synth verify``).

The pipeline needs one thing: a ``Verifier``, called with records holding ``id``, ``language``, ``code``, ``tests``
and returning them (same order) with ``verdict`` (one of ``oc_synth.sandbox.checks.VERDICTS``), ``passed``,
``verdict_detail``, ``verdict_reason``, ``stderr_tail`` and ``runtime_s``. ``SandboxVerifier`` is the real one: it
keeps one sandbox (warm interpreters per worker slot) open for the whole run instead of starting one per batch.
"""

from __future__ import annotations

from typing import Any, Protocol

from oc_common.errors import OcError
from oc_synth.sandbox.checks import VERDICTS  # the one list of verdicts (light: no sandbox process is started)

VERIFY_FIELDS = ("verdict", "passed", "verdict_reason", "stderr_tail", "runtime_s")


class Verifier(Protocol):
    def __call__(self, records: list[dict[str, Any]], *, workers: int, timeout: float) -> list[dict[str, Any]]: ...


class SandboxVerifier:
    """``oc_synth.sandbox.verify.verify_records`` over one sandbox opened on first use; ``close()`` ends it."""

    def __init__(self) -> None:
        try:
            from oc_synth.sandbox.verify import verify_records
        except ImportError as e:
            raise OcError(f"execution checks need the sandbox (oc_synth.sandbox.verify): {e}; "
                            "pass --no-verify to generate without running the tests") from None
        self._verify_records = verify_records
        self._sandbox: Any = None

    def __call__(self, records: list[dict[str, Any]], *, workers: int, timeout: float) -> list[dict[str, Any]]:
        if self._sandbox is None:
            from oc_synth.sandbox.config import SandboxConfig
            from oc_synth.sandbox.runner import Sandbox

            self._sandbox = Sandbox(SandboxConfig(workers=workers, timeout_s=timeout))
        return list(self._verify_records(records, sandbox=self._sandbox))

    def close(self) -> None:
        if self._sandbox is not None:
            self._sandbox.close()
            self._sandbox = None


def sandbox_verifier() -> SandboxVerifier:
    return SandboxVerifier()


def apply_verdicts(records: list[dict[str, Any]], verifier: Verifier, *, workers: int,
                   timeout: float) -> list[dict[str, Any]]:
    """Run ``records`` (each with id, language, code, tests) and copy the verdict fields back onto them.

    A sandbox failure on the whole batch is not fatal: every record gets verdict ``error`` and the reason, so the
    run goes on and the samples are kept in the log (a rerun with --overwrite can retry them)."""
    if not records:
        return records
    payload = [{"id": r["id"], "language": r.get("language") or "python", "code": r.get("code") or "",
                "tests": r.get("tests") or ""} for r in records]
    try:
        results = verifier(payload, workers=workers, timeout=timeout)
        if len(results) != len(records):
            raise RuntimeError(f"sandbox returned {len(results)} results for {len(records)} records")
    except OcError:
        raise
    except Exception as e:  # noqa: BLE001 - a broken sandbox run costs this batch's verdicts, not the run
        results = [{"verdict": "error", "passed": False, "stderr_tail": f"sandbox failure: {type(e).__name__}: {e}",
                    "runtime_s": 0.0} for _ in records]
    by_id = {r.get("id"): r for r in results}
    for rec, fallback in zip(records, results, strict=False):
        res = by_id.get(rec["id"], fallback)
        for f in VERIFY_FIELDS:
            rec[f] = res.get(f)
        if rec.get("verdict") not in VERDICTS:
            rec["verdict"], rec["passed"] = "error", False
        rec["passed"] = rec["verdict"] == "passed"
        if res.get("verdict_detail"):
            rec["verdict_detail"] = res["verdict_detail"]
    return records
