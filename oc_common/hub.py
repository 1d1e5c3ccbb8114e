"""Hugging Face Hub names where a local directory is expected (``--tokenizer``, ``--model``).

A path that exists is used as is; anything else that reads as a hub repository id (``infly/OpenCoder-1.5B-Base``)
is fetched with ``huggingface_hub`` into its usual cache, or taken from that cache when the hub cannot be reached.
Failures are one line naming the option and what to do: offline with nothing cached, no such repository, a gated
one.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Iterable
from pathlib import Path

from oc_common.errors import EnvironmentProblem, InputError
from oc_common.log import quiet_logger

# What a tokenizer directory may hold (the model's weights are not needed to tokenize).
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
                   "tokenizer.model", "vocab.json", "merges.txt", "chat_template.jinja")
# owner/name or name: letters, digits, '-', '_', '.'; not a path (./x, /x, a/b/c) and no file suffix we read
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]{0,95}(/[A-Za-z0-9][\w.-]{0,95})?$")
_FILE_SUFFIXES = (".json", ".jsonl", ".gz", ".parquet", ".yaml", ".yml", ".gguf", ".bin", ".safetensors")
OFFLINE_ADVICE = ("not a local path, and the Hugging Face Hub cannot be reached (offline?) and it is not in the "
                  "local cache; pass a local directory, or download it where the hub is reachable (HF_ENDPOINT "
                  "names a mirror)")


def looks_like_repo_id(name: str) -> bool:
    return bool(_REPO_ID.match(name)) and not name.lower().endswith(_FILE_SUFFIXES)


def one_line(text: object) -> str:
    return " ".join(str(text).split())


def quiet_hub() -> contextlib.AbstractContextManager[None]:
    """huggingface_hub logs each failed request as a warning before it raises; the error we raise says it once."""
    return quiet_logger("huggingface_hub", level=logging.ERROR)


def local_or_hub(name: str | Path, *, option: str, allow_patterns: Iterable[str] | None = None) -> Path:
    """``name`` as a local path, else the local snapshot of the hub repository ``name`` (downloaded if needed)."""
    path = Path(name)
    if path.exists():
        return path
    if not looks_like_repo_id(str(name)):
        raise InputError(f"{option} {name}: no such file or directory")
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
    )

    try:
        with quiet_hub():
            return Path(snapshot_download(repo_id=str(name), allow_patterns=list(allow_patterns or []) or None))
    except GatedRepoError:
        raise EnvironmentProblem(f"{option} {name}: a gated repository on the Hugging Face Hub; accept its terms on "
                                 "huggingface.co and log in (`hf auth login`), or pass a local directory") from None
    except RepositoryNotFoundError:
        raise InputError(f"{option} {name}: not a local path, and no such repository on the Hugging Face Hub (a "
                         "private one needs `hf auth login`)") from None
    except (LocalEntryNotFoundError, OfflineModeIsEnabled):
        raise EnvironmentProblem(f"{option} {name}: {OFFLINE_ADVICE}") from None
    except (HfHubHTTPError, OSError) as e:
        raise EnvironmentProblem(f"{option} {name}: downloading it from the Hugging Face Hub failed: "
                                 f"{one_line(e)}") from None
