"""Fixtures of the recall tests: the demo's corpus generator and a config sized for a few hundred pages."""

import importlib.util
from pathlib import Path

import pytest

from oc_synth.recall.config import load_recall_config

REPO = Path(__file__).resolve().parents[3]
EXAMPLE = REPO / "examples" / "recall"


@pytest.fixture(scope="session")
def corpus_maker():
    """examples/recall/make_corpus.py as a module (the tests run the generator the README's demo runs)."""
    spec = importlib.util.spec_from_file_location("recall_make_corpus", EXAMPLE / "make_corpus.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="session")
def small_corpus(tmp_path_factory, corpus_maker):
    """A quarter-size demo corpus (~530 pages) for the tests of single steps."""
    out = tmp_path_factory.mktemp("small_corpus")
    truth = corpus_maker.generate(out, scale=0.25, seed=1)
    return out, truth


@pytest.fixture(scope="session")
def example_dir():
    return EXAMPLE


@pytest.fixture(scope="session")
def example_config():
    return load_recall_config(EXAMPLE / "config.yaml")
