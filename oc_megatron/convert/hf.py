"""Hugging Face model directories (Llama, Qwen2): config translation, streaming safetensors I/O, tokenizer files.

Safetensors is read and written here with plain file I/O rather than through the ``safetensors`` package, for two
reasons that matter for an 8B model on a 24 GiB machine:

* writing: ``safetensors.torch.save_file`` needs every tensor of a file in memory at once; a file is written here
  header first (all shapes are known from the config) and then piece by piece, in any order, each piece at its
  place (``pwrite``), as to-hf's reading produces them;
* reading: ``safe_open`` memory-maps the whole file, and every page it touches counts in the process's resident set
  until unmapped; here the headers give each tensor's byte range, which from-hf copies a mapped window at a time
  (``torch_dist``), and ``read_tensor`` reads one range into its own buffer.

The format is the published one (https://huggingface.co/docs/safetensors): an 8-byte little-endian header length,
a JSON header ``{name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {...}}`` padded with spaces to a
multiple of 8, then the raw little-endian tensor bytes. Tests read our files with ``safetensors`` and transformers.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import struct
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from oc_common.errors import ConversionError
from oc_common.fileio import atomic_write_json
from oc_common.log import get_logger

log = get_logger(__name__)

INDEX_FILE = "model.safetensors.index.json"
SINGLE_FILE = "model.safetensors"

# HF tokenizer directory contents (fast and slow tokenizers, chat template); copied as they are.
TOKENIZER_FILES = (
    "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json", "tokenizer.model",
    "vocab.json", "merges.txt", "vocab.txt", "chat_template.jinja", "chat_template.json",
)

DTYPES: dict[str, torch.dtype] = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
_SAFETENSORS_DTYPE = {torch.float32: "F32", torch.bfloat16: "BF16", torch.float16: "F16"}
_TORCH_DTYPE = {v: k for k, v in _SAFETENSORS_DTYPE.items()}
_HF_DTYPE_NAME = {torch.float32: "float32", torch.bfloat16: "bfloat16", torch.float16: "float16"}


def dtype_name(dtype: torch.dtype) -> str:
    return next(k for k, v in DTYPES.items() if v == dtype)


def parse_size(text: str | int) -> int:
    """``5GB`` -> 5e9 bytes, ``500MiB`` -> 500 * 2**20 (HF's convention: GB is decimal, GiB binary)."""
    if isinstance(text, int):
        return text
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]i?B|B)?\s*", text, flags=re.IGNORECASE)
    if m is None:
        raise ConversionError(f"--max-shard-size {text!r}: expected a size like 5GB, 500MB or 2GiB")
    unit = (m.group(2) or "B").upper()
    scale = {"B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
             "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40}[unit]
    size = int(float(m.group(1)) * scale)
    if size <= 0:
        raise ConversionError(f"--max-shard-size {text!r} must be positive")
    return size


# --------------------------------------------------------------------------------------------------------------------
# Reading


@dataclass(frozen=True)
class TensorEntry:
    file: Path
    dtype: torch.dtype
    shape: tuple[int, ...]
    begin: int  # absolute byte offsets in the file
    end: int


def _read_header(path: Path) -> dict[str, Any]:
    size = path.stat().st_size
    with open(path, "rb") as f:
        raw = f.read(8)
        if len(raw) < 8:
            raise ConversionError(f"{path}: truncated safetensors file ({size} bytes)")
        (n,) = struct.unpack("<Q", raw)
        if n > min(size - 8, 100 * 2**20):
            raise ConversionError(f"{path}: not a safetensors file or truncated (header length {n}, file {size} B)")
        try:
            header = json.loads(f.read(n))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ConversionError(f"{path}: corrupt safetensors header ({e})") from None
    if not isinstance(header, dict):
        raise ConversionError(f"{path}: corrupt safetensors header")
    header["__data_start__"] = 8 + n
    header["__file_size__"] = size
    return header


def read_safetensors_index(path: Path) -> dict[str, TensorEntry]:
    """Every tensor of one safetensors file, checked against the file size (a truncated file is an error here)."""
    header = _read_header(path)
    start, size = header.pop("__data_start__"), header.pop("__file_size__")
    header.pop("__metadata__", None)
    entries: dict[str, TensorEntry] = {}
    for name, info in header.items():
        dtype = _TORCH_DTYPE.get(info.get("dtype"))
        if dtype is None:
            raise ConversionError(f"{path}: tensor {name} has dtype {info.get('dtype')}; "
                                  f"expected one of {', '.join(_TORCH_DTYPE)}")
        shape = tuple(info["shape"])
        begin, end = info["data_offsets"]
        numel = 1
        for s in shape:
            numel *= s
        if end - begin != numel * dtype.itemsize:
            raise ConversionError(f"{path}: tensor {name}: {end - begin} bytes for shape {list(shape)}")
        if start + end > size:
            raise ConversionError(f"{path}: truncated: tensor {name} ends at byte {start + end}, the file has {size}")
        entries[name] = TensorEntry(path, dtype, shape, start + begin, start + end)
    return entries


def read_tensor(entry: TensorEntry) -> torch.Tensor:
    """One tensor, read with pread into its own buffer (no memory map)."""
    n = entry.end - entry.begin
    buf = bytearray(n)
    view = memoryview(buf)
    with open(entry.file, "rb", buffering=0) as f:
        f.seek(entry.begin)
        got = 0
        while got < n:
            k = f.readinto(view[got:])
            if not k:
                raise ConversionError(f"{entry.file}: truncated while reading (byte {entry.begin + got})")
            got += k
    if n == 0:
        return torch.empty(entry.shape, dtype=entry.dtype)
    return torch.frombuffer(buf, dtype=entry.dtype).reshape(entry.shape)


class HFModelDir:
    """A HF model directory on disk: ``config.json`` and its safetensors weights (one file, or shards + index)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.is_dir():
            raise ConversionError(f"{self.path}: not a directory (expected a Hugging Face model directory)")
        cfg = self.path / "config.json"
        if not cfg.is_file():
            raise ConversionError(f"{self.path}: no config.json (not a Hugging Face model directory)")
        try:
            self.config: dict[str, Any] = json.loads(cfg.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise ConversionError(f"{cfg}: invalid JSON ({e})") from None

    @functools.cached_property
    def tensors(self) -> dict[str, TensorEntry]:
        """Every tensor of the weight files, by name (headers read and checked against the file sizes)."""
        index = self.path / INDEX_FILE
        if index.is_file():
            try:
                weight_map: dict[str, str] = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
            except (json.JSONDecodeError, KeyError, TypeError) as e:
                raise ConversionError(f"{index}: not a safetensors index ({e})") from None
            files = sorted(set(weight_map.values()))
            missing = [f for f in files if not (self.path / f).is_file()]
            if missing:
                raise ConversionError(f"{self.path}: shards listed in {INDEX_FILE} are missing: {', '.join(missing)}")
            per_file = {f: read_safetensors_index(self.path / f) for f in files}
            tensors = {}
            for name, f in weight_map.items():
                if name not in per_file[f]:
                    raise ConversionError(f"{self.path / f}: {INDEX_FILE} lists {name} in it, but it is not there")
                tensors[name] = per_file[f][name]
            return tensors
        single = self.path / SINGLE_FILE
        if single.is_file():
            return read_safetensors_index(single)
        if any(self.path.glob("pytorch_model*.bin")) or any(self.path.glob("*.pt")):
            raise ConversionError(f"{self.path}: only safetensors weights are supported; re-save the model with "
                                  "save_pretrained(..., safe_serialization=True)")
        raise ConversionError(f"{self.path}: no {SINGLE_FILE} or {INDEX_FILE}")

    def read(self, name: str) -> torch.Tensor:
        return read_tensor(self.tensors[name])

    def tokenizer_dir(self) -> Path | None:
        return self.path if (self.path / "tokenizer.json").is_file() or (self.path / "tokenizer.model").is_file() \
            else None


# --------------------------------------------------------------------------------------------------------------------
# Config: HF LlamaConfig <-> our ModelConfig


def _rope(cfg: dict[str, Any]) -> tuple[float, str | None]:
    """(rope theta, scaling type or None) from a transformers 4.x (``rope_theta``, ``rope_scaling``) or 5.x
    (``rope_parameters``) config."""
    params = cfg.get("rope_parameters")
    if isinstance(params, dict) and "rope_theta" in params:
        kind = params.get("rope_type", "default")
        return float(params["rope_theta"]), None if kind == "default" else kind
    scaling = cfg.get("rope_scaling")
    kind = None
    if isinstance(scaling, dict):
        kind = scaling.get("rope_type", scaling.get("type"))
        kind = None if kind == "default" else kind
    return float(cfg.get("rope_theta", 10000.0)), kind


# The ModelConfig fields that define the architecture (the weights' shapes and the forward pass); seq_length and
# init_method_std may differ between a checkpoint and a preset without changing what the weights mean.
ARCHITECTURE_FIELDS = ("num_layers", "hidden_size", "num_attention_heads", "num_query_groups", "ffn_hidden_size",
                       "vocab_size", "rotary_base", "norm_epsilon", "tie_embeddings", "qkv_bias")

# The HF families we convert: model_type -> architecture class. A Qwen2 is a Llama with biases on q/k/v (and only
# there); anything else about them maps the same way.
HF_ARCHITECTURES = {"llama": "LlamaForCausalLM", "qwen2": "Qwen2ForCausalLM"}


def model_config_from_hf(cfg: dict[str, Any], source: str, preset: str | None = None,
                         make_vocab_size_divisible_by: int = 128):
    """Our ``ModelConfig`` for a HF Llama / Qwen2 config; anything we cannot represent exactly is an error naming
    the key."""
    from oc_megatron.models.opencoder import PRESETS, ModelConfig

    model_type = cfg.get("model_type")
    archs = cfg.get("architectures") or []
    if model_type not in HF_ARCHITECTURES or (archs and HF_ARCHITECTURES[model_type] not in archs):
        raise ConversionError(f"{source}: not a Llama or Qwen2 model (model_type={model_type!r}, "
                              f"architectures={archs}); only {', '.join(HF_ARCHITECTURES.values())} checkpoints "
                              "convert")
    qwen2 = model_type == "qwen2"
    theta, scaling = _rope(cfg)
    heads = cfg["num_attention_heads"]
    unsupported = {
        "rope scaling": scaling,
        # Llama's attention_bias puts a bias on o_proj too, which Megatron's add_qkv_bias does not cover.
        "attention_bias": None if qwen2 else (cfg.get("attention_bias") or None),
        "mlp_bias": cfg.get("mlp_bias") or None,
        "use_sliding_window": (cfg.get("use_sliding_window") or None) if qwen2 else None,
        "hidden_act": None if cfg.get("hidden_act", "silu") == "silu" else cfg.get("hidden_act"),
        "head_dim": None if cfg.get("head_dim") in (None, cfg["hidden_size"] // heads) else cfg.get("head_dim"),
    }
    bad = {k: v for k, v in unsupported.items() if v is not None}
    if bad:
        detail = ", ".join(f"{k}={v!r}" for k, v in bad.items())
        raise ConversionError(f"{source}: unsupported {model_type} variant ({detail}); supported: SwiGLU Llama / "
                              "Qwen2 decoders with head_dim = hidden_size / num_attention_heads, plain RoPE, no "
                              "biases except Qwen2's q/k/v ones, tied or untied embeddings")
    values = dict(
        num_layers=cfg["num_hidden_layers"], hidden_size=cfg["hidden_size"], num_attention_heads=heads,
        num_query_groups=cfg.get("num_key_value_heads") or heads, ffn_hidden_size=cfg["intermediate_size"],
        vocab_size=cfg["vocab_size"], seq_length=cfg.get("max_position_embeddings", 4096), rotary_base=theta,
        norm_epsilon=cfg.get("rms_norm_eps", 1e-6), init_method_std=cfg.get("initializer_range", 0.02),
        tie_embeddings=bool(cfg.get("tie_word_embeddings", False)), qkv_bias=qwen2,
        make_vocab_size_divisible_by=make_vocab_size_divisible_by,
    )
    if preset is not None:
        if preset not in PRESETS:
            raise ConversionError(f"--preset {preset!r}: expected one of {', '.join(PRESETS)}")
        expected = PRESETS[preset].model_dump()
        diff = [f"{k}: HF {values[k]} vs preset {expected[k]}" for k in ARCHITECTURE_FIELDS
                if values[k] != expected[k]]
        if diff:
            raise ConversionError(f"{source} does not match --preset {preset}: " + "; ".join(diff))
        values["preset"] = preset
    try:
        return ModelConfig.model_validate(values)
    except ValueError as e:
        raise ConversionError(f"{source}: {e}") from None


def hf_config(model, dtype: torch.dtype, bos_token_id: int | None, eos_token_id: int | list[int] | None
              ) -> dict[str, Any]:  # noqa: ANN001 - ModelConfig
    """``config.json`` of ``LlamaForCausalLM`` (``Qwen2ForCausalLM`` for a model with q/k/v biases).

    RoPE theta is written both ways: ``rope_parameters`` (transformers >= 5) and ``rope_theta`` (transformers 4.x and
    the vLLM releases built on it), so every reader gets OpenCoder's theta (500,000 for 8B), never a default.
    """
    model_type = "qwen2" if model.qkv_bias else "llama"
    family = ({"use_sliding_window": False, "sliding_window": None, "max_window_layers": model.num_layers}
              if model.qkv_bias else
              {"head_dim": model.head_dim, "attention_bias": False, "mlp_bias": False, "pretraining_tp": 1})
    return {
        "architectures": [HF_ARCHITECTURES[model_type]],
        "model_type": model_type,
        "vocab_size": model.vocab_size,
        "hidden_size": model.hidden_size,
        "intermediate_size": model.ffn_hidden_size,
        "num_hidden_layers": model.num_layers,
        "num_attention_heads": model.num_attention_heads,
        "num_key_value_heads": model.num_query_groups,
        "hidden_act": "silu",
        "max_position_embeddings": model.seq_length,
        "initializer_range": model.init_method_std,
        "rms_norm_eps": model.norm_epsilon,
        "rope_theta": model.rotary_base,
        "rope_scaling": None,
        "rope_parameters": {"rope_type": "default", "rope_theta": model.rotary_base},
        "attention_dropout": 0.0,
        **family,
        "tie_word_embeddings": model.tie_embeddings,
        "bos_token_id": bos_token_id,
        "eos_token_id": eos_token_id,
        "use_cache": True,
        "dtype": _HF_DTYPE_NAME[dtype],
        "torch_dtype": _HF_DTYPE_NAME[dtype],
        "transformers_version": _transformers_version(),
    }


def generation_config(bos_token_id: int | None, eos_token_id: int | list[int] | None) -> dict[str, Any]:
    return {"_from_model_config": True, "bos_token_id": bos_token_id, "eos_token_id": eos_token_id,
            "transformers_version": _transformers_version()}


def _transformers_version() -> str:
    """The installed transformers' version, from its package metadata: importing transformers costs a second."""
    from importlib.metadata import version

    return version("transformers")


# --------------------------------------------------------------------------------------------------------------------
# Tokenizer files


@dataclass(frozen=True)
class TokenizerSummary:
    path: Path
    vocab_size: int  # ids in [0, vocab_size), added tokens included
    bos_token_id: int | None
    eos_token_id: int | None


def read_tokenizer(path: Path) -> TokenizerSummary:
    """Vocabulary size and BOS/EOS ids of a HF tokenizer directory (``tokenizer.json`` based)."""
    from oc_megatron.data.tokenizer import load_tokenizer

    if not path.is_dir():
        raise ConversionError(f"{path}: tokenizer directory not found")
    if not (path / "tokenizer.json").is_file():  # e.g. a sentencepiece-only tokenizer.model: copied, not checked
        log.warning("%s has no tokenizer.json: its vocabulary is not checked against the model", path)
        return TokenizerSummary(path, 0, None, None)
    try:
        tok = load_tokenizer(path)
    except Exception as e:  # noqa: BLE001 - tokenizers raises plain Exceptions for unreadable files
        raise ConversionError(f"{path}: cannot read the tokenizer ({e})") from None
    vocab = tok.get_vocab(with_added_tokens=True)
    special: dict[str, Any] = {}
    for name in ("special_tokens_map.json", "tokenizer_config.json"):  # tokenizer_config.json wins
        f = path / name
        if f.is_file():
            try:
                special.update({k: v for k, v in json.loads(f.read_text(encoding="utf-8")).items()
                                if k in ("bos_token", "eos_token")})
            except json.JSONDecodeError as e:
                raise ConversionError(f"{f}: invalid JSON ({e})") from None

    def token_id(key: str) -> int | None:
        tok_text = special.get(key)
        if isinstance(tok_text, dict):
            tok_text = tok_text.get("content")
        return vocab.get(tok_text) if isinstance(tok_text, str) else None

    return TokenizerSummary(path, max(vocab.values()) + 1 if vocab else 0, token_id("bos_token"), token_id("eos_token"))


def check_tokenizer_fits(tok: TokenizerSummary, vocab_rows: int) -> None:
    if tok.vocab_size > vocab_rows:
        raise ConversionError(f"{tok.path}: the tokenizer has {tok.vocab_size} ids but the model has {vocab_rows} "
                              "embedding rows (vocabulary / padding mismatch: wrong tokenizer?)")


def copy_tokenizer_files(src: Path, dst: Path) -> list[str]:
    dst.mkdir(parents=True, exist_ok=True)
    copied = []
    for name in TOKENIZER_FILES:
        if (src / name).is_file():
            shutil.copyfile(src / name, dst / name)
            copied.append(name)
    return copied


# --------------------------------------------------------------------------------------------------------------------
# Writing: shards planned up front, each written header first and then tensor by tensor


@dataclass
class _Shard:
    file: str
    names: list[str] = field(default_factory=list)
    nbytes: int = 0


def plan_shards(shapes: dict[str, tuple[int, ...]], dtype: torch.dtype, max_shard_bytes: int) -> list[_Shard]:
    """Consecutive tensors packed into files of at most ``max_shard_bytes`` (one larger tensor gets its own file),
    the way ``save_pretrained`` does; file names ``model-0000k-of-0000n.safetensors``."""
    shards: list[_Shard] = []
    for name, shape in shapes.items():
        nbytes = dtype.itemsize
        for s in shape:
            nbytes *= s
        if not shards or (shards[-1].names and shards[-1].nbytes + nbytes > max_shard_bytes):
            shards.append(_Shard(""))
        shards[-1].names.append(name)
        shards[-1].nbytes += nbytes
    for k, shard in enumerate(shards, 1):
        shard.file = f"model-{k:05d}-of-{len(shards):05d}.safetensors"
    return shards


def _numel(shape: tuple[int, ...]) -> int:
    n = 1
    for s in shape:
        n *= s
    return n


def _pwrite_all(fd: int, data, offset: int) -> None:  # noqa: ANN001 - bytes-like
    """``os.pwrite`` until all of ``data`` is written (one call writes at most ~2 GiB)."""
    view = memoryview(data).cast("B")
    done = 0
    while done < len(view):
        done += os.pwrite(fd, view[done:done + (1 << 30)], offset + done)


class SafetensorsShardWriter:
    """Writes a sharded safetensors model plus ``model.safetensors.index.json``, its tensors arriving in any order and
    in pieces (a range of rows, or a range of rows of a range of columns).

    Every file gets its header first (all shapes are known from the config); each piece is then written at its
    place with ``pwrite``, so memory holds only the piece being written and the files are the same
    whatever order the pieces come in. Usage: ``with SafetensorsShardWriter(...) as w: w.write(name, t)`` (a whole
    tensor) or ``w.write_rows(name, row, block, col)``; leaving the block without an exception checks that every
    element of every tensor was written, fsyncs the files and writes the index.
    """

    def __init__(self, out_dir: Path, shapes: dict[str, tuple[int, ...]], dtype: torch.dtype, max_shard_bytes: int):
        self.out_dir = out_dir
        self.shapes = shapes
        self.dtype = dtype
        self.shards = plan_shards(shapes, dtype, max_shard_bytes)
        self._fds: list[int] = []
        self._place: dict[str, tuple[int, int]] = {}  # name -> (file index, absolute byte offset of its data)
        self._written: dict[str, int] = dict.fromkeys(shapes, 0)  # elements written per tensor

    def __enter__(self) -> SafetensorsShardWriter:
        try:
            for k, shard in enumerate(self.shards):
                self._open(k, shard)
        except BaseException:
            self._close(sync=False)
            raise
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self._close(sync=exc_type is None)
        if exc_type is None:
            missing = [f"{n} ({w} of {_numel(self.shapes[n])} elements)" for n, w in self._written.items()
                       if w != _numel(self.shapes[n])]
            if missing:
                raise RuntimeError(f"{len(missing)} tensors not completely written, e.g. {', '.join(missing[:3])}")
            weight_map = {name: shard.file for shard in self.shards for name in shard.names}
            atomic_write_json(self.out_dir / INDEX_FILE, {
                "metadata": {"total_size": sum(s.nbytes for s in self.shards)},
                "weight_map": weight_map,
            })

    def _open(self, k: int, shard: _Shard) -> None:
        header: dict[str, Any] = {"__metadata__": {"format": "pt"}}
        offset = 0
        for name in shard.names:
            nbytes = self.dtype.itemsize * _numel(self.shapes[name])
            header[name] = {"dtype": _SAFETENSORS_DTYPE[self.dtype], "shape": list(self.shapes[name]),
                            "data_offsets": [offset, offset + nbytes]}
            offset += nbytes
        raw = json.dumps(header, separators=(",", ":")).encode()
        raw += b" " * (-(8 + len(raw)) % 8)  # tensor data starts 8-byte aligned
        fd = os.open(self.out_dir / shard.file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
        self._fds.append(fd)
        head = struct.pack("<Q", len(raw)) + raw
        _pwrite_all(fd, head, 0)
        start = len(head)
        for name in shard.names:
            self._place[name] = (k, start + header[name]["data_offsets"][0])

    def _close(self, sync: bool) -> None:
        for fd in self._fds:
            if sync:
                os.fsync(fd)
            os.close(fd)
        self._fds = []

    def write(self, name: str, tensor: torch.Tensor) -> None:
        """A whole tensor."""
        if name in self.shapes and tuple(tensor.shape) != self.shapes[name]:
            raise RuntimeError(f"{name}: got {tuple(tensor.shape)} {tensor.dtype}, "
                               f"planned {self.shapes[name]} {self.dtype}")
        self.write_rows(name, 0, tensor)

    def write_rows(self, name: str, row: int, block: torch.Tensor, col: int = 0) -> None:
        """``block`` is rows ``[row, row + len(block))`` of tensor ``name`` (a row: everything after the first
        dimension); of a 2-D tensor, it may be the columns ``[col, col + block.shape[1])`` of those rows."""
        shape = self.shapes.get(name)
        if shape is None:
            raise RuntimeError(f"{name}: not a planned tensor")
        partial_rows = len(shape) == 2 and block.dim() == 2
        if (block.dtype != self.dtype or block.dim() != len(shape) or not shape
                or (not partial_rows and (tuple(block.shape[1:]) != shape[1:] or col))):
            raise RuntimeError(f"{name}: got a {tuple(block.shape)} {block.dtype} piece, planned {shape} {self.dtype}")
        rows = block.shape[0]
        width = _numel(shape[1:])
        cols = block.shape[1] if partial_rows else width
        if row < 0 or col < 0 or row + rows > shape[0] or col + cols > width:
            raise RuntimeError(f"{name}: piece at row {row}, column {col} of shape {tuple(block.shape)} lies outside "
                               f"the planned {shape}")
        k, base = self._place[name]
        data = block.detach().contiguous().reshape(-1).view(torch.uint8).numpy()
        item = self.dtype.itemsize
        if cols == width:  # whole rows: one contiguous range
            _pwrite_all(self._fds[k], memoryview(data), base + row * width * item)
        else:
            step = cols * item
            view = memoryview(data)
            for r in range(rows):
                _pwrite_all(self._fds[k], view[r * step:(r + 1) * step], base + ((row + r) * width + col) * item)
        self._written[name] += rows * cols

    def files(self) -> Iterable[str]:
        return [s.file for s in self.shards]
