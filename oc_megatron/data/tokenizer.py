"""Hugging Face tokenizer directories, read with ``tokenizers`` (Rust, fast) rather than ``transformers``.

A directory saved by ``transformers`` (``save_pretrained``) or by hand holds ``tokenizer.json`` and usually
``tokenizer_config.json``; the end-of-document token is its ``eos_token`` (OpenCoder: ``<|endoftext|>``) or, when
unset, the first of a few common names present in the vocabulary.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

EOD_CANDIDATES = ("<|endoftext|>", "</s>", "<|end_of_text|>", "<eos>", "<|im_end|>")


@dataclass(frozen=True)
class TokenizerInfo:
    path: str
    vocab_size: int  # ids are in [0, vocab_size), added tokens included
    eod_id: int
    eod_token: str


def _tokenizer_json(path: str | Path) -> Path:
    p = Path(path)
    if p.is_file() and p.name.endswith(".json"):
        return p
    if not p.exists():
        raise FileNotFoundError(f"{p}: tokenizer directory not found")
    f = p / "tokenizer.json"
    if not f.is_file():
        raise ValueError(f"{p}: no tokenizer.json (a Hugging Face fast tokenizer directory is expected)")
    return f


def load_tokenizer(path: str | Path):
    """The ``tokenizers.Tokenizer`` of a HF tokenizer directory (or a tokenizer.json file)."""
    from tokenizers import Tokenizer

    return Tokenizer.from_file(str(_tokenizer_json(path)))


def load_tokenizer_info(path: str | Path) -> TokenizerInfo:
    tok = load_tokenizer(path)
    vocab = tok.get_vocab(with_added_tokens=True)
    vocab_size = max(vocab.values()) + 1 if vocab else 0
    eod = None
    cfg_file = _tokenizer_json(path).parent / "tokenizer_config.json"
    if cfg_file.is_file():
        try:
            eos = json.loads(cfg_file.read_text(encoding="utf-8")).get("eos_token")
        except json.JSONDecodeError as e:
            raise ValueError(f"{cfg_file}: invalid JSON ({e})") from None
        if isinstance(eos, dict):
            eos = eos.get("content")
        if isinstance(eos, str) and eos in vocab:
            eod = eos
    if eod is None:
        eod = next((c for c in EOD_CANDIDATES if c in vocab), None)
    if eod is None:
        raise ValueError(f"{path}: no end-of-document token (set eos_token in tokenizer_config.json or add one of "
                         f"{', '.join(EOD_CANDIDATES)})")
    return TokenizerInfo(str(path), vocab_size, vocab[eod], eod)
