"""Whether a prompt fits the model's context: counted before sending where a backend holds the tokenizer, and
recognised in an engine's or a server's refusal where it does not.

A prompt "does not fit" when it leaves no room for a single new token (prompt tokens >= context). A prompt that fits
with fewer free positions than ``max_tokens`` is asked: the answer ends at the context's end (``finish_reason``
``length``), as vLLM does.
"""

from __future__ import annotations

import re
from typing import Any

from oc_synth.backends.base import PROMPT_TOO_LONG, Completion, GenerationRequest

# How engines and servers word a prompt that does not fit (matched case-insensitively against the message):
#   vLLM >= 0.10 (server and offline): "This model's maximum context length is 256 tokens. However, your prompt
#     contains at least 257 input tokens ..."; older vLLM and OpenAI: "maximum context length is N tokens. However,
#     you requested M tokens"; OpenAI's error code: context_length_exceeded;
#   vLLM offline, a prompt of exactly max_model_len tokens: "The decoder prompt (length 64) plus the number of
#     requested output tokens (at least 1) is longer than the maximum model length of 64";
#   vLLM's server, the same prompt: it clamps max_tokens to the free positions, then refuses "max_tokens must be at
#     least 1, got 0" (a request always asks for >= 1, so 0 can only come from that clamp);
#   SGLang: "The input (N tokens) is longer than the model's context length (M tokens)".
CONTEXT_OVERFLOW = re.compile(
    r"maximum context length|context_length_exceeded|longer than the maximum model length"
    r"|longer than the model's context length|max_tokens must be at least 1, got 0",
    re.IGNORECASE)


def is_context_overflow(message: str) -> bool:
    """True when an engine's or server's error message says the prompt does not fit the model's context."""
    return bool(CONTEXT_OVERFLOW.search(message))


def count_prompt_tokens(tokenizer: Any, request: GenerationRequest, chat_template: str | None = None) -> int:
    """The prompt's length in tokens as vLLM and transformers feed it: a completion prompt encoded with the
    tokenizer's special tokens (BOS where it adds one); a chat rendered by the chat template (``chat_template``, else
    the tokenizer's own), which writes its own special tokens, then encoded without adding more."""
    if request.is_chat:
        text = tokenizer.apply_chat_template(request.messages, chat_template=chat_template,
                                             add_generation_prompt=True, tokenize=False)
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])
    return len(tokenizer(request.prompt or "")["input_ids"])


def too_long(request: GenerationRequest, prompt_tokens: int, context: int | None, where: str) -> Completion | None:
    """The ``prompt_too_long`` completion for ``request`` when ``prompt_tokens`` leave no room in ``context``
    (``where`` says whose limit that is); None when it fits or the context is unknown."""
    if context is None or prompt_tokens < context:
        return None
    return Completion.failed(
        request.id, f"the prompt is {prompt_tokens} tokens and the model's context is {context} ({where}): no room "
                    "for a single new token. Shorten the prompt or use a model with a longer context.",
        kind=PROMPT_TOO_LONG)
