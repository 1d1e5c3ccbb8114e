"""One interface over every way this project runs a language model: ``Backend.generate(requests) -> completions``.

A ``GenerationRequest`` is either chat-mode (``messages``: the backend applies the model's own chat template) or
completion-mode (``prompt``: raw text, for base models and FIM-free code completion in evals). Each carries its
``SamplingParams``, including a per-request ``seed`` so that a sample does not depend on which other requests share
its batch.

Failure contract (the synthesis pipeline and the evals rely on it):
- one request that fails (after the backend's own retries) gives a ``Completion`` with ``error`` set; the others
  in the batch are unaffected;
- an exception out of ``generate`` means the whole batch failed (an engine crash, a dead server); callers record
  every request of the batch as failed and may go on with the next batch;
- a prompt that does not fit the model's context is a failed ``Completion`` of its own kind
  (``error_kind == PROMPT_TOO_LONG``): found before sending where the backend holds the tokenizer, else recognised in
  the server's answer. It is not a backend failure: asking again cannot help, and callers count it apart.
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from oc_common.errors import BackendError

# The error kind (and eval verdict, generate drop reason) of a prompt longer than the model's context.
PROMPT_TOO_LONG = "prompt_too_long"
MAX_ERROR_CHARS = 2000  # an error kept in a Completion (verdict details and logs carry it whole up to this)


@dataclass(frozen=True)
class SamplingParams:
    """What every backend understands. ``temperature == 0`` is greedy decoding.

    ``stop`` strings end a sample and are not included in it (OpenAI semantics). ``json_schema`` asks for structured
    output (vLLM's structured outputs, an OpenAI-compatible server's ``response_format``); backends without it refuse
    such requests when they are built, not halfway through a run.
    """

    n: int = 1
    temperature: float = 0.0
    top_p: float = 1.0
    max_tokens: int = 512
    seed: int | None = None
    stop: tuple[str, ...] = ()
    json_schema: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if isinstance(self.stop, str):  # a lone string is one stop string, not a tuple of characters
            object.__setattr__(self, "stop", (self.stop,))
        elif not isinstance(self.stop, tuple):
            object.__setattr__(self, "stop", tuple(self.stop))
        problems = []
        if not isinstance(self.n, int) or self.n < 1:
            problems.append(f"n must be an integer >= 1 (got {self.n!r})")
        if self.temperature < 0:
            problems.append(f"temperature must be >= 0 (got {self.temperature!r})")
        if not 0 < self.top_p <= 1:
            problems.append(f"top_p must be in (0, 1] (got {self.top_p!r})")
        if not isinstance(self.max_tokens, int) or self.max_tokens < 1:
            problems.append(f"max_tokens must be an integer >= 1 (got {self.max_tokens!r})")
        if any(not isinstance(s, str) or not s for s in self.stop):
            problems.append(f"stop must be non-empty strings (got {self.stop!r})")
        if problems:
            raise ValueError("invalid sampling parameters: " + "; ".join(problems))

    @property
    def greedy(self) -> bool:
        return self.temperature == 0

    def replace(self, **changes: Any) -> SamplingParams:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["stop"] = list(self.stop)
        return d


@dataclass
class GenerationRequest:
    """One prompt. ``id`` is the caller's key (completions come back in request order, each naming its id)."""

    id: str
    messages: list[dict[str, str]] | None = None
    prompt: str | None = None
    sampling: SamplingParams = field(default_factory=SamplingParams)

    def __post_init__(self) -> None:
        if (self.messages is None) == (self.prompt is None):
            raise ValueError(f"request {self.id!r}: give exactly one of messages (chat) or prompt (completion)")

    @property
    def is_chat(self) -> bool:
        return self.messages is not None


@dataclass
class Completion:
    """The ``n`` samples for one request (``texts``), or the reason there are none (``error``, and ``error_kind``
    where callers treat the failure apart: ``PROMPT_TOO_LONG``)."""

    request_id: str
    texts: list[str] = field(default_factory=list)
    finish_reasons: list[str | None] = field(default_factory=list)
    error: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    error_kind: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def prompt_too_long(self) -> bool:
        return self.error_kind == PROMPT_TOO_LONG

    @classmethod
    def failed(cls, request_id: str, error: BaseException | str, kind: str | None = None) -> Completion:
        msg = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
        return cls(request_id=request_id, error=bound_text(msg, MAX_ERROR_CHARS), error_kind=kind)


class Backend(abc.ABC):
    """Base class. Subclasses set ``name`` and implement ``_generate``; use as a context manager to free the model."""

    name: ClassVar[str] = "base"
    supports_structured_output: ClassVar[bool] = False

    def __init__(self, model: str):
        self.model = model

    def generate(self, requests: Sequence[GenerationRequest]) -> list[Completion]:
        """One completion per request, in request order. Raises only when the whole batch failed."""
        if not requests:
            return []
        for r in requests:
            self.check_request(r)
        out = self._generate(list(requests))
        if len(out) != len(requests) or any(c.request_id != r.id for c, r in zip(out, requests, strict=True)):
            raise BackendError(f"{self.name} backend returned completions out of order or missing")
        return out

    @abc.abstractmethod
    def _generate(self, requests: list[GenerationRequest]) -> list[Completion]: ...

    def check_request(self, request: GenerationRequest) -> None:
        if request.sampling.json_schema is not None and not self.supports_structured_output:
            raise BackendError(f"the {self.name} backend has no structured output (json_schema); use vllm or openai")

    def describe(self) -> dict[str, Any]:
        """What provenance and reports record: which engine and model produced a sample, and how it was set up."""
        return {"backend": self.name, "model": self.model}

    def close(self) -> None:  # noqa: B027 - nothing to release by default; backends that hold a model override it
        """Release the model / connections. Safe to call twice."""

    def __enter__(self) -> Backend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def apply_stop(text: str, stop: Sequence[str]) -> tuple[str, bool]:
    """Cut ``text`` at the first stop string (excluded). Returns (text, stopped)."""
    cut = min((i for i in (text.find(s) for s in stop) if i >= 0), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)


def bound_text(text: str, limit: int) -> str:
    """``text`` cut after ``limit`` characters, saying how much was cut (a cut message never passes for a whole
    one)."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]} [... {len(text) - limit} more characters]"
