"""Model backends behind one interface, shared by ``oc-synth generate`` and ``oc-synth eval``.

    from oc_synth.synth.backends import GenerationRequest, SamplingParams, make_backend

    with make_backend("hf", "path/to/model") as backend:
        [c] = backend.generate([GenerationRequest("q1", messages=[{"role": "user", "content": "Hi"}],
                                                  sampling=SamplingParams(max_tokens=32, seed=1))])
        print(c.texts[0] if c.ok else c.error)

Backends: ``vllm`` (offline engine, tensor parallel), ``openai`` (any OpenAI-compatible server), ``hf``
(transformers). See base.py for the failure contract.
"""

from oc_synth.synth.backends.base import (
    BACKENDS,
    Backend,
    BackendError,
    Completion,
    GenerationRequest,
    SamplingParams,
    backend_options,
    make_backend,
)

__all__ = ["BACKENDS", "Backend", "BackendError", "Completion", "GenerationRequest", "SamplingParams",
           "backend_options", "make_backend"]
