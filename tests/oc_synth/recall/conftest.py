"""Fixtures of the recall tests: the corpus generators of examples/recall (the demo's, and mixed_web.py's corpora
shaped like a crawl slice at any size), the demo's config, and a loopback OpenAI-compatible server for labelling."""

import importlib.util
import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from oc_synth.recall.config import load_recall_config

REPO = Path(__file__).resolve().parents[3]
EXAMPLE = REPO / "examples" / "recall"


def load_example(name: str):
    spec = importlib.util.spec_from_file_location(f"recall_{name}", EXAMPLE / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="session")
def corpus_maker():
    """examples/recall/make_corpus.py as a module (the tests run the generator the README's demo runs)."""
    return load_example("make_corpus")


@pytest.fixture(scope="session")
def mixed_web():
    """examples/recall/mixed_web.py as a module: corpora of any size whose code pages and domains are known."""
    return load_example("mixed_web")


@pytest.fixture(scope="session")
def small_corpus(tmp_path_factory, corpus_maker):
    """A demo corpus at 40% size (~850 pages, 24 seeds) for the tests of single steps."""
    out = tmp_path_factory.mktemp("small_corpus")
    truth = corpus_maker.generate(out, scale=0.4, seed=1)
    return out, truth


@pytest.fixture(scope="session")
def example_dir():
    return EXAMPLE


@pytest.fixture(scope="session")
def example_config():
    return load_recall_config(EXAMPLE / "config.yaml")


class FakeChatServer:
    """A minimal OpenAI-compatible chat server on 127.0.0.1: ``answer(prompt) -> str`` gives the reply to the last
    user message; an answer that is an int (or a (status, message) pair) is sent as that HTTP error instead.
    ``requests`` records bodies.
    (The synthesis tests have a fuller one with scripted failures and concurrency checks.)"""

    def __init__(self, answer: Callable[[str], str | int]):
        self.answer = answer
        self.requests: list[dict] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                fake.requests.append(body)
                reply = fake.answer(body["messages"][-1]["content"])
                if isinstance(reply, (int, tuple)):
                    status, message = reply if isinstance(reply, tuple) else (reply, f"status {reply}")
                    self._send(status, {"error": {"message": message, "type": "invalid_request_error"}})
                    return
                self._send(200, {"id": "c", "object": "chat.completion", "created": 0, "model": body["model"],
                                 "choices": [{"index": 0, "finish_reason": "stop",
                                              "message": {"role": "assistant", "content": reply}}],
                                 "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}})

            def _send(self, code, obj):
                data = json.dumps(obj).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        class Server(ThreadingHTTPServer):
            request_queue_size = 128  # the client opens up to 32 connections at once; the default backlog is 5

        self.server = Server(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def chat_server():
    servers = []

    def start(answer):
        servers.append(FakeChatServer(answer))
        return servers[-1]

    yield start
    for s in servers:
        s.stop()
