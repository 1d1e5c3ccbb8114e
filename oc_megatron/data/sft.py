"""Supervised fine-tuning data: chat records -> ChatML tokens with an answer-only loss mask -> steps of samples.

**Records** (JSONL/Parquet, one conversation each; ``oc-megatron sft-data IN OUT_PREFIX --tokenizer DIR``):

* ``messages``: OpenAI style, a list of ``{"role": "system" | "user" | "assistant", "content": str}``; every
  assistant turn is trained;
* ``instruction`` + ``output`` (OpenCoder's opc-sft-stage1/2 datasets) or ``instruction`` + ``response`` (our
  ``oc-synth generate`` instruction recipes): one user turn and one assistant turn.

**Format** (``--target opencoder``, the default, = OpenCoder's released ``sft/tools/finetune.py``; docs/opencoder.md
§4). A conversation without a system turn gets OpenCoder's system prompt (``--system-prompt``; their tokenizer's
template adds it, so we add it whatever the tokenizer), is rendered by the tokenizer's own chat template
(``chat_template`` in ``tokenizer_config.json``, rendered with jinja2 as transformers' ``apply_chat_template`` does)
or by plain ChatML when it has none, and each assistant answer is trained as ``{content}\n<|im_end|>``: their target
is ``output + "\n<|im_end|>"`` after a prompt ending in ``<|im_start|>assistant\n``, with nothing after the last
``<|im_end|>``. The text is tokenized the way their script calls the tokenizer (special tokens the tokenizer adds
by itself included). ``--target template`` trains exactly what the template renders (``{content}<|im_end|>``,
tokenized without added special tokens, as inference engines do). Either way each assistant turn must come out as
ChatML (``<|im_start|>assistant\n`` + answer + ``<|im_end|>``); anything else is an error, never a silently wrong
mask. A token is trained when its first character lies in an answer span (answer + ``<|im_end|>``): the model learns
the answers and to stop, never the prompts, the system prompt or the ``<|im_start|>assistant`` headers.

**On disk**: ``OUT_PREFIX.bin/.idx`` (tokens, one document per conversation) and ``OUT_PREFIX.loss_mask.bin/.idx``
(uint8, aligned), built like ``oc-megatron preprocess`` output (parts, resume, atomic merge, ``OUT_PREFIX.stats.json``
whose ``manifest`` records the template, target format and system prompt).

**Training** (``SFTSamples``, ``SFTBatches``): as OpenCoder's script, a sample is cut to ``train.seq_length`` tokens
(its ``model_max_length``; ``data.sft.too_long: drop`` drops it instead), and a step takes ``train.global_batch_size``
*samples*, each epoch in a new seeded order (an epoch's last step takes the rest). A sample of n tokens gives n-1
positions (input ``ids[:-1]``, label ``ids[1:]``, loss mask ``mask[1:]``, positions ``0..n-2``), so no label crosses
into another sample. Unpacked (the default) each sample has a sequence of its own, padded; packed
(``data.sft.packing``, a speed option), the step's samples fill as few sequences as fit (next-fit), so the step has
fewer microbatches but the same samples. ``segment_ids`` number the samples of a sequence (padding is one more
segment); the trainer turns them into a block-diagonal causal mask (local attention on CPU) or ``cu_seqlens`` (THD
with Transformer Engine), and positions restart at 0 in each sample, so a packed sample is computed exactly as if it
were alone.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from oc_common.log import get_logger
from oc_megatron.data.preprocess import LOSS_MASK_SUFFIX, PreprocessStats, build_indexed_dataset, token_dtype
from oc_megatron.data.sft_format import (
    ASSISTANT_HEADER,
    IM_END,
    IM_START,
    OPENCODER_SYSTEM_PROMPT,
    TARGET_SUFFIX,
    SFTTarget,
)

log = get_logger(__name__)

ROLES = ("system", "user", "assistant")


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

    def render_text(self, messages: list[dict[str, str]], answer_suffix: str = "") -> str:
        """The conversation as text; ``answer_suffix`` is appended to every assistant answer."""
        if self.system_prompt and messages[0]["role"] != "system":
            messages = [{"role": "system", "content": self.system_prompt}, *messages]
        if answer_suffix:
            messages = [{**m, "content": m["content"] + answer_suffix} if m["role"] == "assistant" else m
                        for m in messages]
        if self._compiled is None:
            return "".join(f"{IM_START}{m['role']}\n{m['content']}{IM_END}\n" for m in messages)
        from jinja2 import TemplateError

        try:
            return self._compiled.render(messages=messages, add_generation_prompt=False, **self._special)
        except TemplateError as e:
            raise ValueError(f"chat template: {e}") from None

    def render(self, messages: list[dict[str, str]], target: str = "template") -> tuple[str, list[tuple[int, int]]]:
        """(text, [(start, end) character spans trained]): one span per assistant turn, in order.

        ``target="opencoder"``: each answer is trained as ``content + "\n<|im_end|>"`` and the text ends at the last
        ``<|im_end|>`` when the conversation ends with an answer (OpenCoder's released finetune.py); ``"template"``:
        as the template renders it."""
        suffix = TARGET_SUFFIX[target]
        text = self.render_text(messages, suffix)
        spans, cursor = [], 0
        for m in messages:
            if m["role"] != "assistant":
                continue
            turn = ASSISTANT_HEADER + m["content"] + suffix + IM_END
            at = text.find(turn, cursor)
            if at < 0:
                raise ValueError(f"{self.name} does not render an assistant turn as ChatML "
                                 f"({ASSISTANT_HEADER!r} + content + {IM_END!r})")
            start = at + len(ASSISTANT_HEADER)
            spans.append((start, at + len(turn)))
            cursor = at + len(turn)
        if target == "opencoder" and messages[-1]["role"] == "assistant" and spans:
            text = text[: spans[-1][1]]  # their target ends with <|im_end|>: nothing follows it
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


def mask_from_offsets(offsets: list[tuple[int, int]], spans: list[tuple[int, int]],
                      special_tokens_mask: list[int] | None = None) -> np.ndarray:
    """1 for each token whose first character lies in one of ``spans``, else 0 (uint8). Tokens the tokenizer added
    by itself (``special_tokens_mask``: a BOS, ...) are never trained."""
    starts = np.fromiter((o[0] for o in offsets), dtype=np.int64, count=len(offsets))
    mask = np.zeros(len(offsets), dtype=bool)
    for a, b in spans:
        mask |= (starts >= a) & (starts < b)
    if special_tokens_mask is not None and any(special_tokens_mask):
        added = np.asarray(special_tokens_mask, dtype=bool) & np.asarray([o == (0, 0) for o in offsets])
        mask &= ~added
    return mask.astype(np.uint8)


class ChatEncoder:
    """Conversation records -> (token ids, loss mask) for ``build_indexed_dataset`` (two streams)."""

    def __init__(self, tokenizer: str | Path, *, system_prompt: str | None = OPENCODER_SYSTEM_PROMPT,
                 target: SFTTarget = "opencoder") -> None:
        from oc_megatron.data.tokenizer import load_tokenizer, load_tokenizer_info

        if target not in TARGET_SUFFIX:
            raise ValueError(f"target {target!r}: expected one of {', '.join(TARGET_SUFFIX)}")
        self.tokenizer = str(tokenizer)
        self.system_prompt = system_prompt or None
        self.target = target
        # OpenCoder's script calls the tokenizer with its defaults (special tokens it adds by itself, e.g. a BOS,
        # included); the template target tokenizes the rendered text as it is, as inference engines do.
        self.add_special_tokens = target == "opencoder"
        self.template = ChatTemplate.from_tokenizer(tokenizer, self.system_prompt)
        chat_token_ids(load_tokenizer(tokenizer))  # fail now, naming the missing token
        self.streams = (("", token_dtype(load_tokenizer_info(tokenizer).vocab_size)), (LOSS_MASK_SUFFIX, np.uint8))
        self._tok = None

    def __getstate__(self) -> dict:  # workers only tokenize: no template (jinja objects do not pickle)
        return {**self.__dict__, "_tok": None, "template": None}

    def manifest(self) -> dict[str, Any]:
        return {"kind": "chat", "tokenizer": self.tokenizer, "template": self.template.source or "chatml",
                "system_prompt": self.system_prompt, "target": self.target, "dtype": np.dtype(self.streams[0][1]).name}

    def extract(self, record: dict[str, Any]) -> tuple[str, list[tuple[int, int]]]:
        return self.template.render(conversation_from_record(record), self.target)

    def encode(self, text: str, spans: list[tuple[int, int]]) -> tuple[np.ndarray, np.ndarray]:
        return self.encode_batch([(text, spans)])[0]

    def encode_batch(self, items: list[tuple[str, list[tuple[int, int]]]]) -> list[tuple[np.ndarray, np.ndarray]]:
        if self._tok is None:
            from oc_megatron.data.tokenizer import load_tokenizer

            self._tok = load_tokenizer(self.tokenizer)
        encodings = self._tok.encode_batch([text for text, _ in items], add_special_tokens=self.add_special_tokens)
        return [(np.asarray(enc.ids, dtype=np.int64), mask_from_offsets(enc.offsets, spans, enc.special_tokens_mask))
                for enc, (_, spans) in zip(encodings, items, strict=True)]


def sft_data(input_path: str | Path, out_prefix: str | Path, tokenizer: str | Path, *, workers: int = 1,
             system_prompt: str | None = OPENCODER_SYSTEM_PROMPT, target: SFTTarget = "opencoder",
             batch_size: int = 64, keep_parts: bool = False, progress: bool = True) -> PreprocessStats:
    """Chat records under ``input_path`` -> ``out_prefix``.bin/.idx + ``out_prefix``.loss_mask.bin/.idx."""
    encoder = ChatEncoder(tokenizer, system_prompt=system_prompt, target=target)
    log.info("sft-data: rendering with %s, %s target format (answers trained as %r), system prompt %s",
             encoder.template.name, target, "{content}" + TARGET_SUFFIX[target] + IM_END,
             repr(encoder.system_prompt) if encoder.system_prompt else "none added")
    return build_indexed_dataset(input_path, out_prefix, encoder, workers=workers, batch_size=batch_size,
                                 keep_parts=keep_parts, progress=progress)


# ---- training samples and steps ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SampleStats:
    samples: int  # usable samples per epoch
    truncated: int  # of those, cut to seq_length tokens
    dropped_too_long: int  # data.sft.too_long = drop
    dropped_empty: int  # fewer than 2 tokens: nothing to predict
    tokens: int  # tokens per epoch after truncation


class SFTSamples:
    """The samples of ``oc-megatron sft-data`` prefixes, each cut to ``max_tokens`` tokens (or dropped when longer,
    ``too_long="drop"``), in a seeded order per epoch.

    A sample of n tokens occupies n - 1 positions of a sequence (input ``ids[:-1]``, labels ``ids[1:]``, loss mask
    ``mask[1:]``), as a causal LM's shifted loss sees it. The data position of a run is the number of samples it has
    consumed over all epochs: position c is sample ``c mod N`` of epoch ``c div N`` (N samples per epoch).
    """

    def __init__(self, prefixes: list[str], max_tokens: int, *, too_long: str = "truncate", epochs: int = 1,
                 seed: int = 0, shuffle: bool = True) -> None:
        from megatron.core.datasets.indexed_dataset import IndexedDataset

        self.max_tokens, self.epochs, self.seed, self.shuffle = max_tokens, epochs, seed, shuffle
        self.tokens, self.masks, lengths = [], [], []
        for prefix in prefixes:
            tokens, mask = IndexedDataset(str(prefix)), IndexedDataset(f"{prefix}{LOSS_MASK_SUFFIX}")
            if not np.array_equal(tokens.sequence_lengths, mask.sequence_lengths):
                raise ValueError(f"{prefix}: tokens and {LOSS_MASK_SUFFIX} do not align (rebuild with sft-data)")
            self.tokens.append(tokens)
            self.masks.append(mask)
            lengths.append(np.asarray(tokens.sequence_lengths, dtype=np.int64))
        raw = np.concatenate(lengths) if lengths else np.zeros(0, dtype=np.int64)
        self._first_id = np.cumsum([0] + [len(x) for x in lengths])  # global sample id -> (dataset, index)
        long = raw > max_tokens
        empty = raw < 2
        keep = ~empty & (~long if too_long == "drop" else True)
        self.kept = np.flatnonzero(keep)
        self.lengths = np.minimum(raw, max_tokens)  # tokens each sample contributes
        if len(self.kept) == 0:
            raise ValueError(f"no usable SFT sample in {', '.join(map(str, prefixes))} ({len(raw)} samples; "
                             f"{int((long & ~empty).sum())} longer than {max_tokens} tokens, {int(empty.sum())} "
                             "with fewer than 2 tokens)")
        self.stats = SampleStats(len(self.kept), int((long & keep).sum()), int((long & ~empty).sum()) if
                                 too_long == "drop" else 0, int(empty.sum()), int(self.lengths[self.kept].sum()))
        self._orders: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        """Usable samples per epoch."""
        return len(self.kept)

    def positions(self, sample_ids: np.ndarray) -> np.ndarray:
        return self.lengths[sample_ids] - 1

    def order(self, epoch: int) -> np.ndarray:
        if epoch not in self._orders:
            self._orders = {epoch: np.random.default_rng([self.seed, epoch]).permutation(self.kept)
                            if self.shuffle else self.kept}
        return self._orders[epoch]

    def steps_per_epoch(self, global_batch_size: int) -> int:
        return math.ceil(len(self) / global_batch_size)

    def step_samples(self, position: int, global_batch_size: int) -> np.ndarray:
        """The samples of the step at data ``position``: the next ``global_batch_size`` of the current epoch (fewer
        in an epoch's last step; none past the last epoch)."""
        epoch, offset = divmod(position, len(self))
        if epoch >= self.epochs:
            return self.kept[:0]
        return self.order(epoch)[offset: offset + global_batch_size]

    def read(self, sample: int) -> tuple[np.ndarray, np.ndarray]:
        """(token ids, loss mask) of a sample, cut to ``max_tokens``."""
        d = int(np.searchsorted(self._first_id, sample, side="right")) - 1
        j = int(sample - self._first_id[d])
        n = int(self.lengths[sample])
        return (np.asarray(self.tokens[d][j][:n], dtype=np.int64),
                np.asarray(self.masks[d][j][:n], dtype=np.int64))


def pack_sequences(positions: list[int], seq_length: int, packing: bool) -> list[list[int]]:
    """Indexes into ``positions`` grouped into sequences of at most ``seq_length`` positions: one each without
    packing, else next-fit in order (a new sequence when the next sample does not fit)."""
    if not packing:
        return [[i] for i in range(len(positions))]
    sequences, used = [], 0
    for i, p in enumerate(positions):
        if not sequences or used + p > seq_length:
            sequences.append([])
            used = 0
        sequences[-1].append(i)
        used += p
    return sequences


def sequence_metadata(samples: SFTSamples, sample_ids, seq_length: int) -> dict[str, torch.Tensor]:
    """``position_ids`` (restarting at 0 in each sample) and ``segment_ids`` (the sample's index in the sequence;
    padding is one more segment, attending only to itself) of a sequence holding ``sample_ids``."""
    positions = np.zeros(seq_length, dtype=np.int64)
    segments = np.zeros(seq_length, dtype=np.int64)
    at = 0
    for k, n in enumerate(samples.positions(np.asarray(sample_ids, dtype=np.int64)).tolist()):
        positions[at: at + n] = np.arange(n)
        segments[at: at + n] = k
        at += n
    positions[at:] = np.arange(seq_length - at)
    segments[at:] = len(sample_ids)
    return {"position_ids": torch.from_numpy(positions), "segment_ids": torch.from_numpy(segments)}


def sequence_item(samples: SFTSamples, sample_ids, seq_length: int, pad_id: int) -> dict[str, torch.Tensor]:
    """The [seq_length] tensors of a sequence holding ``sample_ids`` (each as ids[:-1] -> ids[1:]), then padding
    (loss mask 0): ``tokens``, ``labels``, ``loss_mask``, ``position_ids``, ``segment_ids``."""
    tokens = np.full(seq_length, pad_id, dtype=np.int64)
    labels = np.full(seq_length, pad_id, dtype=np.int64)
    loss_mask = np.zeros(seq_length, dtype=np.float32)
    at = 0
    for sample in sample_ids:
        ids, mask = samples.read(int(sample))
        n = len(ids) - 1
        tokens[at: at + n] = ids[:-1]
        labels[at: at + n] = ids[1:]
        loss_mask[at: at + n] = mask[1:]
        at += n
    return {"tokens": torch.from_numpy(tokens), "labels": torch.from_numpy(labels),
            "loss_mask": torch.from_numpy(loss_mask), **sequence_metadata(samples, sample_ids, seq_length)}


class SFTBatches:
    """SFT steps: each takes the next ``global_batch_size`` samples (OpenCoder counts its batch in samples) and lays
    them out as sequences of ``seq_length`` positions: one sample each, or packed (``packing``).

    The number of sequences is rounded up to a multiple of ``micro_batch_size x DP`` (x ``microbatch_multiple``,
    the pipeline size under the interleaved schedule) with empty sequences, and each rank takes microbatch ``m`` =
    sequences block ``m * DP + rank``. A full unpacked step is exactly ``global_batch_size / (micro x DP)``
    microbatches; a packed one has as many as its samples need, so packed and unpacked runs train on the same samples
    per step and, the loss being the mean over the step's trained tokens, compute the same gradient.
    """

    def __init__(self, samples: SFTSamples, seq_length: int, global_batch_size: int, micro_batch_size: int,
                 data_parallel_size: int, data_parallel_rank: int, *, packing: bool, pad_id: int,
                 microbatch_multiple: int = 1) -> None:
        self.samples, self.seq_length, self.packing, self.pad_id = samples, seq_length, packing, pad_id
        self.global_batch_size, self.micro_batch_size = global_batch_size, micro_batch_size
        self.dp_size, self.dp_rank, self.microbatch_multiple = data_parallel_size, data_parallel_rank, \
            microbatch_multiple

    def total_steps(self) -> int:
        return self.samples.epochs * self.samples.steps_per_epoch(self.global_batch_size)

    def sequences(self, position: int) -> list[np.ndarray]:
        """The step's sequences (global sample ids each), padded with empty ones to a whole number of microbatches
        of every data-parallel rank."""
        ids = self.samples.step_samples(position, self.global_batch_size)
        groups = pack_sequences(self.samples.positions(ids).tolist(), self.seq_length, self.packing)
        seqs = [ids[g] for g in groups]
        multiple = self.micro_batch_size * self.dp_size * self.microbatch_multiple
        padded = max(math.ceil(len(seqs) / multiple), 1) * multiple  # an empty step still runs one microbatch
        return seqs + [ids[:0]] * (padded - len(seqs))

    def step(self, position: int):
        from oc_megatron.data.blend import StepBatch

        seqs = self.sequences(position)
        ids = np.concatenate(seqs) if seqs else np.zeros(0, dtype=np.int64)
        per_microbatch = self.micro_batch_size * self.dp_size
        mine = [seqs[(m * self.dp_size + self.dp_rank) * self.micro_batch_size:][: self.micro_batch_size]
                for m in range(len(seqs) // per_microbatch)]

        # One sample per sequence, from position 0, padding after it: a plain causal mask is exact, so unpacked
        # batches carry no segments and take the model's ordinary (fastest) attention path.
        keys = None if self.packing else ("tokens", "labels", "loss_mask", "position_ids")

        def microbatches(needs_data: bool):
            for group in mine:
                items = [sequence_item(self.samples, g, self.seq_length, self.pad_id) if needs_data
                         else sequence_metadata(self.samples, g, self.seq_length) for g in group]
                yield {k: torch.stack([it[k] for it in items]) for k in items[0] if keys is None or k in keys}

        return StepBatch(len(mine), self.micro_batch_size, self.seq_length, len(ids),
                         int(self.samples.positions(ids).sum()), len(seqs) * self.seq_length, microbatches,
                         {"sequences": sum(1 for q in seqs if len(q))})


def build_sft_batches(cfg, *, pad_id: int, data_parallel_size: int, data_parallel_rank: int,
                      microbatch_multiple: int = 1) -> tuple[SFTBatches, SFTBatches | None]:
    """(train, valid or None) step sources for a TrainConfig with ``data.sft``. Validation: the first samples of
    ``valid_paths`` in file order (one epoch, no shuffle)."""
    d, t = cfg.data.sft, cfg.train
    phase = cfg.phases[0]
    kw = dict(micro_batch_size=phase.micro_batch_size, data_parallel_size=data_parallel_size,
              data_parallel_rank=data_parallel_rank, packing=d.packing, pad_id=pad_id,
              microbatch_multiple=microbatch_multiple)
    train = SFTBatches(SFTSamples(d.paths, phase.seq_length, too_long=d.too_long, epochs=d.epochs, seed=t.seed,
                                  shuffle=d.shuffle), phase.seq_length, phase.global_batch_size, **kw)
    valid = None
    if t.eval_interval > 0:
        if not d.valid_paths:
            from oc_common.errors import ConfigError

            raise ConfigError("data.sft.valid_paths: needed when train.eval_interval > 0")
        valid = SFTBatches(SFTSamples(d.valid_paths, phase.seq_length, too_long=d.too_long, shuffle=False),
                           phase.seq_length, phase.global_batch_size, **kw)
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
