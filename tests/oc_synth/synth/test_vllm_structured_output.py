"""The vLLM backend asks for JSON-schema output in the installed vLLM's own API: ``StructuredOutputsParams``
(``structured_outputs=``, vLLM >= 0.10.2) or ``GuidedDecodingParams`` (``guided_decoding=``, vLLM 0.10.0 - 0.11).

vLLM is not installed here, so each release's ``vllm.sampling_params`` surface is stood in for by a module with
just the names that release exports; the backend's own ``to_vllm`` builds the sampling parameters from it.
"""

from __future__ import annotations

import sys
import types

import pytest

from oc_common.errors import BackendError
from oc_synth.backends.base import SamplingParams
from oc_synth.backends.vllm import to_vllm

SCHEMA = {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]}


class _Params:
    def __init__(self, **kwargs):
        self.kwargs = kwargs


def _install_vllm(monkeypatch, *exported: str) -> None:
    """A ``vllm`` package whose ``sampling_params`` module exports ``exported`` (as one vLLM release does)."""
    vllm = types.ModuleType("vllm")
    sampling = types.ModuleType("vllm.sampling_params")
    for name in exported:
        setattr(sampling, name, type(name, (_Params,), {}))
    vllm.SamplingParams = _Params
    vllm.sampling_params = sampling
    monkeypatch.setitem(sys.modules, "vllm", vllm)
    monkeypatch.setitem(sys.modules, "vllm.sampling_params", sampling)


@pytest.mark.parametrize("exported, keyword, cls", [
    (("StructuredOutputsParams",), "structured_outputs", "StructuredOutputsParams"),  # vLLM >= 0.12
    (("GuidedDecodingParams",), "guided_decoding", "GuidedDecodingParams"),  # vLLM 0.10.0 / 0.10.1
    # vLLM 0.10.2 - 0.11: both (the old one deprecated)
    (("GuidedDecodingParams", "StructuredOutputsParams"), "structured_outputs", "StructuredOutputsParams"),
])
def test_json_schema_uses_the_installed_api(monkeypatch, exported, keyword, cls):
    _install_vllm(monkeypatch, *exported)
    params = to_vllm(SamplingParams(max_tokens=16, json_schema=SCHEMA))
    constraint = params.kwargs[keyword]
    assert type(constraint).__name__ == cls and constraint.kwargs == {"json": SCHEMA}
    assert {"structured_outputs", "guided_decoding"} & set(params.kwargs) == {keyword}


def test_no_schema_no_constraint(monkeypatch):
    _install_vllm(monkeypatch)  # neither API: fine as long as no schema is asked for
    params = to_vllm(SamplingParams(max_tokens=16))
    assert "structured_outputs" not in params.kwargs and "guided_decoding" not in params.kwargs


def test_a_vllm_without_either_api_is_a_clear_error(monkeypatch):
    _install_vllm(monkeypatch)
    with pytest.raises(BackendError, match="neither StructuredOutputsParams nor GuidedDecodingParams"):
        to_vllm(SamplingParams(max_tokens=16, json_schema=SCHEMA))
