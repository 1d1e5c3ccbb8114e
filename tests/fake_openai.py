"""A loopback fake of an OpenAI-compatible server (the one test helper for it): ``/v1/chat/completions``,
``/v1/completions`` and ``GET /v1/models`` on 127.0.0.1 and a free port, with answers and failures the test scripts.

Each request takes an action: ``("ok", text)``, ``("status", code)`` (an error body saying "scripted CODE"),
``("error", (code, message))`` (an error body with that message, as vLLM refuses a prompt), ``("sleep", seconds)``
(answer late, for client timeouts). Where it comes from, first match wins:

- ``by_prompt``: a prompt (or a chat's last message) -> its action, whatever the arrival order;
- ``script``: actions consumed one per request;
- ``default`` (``("ok", None)``); an ``ok`` without text asks ``respond(prompt)``, which returns the answer text or an
  action, else echoes the prompt.

``requests`` records the bodies (with ``path``), ``in_flight_max`` the most requests handled at once, ``models`` the
model cards ``/v1/models`` lists (e.g. with vLLM's ``max_model_len``). ``latency`` delays every answer (so that
concurrent requests overlap). Use as a context manager, or call ``stop()``.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Action = tuple[str, Any]


class _Server(ThreadingHTTPServer):
    request_queue_size = 128  # clients open up to 32 connections at once; the default backlog is 5
    daemon_threads = True


class FakeOpenAI:
    def __init__(self, respond: Callable[[str], str | Action] | None = None, *, latency: float = 0.0):
        self.respond = respond
        self.latency = latency
        self.script: list[Action] = []
        self.default: Action = ("ok", None)
        self.by_prompt: dict[str, Action] = {}
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
                prompt = body["messages"][-1]["content"] if "messages" in body else body.get("prompt")
                with fake.lock:
                    fake.requests.append({"path": self.path, **body})
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
                    if kind == "ok" and arg is None and fake.respond is not None:
                        answer = fake.respond(prompt)
                        kind, arg = answer if isinstance(answer, tuple) else ("ok", answer)
                    if kind == "status":
                        self._send(arg, {"error": {"message": f"scripted {arg}", "type": "server_error"}},
                                   {"Retry-After": "0"} if arg == 429 else {})
                    elif kind == "error":
                        code, message = arg
                        self._send(code, {"error": {"message": message, "type": "BadRequestError", "code": code}})
                    else:
                        time.sleep(fake.latency)
                        self._send(200, fake.completion(self.path, body, arg))
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
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeouts) or was killed
                    pass

        self.server = _Server(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    @staticmethod
    def completion(path: str, body: dict[str, Any], text: str | None) -> dict[str, Any]:
        """The response body: ``n`` choices of ``text`` (or the prompt echoed), as a chat or a text completion."""
        n = body.get("n", 1)
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

    def __enter__(self) -> FakeOpenAI:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
