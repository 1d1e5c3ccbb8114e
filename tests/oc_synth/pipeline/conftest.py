"""Fixtures of the pipeline tests."""

import pytest
from cli_run import run_main


@pytest.fixture
def oc_synth(capfd):
    """``oc_synth(*args)``: the real `oc-synth` entry point, run in this process (see ``run_main``)."""
    from oc_synth.cli import main

    return lambda *args: run_main(main, capfd, *args)


@pytest.fixture
def oc_megatron(capfd):
    from oc_megatron.cli import main

    return lambda *args: run_main(main, capfd, *args)
