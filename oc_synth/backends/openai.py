"""Any OpenAI-compatible server (``vllm serve``, SGLang, TGI, a hosted API): async, bounded concurrency, retries.

Each ``generate`` call opens one ``AsyncOpenAI`` client, sends every request with at most ``concurrency`` in flight,
and retries what is worth retrying (connection errors, timeouts, 408/409/429 and 5xx answers) with exponential
backoff and jitter, honouring a server's ``Retry-After``. Anything else (400 bad request, 401, 404 model not
found) fails that request at once: retrying would not change the answer. The client's own retry loop is turned off
so that every attempt is ours to count and log. A failed request keeps the server's whole explanation (every line,
up to ``MAX_SERVER_MESSAGE`` characters) in its error and in the log.

Prompts that do not fit the model's context come back as ``prompt_too_long``: counted before sending when a
tokenizer is at hand (``tokenizer``, or the model itself when it names a local directory) and the server says its
context (vLLM's ``/v1/models`` gives ``max_model_len``); otherwise recognised in the server's refusal, with its words.

Two request shapes that OpenAI-compatible servers refuse are sent in a shape they take: more stop strings than the
API allows (OpenAI and vLLM: 4) send the first ``max_stop`` and apply every one to the answer here (the text up to
the first stop string is the same either way); greedy requests with ``n > 1`` ask once and copy the answer, as the
other backends do (vLLM refuses ``n > 1`` without sampling).
"""

from __future__ import annotations

import asyncio
import os
import random
import re
from collections import Counter
from typing import Any

from oc_common.errors import BackendError
from oc_common.log import get_logger
from oc_synth.backends.base import PROMPT_TOO_LONG, Backend, Completion, GenerationRequest, apply_stop, bound_text
from oc_synth.backends.context import count_prompt_tokens, is_context_overflow, too_long

log = get_logger(__name__)

RETRY_STATUS = {408, 409, 429}
MAX_SERVER_MESSAGE = 1500  # characters of a server's error message kept in a request's error
API_MAX_STOP = 4  # stop strings per request that OpenAI's API, and vLLM's server, accept


