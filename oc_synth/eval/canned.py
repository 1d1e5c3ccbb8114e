"""A backend that answers from a table instead of a model: the harness's self-checks, and a way to score samples
that were generated elsewhere.

It goes through the same ``Backend.generate`` contract as the real backends, so the prompt building, stop handling,
code extraction, sandbox execution and scoring it feeds are the ones a real model run uses.
"""

from __future__ import annotations

from collections.abc import Callable

from oc_synth.backends.base import Backend, Completion, GenerationRequest, apply_stop

# (request, sample index) -> answer text
Answer = Callable[[GenerationRequest, int], str]


class CannedBackend(Backend):
    """Answers each request with ``answer(request, i)`` for its ``n`` samples, cut at the request's stop strings as a
    real backend would. Request ids are task ids (that is how the eval runner builds them)."""

    name = "canned"

    def __init__(self, answer: Answer, model: str = "canned"):
        super().__init__(model)
        self.answer = answer
        self.requests: list[GenerationRequest] = []  # what was asked, for tests

    def _generate(self, requests: list[GenerationRequest]) -> list[Completion]:
        out = []
        for r in requests:
            self.requests.append(r)
            texts = [apply_stop(self.answer(r, i), r.sampling.stop)[0] for i in range(r.sampling.n)]
            out.append(Completion(r.id, texts, ["stop"] * len(texts)))
        return out


def table_backend(answers: dict[str, list[str] | str], model: str = "canned") -> CannedBackend:
    """A backend answering task ``t``'s i-th sample with ``answers[t][i]`` (a lone string answers every sample)."""

    def answer(request: GenerationRequest, i: int) -> str:
        a = answers[request.id]
        return a if isinstance(a, str) else a[i % len(a)]

    return CannedBackend(answer, model=model)
