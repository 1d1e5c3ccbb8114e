"""The torch_dist format read and written directly (``oc_megatron/convert/torch_dist.py``), against PyTorch and
Megatron-Core as oracles.

* A ``torch.save`` record parses in place to what ``torch.load`` gives (dtypes, views of larger storages, offsets,
  empty tensors, records without CRC-32s), without copying its data; anything else is refused by name.
* from-hf writes exactly the records Megatron-Core's own save of the model writes (keys, global shapes, chunk
  offsets and sizes, dtypes, the ``_extra_state`` objects) for OpenCoder's layout, tied embeddings, Qwen2's biases
  and a padded vocabulary; its ``checksums.json`` is what hashing the files gives; Megatron-Core loads it (the logits
  tests in ``test_convert_roundtrip.py``) and so does ``torch.distributed.checkpoint`` without a process group.
* to-hf verifies while it reads: no separate hashing pass; a changed byte in tensor data, a damaged record header or
  a truncated file is refused naming the file, and nothing is published; a checkpoint without checksums converts
  with a warning.
* Neither direction starts a process group, imports Megatron-Core or applies the CPU shims.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from test_convert_roundtrip import assert_bit_exact, make_hf_model, read_hf_tensors

from oc_common.errors import CheckpointError, ConversionError
from oc_megatron.convert import torch_dist as td
from oc_megatron.convert import torch_record as tr
from oc_megatron.convert.from_hf import from_hf
from oc_megatron.convert.to_hf import to_hf


def _record(t: torch.Tensor, crc: bool = True) -> bytearray:
    from torch.utils.serialization import config

    buf = io.BytesIO()
    saved, config.save.compute_crc32 = config.save.compute_crc32, crc
    try:
        torch.save(t, buf)
    finally:
        config.save.compute_crc32 = saved
    return bytearray(buf.getvalue())


@pytest.mark.parametrize("case", ["fp32", "bf16", "fp16", "int64", "view", "offset", "empty", "3d", "no_crc"])
def test_a_record_parses_in_place_like_torch_load(case):
    base = torch.randn(6, 5)
    t = {"fp32": base, "bf16": base.bfloat16(), "fp16": base.half(), "int64": torch.arange(30).reshape(5, 6),
         "view": base.t(), "offset": base[2:4, 1:], "empty": torch.empty(0, 3), "3d": torch.randn(2, 3, 4),
         "no_crc": base.bfloat16()}[case]
    buf = _record(t, crc=case != "no_crc")
    want = torch.load(io.BytesIO(bytes(buf)), weights_only=True)
    got = tr.tensor_from_record(buf, "x")
    assert got.dtype == want.dtype and got.shape == want.shape and got.stride() == want.stride()
    assert torch.equal(got, want)
    if got.numel():  # a view of the buffer, not a copy
        address = torch.frombuffer(buf, dtype=torch.uint8).data_ptr()
        assert address <= got.data_ptr() < address + len(buf)


def test_anything_but_a_tensor_record_is_refused():
    obj = io.BytesIO()
    torch.save({"a": 1}, obj)
    with pytest.raises(ConversionError, match="shard.distcp: not a saved tensor"):
        tr.tensor_from_record(bytearray(obj.getvalue()), "shard.distcp")
    with pytest.raises(ConversionError, match="not a saved tensor"):
        tr.tensor_from_record(bytearray(b"PK\x03\x04 not a zip at all"), "x")
    record = _record(torch.randn(100))
    with pytest.raises(ConversionError, match="not a saved tensor|shorter"):
        tr.tensor_from_record(record[:300] + record[-200:], "x")  # the data cut out


# ---- from-hf against Megatron-Core's own save ------------------------------------------------------------------------
def _megatron_records(model) -> tuple[dict, set[str]]:
    """What Megatron-Core's torch_dist save writes for ``model`` (local spec, TP 1): {key: (global shape, dtype,
    sorted chunks)}, and the object keys."""
    from megatron.core.dist_checkpointing.mapping import ShardedObject, ShardedTensor, apply_factories

    from oc_megatron.convert.verify import single_process_group
    from oc_megatron.models.opencoder import build_model, transformer_config

    with single_process_group(model_parallel=True):
        tconfig = transformer_config(model, perform_initialization=False, use_cpu_initialization=True,
                                     fused_kernels=False, params_dtype=torch.bfloat16, pipeline_dtype=torch.bfloat16)
        with torch.device("meta"):
            chunks = build_model(model, tconfig, spec="local", initialize=False)
        sharded = chunks[0].sharded_state_dict()
        apply_factories(sharded)
    tensors: dict[str, tuple] = {}
    objects = set()
    for v in sharded.values():
        for t in (v if isinstance(v, list) else [v]):
            if isinstance(t, ShardedTensor):
                assert t.flattened_range is None
                sizes = (1,) * t.prepend_axis_num + tuple(t.local_shape)
                entry = tensors.setdefault(t.key, [tuple(t.global_shape), t.dtype, []])
                entry[2].append((tuple(t.global_offset), sizes))
            elif isinstance(t, ShardedObject):
                objects.add(t.unique_key)
    return {k: (shape, dtype, sorted(c)) for k, (shape, dtype, c) in tensors.items()}, objects


def _zero_hf_model(out: Path, model) -> Path:
    """A HF directory of ``model``'s shape, all zeros, bf16 (the records' layout is what is compared)."""
    from safetensors.torch import save_file

    from oc_megatron.convert import llama_mapping as lm
    from oc_megatron.convert.hf import hf_config

    shapes = lm.Table.of(model).hf_tensor_shapes(lm.Dims.of(model), model.num_layers)
    out.mkdir()
    save_file({n: torch.zeros(s, dtype=torch.bfloat16) for n, s in shapes.items()}, str(out / "model.safetensors"))
    (out / "config.json").write_text(json.dumps(hf_config(model, torch.bfloat16, None, 0)))
    return out


@pytest.mark.parametrize("features", [{}, {"tie_embeddings": True}, {"qkv_bias": True}, {"vocab_size": 1003}],
                         ids=["opencoder", "tied", "qkv_bias", "padded_vocab"])
def test_from_hf_writes_what_megatron_core_saves(features, tmp_path):
    from oc_megatron.models.opencoder import ModelConfig
    from oc_megatron.training.checkpoint import read_train_state
    from oc_megatron.training.checksums import verify_checkpoint

    hf = _zero_hf_model(tmp_path / "hf", ModelConfig.from_preset("tiny", num_layers=3, **features))
    from_hf(hf, tmp_path / "ckpt")
    it = tmp_path / "ckpt" / "iter_0000000"
    model = ModelConfig.model_validate(read_train_state(it).model)
    metadata = td.read_metadata(it)
    ours, our_objects = {}, set()
    for key, entry in metadata.state_dict_metadata.items():
        if not td.is_tensor_entry(entry):
            our_objects.add(key)
        else:
            ours[key] = (tuple(entry.size), entry.properties.dtype,
                         sorted((tuple(c.offsets), tuple(c.sizes)) for c in entry.chunks))
    theirs, their_objects = _megatron_records(model)
    assert ours == theirs
    assert our_objects == their_objects
    for key in our_objects:  # each object record is what Megatron-Core serialises: torch.save([data]), data None
        info = metadata.storage_data[next(i for i in metadata.storage_data if i.fqn == key)]
        with open(it / info.relative_path, "rb") as f:
            f.seek(info.offset)
            assert torch.load(io.BytesIO(f.read(info.length)), weights_only=True) == [None]
    assert json.loads((it / td.CONFIG_FILE).read_text()) == td.BACKEND_CONFIG
    assert torch.load(it / td.COMMON_FILE)["train_state"]["model"] == model.model_dump()
    assert verify_checkpoint(it)  # the checksums computed while writing are the files'


def test_torch_dcp_loads_a_from_hf_checkpoint_without_a_process_group(tmp_path, tokenizer):
    import torch.distributed.checkpoint as dcp

    hf = make_hf_model(tmp_path / "hf", "mha", tokenizer)
    from_hf(hf, tmp_path / "ckpt")
    path = tmp_path / "ckpt" / "iter_0000000"
    state = {"embedding.word_embeddings.weight": torch.empty(384, 48),
             "decoder.layers.mlp.linear_fc1.weight": torch.empty(2, 160, 48)}
    dcp.load(state, checkpoint_id=str(path), no_dist=True)
    want = read_hf_tensors(hf)
    assert torch.equal(state["embedding.word_embeddings.weight"][:320], want["model.embed_tokens.weight"])
    assert torch.equal(state["decoder.layers.mlp.linear_fc1.weight"][1],
                       torch.cat([want["model.layers.1.mlp.gate_proj.weight"],
                                  want["model.layers.1.mlp.up_proj.weight"]]))


# ---- to-hf verifies while reading ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def converted(tmp_path_factory, tokenizer) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("torch_dist")
    hf = make_hf_model(root / "hf", "gqa", tokenizer)
    from_hf(hf, root / "ckpt", tp=2)
    return {"hf": hf, "ckpt": root / "ckpt"}


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory) -> Path:
    from test_convert_roundtrip import _make_tokenizer

    return _make_tokenizer(tmp_path_factory.mktemp("tok") / "tokenizer")


def _copy(ckpt: Path, to: Path) -> Path:
    import shutil

    return Path(shutil.copytree(ckpt, to))


def test_to_hf_verifies_in_the_same_pass(converted, tmp_path, monkeypatch):
    from oc_megatron.training import checksums

    def no_second_pass(*args, **kwargs):
        raise AssertionError("a separate hashing pass")

    monkeypatch.setattr(checksums, "verify_checkpoint", no_second_pass)
    monkeypatch.setattr(checksums, "file_sha256", no_second_pass)
    monkeypatch.setattr(checksums, "hash_files", no_second_pass)
    to_hf(converted["ckpt"], tmp_path / "hf")
    assert_bit_exact(read_hf_tensors(converted["hf"]), read_hf_tensors(tmp_path / "hf"))


def _record_place(ckpt: Path, key: str) -> tuple[Path, int, int]:
    """(file, byte offset, length) of the first record of ``key``."""
    metadata = td.read_metadata(ckpt)
    info = next(v for i, v in metadata.storage_data.items() if i.fqn == key)
    return ckpt / info.relative_path, info.offset, info.length


@pytest.mark.parametrize("where", ["tensor_data", "record_header", "truncated", "metadata"])
def test_to_hf_refuses_a_corrupt_file_by_name(converted, tmp_path, where):
    ckpt = _copy(converted["ckpt"], tmp_path / "ckpt")
    it = ckpt / "iter_0000000"
    assert sorted(p.name for p in it.glob("*.distcp")) == ["__0_0.distcp", "__0_1.distcp"]  # two writer threads
    if where == "tensor_data":
        name, offset, length = _record_place(it, "embedding.word_embeddings.weight")
        with open(name, "r+b") as f:
            f.seek(offset + length // 2)  # inside the tensor's data: the record still parses
            f.write(b"\0" * 64)
        match = r"content changed since it was saved \(sha256 mismatch\)"
    elif where == "record_header":
        name, offset, _ = _record_place(it, "decoder.final_layernorm.weight")
        with open(name, "r+b") as f:
            f.seek(offset)
            f.write(b"\0" * 8)  # the record's zip signature: it no longer parses
        match = r"content changed since it was saved \(sha256 mismatch\)"
    elif where == "truncated":
        name = it / "__0_1.distcp"
        with open(name, "r+b") as f:
            f.truncate(name.stat().st_size - 10)
        match = r"bytes, \d+ when saved"
    else:
        name = it / td.METADATA_FILE
        name.write_bytes(name.read_bytes()[:-1] + b"x")
        match = r"content changed since it was saved"
    with pytest.raises(CheckpointError, match=match) as e:
        to_hf(ckpt, tmp_path / "hf")
    assert str(name) in str(e.value)
    assert not (tmp_path / "hf").exists() and not list(tmp_path.glob(".hf.*"))


def test_a_checkpoint_without_checksums_converts_with_a_warning(converted, tmp_path, caplog):
    from oc_megatron.training.checksums import CHECKSUMS_FILE

    ckpt = _copy(converted["ckpt"], tmp_path / "ckpt")
    (ckpt / "iter_0000000" / CHECKSUMS_FILE).unlink()
    to_hf(ckpt, tmp_path / "hf")
    assert "loading it unverified" in caplog.text
    assert_bit_exact(read_hf_tensors(converted["hf"]), read_hf_tensors(tmp_path / "hf"))


_NO_PROCESS_GROUP = """
import json, sys
from oc_megatron.convert.from_hf import from_hf
from oc_megatron.convert.to_hf import to_hf
from oc_megatron.models.cpu_compat import cpu_shims_active
import torch
from_hf(sys.argv[1], sys.argv[2])
to_hf(sys.argv[2], sys.argv[3])
print(json.dumps({"process_group": torch.distributed.is_initialized(), "shims": cpu_shims_active(),
                  "megatron": sorted(m for m in sys.modules if m.startswith(("megatron.core.dist_checkpointing",
                                                                             "megatron.core.parallel_state")))}))
"""


def test_conversion_needs_no_process_group_no_megatron_and_no_shims(converted, tmp_path):
    proc = subprocess.run([sys.executable, "-c", _NO_PROCESS_GROUP, str(converted["hf"]), str(tmp_path / "ckpt"),
                           str(tmp_path / "hf")], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == {"process_group": False, "shims": False,
                                                                 "megatron": []}
    assert_bit_exact(read_hf_tensors(converted["hf"]), read_hf_tensors(tmp_path / "hf"))
