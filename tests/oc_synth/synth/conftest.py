"""Fixtures for the synthesis tests: a tiny random Llama (built once) and a scripted backend with canned answers
(the loopback OpenAI-compatible server, ``fake_openai``, is shared: tests/conftest.py, tests/fake_openai.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from oc_synth.backends.base import Backend, Completion, GenerationRequest


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> str:
    from oc_synth.backends.tiny import build_tiny_llama

    return str(build_tiny_llama(tmp_path_factory.mktemp("tiny-llama")))


class CannedBackend(Backend):
    """Answers from a function of the request: a string (every sample), a list (one per sample), or an exception
    instance (that request fails). ``crash`` makes the next calls raise, like an engine that died."""

    name = "canned"

    def __init__(self, answer: Callable[[GenerationRequest], Any], model: str = "canned-model"):
        super().__init__(model)
        self.answer = answer
        self.calls: list[list[GenerationRequest]] = []
        self.crash: Exception | None = None
        self.closed = False

    def _generate(self, requests: list[GenerationRequest]) -> list[Completion]:
        self.calls.append(requests)
        if self.crash is not None:
            raise self.crash
        out = []
        for r in requests:
            a = self.answer(r)
            if isinstance(a, Exception):
                out.append(Completion.failed(r.id, a))
                continue
            texts = a if isinstance(a, list) else [a] * r.sampling.n
            out.append(Completion(r.id, texts, ["stop"] * len(texts)))
        return out

    def close(self) -> None:
        self.closed = True

    @property
    def seen_ids(self) -> list[str]:
        return [r.id for batch in self.calls for r in batch]


@pytest.fixture
def canned():
    return CannedBackend
