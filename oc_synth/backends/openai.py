"""Any OpenAI-compatible server (``vllm serve``, SGLang, TGI, a hosted API): async, bounded concurrency, retries.

Each ``generate`` call opens one ``AsyncOpenAI`` client, sends every request with at most ``concurrency`` in flight,
and retries what is worth retrying (connection errors, timeouts, 408/409/429 and 5xx answers) with exponential
backoff and jitter, honouring a server's ``Retry-After``. Anything else (400 bad request, 401, 404 model not
found) fails that request at once: retrying would not change the answer. The client's own retry loop is turned off
so that every attempt is ours to count and log.
"""

from __future__ import annotations

import asyncio
import os
import random
from typing import Any

from oc_common.errors import BackendError
from oc_common.log import get_logger
from oc_synth.backends.base import Backend, Completion, GenerationRequest

log = get_logger(__name__)

RETRY_STATUS = {408, 409, 429}


class OpenAIBackend(Backend):
    name = "openai"
    supports_structured_output = True

    def __init__(self, model: str, *, base_url: str | None = None, api_key: str | None = None,
                 concurrency: int = 32, timeout: float = 600.0, max_retries: int = 5, backoff: float = 1.0,
                 max_backoff: float = 60.0, extra_body: dict[str, Any] | None = None):
        super().__init__(model)
        try:
            import openai  # noqa: F401
        except ImportError:
            raise BackendError("the openai backend needs the openai package (pip install openai)") from None
        if concurrency < 1 or max_retries < 0 or timeout <= 0:
            raise BackendError("openai backend: concurrency >= 1, max_retries >= 0 and timeout > 0 are required")
        self.base_url = base_url or os.environ.get("OPENAI_BASE_URL") or "http://127.0.0.1:8000/v1"
        # vLLM's server takes any key unless started with --api-key; the client insists on having one.
        self.api_key = api_key or os.environ.get("OPENAI_API_KEY") or "EMPTY"
        self.concurrency, self.timeout, self.max_retries = concurrency, timeout, max_retries
        self.backoff, self.max_backoff = backoff, max_backoff
        self.extra_body = dict(extra_body or {})
        self.attempts = 0  # requests sent, retries included (tests and stats read it)
        self.retries = 0

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "base_url": self.base_url}

    def _generate(self, requests: list[GenerationRequest]) -> list[Completion]:
        return asyncio.run(self._generate_all(requests))

    async def _generate_all(self, requests: list[GenerationRequest]) -> list[Completion]:
        import openai

        client = openai.AsyncOpenAI(base_url=self.base_url, api_key=self.api_key, timeout=self.timeout,
                                    max_retries=0)
        gate = asyncio.Semaphore(self.concurrency)

        async def one(r: GenerationRequest) -> Completion:
            async with gate:
                return await self._with_retries(client, r)

        try:
            return list(await asyncio.gather(*(one(r) for r in requests)))
        finally:
            await client.close()

    async def _with_retries(self, client: Any, request: GenerationRequest) -> Completion:
        import openai

        for attempt in range(self.max_retries + 1):
            self.attempts += 1
            try:
                return await self._send(client, request)
            except (openai.APIConnectionError, openai.APITimeoutError, openai.APIStatusError) as e:
                status = getattr(e, "status_code", None)
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
        params: dict[str, Any] = {"model": self.model, "n": sp.n, "temperature": sp.temperature, "top_p": sp.top_p,
                                  "max_tokens": sp.max_tokens}
        if sp.seed is not None:
            params["seed"] = sp.seed
        if sp.stop:
            params["stop"] = list(sp.stop)
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
        if len(texts) != sp.n:
            raise BackendError(f"server returned {len(texts)} choices for n={sp.n}")
        usage = getattr(resp, "usage", None)
        return Completion(request.id, texts, [c.finish_reason for c in choices],
                          prompt_tokens=getattr(usage, "prompt_tokens", None),
                          completion_tokens=getattr(usage, "completion_tokens", None))


def describe_error(e: Exception, attempts: int) -> str:
    status = getattr(e, "status_code", None)
    what = f"HTTP {status}" if status is not None else type(e).__name__
    msg = str(getattr(e, "message", "") or e).strip().splitlines()[0][:300] if str(e).strip() else ""
    return f"{what}: {msg} (after {attempts} attempt{'s' if attempts > 1 else ''})"