class OpenAIBackend(Backend):
    name = "openai"
    supports_structured_output = True

    def __init__(self, model: str, *, base_url: str | None = None, api_key: str | None = None,
                 concurrency: int = 32, timeout: float = 600.0, max_retries: int = 5, backoff: float = 1.0,
                 max_backoff: float = 60.0, extra_body: dict[str, Any] | None = None, tokenizer: str | None = None,
                 max_stop: int = API_MAX_STOP):
        super().__init__(model)
        try:
            import openai  # noqa: F401
        except ImportError:
            raise BackendError("the openai backend needs the openai package (pip install openai)") from None
        if concurrency < 1 or max_retries < 0 or timeout <= 0 or max_stop < 1:
            raise BackendError("openai backend: concurrency >= 1, max_retries >= 0, timeout > 0 and max_stop >= 1 "
                               "are required")
        self.base_url = base_url or os.environ.get("OPENAI_BASE_URL") or "http://127.0.0.1:8000/v1"
        # vLLM's server takes any key unless started with --api-key; the client insists on having one.
        self.api_key = api_key or os.environ.get("OPENAI_API_KEY") or "EMPTY"
        self.concurrency, self.timeout, self.max_retries = concurrency, timeout, max_retries
        self.backoff, self.max_backoff = backoff, max_backoff
        self.extra_body = dict(extra_body or {})
        self.max_stop = max_stop
        self.attempts = 0  # requests sent, retries included (tests and stats read it)
        self.retries = 0
        self.tokenizer = load_local_tokenizer(tokenizer, model)
        self.context: int | None = None  # the served model's context, asked once (None: unknown, no pre-check)
        self.context_source = ""
        self._asked_context = False

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "base_url": self.base_url}

    def _generate(self, requests: list[GenerationRequest]) -> list[Completion]:
        out = asyncio.run(self._generate_all(requests))
        log_failures(out)
        return out

    async def _generate_all(self, requests: list[GenerationRequest]) -> list[Completion]:
        import openai

        client = openai.AsyncOpenAI(base_url=self.base_url, api_key=self.api_key, timeout=self.timeout,
                                    max_retries=0)
        gate = asyncio.Semaphore(self.concurrency)

        async def one(r: GenerationRequest) -> Completion:
            if self.tokenizer is not None and self.context is not None:
                refused = too_long(r, count_prompt_tokens(self.tokenizer, r), self.context, self.context_source)
                if refused is not None:
                    return refused
            async with gate:
                return await self._with_retries(client, r)

        try:
            if self.tokenizer is not None and not self._asked_context:
                await self._ask_context(client)
            return list(await asyncio.gather(*(one(r) for r in requests)))
        finally:
            await client.close()

    async def _ask_context(self, client: Any) -> None:
        """The served model's context from the server's model list (vLLM reports ``max_model_len``); servers that
        do not say leave the check to the server."""
        self._asked_context = True
        try:
            models = await client.models.list()
        except Exception as e:  # noqa: BLE001 - a server without /models still serves completions
            log.debug("could not list the server's models (%s); prompt lengths are left to the server", e)
            return
        for m in models.data:
            limit = getattr(m, "max_model_len", None) or (m.model_extra or {}).get("max_model_len")
            if m.id == self.model and isinstance(limit, int):
                self.context, self.context_source = limit, f"max_model_len of the model served at {self.base_url}"

    async def _with_retries(self, client: Any, request: GenerationRequest) -> Completion:
        import openai

        for attempt in range(self.max_retries + 1):
            self.attempts += 1
            try:
                return await self._send(client, request)
            except (openai.APIConnectionError, openai.APITimeoutError, openai.APIStatusError) as e:
                status = getattr(e, "status_code", None)
                if status == 400 and is_context_overflow(server_message(e)):
                    return Completion.failed(request.id, f"the server refused the prompt: {describe_error(e, 1)}",
                                             kind=PROMPT_TOO_LONG)
                retryable = status is None or status in RETRY_STATUS or status >= 500
                if not retryable or attempt == self.max_retries:
                    return Completion.failed(request.id, describe_error(e, attempt + 1))
                delay = self._delay(attempt, e)
                log.debug("request %s: %s; retry %d in %.1f s", request.id, describe_error(e, attempt + 1),
                          attempt + 1, delay)
                self.retries += 1
                await asyncio.sleep(delay)
            except Exception as e:  # noqa: BLE001 - a malformed answer fails this request only
                return Completion.failed(request.id, e)
        raise AssertionError("unreachable")

    def _delay(self, attempt: int, error: Exception) -> float:
        response = getattr(error, "response", None)
        retry_after = response.headers.get("retry-after") if response is not None else None
        if retry_after:
            try:
                return min(float(retry_after), self.max_backoff)
            except ValueError:
                pass
        return min(self.max_backoff, self.backoff * 2**attempt) * (0.5 + random.random() / 2)

    async def _send(self, client: Any, request: GenerationRequest) -> Completion:
        sp = request.sampling
        n_ask = 1 if sp.greedy else sp.n
        params: dict[str, Any] = {"model": self.model, "n": n_ask, "temperature": sp.temperature, "top_p": sp.top_p,
                                  "max_tokens": sp.max_tokens}
        if sp.seed is not None:
            params["seed"] = sp.seed
        if sp.stop:
            params["stop"] = list(sp.stop[:self.max_stop])
        if self.extra_body:
            params["extra_body"] = self.extra_body
        if request.is_chat:
            if sp.json_schema is not None:
                params["response_format"] = {"type": "json_schema",
                                             "json_schema": {"name": "output", "schema": sp.json_schema}}
            resp = await client.chat.completions.create(messages=request.messages, **params)
            choices = sorted(resp.choices, key=lambda c: c.index)
            texts = [c.message.content or "" for c in choices]
        else:
            if sp.json_schema is not None:  # the completions endpoint has no response_format; vLLM reads this
                params["extra_body"] = {**self.extra_body, "structured_outputs": {"json": sp.json_schema}}
            resp = await client.completions.create(prompt=request.prompt, **params)
            choices = sorted(resp.choices, key=lambda c: c.index)
            texts = [c.text or "" for c in choices]
        if len(texts) != n_ask:
            raise BackendError(f"server returned {len(texts)} choices for n={n_ask}")
        reasons = [c.finish_reason for c in choices]
        if len(sp.stop) > self.max_stop:  # the stop strings the server was not given
            for i, text in enumerate(texts):
                texts[i], stopped = apply_stop(text, sp.stop)
                reasons[i] = "stop" if stopped else reasons[i]
        usage = getattr(resp, "usage", None)
        return Completion(request.id, texts * (sp.n // n_ask), reasons * (sp.n // n_ask),
                          prompt_tokens=getattr(usage, "prompt_tokens", None),
                          completion_tokens=getattr(usage, "completion_tokens", None))


def load_local_tokenizer(tokenizer: str | None, model: str) -> Any:
    """The tokenizer that counts prompt tokens before sending: ``tokenizer`` (a local directory; an error when it
    does not load), else the model when it names a local directory with a tokenizer, else None (no pre-check)."""
    from pathlib import Path

    source = tokenizer or (model if (Path(model) / "tokenizer_config.json").is_file() else None)
    if source is None:
        return None
    try:
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(source, local_files_only=True)
    except (OSError, ValueError, ImportError) as e:
        if tokenizer is not None:
            raise BackendError(f"openai backend: tokenizer {tokenizer!r} does not load: {e}") from None
        log.warning("the tokenizer of %s does not load (%s): prompt lengths are left to the server", model, e)
        return None


def server_message(e: Exception) -> str:
    """The server's own explanation, whole: the ``message`` of its JSON error body (every line), else the client's
    text without its "Error code: N - " prefix; a connection error adds its cause (refused, reset, DNS)."""
    body = getattr(e, "body", None)
    msg = None
    if isinstance(body, dict):
        inner = body.get("error") if isinstance(body.get("error"), dict) else body
        msg = inner.get("message") if isinstance(inner.get("message"), str) else None
    if msg is None:
        msg = re.sub(r"^Error code: \d+ - ", "", str(getattr(e, "message", "") or e))
    cause = e.__cause__
    if cause is not None and str(cause) and str(cause) not in msg:
        msg = f"{msg} ({type(cause).__name__}: {cause})"
    lines = [line.rstrip() for line in msg.strip().splitlines() if line.strip()]
    return bound_text("\n".join(lines), MAX_SERVER_MESSAGE)


def describe_error(e: Exception, attempts: int) -> str:
    """``HTTP 400 (after 1 attempt): <the server's message>``; the message keeps all its lines."""
    status = getattr(e, "status_code", None)
    what = f"HTTP {status}" if status is not None else type(e).__name__
    return f"{what} (after {attempts} attempt{'s' if attempts > 1 else ''}): {server_message(e)}"


def log_failures(completions: list[Completion]) -> None:
    """One warning per distinct error of a batch (with how many requests had it), each with the whole message."""
    errors = Counter(c.error for c in completions if c.error is not None)
    for error, count in errors.items():
        first = next(c.request_id for c in completions if c.error == error)
        others = f" (and {count - 1} more request(s) of this batch)" if count > 1 else ""
        log.warning("request %s failed%s: %s", first, others, error)
