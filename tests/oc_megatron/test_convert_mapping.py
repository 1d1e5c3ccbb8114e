"""The conversion table against both modelling codes, the fusion rules, and our streaming safetensors I/O.

* HF side: the table's names and shapes are exactly ``LlamaForCausalLM(config).state_dict()`` (GQA and MHA).
* Megatron side: the table's keys and global shapes are exactly what a GPTModel's sharded state dict saves.
* Fusion rules: the grouped QKV layout is checked against its definition (per query group: the group's query heads,
  then its key head, then its value head), and both rules invert exactly.
* Safetensors: files we stream are read back by the ``safetensors`` package; truncation is detected.
"""

from __future__ import annotations

import json
import struct

import pytest
import torch

from oc_common.errors import ConversionError
from oc_megatron.convert import llama_mapping as lm
from oc_megatron.convert.hf import (
    INDEX_FILE,
    SafetensorsShardWriter,
    parse_size,
    plan_shards,
    read_safetensors_index,
    read_tensor,
)

GQA = lm.Dims(vocab=320, hidden=64, heads=4, groups=2, head_dim=16, ffn=96)
MHA = lm.Dims(vocab=320, hidden=48, heads=4, groups=4, head_dim=12, ffn=80)


def _hf_config(d: lm.Dims, layers: int):
    from transformers import LlamaConfig

    return LlamaConfig(vocab_size=d.vocab, hidden_size=d.hidden, intermediate_size=d.ffn, num_hidden_layers=layers,
                       num_attention_heads=d.heads, num_key_value_heads=d.groups, tie_word_embeddings=False)


@pytest.mark.parametrize("dims", [GQA, MHA], ids=["gqa", "mha"])
@pytest.mark.parametrize("family", ["llama", "llama_tied", "qwen2", "qwen2_tied"])
def test_table_matches_transformers(dims, family):
    from transformers import LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

    tied = family.endswith("_tied")
    if family.startswith("qwen2"):
        config = Qwen2Config(vocab_size=dims.vocab, hidden_size=dims.hidden, intermediate_size=dims.ffn,
                             num_hidden_layers=3, num_attention_heads=dims.heads, num_key_value_heads=dims.groups,
                             tie_word_embeddings=tied)
        cls = Qwen2ForCausalLM
    else:
        config, cls = _hf_config(dims, 3), LlamaForCausalLM
        config.tie_word_embeddings = tied
    with torch.device("meta"):
        model = cls(config)
    theirs = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    if tied:  # the state dict shows the shared matrix twice; the files (save_pretrained) hold it once
        assert theirs.pop("lm_head.weight") == theirs["model.embed_tokens.weight"]
    ours = lm.Table.for_features(tie_embeddings=tied, qkv_bias=family.startswith("qwen2")).hf_tensor_shapes(dims, 3)
    assert ours == theirs


@pytest.mark.parametrize("features", [{}, {"tie_embeddings": True}, {"qkv_bias": True}, {"vocab_size": 1003}],
                         ids=["opencoder", "tied", "qkv_bias", "padded_vocab"])
def test_table_matches_megatron_sharded_state_dict(features):
    from megatron.core.dist_checkpointing.mapping import ShardedTensor, apply_factories

    from oc_megatron.convert.megatron_ckpt import LAYER_PLACEHOLDER, disk_key
    from oc_megatron.convert.verify import single_process_group
    from oc_megatron.models.opencoder import ModelConfig, build_model, transformer_config

    model = ModelConfig.from_preset("tiny", num_layers=3, **features)
    with single_process_group(model_parallel=True):
        with torch.device("meta"):
            chunks = build_model(model, transformer_config(model, perform_initialization=False), spec="local",
                                 initialize=False)
        sharded = chunks[0].sharded_state_dict()
        apply_factories(sharded)  # the SwiGLU factory: fc1 is saved as two pieces of one global tensor
    saved: dict[str, tuple[int, ...]] = {}
    for v in sharded.values():
        for t in (v if isinstance(v, list) else [v]):
            if isinstance(t, ShardedTensor):
                saved[t.key] = tuple(t.global_shape)
    dims = lm.Dims.of(model, vocab_rows=model.padded_vocab_size())
    assert dims.size("Vp") == 1024  # 1003 (padded_vocab) and tiny's 1024 both have 1024 rows at TP 1
    table = {}
    for m in lm.Table.of(model).entries:
        shape = m.megatron_shape(dims)
        table[disk_key(m.megatron)] = (model.num_layers, *shape) if LAYER_PLACEHOLDER in m.megatron else shape
    assert table == saved


