"""Sandbox test helpers. The containment tests need root (namespaces, uids); elsewhere they are skipped with the
reason, and only the degraded rlimits path runs."""

import os

import pytest

from oc_synth.sandbox import Sandbox, SandboxConfig

IS_ROOT = os.geteuid() == 0


@pytest.fixture(scope="module")
def sandbox():
    """One 2-slot pool per test module: small limits so that bombs hit them fast."""
    if not IS_ROOT:
        pytest.skip("the full sandbox needs root (namespaces, per-slot uids)")
    if not os.path.exists("/usr/bin/python3"):
        pytest.skip("needs a system interpreter: apt-get install python3")
    with Sandbox(SandboxConfig(workers=2, timeout_s=3, memory_mb=256, slot_memory_mb=512,
                               isolation="namespaces")) as sb:
        yield sb

