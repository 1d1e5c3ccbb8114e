"""Any Llama-family checkpoint converts: a vocabulary no TP size divides and a layer count no PP size divides.

The model (issue 18): a random HF Llama, vocabulary 1,003, GQA 6 / 2 heads, head_dim 40, 3 layers, RoPE theta 5e5,
untied embeddings, fp32. Oracles: transformers (logits) and the HF files themselves (bit-exact round trips).

* from-hf at TP 2 pads the embedding / output rows to Megatron's multiple of 128 x 2 (1,024 rows; the padding repeats
  the last row, as Megatron-LM's converter does) and records the real vocabulary.
* The checkpoint loads at TP 2 / PP 1 and at TP 1 / PP 2 with an uneven split (1 + 2 layers), on gloo ranks: both
  give transformers' logits (< 1e-4) and both re-save a checkpoint that to-hf turns back into the original HF files
  bit for bit (the TP 2 one sharded over two ranks, padded rows included).
* A checkpoint padded for one layout loads into another padding (Megatron-Core's shape-mismatch load of the
  vocabulary tensors): imported with divisor 100 at TP 2 (1,200 rows), it loads at TP 1 (1,100 rows) with the same
  logits, and training it a few steps at TP 1, TP 2 and PP 2 (uneven) gives the same losses: the loss never sees
  the padded logits.
* The loss ignores padded logits: with the padded output rows set to huge values, the loss and its gradients are
  those of the unpadded model, and the padded rows get no gradient.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from megatron_test_helpers import FP32_RTOL, read_losses, run_distributed_test, train_layouts
from test_convert_roundtrip import assert_bit_exact, read_hf_tensors

from oc_common.errors import ConversionError
from oc_megatron.convert.from_hf import from_hf
from oc_megatron.convert.to_hf import to_hf

VOCAB = 1003
LOGITS_ATOL = 1e-4
HF_SHAPE = dict(vocab_size=VOCAB, hidden_size=240, intermediate_size=320, num_hidden_layers=3,
                num_attention_heads=6, num_key_value_heads=2, max_position_embeddings=64, rms_norm_eps=1e-5,
                rope_theta=5e5, tie_word_embeddings=False, bos_token_id=None, eos_token_id=0)


def make_llama(out: Path, seed: int = 0, **overrides) -> Path:
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(**{**HF_SHAPE, **overrides})
    assert cfg.head_dim == 40
    torch.manual_seed(seed)
    model = LlamaForCausalLM(cfg)
    with torch.no_grad():
        for p in model.parameters():  # norms too, so that a swapped norm would show
            p.normal_(0.0, 0.08)
    model.save_pretrained(str(out), safe_serialization=True, max_shard_size="1MB")
    return out


def tokens(seed: int = 1, batch: int = 2, seq: int = 24) -> torch.Tensor:
    return torch.randint(0, VOCAB, (batch, seq), generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module")
def llama(tmp_path_factory) -> dict[str, Path]:
    from oc_megatron.convert.verify import hf_logits

    root = tmp_path_factory.mktemp("padding")
    hf = make_llama(root / "hf")
    torch.save(tokens(), root / "tokens.pt")
    torch.save(hf_logits(hf, tokens()), root / "hf_logits.pt")
    from_hf(hf, root / "ckpt_tp2", tp=2)
    return {"root": root, "hf": hf, "ckpt_tp2": root / "ckpt_tp2"}


def test_from_hf_pads_the_vocabulary_for_tp_and_records_the_real_size(llama):
    from oc_megatron.convert.megatron_ckpt import CheckpointReader
    from oc_megatron.models.opencoder import ModelConfig
    from oc_megatron.training.checkpoint import read_train_state

    path = llama["ckpt_tp2"] / "iter_0000000"
    saved = read_train_state(path)
    assert saved.model["vocab_size"] == VOCAB and saved.model["make_vocab_size_divisible_by"] == 128
    assert saved.layout["tensor"] == 2
    hf = read_hf_tensors(llama["hf"])
    reader = CheckpointReader(path, ModelConfig.model_validate(saved.model))
    assert reader.vocab_rows == 1024  # 1003 rounded up to a multiple of 128 x 2
    embedding, output = reader.load(reader.table.first[0]), reader.load(reader.table.last[-1])
    for got, name in ((embedding, "model.embed_tokens.weight"), (output, "lm_head.weight")):
        assert got.shape == (1024, 240)
        assert torch.equal(got[:VOCAB], hf[name])
        assert torch.equal(got[VOCAB:], hf[name][-1].expand(1024 - VOCAB, 240))  # Megatron-LM's padding


def test_from_hf_tp2_round_trips_bit_exactly(llama, tmp_path):
    to_hf(llama["ckpt_tp2"], tmp_path / "hf", no_tokenizer=True)
    assert_bit_exact(read_hf_tensors(llama["hf"]), read_hf_tensors(tmp_path / "hf"))
    cfg = json.loads((tmp_path / "hf" / "config.json").read_text())
    assert cfg["vocab_size"] == VOCAB and cfg["head_dim"] == 40 and cfg["rope_theta"] == 5e5


def test_from_hf_tp1_pp2_uneven_round_trips_bit_exactly(llama, tmp_path):
    from oc_megatron.training.checkpoint import read_train_state

    from_hf(llama["hf"], tmp_path / "ckpt", pp=2, first_stage_layers=1)
    assert read_train_state(tmp_path / "ckpt").layout["pipeline_stage_layers"] == [1, 2]
    to_hf(tmp_path / "ckpt", tmp_path / "hf", no_tokenizer=True)
    assert_bit_exact(read_hf_tensors(llama["hf"]), read_hf_tensors(tmp_path / "hf"))


def test_from_hf_refuses_an_uneven_split_that_does_not_fit(llama, tmp_path):
    with pytest.raises(ConversionError, match=r"--pp 2: num_layers 3: 3 layers do not split evenly over 2 pipeline "
                                              r"stages; an uneven split that works"):
        from_hf(llama["hf"], tmp_path / "ckpt", pp=2)
    with pytest.raises(ConversionError, match=r"3 layers: first 3 and last None leave 0 layers for 1 other"):
        from_hf(llama["hf"], tmp_path / "ckpt", pp=2, first_stage_layers=3)
    with pytest.raises(ConversionError, match="first/last pipeline stage layer counts need more than one"):
        from_hf(llama["hf"], tmp_path / "ckpt", first_stage_layers=1)


# ---- Megatron forwards on gloo ranks --------------------------------------------------------------------------------
def forward_and_resave(rank: int, world_size: int, cases: list[dict]) -> None:
    """Each case: load a checkpoint at a layout, write the logits (last stage, TP rank 0), save it again."""
    from megatron.core import parallel_state as ps

    from oc_megatron.convert.verify import load_megatron_model, megatron_logits
    from oc_megatron.training.checkpoint import CheckpointSaver, current_layout, read_train_state
    from oc_megatron.training.distributed import init_distributed, init_model_parallel

    init_distributed()
    for case in cases:
        init_model_parallel(tensor_parallel=case["tp"], pipeline_parallel=case["pp"])
        chunks = load_megatron_model(case["ckpt"], tensor_parallel=case["tp"], pipeline_parallel=case["pp"],
                                     first_stage_layers=case.get("first"))
        logits = megatron_logits(chunks, torch.load(case["tokens"]))
        if logits is not None and ps.get_tensor_model_parallel_rank() == 0:
            torch.save(logits, case["logits_out"])
        if "resave" in case:
            state = read_train_state(case["ckpt"])
            state.layout = current_layout()
            CheckpointSaver(case["resave"], optimizer_format="fully_reshardable").save(chunks, None, None, state)


@pytest.fixture(scope="module")
def forwards(llama, tmp_path_factory) -> dict[str, dict[str, Path]]:
    root = tmp_path_factory.mktemp("forwards")
    llama_div100 = root / "ckpt_div100_tp2"
    from_hf(llama["hf"], llama_div100, tp=2, make_vocab_size_divisible_by=100)
    cases = {
        "tp2_pp1": dict(ckpt=llama["ckpt_tp2"], tp=2, pp=1, resave=root / "resaved_tp2"),
        "tp1_pp2_uneven": dict(ckpt=llama["ckpt_tp2"], tp=1, pp=2, first=1, resave=root / "resaved_pp2"),
        "div100_at_tp1": dict(ckpt=llama_div100, tp=1, pp=1),  # 1,200 rows in the checkpoint, 1,100 in the model
    }
    for name, c in cases.items():
        c.update(tokens=llama["root"] / "tokens.pt", logits_out=root / f"logits_{name}.pt")
    as_str = [{k: str(v) if isinstance(v, Path) else v for k, v in c.items()} for c in cases.values()]
    run_distributed_test(forward_and_resave, 2, as_str)
    return cases


@pytest.mark.parametrize("layout", ["tp2_pp1", "tp1_pp2_uneven", "div100_at_tp1"])
def test_megatron_logits_match_transformers(llama, forwards, layout):
    got = torch.load(forwards[layout]["logits_out"])
    want = torch.load(llama["root"] / "hf_logits.pt")
    assert got.shape == want.shape == (2, 24, VOCAB)
    diff = (got - want).abs().max().item()
    assert diff < LOGITS_ATOL, f"{layout}: max |logit diff| {diff}"


@pytest.mark.parametrize("layout", ["tp2_pp1", "tp1_pp2_uneven"])
def test_resaved_checkpoint_round_trips_to_hf_bit_exactly(llama, forwards, tmp_path, layout):
    resaved = forwards[layout]["resave"]
    writers = {f.name.split("_")[2] for f in (resaved / "iter_0000000").glob("__*_*.distcp")}
    assert writers == {"0", "1"}  # __RANK_N.distcp: both ranks wrote pieces
    to_hf(resaved, tmp_path / "hf", no_tokenizer=True)
    assert_bit_exact(read_hf_tensors(llama["hf"]), read_hf_tensors(tmp_path / "hf"))


# ---- the loss ignores padded logits ---------------------------------------------------------------------------------
def padded_loss_worker(rank: int, world_size: int, out_path: str) -> None:
    """Loss and gradients of a padded model whose padded output rows are huge, vs cross entropy on the real rows."""
    import torch.nn.functional as F

    from oc_megatron.models.cpu_compat import apply_cpu_shims
    from oc_megatron.models.opencoder import ModelConfig, build_model, transformer_config
    from oc_megatron.training.distributed import init_distributed, init_model_parallel, seed_everything

    apply_cpu_shims()
    init_distributed()
    init_model_parallel()
    seed_everything(0)
    model_cfg = ModelConfig(num_layers=2, hidden_size=64, num_attention_heads=4, num_query_groups=2,
                            ffn_hidden_size=96, vocab_size=VOCAB, seq_length=16)
    model = build_model(model_cfg, transformer_config(model_cfg), spec="local", seed=0)[0]
    out_w = model.output_layer.weight
    assert out_w.shape[0] == 1024
    with torch.no_grad():
        out_w[VOCAB:] = 50.0  # without the mask these rows would take all the probability mass
    ids = torch.randint(0, VOCAB, (2, 17), generator=torch.Generator().manual_seed(3))
    inputs, labels = ids[:, :-1], ids[:, 1:]
    positions = torch.arange(16).expand(2, 16)
    causal = torch.ones(16, 16, dtype=torch.bool).triu(1)[None, None]
    loss = model(inputs, positions, causal, labels=labels).mean()
    loss.backward()
    padded_grad = out_w.grad[VOCAB:].abs().max().item()
    real_grad = out_w.grad[:VOCAB].clone()
    model.zero_grad()
    logits = model(inputs, positions, causal)  # [b, s, 1024]
    want = F.cross_entropy(logits[..., :VOCAB].reshape(-1, VOCAB).float(), labels.reshape(-1))
    want.backward()
    Path(out_path).write_text(json.dumps({
        "loss": loss.item(), "want": want.item(), "padded_grad": float(padded_grad),
        "real_grad_diff": (out_w.grad[:VOCAB] - real_grad).abs().max().item(),
        "unmasked": F.cross_entropy(logits.reshape(-1, 1024).float(), labels.reshape(-1)).item()}))


def test_loss_ignores_padded_logits(tmp_path):
    out = tmp_path / "loss.json"
    run_distributed_test(padded_loss_worker, 1, str(out))
    r = json.loads(out.read_text())
    assert r["unmasked"] > r["want"] + 10  # the padded rows really would dominate
    assert r["loss"] == pytest.approx(r["want"], rel=1e-6)
    assert r["padded_grad"] == 0.0 and r["real_grad_diff"] < 1e-6


# ---- training the padded checkpoint ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def padded_training(llama, tiny_data, tmp_path_factory) -> dict[str, dict[int, float]]:
    """init_from the divisor-100 TP 2 import, 3 steps each at TP 1 (1 rank), TP 2 and PP 2 with 1 + 2 layers."""
    from oc_megatron.data.preprocess import preprocess
    from oc_megatron.data.tiny import train_bpe_tokenizer
    from oc_megatron.training.checkpoint import read_train_state

    root = tmp_path_factory.mktemp("padded_training")
    texts = [json.loads(line)["text"] for line in Path(tiny_data["corpus"]).read_text().splitlines()]
    tokenizer = train_bpe_tokenizer(texts, VOCAB, root / "tokenizer")
    preprocess(tiny_data["corpus"], root / "code", tokenizer, workers=1, append_eod=True, progress=False)
    ckpt = root / "ckpt"
    from_hf(llama["hf"], ckpt, tp=2, make_vocab_size_divisible_by=100)
    model = read_train_state(ckpt).model
    base = {
        "output_dir": "", "model": {k: v for k, v in model.items() if k != "preset"},
        "data": {"tokenizer": str(tokenizer), "blend": [{"path": str(root / "code")}], "split": "98,2,0",
                 "cache_dir": str(root / "cache")},
        "train": {"iters": 3, "micro_batch_size": 2, "global_batch_size": 4, "seq_length": 64, "seed": 7},
        "optimizer": {"lr": 1e-3, "min_lr": 1e-4},
        "schedule": {"style": "constant", "warmup_steps": 0},
        "checkpoint": {"init_from": str(ckpt), "save_final": False},
        "logging": {"interval": 1, "tensorboard": False},
    }
    runs = {"tp1": root / "tp1", "tp2": root / "tp2", "pp2_uneven": root / "pp2"}
    run_distributed_test(train_layouts, 1, base, [("tp1", [f"output_dir={runs['tp1']}"])])
    run_distributed_test(train_layouts, 2, base, [
        ("tp2", [f"output_dir={runs['tp2']}", "parallel.tensor=2"]),
        ("pp2_uneven", [f"output_dir={runs['pp2_uneven']}", "parallel.pipeline=2",
                        "parallel.num_layers_in_first_pipeline_stage=1"]),
    ])
    return {name: read_losses(d) for name, d in runs.items()}


@pytest.mark.parametrize("layout", ["tp2", "pp2_uneven"])
def test_training_the_padded_checkpoint_gives_the_tp1_losses(padded_training, layout):
    want, got = padded_training["tp1"], padded_training[layout]
    assert sorted(want) == sorted(got) == [1, 2, 3]
    for step in want:
        assert got[step] == pytest.approx(want[step], rel=FP32_RTOL), f"{layout} step {step}"
    assert want[3] < want[1]  # it trains