@pytest.mark.parametrize("dims", [GQA, MHA], ids=["gqa", "mha"])
def test_grouped_qkv_layout_and_inverse(dims):
    qkv = lm.LLAMA.per_layer[1]
    assert isinstance(qkv, lm.GroupedQKV)
    H, d = dims.hidden, dims.head_dim
    hf = {qkv.q.format(i=0): torch.randn(dims.heads * d, H), qkv.k.format(i=0): torch.randn(dims.groups * d, H),
          qkv.v.format(i=0): torch.randn(dims.groups * d, H)}
    fused = qkv.to_megatron(hf, dims, 0)
    q_per_group = dims.heads // dims.groups
    rows = (q_per_group + 2) * d
    q, k, v = hf.values()
    for g in range(dims.groups):  # the definition, group by group
        block = fused[g * rows:(g + 1) * rows]
        assert torch.equal(block[:q_per_group * d], q[g * q_per_group * d:(g + 1) * q_per_group * d])
        assert torch.equal(block[q_per_group * d:(q_per_group + 1) * d], k[g * d:(g + 1) * d])
        assert torch.equal(block[(q_per_group + 1) * d:], v[g * d:(g + 1) * d])
    back = qkv.to_hf(fused, dims, 0)
    assert back.keys() == hf.keys() and all(torch.equal(back[n], hf[n]) for n in hf)


def test_gated_mlp_is_gate_then_up_and_inverts():
    fc1 = lm.LLAMA.per_layer[4]
    assert isinstance(fc1, lm.GatedMLP)
    gate, up = torch.randn(GQA.ffn, GQA.hidden), torch.randn(GQA.ffn, GQA.hidden)
    fused = fc1.to_megatron({fc1.gate.format(i=2): gate, fc1.up.format(i=2): up}, GQA, 2)
    assert torch.equal(fused[:GQA.ffn], gate) and torch.equal(fused[GQA.ffn:], up)
    back = fc1.to_hf(fused, GQA, 2)
    assert torch.equal(back["model.layers.2.mlp.gate_proj.weight"], gate)
    assert torch.equal(back["model.layers.2.mlp.up_proj.weight"], up)


def test_qkv_bias_uses_the_grouped_layout_of_the_weights():
    weight, bias = lm.Table.for_features(qkv_bias=True).per_layer[1:3]
    assert isinstance(bias, lm.GroupedQKV) and bias.megatron.endswith("linear_qkv.bias")
    hf_w = {n.format(i=0): torch.randn(s) for n, s in weight.hf_shapes(GQA).items()}
    hf_b = {n: t[:, 0].clone() for n, t in zip(bias.hf_shapes(GQA, 0), hf_w.values(), strict=True)}
    # the bias of each fused row is the bias of the HF row the weight row came from
    assert torch.equal(bias.to_megatron(hf_b, GQA, 0), weight.to_megatron(hf_w, GQA, 0)[:, 0])
    back = bias.to_hf(bias.to_megatron(hf_b, GQA, 0), GQA, 0)
    assert all(torch.equal(back[n], hf_b[n]) for n in hf_b)


def test_vocab_rows_pad_like_megatron_and_unpad_exactly():
    emb = lm.LLAMA.first[0]
    dims = lm.Dims(vocab=1003, hidden=8, heads=2, groups=1, head_dim=4, ffn=16, vocab_rows=1024)
    hf = torch.randn(1003, 8)
    padded = emb.to_megatron({"model.embed_tokens.weight": hf}, dims)
    assert padded.shape == (1024, 8) == emb.megatron_shape(dims)
    assert torch.equal(padded[:1003], hf)
    assert torch.equal(padded[1003:], hf[-1].expand(21, 8))  # Megatron-LM's converter: copies of the last row
    assert torch.equal(emb.to_hf(padded, dims)["model.embed_tokens.weight"], hf)


def test_parse_size():
    assert parse_size("5GB") == 5 * 10**9
    assert parse_size("2GiB") == 2 * 2**30
    assert parse_size("500mb") == 500 * 10**6
    assert parse_size("1024") == 1024
    with pytest.raises(ConversionError, match="expected a size"):
        parse_size("five gigs")


