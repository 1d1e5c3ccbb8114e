"""Small real data for the ``tiny`` preset, built offline: Python standard-library sources and a BPE tokenizer.

No model hub is needed: the corpus is the running interpreter's own ``*.py`` files (real code, deterministic order)
and the tokenizer is a byte-level BPE trained on it with ``tokenizers`` and saved as a Hugging Face tokenizer
directory (``tokenizer.json`` + ``tokenizer_config.json`` with ``<|endoftext|>`` as EOS), exactly the kind of
directory ``oc-megatron preprocess --tokenizer`` takes for OpenCoder's own tokenizer.
"""

from __future__ import annotations

import json
import sysconfig
from collections.abc import Iterable, Iterator
from pathlib import Path

from oc_common.fileio import atomic_write_text

EOD_TOKEN = "<|endoftext|>"
# ChatML turn markers, special tokens of OpenCoder's tokenizer too: SFT data (``oc-megatron sft-data``) needs them.
CHATML_TOKENS = ("<|im_start|>", "<|im_end|>")
# The ChatML chat template (as in tokenizer_config.json of ChatML models): what inference renders, so what SFT trains.
CHATML_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' "
    "+ '\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


def stdlib_code_records(max_files: int | None = None, max_bytes: int = 200_000) -> Iterator[dict]:
    """Records (``id``, ``text``, ``path``, ``language``) of the standard library's Python files, sorted by path."""
    root = Path(sysconfig.get_paths()["stdlib"])
    files = sorted(p for p in root.rglob("*.py") if "site-packages" not in p.parts and "test" not in p.parts)
    n = 0
    for p in files:
        try:
            text = p.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        if not text.strip() or len(text.encode()) > max_bytes:
            continue
        rel = str(p.relative_to(root))
        yield {"id": rel, "text": text, "path": rel, "language": "Python"}
        n += 1
        if max_files is not None and n >= max_files:
            return


def write_jsonl(records: Iterable[dict], path: str | Path) -> int:
    lines = [json.dumps(r, ensure_ascii=False) for r in records]
    atomic_write_text(path, "\n".join(lines) + "\n")
    return len(lines)


def train_bpe_tokenizer(texts: Iterable[str], vocab_size: int, out_dir: str | Path) -> Path:
    """Train a byte-level BPE with ``vocab_size`` ids and save a HF tokenizer dir.

    Special tokens: ``<|endoftext|>`` (id 0, the EOS/EOD), ``<|im_start|>`` and ``<|im_end|>`` (ids 1, 2); the
    tokenizer config carries the ChatML chat template, as OpenCoder's instruct tokenizer does.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[EOD_TOKEN, *CHATML_TOKENS],
                                  show_progress=False, initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts, trainer=trainer)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tok.save(str(out / "tokenizer.json"))
    atomic_write_text(out / "tokenizer_config.json", json.dumps({
        "tokenizer_class": "PreTrainedTokenizerFast", "eos_token": EOD_TOKEN, "bos_token": None,
        "pad_token": None, "model_max_length": 1_000_000, "clean_up_tokenization_spaces": False,
        "chat_template": CHATML_TEMPLATE}, indent=2) + "\n")
    atomic_write_text(out / "special_tokens_map.json", json.dumps({"eos_token": EOD_TOKEN}) + "\n")
    return out
