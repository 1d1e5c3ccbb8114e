"""Hub repository ids where a local directory is expected: taken from the Hugging Face cache (downloaded into it
where the hub is reachable); offline with nothing cached, one line says so and what to do."""

import os
import subprocess
import sys

import pytest

from oc_common.errors import EnvironmentProblem, InputError
from oc_common.hub import OFFLINE_ADVICE, TOKENIZER_FILES, local_or_hub, looks_like_repo_id

REPO_ID = "oc-test/tiny-tokenizer"
COMMIT = "0123456789abcdef0123456789abcdef01234567"


def hub_cache_with_tokenizer(cache):
    """The layout huggingface_hub keeps for a downloaded repository: refs/main names a snapshot folder."""
    from oc_megatron.data.tiny import train_bpe_tokenizer

    repo = cache / f"models--{REPO_ID.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(COMMIT)
    train_bpe_tokenizer(["def add(a, b):\n    return a + b\n"] * 50, 300, repo / "snapshots" / COMMIT)
    return repo / "snapshots" / COMMIT


def offline_env(cache):
    return {**os.environ, "HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}


def test_repo_ids_and_paths_are_told_apart():
    assert looks_like_repo_id("infly/OpenCoder-1.5B-Base") and looks_like_repo_id("gpt2")
    for path in ("./tok", "/abs/tok", "a/b/c", "tokenizer.json", "model.gguf", "data.jsonl"):
        assert not looks_like_repo_id(path), path


def test_a_local_path_is_used_as_is(tmp_path):
    assert local_or_hub(tmp_path, option="--tokenizer") == tmp_path
    with pytest.raises(InputError, match="--tokenizer /no/such/dir: no such file or directory"):
        local_or_hub("/no/such/dir", option="--tokenizer")


def test_offline_and_not_cached_is_one_line(tmp_path, monkeypatch):
    import huggingface_hub.constants as constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(EnvironmentProblem) as e:
        local_or_hub(REPO_ID, option="--tokenizer", allow_patterns=TOKENIZER_FILES)
    assert str(e.value) == f"--tokenizer {REPO_ID}: {OFFLINE_ADVICE}"


def test_preprocess_takes_a_tokenizer_by_hub_id_from_the_cache(tmp_path):
    cache = tmp_path / "hub"
    hub_cache_with_tokenizer(cache)
    (tmp_path / "in.jsonl").write_text('{"text": "def add(a, b):\\n    return a + b\\n"}\n')
    cli = [sys.executable, "-m", "oc_megatron.cli", "preprocess", str(tmp_path / "in.jsonl"), str(tmp_path / "out")]
    done = subprocess.run([*cli, "--tokenizer", REPO_ID], capture_output=True, text=True, env=offline_env(cache),
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "out.bin").stat().st_size > 0 and (tmp_path / "out.idx").is_file()
    missing = subprocess.run([*cli, "--tokenizer", "oc-test/not-cached"], capture_output=True, text=True,
                             env=offline_env(cache), timeout=300)
    assert missing.returncode == 2
    assert missing.stderr.strip() == f"error: --tokenizer oc-test/not-cached: {OFFLINE_ADVICE}"


def test_convert_takes_the_same_hub_ids(tmp_path):
    cache = tmp_path / "hub"
    cache.mkdir()
    done = subprocess.run([sys.executable, "-m", "oc_megatron.cli", "convert", "to-hf", str(tmp_path / "ckpt"),
                           str(tmp_path / "hf"), "--tokenizer", "oc-test/not-cached"], capture_output=True, text=True,
                          env=offline_env(cache), timeout=300)
    assert done.returncode == 2
    assert done.stderr.strip() == f"error: --tokenizer oc-test/not-cached: {OFFLINE_ADVICE}"
