"""Fixtures of the recall tests: the corpus generators of examples/recall (the demo's, and mixed_web.py's corpora
shaped like a crawl slice at any size) and the demo's config (labelling talks to the shared loopback
OpenAI-compatible server, ``fake_openai``: tests/conftest.py, tests/fake_openai.py)."""

import importlib.util
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
