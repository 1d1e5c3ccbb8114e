"""Model backends behind one interface, shared by synthesis (``generate``), evaluation and recall labelling.

    from oc_synth.backends import GenerationRequest, SamplingParams, make_backend

    with make_backend("hf", "path/to/model") as backend:
        [c] = backend.generate([GenerationRequest("q1", messages=[{"role": "user", "content": "Hi"}],
                                                  sampling=SamplingParams(max_tokens=32, seed=1))])
        print(c.texts[0] if c.ok else c.error)

Backends: ``vllm`` (offline engine, tensor parallel), ``openai`` (any OpenAI-compatible server), ``hf``
(transformers). See base.py for the failure contract. The factory lives here, not in base.py, and imports each
backend only when it is asked for: vllm and torch are heavy, and vllm is an optional dependency.
"""

from __future__ import annotations

import inspect
from typing import Any

from oc_common.errors import BackendError
from oc_synth.backends.base import Backend, Completion, GenerationRequest, SamplingParams, apply_stop

BACKENDS = ("vllm", "openai", "hf")


def backend_class(name: str) -> type[Backend]:
    if name == "hf":
        from oc_synth.backends.hf import HFBackend

        return HFBackend
    if name == "openai":
        from oc_synth.backends.openai import OpenAIBackend

        return OpenAIBackend
    if name == "vllm":
        from oc_synth.backends.vllm import VLLMBackend

        return VLLMBackend
    raise BackendError(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}")


def backend_options(name: str) -> dict[str, Any]:
    """The keyword options a backend accepts, with their defaults (for --help texts and error messages)."""
    sig = inspect.signature(backend_class(name).__init__)
    return {p.name: p.default for p in sig.parameters.values()
            if p.kind == p.KEYWORD_ONLY}


def make_backend(name: str, model: str, **options: Any) -> Backend:
    """Build a backend by name. Unknown options are an error naming the options the backend does accept."""
    cls = backend_class(name)
    known = backend_options(name)
    accepts_any = any(p.kind == p.VAR_KEYWORD for p in inspect.signature(cls.__init__).parameters.values())
    unknown = sorted(set(options) - set(known))
    if unknown and not accepts_any:
        raise BackendError(f"backend {name}: unknown option(s) {', '.join(unknown)}; "
                           f"known: {', '.join(sorted(known)) or 'none'}")
    return cls(model, **options)


__all__ = ["BACKENDS", "Backend", "BackendError", "Completion", "GenerationRequest", "SamplingParams", "apply_stop",
           "backend_class", "backend_options", "make_backend"]
