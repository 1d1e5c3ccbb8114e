"""Fixtures for the synthesis tests: a tiny random Llama (built once), a scripted backend with canned answers, and
a minimal OpenAI-compatible HTTP server on 127.0.0.1 whose answers and failures the test scripts."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from oc_synth.backends.base import Backend, Completion, GenerationRequest


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> str:
    from oc_synth.backends.tiny import build_tiny_llama

    return str(build_tiny_llama(tmp_path_factory.mktemp("tiny-llama")))


class CannedBackend(Backend):
    """Answers from a function of the request: a string (every sample), a list (one per sample), or an exception
    instance (that request fails). ``crash`` makes the next calls raise, like an engine that died."""

    name = "canned"

    def __init__(self, answer: Callable[[GenerationRequest], Any], model: str = "canned-model"):
        super().__init__(model)
        self.answer = answer
        self.calls: list[list[GenerationRequest]] = []
        self.crash: Exception | None = None
        self.closed = False

    def _generate(self, requests: list[GenerationRequest]) -> list[Completion]:
        self.calls.append(requests)
        if self.crash is not None:
            raise self.crash
        out = []
        for r in requests:
            a = self.answer(r)
            if isinstance(a, Exception):
                out.append(Completion.failed(r.id, a))
                continue
            texts = a if isinstance(a, list) else [a] * r.sampling.n
            out.append(Completion(r.id, texts, ["stop"] * len(texts)))
        return out

    def close(self) -> None:
        self.closed = True

    @property
    def seen_ids(self) -> list[str]:
        return [r.id for batch in self.calls for r in batch]


@pytest.fixture
def canned():
    return CannedBackend


class FakeOpenAI:
    """A minimal OpenAI-compatible server: /v1/chat/completions and /v1/completions.

    ``script`` is a list of actions consumed one per request (then ``default``): ``("ok", text)``,
    ``("status", code)``, ``("error", (code, message))`` (an error body with that message), ``("sleep", seconds)``
    (answer late, for client timeouts); ``by_prompt`` maps a prompt (or last chat message) to its action instead,
    whatever the arrival order. ``requests`` records bodies; ``in_flight_max`` the most requests handled at once.
    ``GET /v1/models`` lists ``models`` (model cards, e.g. with vLLM's ``max_model_len``)."""

    def __init__(self):
        self.script: list[tuple[str, Any]] = []
        self.default: tuple[str, Any] = ("ok", None)
        self.by_prompt: dict[str, tuple[str, Any]] = {}
        self.respond: Callable[[str], str] | None = None  # the answer text as a function of the prompt
        self.requests: list[dict[str, Any]] = []
        self.models: list[dict[str, Any]] = []
        self.in_flight = 0
        self.in_flight_max = 0
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def do_GET(self):
                if self.path.rstrip("/").endswith("/models"):
                    self._send(200, {"object": "list", "data": fake.models})
                else:
                    self._send(404, {"error": {"message": f"no route {self.path}", "type": "not_found"}})

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with fake.lock:
                    fake.requests.append({"path": self.path, **body})
                    prompt = body["messages"][-1]["content"] if "messages" in body else body.get("prompt")
                    if prompt in fake.by_prompt:
                        action = fake.by_prompt[prompt]
                    else:
                        action = fake.script.pop(0) if fake.script else fake.default
                    fake.in_flight += 1
                    fake.in_flight_max = max(fake.in_flight_max, fake.in_flight)
                try:
                    kind, arg = action
                    if kind == "sleep":
                        time.sleep(arg)
                        kind, arg = "ok", None
                    if kind == "status":
                        self._send(arg, {"error": {"message": f"scripted {arg}", "type": "server_error"}},
                                   {"Retry-After": "0"} if arg == 429 else {})
                        return
                    if kind == "error":
                        code, message = arg
                        self._send(code, {"error": {"message": message, "type": "BadRequestError", "code": code}})
                        return
                    time.sleep(0.1)  # let concurrent requests overlap
                    self._send(200, fake.answer(self.path, body, arg))
                finally:
                    with fake.lock:
                        fake.in_flight -= 1

            def _send(self, code, obj, headers=None):
                data = json.dumps(obj).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                try:
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout tests)
                    pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def answer(self, path: str, body: dict[str, Any], text: str | None) -> dict[str, Any]:
        n = body.get("n", 1)
        if text is None and self.respond is not None:
            text = self.respond(body["messages"][-1]["content"] if "messages" in body else body["prompt"])
        if "chat" in path:
            prompt = body["messages"][-1]["content"]
            choices = [{"index": i, "finish_reason": "stop",
                        "message": {"role": "assistant", "content": text or f"echo[{i}]: {prompt}"}}
                       for i in range(n)]
            obj = "chat.completion"
        else:
            choices = [{"index": i, "finish_reason": "length", "text": text or f"echo[{i}]: {body['prompt']}",
                        "logprobs": None} for i in range(n)]
            obj = "text_completion"
        return {"id": "cmpl-1", "object": obj, "created": 0, "model": body["model"], "choices": choices,
                "usage": {"prompt_tokens": 3, "completion_tokens": 5, "total_tokens": 8}}

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fake_openai():
    server = FakeOpenAI()
    yield server
    server.stop()