def test_plan_shards_packs_in_order_and_isolates_big_tensors():
    shapes = {"a": (10,), "b": (10,), "big": (100,), "c": (5,)}
    shards = plan_shards(shapes, torch.float32, max_shard_bytes=80)
    assert [s.names for s in shards] == [["a", "b"], ["big"], ["c"]]
    assert [s.file for s in shards] == [f"model-0000{k}-of-00003.safetensors" for k in (1, 2, 3)]


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_streamed_shards_read_back_with_safetensors(tmp_path, dtype):
    from safetensors import safe_open

    tensors = {"x.weight": torch.randn(7, 5).to(dtype), "y.weight": torch.randn(3).to(dtype),
               "z.weight": torch.randn(4, 4, 2).to(dtype)}
    shapes = {k: tuple(v.shape) for k, v in tensors.items()}
    with SafetensorsShardWriter(tmp_path, shapes, dtype, max_shard_bytes=60) as w:
        for name, t in tensors.items():
            w.write(name, t)
    index = json.loads((tmp_path / INDEX_FILE).read_text())
    assert set(index["weight_map"]) == set(tensors)
    assert index["metadata"]["total_size"] == sum(t.numel() * t.element_size() for t in tensors.values())
    for name, file in index["weight_map"].items():
        with safe_open(str(tmp_path / file), "pt") as f:
            assert torch.equal(f.get_tensor(name), tensors[name])
        ours = read_safetensors_index(tmp_path / file)[name]
        assert torch.equal(read_tensor(ours), tensors[name])
        raw = (tmp_path / file).read_bytes()
        assert (8 + struct.unpack("<Q", raw[:8])[0]) % 8 == 0  # aligned data section


def test_writer_places_pieces_in_any_order_and_refuses_gaps_and_wrong_shapes(tmp_path):
    """to-hf writes each saved chunk where it belongs (rows, or rows of a column range: a TP rank's piece); the file
    is the same as writing whole tensors in order, and a tensor left incomplete is an error."""
    from safetensors import safe_open

    a, b = torch.randn(6, 4), torch.randn(3)
    (tmp_path / "whole").mkdir()
    with SafetensorsShardWriter(tmp_path / "whole", {"a": (6, 4), "b": (3,)}, torch.float32, 10**6) as w:
        w.write("a", a)
        w.write("b", b)
    (tmp_path / "pieces").mkdir()
    with SafetensorsShardWriter(tmp_path / "pieces", {"a": (6, 4), "b": (3,)}, torch.float32, 10**6) as w:
        w.write_rows("b", 1, b[1:])
        w.write_rows("a", 2, a[2:6, 1:4], col=1)  # a column range: one row at a time
        w.write_rows("a", 0, a[:2])
        w.write_rows("b", 0, b[:1])
        w.write_rows("a", 2, a[2:6, :1], col=0)
    name = "model-00001-of-00001.safetensors"
    assert (tmp_path / "pieces" / name).read_bytes() == (tmp_path / "whole" / name).read_bytes()
    with safe_open(str(tmp_path / "pieces" / name), "pt") as f:
        assert torch.equal(f.get_tensor("a"), a) and torch.equal(f.get_tensor("b"), b)
    with pytest.raises(RuntimeError, match=r"not completely written, e.g. a \(16 of 24 elements\)"):
        with SafetensorsShardWriter(tmp_path, {"a": (6, 4)}, torch.float32, 10**6) as w:
            w.write_rows("a", 0, a[:4])
    with pytest.raises(RuntimeError, match="planned"):
        with SafetensorsShardWriter(tmp_path, {"a": (2,)}, torch.float32, 10**6) as w:
            w.write("a", torch.zeros(3))
    with pytest.raises(RuntimeError, match="outside"):
        with SafetensorsShardWriter(tmp_path, {"a": (6, 4)}, torch.float32, 10**6) as w:
            w.write_rows("a", 5, a[:2])


def test_truncated_safetensors_is_detected(tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "m.safetensors"
    save_file({"a": torch.randn(100), "b": torch.randn(100)}, str(path))
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(ConversionError, match="truncated"):
        read_safetensors_index(path)
    path.write_bytes(b"\x01\x02")
    with pytest.raises(ConversionError, match="truncated"):
        read_safetensors_index(path)
