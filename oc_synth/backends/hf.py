"""transformers on CPU (or one GPU): the backend every laptop and CI run can use.

Requests run one at a time, each seeded with its own ``seed`` before generating, so a sample is the same whatever
else is in the batch (batched generation with padding changes the numerics). That is fine for small models and
smoke runs; throughput work belongs to vLLM.

``load_hf_model`` is shared with ``oc-synth eval``: it takes a directory, a Hugging Face Hub name (downloaded where the
hub is reachable, else taken from the local cache), or a ``.gguf`` file (dequantized by transformers; needs the
``gguf`` package).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from oc_common.errors import BackendError
from oc_common.hub import OFFLINE_ADVICE, one_line, quiet_hub
from oc_common.log import get_logger
from oc_synth.backends.base import Backend, Completion, GenerationRequest, apply_stop
from oc_synth.backends.context import too_long

log = get_logger(__name__)


def load_hf_model(model: str, *, dtype: str = "auto", device: str = "cpu", trust_remote_code: bool = False,
                  chat_template: str | None = None, local_files_only: bool = False) -> tuple[Any, Any]:
    """Return ``(model, tokenizer)``, in eval mode on ``device``.

    ``dtype="auto"`` means float32 on CPU (bf16 matmuls are slow on most CPUs) and the checkpoint's dtype elsewhere.
    ``chat_template`` (a Jinja string or a path to a file holding one) replaces the tokenizer's template.
    ``local_files_only`` never asks the hub (a wrong name fails at once instead of after the hub's retries).
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = Path(model)
    kwargs: dict[str, Any] = {"trust_remote_code": trust_remote_code, "local_files_only": local_files_only}
    if path.suffix == ".gguf":
        if not path.is_file():
            raise BackendError(f"{path}: GGUF file not found")
        source, kwargs["gguf_file"] = str(path.parent), path.name
    else:
        source = model
    if dtype == "auto":
        torch_dtype: Any = torch.float32 if device == "cpu" else "auto"
    else:
        torch_dtype = getattr(torch, dtype, None)
        if not isinstance(torch_dtype, torch.dtype):
            raise BackendError(f"unknown dtype {dtype!r} (use auto, float32, bfloat16 or float16)")
    try:
        with quiet_hub():  # a hub name is fetched where the hub is reachable, else taken from the local cache
            tokenizer = AutoTokenizer.from_pretrained(source, **kwargs)
            lm = AutoModelForCausalLM.from_pretrained(source, dtype=torch_dtype, **kwargs)
    except (OSError, ValueError) as e:
        if not path.exists() and "couldn't connect" in str(e).lower():
            raise BackendError(f"cannot load model {model!r}: {OFFLINE_ADVICE}") from None
        raise BackendError(f"cannot load model {model!r}: {one_line(e)}") from None
    lm.to(device).eval()
    if chat_template is not None:
        tokenizer.chat_template = read_chat_template(chat_template)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return lm, tokenizer


def read_chat_template(value: str) -> str:
    """A chat template given as a file path or as the template text itself."""
    p = Path(value)
    if "{" not in value and p.is_file():
        return p.read_text(encoding="utf-8")
    if "{" not in value:
        raise BackendError(f"chat template {value!r}: no such file, and not a Jinja template either")
    return value


class HFBackend(Backend):
    name = "hf"

    def __init__(self, model: str, *, dtype: str = "auto", device: str = "cpu", trust_remote_code: bool = False,
                 chat_template: str | None = None, local_files_only: bool = False):
        super().__init__(model)
        self.device = device
        self.lm, self.tokenizer = load_hf_model(model, dtype=dtype, device=device,
                                                trust_remote_code=trust_remote_code, chat_template=chat_template,
                                                local_files_only=local_files_only)
        # The positions the model was built for (RoPE models run past it, but what they write there is noise, and
        # vLLM refuses such prompts): a longer prompt is prompt_too_long, an answer ends at it.
        self.context: int | None = getattr(self.lm.config, "max_position_embeddings", None)

    def check_request(self, request: GenerationRequest) -> None:
        super().check_request(request)
        if request.is_chat and not self.tokenizer.chat_template:
            raise BackendError(f"model {self.model!r} has no chat template: pass chat_template (a Jinja file) or use "
                               "a completion-mode recipe")

    def _generate(self, requests: list[GenerationRequest]) -> list[Completion]:
        out = []
        for r in requests:
            try:
                out.append(self._generate_one(r))
            except Exception as e:  # noqa: BLE001 - one bad request must not cost the batch
                log.warning("request %s failed: %s", r.id, e)
                out.append(Completion.failed(r.id, e))
        return out

    def prompt_text(self, request: GenerationRequest) -> str:
        if request.is_chat:
            return self.tokenizer.apply_chat_template(request.messages, add_generation_prompt=True, tokenize=False)
        return request.prompt or ""

    def _generate_one(self, request: GenerationRequest) -> Completion:
        import torch
        from transformers import GenerationConfig

        sp = request.sampling
        # A chat template writes its own BOS; adding special tokens again would double it.
        enc = self.tokenizer(self.prompt_text(request), return_tensors="pt",
                             add_special_tokens=not request.is_chat).to(self.device)
        n_prompt = enc["input_ids"].shape[1]
        refused = too_long(request, n_prompt, self.context, "max_position_embeddings in its config.json")
        if refused is not None:
            return refused
        budget = sp.max_tokens if self.context is None else min(sp.max_tokens, self.context - n_prompt)
        # Greedy decoding gives n identical samples: decode once, copy (transformers refuses n > 1 without sampling).
        n_run = 1 if sp.greedy else sp.n
        cfg = GenerationConfig(
            max_new_tokens=budget, do_sample=not sp.greedy, num_return_sequences=n_run,
            temperature=sp.temperature if not sp.greedy else None, top_p=sp.top_p if not sp.greedy else None,
            top_k=0 if not sp.greedy else None,  # transformers' default top_k=50 is not what vLLM/OpenAI do
            eos_token_id=self.lm.generation_config.eos_token_id or self.tokenizer.eos_token_id,
            pad_token_id=self.tokenizer.pad_token_id, stop_strings=list(sp.stop) or None)
        if sp.seed is not None:
            torch.manual_seed(sp.seed)
        with torch.inference_mode():
            ids = self.lm.generate(**enc, generation_config=cfg,
                                   tokenizer=self.tokenizer if sp.stop else None)
        eos = cfg.eos_token_id if isinstance(cfg.eos_token_id, list) else [cfg.eos_token_id]
        texts, reasons, n_out = [], [], 0
        for row in ids[:, n_prompt:]:
            tokens = row.tolist()
            while tokens and tokens[-1] == self.tokenizer.pad_token_id and tokens[-1] not in eos:
                tokens.pop()
            n_out += len(tokens)
            text, stopped = apply_stop(self.tokenizer.decode(tokens, skip_special_tokens=True), sp.stop)
            ended = stopped or (bool(tokens) and tokens[-1] in eos) or len(tokens) < budget
            texts.append(text)
            reasons.append("stop" if ended else "length")
        if n_run < sp.n:
            texts, reasons = texts * sp.n, reasons * sp.n
        return Completion(request.id, texts, reasons, prompt_tokens=n_prompt, completion_tokens=n_out)

    def close(self) -> None:
        self.lm = None
