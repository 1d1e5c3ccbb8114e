"""Supervised fine-tuning data: chat records -> ChatML tokens with an assistant-only loss mask -> packed sequences.

**Records** (JSONL/Parquet, one conversation each; ``oc-megatron sft-data IN OUT_PREFIX --tokenizer DIR``):

* ``messages``: OpenAI style, a list of ``{"role": "system" | "user" | "assistant", "content": str}``; every
  assistant turn is trained;
* ``instruction`` + ``output`` (OpenCoder's opc-sft-stage1/2 datasets) or ``instruction`` + ``response`` (our
  ``oc-synth generate`` instruction recipes): one user turn and one assistant turn.

**Template.** A conversation is rendered by the tokenizer's own chat template (``chat_template`` in
``tokenizer_config.json``, rendered with jinja2 the way transformers' ``apply_chat_template`` does, so a default
system prompt the template adds is trained on too), or by plain ChatML when the tokenizer has none. Either way each
assistant turn must come out as ``<|im_start|>assistant\\n{content}<|im_end|>`` (OpenCoder's format); anything else is
an error, never a silently wrong mask. The whole text is tokenized at once (the ids inference will see), and a token
is trained when its first character lies in ``{content}<|im_end|>`` of an assistant turn: the model learns the answers
and to stop, never the prompts or the ``<|im_start|>assistant`` headers.

**On disk**: ``OUT_PREFIX.bin/.idx`` (tokens, one document per conversation) and ``OUT_PREFIX.loss_mask.bin/.idx``
(uint8, aligned), built like ``oc-megatron preprocess`` output (parts, resume, atomic merge, ``OUT_PREFIX.stats.json``).

**Training sequences** (``SFTDataset``): a conversation of n tokens gives n-1 positions (input ``ids[:-1]``, label
``ids[1:]``, loss mask ``mask[1:]``, positions ``0..n-2``), so no label crosses into another sample. With packing,
consecutive samples of the epoch's (seeded) order fill a sequence of ``seq_length`` positions until the next one does
not fit (next-fit); the rest is padding (loss mask 0). ``segment_ids`` numbers the samples of a sequence (padding is
one more segment); the trainer turns them into a block-diagonal causal mask (local attention on CPU) or ``cu_seqlens``
(THD with Transformer Engine), and positions restart at 0 in each sample, so a packed sample is computed exactly as if
it were alone. Conversations longer than ``seq_length + 1`` tokens are dropped (counted and logged).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from oc_common.log import get_logger
from oc_megatron.data.preprocess import LOSS_MASK_SUFFIX, PreprocessStats, build_indexed_dataset, token_dtype

log = get_logger(__name__)

IM_START, IM_END = "<|im_start|>", "<|im_end|>"
ROLES = ("system", "user", "assistant")
ASSISTANT_HEADER = f"{IM_START}assistant\n"


# ---- records -> conversations --------------------------------------------------------------------------------------
def conversation_from_record(record: dict[str, Any]) -> list[dict[str, str]]:
    """The ``messages`` of a record (OpenAI style, or ``instruction`` + ``output``/``response``). ValueError says why
    not."""
    if "messages" in record:
        messages = record["messages"]
        if not isinstance(messages, list) or not messages:
            raise ValueError("`messages` must be a non-empty list of {role, content}")
        out = []
        for i, m in enumerate(messages):
            if not isinstance(m, dict) or m.get("role") not in ROLES or not isinstance(m.get("content"), str):
                raise ValueError(f"messages[{i}]: expected {{role: {'|'.join(ROLES)}, content: string}}")
            out.append({"role": m["role"], "content": m["content"]})
    elif "instruction" in record and ("output" in record or "response" in record):
        answer_key = "output" if "output" in record else "response"
        if not isinstance(record["instruction"], str) or not isinstance(record[answer_key], str):
            raise ValueError(f"`instruction` and `{answer_key}` must be strings")
        out = [{"role": "user", "content": record["instruction"]},
               {"role": "assistant", "content": record[answer_key]}]
    else:
        raise ValueError("expected `messages` (a list of {role, content}) or `instruction` with `output` (opc-sft) "
                         "or `response` (oc-synth generate)")
    if not any(m["role"] == "assistant" for m in out):
        raise ValueError("no assistant turn: nothing to train on")
    for i, m in enumerate(out):
        if IM_START in m["content"] or IM_END in m["content"]:
            raise ValueError(f"messages[{i}]: content contains a ChatML control token ({IM_START} / {IM_END})")
    return out


# ---- rendering ----------------------------------------------------------------------------------------------------
class ChatTemplate:
    """Renders a conversation to text and locates the trained spans (assistant content + ``<|im_end|>``).

    ``source``: a jinja chat template (the tokenizer's), or None for plain ChatML
    (``<|im_start|>{role}\\n{content}<|im_end|>\\n`` per message). ``system_prompt`` is prepended as a system message
    to conversations that have none.
    """

    def __init__(self, source: str | None = None, *, system_prompt: str | None = None,
                 special_tokens: dict[str, str] | None = None) -> None:
        self.source = source
        self.system_prompt = system_prompt
        self._special = special_tokens or {}
        self._compiled = None
        if source is not None:
            from jinja2 import TemplateError
            from jinja2.sandbox import ImmutableSandboxedEnvironment

            def raise_exception(message: str):
                raise ValueError(f"chat template: {message}")

            env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                                extensions=["jinja2.ext.loopcontrols"])
            env.globals["raise_exception"] = raise_exception
            try:
                self._compiled = env.from_string(source)
            except TemplateError as e:
                raise ValueError(f"chat template: {e}") from None

    @classmethod
    def from_tokenizer(cls, tokenizer_dir: str | Path, system_prompt: str | None = None) -> ChatTemplate:
        cfg_file = Path(tokenizer_dir) / "tokenizer_config.json"
        cfg = json.loads(cfg_file.read_text(encoding="utf-8")) if cfg_file.is_file() else {}
        source = cfg.get("chat_template")
        if isinstance(source, list):  # several named templates: the default one
            source = next((t["template"] for t in source if t.get("name") == "default"), None)
        special = {}
        for key in ("bos_token", "eos_token", "pad_token", "unk_token"):
            value = cfg.get(key)
            special[key] = value.get("content") if isinstance(value, dict) else value
        return cls(source, system_prompt=system_prompt, special_tokens=special)

    @property
    def name(self) -> str:
        return "the tokenizer's chat template" if self.source is not None else "built-in ChatML"

    def render_text(self, messages: list[dict[str, str]]) -> str:
        if self.system_prompt is not None and messages[0]["role"] != "system":
            messages = [{"role": "system", "content": self.system_prompt}, *messages]
        if self._compiled is None:
            return "".join(f"{IM_START}{m['role']}\n{m['content']}{IM_END}\n" for m in messages)
        from jinja2 import TemplateError

        try:
            return self._compiled.render(messages=messages, add_generation_prompt=False, **self._special)
        except TemplateError as e:
            raise ValueError(f"chat template: {e}") from None

    def render(self, messages: list[dict[str, str]]) -> tuple[str, list[tuple[int, int]]]:
        """(text, [(start, end) character spans trained]): one span per assistant turn, in order."""
        text = self.render_text(messages)
        spans, cursor = [], 0
        for m in messages:
            if m["role"] != "assistant":
                continue
            turn = ASSISTANT_HEADER + m["content"] + IM_END
            at = text.find(turn, cursor)
            if at < 0:
                raise ValueError(f"{self.name} does not render an assistant turn as ChatML "
                                 f"({ASSISTANT_HEADER!r} + content + {IM_END!r})")
            start = at + len(ASSISTANT_HEADER)
            spans.append((start, at + len(turn)))
            cursor = at + len(turn)
        return text, spans


# ---- encoding ----------------------------------------------------------------------------------------------------
def chat_token_ids(tokenizer) -> tuple[int, int]:
    """The ids of ``<|im_start|>`` and ``<|im_end|>``, which must be single (special) tokens of the tokenizer."""
    ids = []
    for token in (IM_START, IM_END):
        tid = tokenizer.token_to_id(token)
        if tid is None or tokenizer.encode(token, add_special_tokens=False).ids != [tid]:
            raise ValueError(f"the tokenizer has no {token} token: ChatML SFT data needs {IM_START} and {IM_END} as "
                             "special tokens (OpenCoder's tokenizer has them; examples/make_tiny_data.py trains a "
                             "tokenizer with them: remove an older OUT_DIR/tokenizer first)")
        ids.append(tid)
    return ids[0], ids[1]


def mask_from_offsets(offsets: list[tuple[int, int]], spans: list[tuple[int, int]]) -> np.ndarray:
    """1 for each token whose first character lies in one of ``spans``, else 0 (uint8)."""
    starts = np.fromiter((o[0] for o in offsets), dtype=np.int64, count=len(offsets))
    mask = np.zeros(len(offsets), dtype=bool)
    for a, b in spans:
        mask |= (starts >= a) & (starts < b)
    return mask.astype(np.uint8)


class ChatEncoder:
    """Conversation records -> (token ids, loss mask) for ``build_indexed_dataset`` (two streams)."""

    def __init__(self, tokenizer: str | Path, *, system_prompt: str | None = None) -> None:
        from oc_megatron.data.tokenizer import load_tokenizer, load_tokenizer_info

        self.tokenizer = str(tokenizer)
        self.system_prompt = system_prompt
        self.template = ChatTemplate.from_tokenizer(tokenizer, system_prompt)
        chat_token_ids(load_tokenizer(tokenizer))  # fail now, naming the missing token
        self.streams = (("", token_dtype(load_tokenizer_info(tokenizer).vocab_size)), (LOSS_MASK_SUFFIX, np.uint8))
        self._tok = None

    def __getstate__(self) -> dict:  # workers only tokenize: no template (jinja objects do not pickle)
        return {**self.__dict__, "_tok": None, "template": None}

    def manifest(self) -> dict[str, Any]:
        return {"kind": "chat", "tokenizer": self.tokenizer, "template": self.template.source or "chatml",
                "system_prompt": self.system_prompt, "dtype": np.dtype(self.streams[0][1]).name}

    def extract(self, record: dict[str, Any]) -> tuple[str, list[tuple[int, int]]]:
        return self.template.render(conversation_from_record(record))

    def encode(self, text: str, spans: list[tuple[int, int]]) -> tuple[np.ndarray, np.ndarray]:
        return self.encode_batch([(text, spans)])[0]

    def encode_batch(self, items: list[tuple[str, list[tuple[int, int]]]]) -> list[tuple[np.ndarray, np.ndarray]]:
        if self._tok is None:
            from oc_megatron.data.tokenizer import load_tokenizer

            self._tok = load_tokenizer(self.tokenizer)
        encodings = self._tok.encode_batch([text for text, _ in items], add_special_tokens=False)
        return [(np.asarray(enc.ids, dtype=np.int64), mask_from_offsets(enc.offsets, spans))
                for enc, (_, spans) in zip(encodings, items, strict=True)]


def sft_data(input_path: str | Path, out_prefix: str | Path, tokenizer: str | Path, *, workers: int = 1,
             system_prompt: str | None = None, batch_size: int = 64, keep_parts: bool = False,
             progress: bool = True) -> PreprocessStats:
    """Chat records under ``input_path`` -> ``out_prefix``.bin/.idx + ``out_prefix``.loss_mask.bin/.idx."""
    encoder = ChatEncoder(tokenizer, system_prompt=system_prompt)
    log.info("sft-data: rendering with %s%s", encoder.template.name,
             f", default system prompt {system_prompt!r}" if system_prompt else "")
    return build_indexed_dataset(input_path, out_prefix, encoder, workers=workers, batch_size=batch_size,
                                 keep_parts=keep_parts, progress=progress)


# ---- training sequences -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PackingStats:
    samples: int  # kept conversations per epoch
    dropped_too_long: int
    sequences: int  # training sequences over all epochs
    fill: float  # fraction of positions that are real tokens


class SFTDataset:
    """``oc-megatron sft-data`` prefixes as fixed-length training sequences, for ``epochs`` epochs.

    Item ``i`` (any ``i >= 0``; past the last sequence: an all-padding sequence with an empty loss mask, so that the
    last global batch of the last epoch can be filled without repeating data) is a dict of [seq_length] tensors:
    ``tokens``, ``labels``, ``loss_mask``, ``position_ids`` and ``segment_ids``. ``metadata(i)`` gives only the last
    two (what pipeline stages without the embedding or the loss need).
    """

    def __init__(self, prefixes: list[str], seq_length: int, *, packing: bool = True, epochs: int = 1, seed: int = 0,
                 shuffle: bool = True, pad_id: int = 0) -> None:
        from megatron.core.datasets.indexed_dataset import IndexedDataset

        self.seq_length = seq_length
        self.pad_id = pad_id
        self.tokens, self.masks, lengths = [], [], []
        for prefix in prefixes:
            tokens, mask = IndexedDataset(str(prefix)), IndexedDataset(f"{prefix}{LOSS_MASK_SUFFIX}")
            if not np.array_equal(tokens.sequence_lengths, mask.sequence_lengths):
                raise ValueError(f"{prefix}: tokens and {LOSS_MASK_SUFFIX} do not align (rebuild with sft-data)")
            self.tokens.append(tokens)
            self.masks.append(mask)
            lengths.append(np.asarray(tokens.sequence_lengths, dtype=np.int64))
        all_lengths = np.concatenate(lengths) if lengths else np.zeros(0, dtype=np.int64)
        self._first_id = np.cumsum([0] + [len(x) for x in lengths])  # global sample id -> (dataset, index)
        self._positions = all_lengths - 1  # positions a sample occupies in a sequence
        fits = (self._positions >= 1) & (self._positions <= seq_length)
        kept = np.flatnonzero(fits)
        if len(kept) == 0:
            raise ValueError(f"no SFT sample fits in {seq_length} positions ({len(all_lengths)} samples in "
                             f"{', '.join(map(str, prefixes))})")
        orders, bins = [], []
        for epoch in range(epochs):
            order = np.random.default_rng([seed, epoch]).permutation(kept) if shuffle else kept
            orders.append(order)
            bins.append(self._bin_sizes(self._positions[order], packing))
        self._order = np.concatenate(orders)
        self._bin_start = np.concatenate([[0], np.cumsum(np.concatenate(bins))])
        real = int(self._positions[self._order].sum())
        self.stats = PackingStats(len(kept), int((~fits).sum()), len(self), real / max(len(self) * seq_length, 1))

    def _bin_sizes(self, positions: np.ndarray, packing: bool) -> np.ndarray:
        if not packing:
            return np.ones(len(positions), dtype=np.int64)
        sizes, used, count = [], 0, 0
        for p in positions.tolist():  # next-fit: keeps the epoch's order
            if count and used + p > self.seq_length:
                sizes.append(count)
                used, count = 0, 0
            used += p
            count += 1
        sizes.append(count)
        return np.asarray(sizes, dtype=np.int64)

    def __len__(self) -> int:
        return len(self._bin_start) - 1

    def sample_ids(self, i: int) -> np.ndarray:
        """The samples packed into sequence ``i``, in order (global ids over ``prefixes``; none past the end)."""
        if i >= len(self):
            return self._order[:0]
        return self._order[self._bin_start[i]: self._bin_start[i + 1]]

    def _read(self, sample: int) -> tuple[np.ndarray, np.ndarray]:
        d = int(np.searchsorted(self._first_id, sample, side="right")) - 1
        j = int(sample - self._first_id[d])
        return np.asarray(self.tokens[d][j], dtype=np.int64), np.asarray(self.masks[d][j], dtype=np.int64)

    def metadata(self, i: int) -> dict[str, torch.Tensor]:
        s = self.seq_length
        positions = np.zeros(s, dtype=np.int64)
        segments = np.zeros(s, dtype=np.int64)
        at = 0
        samples = self.sample_ids(i)
        for k, n in enumerate(self._positions[samples].tolist()):
            positions[at: at + n] = np.arange(n)
            segments[at: at + n] = k
            at += n
        positions[at:] = np.arange(s - at)
        segments[at:] = len(samples)  # padding: one more segment, attending only to itself
        return {"position_ids": torch.from_numpy(positions), "segment_ids": torch.from_numpy(segments)}

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        s = self.seq_length
        tokens = np.full(s, self.pad_id, dtype=np.int64)
        labels = np.full(s, self.pad_id, dtype=np.int64)
        loss_mask = np.zeros(s, dtype=np.float32)
        at = 0
        for sample in self.sample_ids(i).tolist():
            ids, mask = self._read(sample)
            n = len(ids) - 1
            tokens[at: at + n] = ids[:-1]
            labels[at: at + n] = ids[1:]
            loss_mask[at: at + n] = mask[1:]
            at += n
        return {"tokens": torch.from_numpy(tokens), "labels": torch.from_numpy(labels),
                "loss_mask": torch.from_numpy(loss_mask), **self.metadata(i)}


def build_sft_datasets(cfg, pad_id: int) -> tuple[SFTDataset, SFTDataset | None]:
    """(train, valid or None) for a TrainConfig with ``data.sft``. Validation: the first sequences of
    ``valid_paths``, in file order."""
    d, t = cfg.data.sft, cfg.train
    train = SFTDataset(d.paths, cfg.seq_length, packing=d.packing, epochs=d.epochs, seed=t.seed, shuffle=d.shuffle,
                       pad_id=pad_id)
    valid = None
    if t.eval_interval > 0:
        if not d.valid_paths:
            from oc_common.errors import ConfigError

            raise ConfigError("data.sft.valid_paths: needed when train.eval_interval > 0")
        valid = SFTDataset(d.valid_paths, cfg.seq_length, packing=d.packing, epochs=1, shuffle=False, pad_id=pad_id)
    return train, valid


# ---- attention inputs for packed batches -----------------------------------------------------------------------------
def packed_attention_mask(segment_ids: torch.Tensor) -> torch.Tensor:
    """[b, s] segment ids -> [b, 1, s, s] bool mask, True = masked: causal within a segment, nothing across."""
    same = segment_ids[:, :, None] == segment_ids[:, None, :]
    s = segment_ids.shape[1]
    causal = torch.ones(s, s, dtype=torch.bool, device=segment_ids.device).tril()
    return ~(same & causal)[:, None]


def packed_seq_params(segment_ids: torch.Tensor):
    """[b, s] segment ids -> Megatron-Core ``PackedSeqParams`` (THD) for the b sequences laid end to end.

    ``cu_seqlens`` are the cumulative segment lengths over the flattened ``b * s`` tokens (int32, as Transformer
    Engine wants); padding is a segment of its own, so no real token attends to it.
    """
    from megatron.core.packed_seq_params import PackedSeqParams

    flat = segment_ids.reshape(-1)
    b, s = segment_ids.shape
    boundary = torch.ones_like(flat, dtype=torch.bool)
    boundary[1:] = flat[1:] != flat[:-1]
    boundary[::s] = True  # each sequence starts a segment (segment ids restart at 0 per sequence)
    starts = torch.nonzero(boundary).flatten()
    cu = torch.cat([starts, torch.tensor([b * s], device=flat.device)]).to(torch.int32)
    max_len = int((cu[1:] - cu[:-1]).max())
    return PackedSeqParams(qkv_format="thd", cu_seqlens_q=cu, cu_seqlens_kv=cu, max_seqlen_q=max_len,
                           max_seqlen_kv=max_len)
