"""BPE pre-tokenization for fastText: the paper trains its classifier on BPE-tokenized text.

fastText splits on whitespace, so a page becomes its BPE tokens joined by spaces. The tokenizer is byte-level
(GPT-2 style, like OpenCoder's own): no character is ever unknown, and indentation and newlines survive as tokens
(``ĠĠĠĠ``, ``Ċ``), which is much of what tells code from prose. Users may bring any ``tokenizers`` JSON file
(e.g. an LLM's ``tokenizer.json``) instead of training one.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from oc_common.errors import OcError
from oc_common.fileio import atomic_write_text

_WHITESPACE = re.compile(r"\s+")


class BpePretokenizer:
    """Turns text into the space-separated token line fastText trains and predicts on."""

    def __init__(self, tokenizer: Tokenizer, max_chars: int = 100_000):
        self.tokenizer = tokenizer
        self.max_chars = max_chars
        # a byte-level BPE has no token with whitespace in it (spaces are `Ġ`): its tokens join as they are
        self._clean_vocab = not any(not t or _WHITESPACE.search(t) for t in tokenizer.get_vocab())

    @classmethod
    def train(cls, texts: Iterable[str], vocab_size: int, min_frequency: int = 2,
              max_chars: int = 100_000) -> BpePretokenizer:
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=min_frequency, show_progress=False,
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
        tok.train_from_iterator((t[:max_chars] for t in texts), trainer)
        return cls(tok, max_chars)

    @classmethod
    def load(cls, path: str | Path, max_chars: int = 100_000) -> BpePretokenizer:
        path = Path(path)
        if path.is_dir():
            path = path / "tokenizer.json"
        if not path.is_file():
            raise OcError(f"{path}: tokenizer file not found (expected a `tokenizers` JSON file, tokenizer.json)")
        try:
            return cls(Tokenizer.from_file(str(path)), max_chars)
        except Exception as e:  # noqa: BLE001 - tokenizers raises a bare Exception for unreadable files
            raise OcError(f"{path}: not a `tokenizers` JSON file ({e})") from None

    def save(self, path: str | Path) -> None:
        atomic_write_text(path, self.tokenizer.to_str())

    def __call__(self, text: str) -> str:
        tokens = self.tokenizer.encode(text[: self.max_chars], add_special_tokens=False).tokens
        # a brought tokenizer may emit tokens containing spaces (or none may be needed): fastText must see one token
        # per whitespace-separated word, and never the label prefix
        if self._clean_vocab:
            line = " ".join(tokens)
        else:
            line = " ".join(_WHITESPACE.sub("", t) for t in tokens if t.strip())
        return line.replace("__label__", "__label")
