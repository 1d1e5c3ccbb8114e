"""SFT (docs/opencoder.md §4): ChatML tokens with a loss mask on the assistant turns only, packed sequences that compute
every sample exactly as if it were alone, packing through a 3-stage pipeline, and the two-stage recipe end to end."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from megatron_test_helpers import (
    assert_same_losses,
    cli_env,
    read_losses,
    read_metrics,
    run_cli,
    run_distributed_test,
    sft_per_sample_losses,
    tiny_train_config,
    train_layouts,
)

from oc_megatron.data.sft import IM_END, ChatEncoder, ChatTemplate, SFTDataset, packed_attention_mask, packed_seq_params
from oc_megatron.data.tokenizer import load_tokenizer

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

CONVERSATION = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Write add(a, b)."},
    {"role": "assistant", "content": "def add(a, b):\n    return a + b\n"},
    {"role": "user", "content": "And subtraction?"},
    {"role": "assistant", "content": "  def sub(a, b): return a - b"},
]


def _pieces(tokenizer, ids) -> list[str]:
    return [tokenizer.decode([int(i)], skip_special_tokens=False) for i in ids]


# ---- tokens and loss mask --------------------------------------------------------------------------------------------
def test_loss_mask_covers_exactly_the_assistant_answers_token_by_token(tiny_data):
    encoder = ChatEncoder(tiny_data["tokenizer"])
    assert encoder.template.source is not None  # the tiny tokenizer ships a ChatML chat template
    text, spans = encoder.extract({"messages": CONVERSATION})
    assert text == "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in CONVERSATION)
    assert text == ChatTemplate(None).render_text(CONVERSATION)  # the built-in ChatML renders the same
    ids, mask = encoder.encode(text, spans)
    tok = load_tokenizer(tiny_data["tokenizer"])
    assert ids.tolist() == tok.encode(text, add_special_tokens=False).ids  # the ids inference sees
    pieces = _pieces(tok, ids)
    assert "".join(pieces) == text
    # Independently of the tokenizer's offsets: a token is trained iff its first character (by the decoded pieces)
    # lies in an answer or the <|im_end|> closing it.
    answers = []
    for m in CONVERSATION:
        if m["role"] == "assistant":
            at = text.index(f"<|im_start|>assistant\n{m['content']}{IM_END}")
            start = at + len("<|im_start|>assistant\n")
            answers.append((start, start + len(m["content"]) + len(IM_END)))
    at = 0
    for piece, trained in zip(pieces, mask.tolist(), strict=True):
        want = any(a <= at < b for a, b in answers)
        assert trained == want, f"token {piece!r} at char {at}: mask {trained}, expected {int(want)}"
        at += len(piece)
    # The trained tokens, grouped, are exactly the answers, each ending with <|im_end|> (the model learns to stop);
    # the header before each answer and the newline after <|im_end|> are not trained.
    groups, current = [], ""
    for piece, trained in zip(pieces, mask.tolist(), strict=True):
        if trained:
            current += piece
        elif current:
            groups.append(current)
            current = ""
    assert groups == [m["content"] + IM_END for m in CONVERSATION if m["role"] == "assistant"]
    assert mask[0] == 0 and pieces[-1] == "\n" and mask[-1] == 0


def test_template_default_system_prompt_is_context_and_non_chatml_templates_are_refused(tiny_data, tmp_path):
    # OpenCoder-Instruct's template adds a default system prompt: rendered, never trained.
    opencoder_like = ("{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
                      "{{ '<|im_start|>system\\nYou are OpenCoder.<|im_end|>\\n' }}{% endif %}"
                      "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
                      "{% endfor %}")
    conv = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]
    text, spans = ChatTemplate(opencoder_like).render(conv)
    assert text.startswith("<|im_start|>system\nYou are OpenCoder.<|im_end|>\n<|im_start|>user\nhi")
    assert [text[a:b] for a, b in spans] == ["hello<|im_end|>"]
    assert ChatTemplate(None, system_prompt="S").render_text(conv).startswith("<|im_start|>system\nS<|im_end|>")
    llama2 = "{% for m in messages %}{% if m['role'] == 'user' %}[INST] {{ m['content'] }} [/INST]" \
             "{% else %} {{ m['content'] }}</s>{% endif %}{% endfor %}"
    with pytest.raises(ValueError, match="does not render an assistant turn as ChatML"):
        ChatTemplate(llama2).render(conv)
    # A tokenizer without the ChatML special tokens cannot make ChatML SFT data.
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    plain = Tokenizer(models.BPE())
    plain.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    plain.train_from_iterator(["def f(): pass"] * 4, trainers.BpeTrainer(vocab_size=300,
                                                                         special_tokens=["<|endoftext|>"]))
    (tmp_path / "plain").mkdir()
    plain.save(str(tmp_path / "plain" / "tokenizer.json"))
    with pytest.raises(ValueError, match=r"no <\|im_start\|> token"):
        ChatEncoder(tmp_path / "plain")


def test_sft_data_cli_reads_messages_and_opc_sft_pairs_and_skips_bad_records(tiny_data, tmp_path):
    pair = {"instruction": "Write add(a, b).", "output": "def add(a, b):\n    return a + b\n"}
    synthesized = {"instruction": pair["instruction"], "response": pair["output"], "code": "...", "tests": "..."}
    lines = [json.dumps({"messages": CONVERSATION}), json.dumps(pair), json.dumps(synthesized),
             json.dumps({"messages": [{"role": "user", "content": "no answer"}]}),
             json.dumps({"messages": [{"role": "robot", "content": "x"}, {"role": "assistant", "content": "y"}]}),
             json.dumps({"instruction": "x", "output": f"a literal {IM_END} in an answer"}),
             json.dumps({"text": "not a conversation"}), "{broken"]
    (tmp_path / "chat.jsonl").write_text("\n".join(lines) + "\n")
    proc = subprocess.run([sys.executable, "-m", "oc_megatron.cli", "sft-data", str(tmp_path / "chat.jsonl"),
                           str(tmp_path / "out" / "chat"), "--tokenizer", str(tiny_data["tokenizer"])],
                          capture_output=True, text=True, timeout=120, env=cli_env(), check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stderr
    assert "3 conversations" in out and "5 bad records skipped" in out
    for reason in ("chat.jsonl:4: no assistant turn", "chat.jsonl:5: messages[0]: expected",
                   "chat.jsonl:6: messages[1]: content contains a ChatML control token",
                   "chat.jsonl:7: expected `messages`", "chat.jsonl:8: malformed JSON"):
        assert reason in out, reason
    from megatron.core.datasets.indexed_dataset import IndexedDataset

    tokens, masks = IndexedDataset(str(tmp_path / "out" / "chat")), IndexedDataset(str(tmp_path / "out" /
                                                                                       "chat.loss_mask"))
    assert len(tokens) == len(masks) == 3
    encoder = ChatEncoder(tiny_data["tokenizer"])
    as_messages = encoder.encode(*encoder.extract({"messages": [{"role": "user", "content": pair["instruction"]},
                                                               {"role": "assistant", "content": pair["output"]}]}))
    for i in (1, 2):  # an instruction/output or instruction/response pair = one user + one assistant turn
        assert np.asarray(tokens[i]).tolist() == as_messages[0].tolist()
        assert np.asarray(masks[i]).tolist() == as_messages[1].tolist()
    stats = json.loads((tmp_path / "out" / "chat.stats.json").read_text())
    assert stats["loss_tokens"] == sum(int(np.asarray(masks[i]).sum()) for i in range(3))


# ---- packing ---------------------------------------------------------------------------------------------------------
def test_packed_sequences_hold_whole_samples_with_restarted_positions(sft_data):
    from megatron.core.datasets.indexed_dataset import IndexedDataset

    prefix = sft_data["stage1"]
    ids = [np.asarray(x, dtype=np.int64) for x in IndexedDataset(str(prefix))]
    masks = [np.asarray(x, dtype=np.int64) for x in IndexedDataset(f"{prefix}.loss_mask")]
    s = 256
    ds = SFTDataset([str(prefix)], s, packing=True, epochs=2, seed=7)
    assert ds.stats.samples == len(ids) and ds.stats.dropped_too_long == 0
    seen = []
    for i in range(len(ds)):
        item, samples = ds[i], ds.sample_ids(i).tolist()
        assert len(samples) >= 1
        at = 0
        for k, sample in enumerate(samples):  # each sample as (ids[:-1] -> ids[1:]), its own positions from 0
            n = len(ids[sample]) - 1
            sl = slice(at, at + n)
            assert item["tokens"][sl].tolist() == ids[sample][:-1].tolist()
            assert item["labels"][sl].tolist() == ids[sample][1:].tolist()
            assert item["loss_mask"][sl].tolist() == masks[sample][1:].tolist()
            assert item["position_ids"][sl].tolist() == list(range(n))
            assert set(item["segment_ids"][sl].tolist()) == {k}
            at += n
        assert at <= s and item["loss_mask"][at:].sum() == 0  # padding: never trained, a segment of its own
        assert set(item["segment_ids"][at:].tolist()) <= {len(samples)}
        seen.extend(samples)
    first, second = seen[: len(ids)], seen[len(ids):]
    assert sorted(first) == sorted(second) == list(range(len(ids)))  # every sample once per epoch
    assert first != second  # reshuffled each epoch
    assert ds.stats.fill > 0.6 and len(ds) < len(ids) * 2  # packing does pack
    beyond = ds[len(ds) + 3]  # past the end: an empty sequence (fills the last global batch)
    assert beyond["loss_mask"].sum() == 0
    one_each = SFTDataset([str(prefix)], s, packing=False, shuffle=False)
    assert len(one_each) == len(ids) and [one_each.sample_ids(i).tolist() for i in range(len(ids))] == \
        [[i] for i in range(len(ids))]
    short = SFTDataset([str(prefix)], 80, packing=True)
    assert short.stats.dropped_too_long == sum(len(x) - 1 > 80 for x in ids) > 0


def test_attention_inputs_of_a_packed_batch():
    seg = torch.tensor([[0, 0, 1, 1, 1, 2], [0, 0, 0, 0, 1, 1]])
    mask = packed_attention_mask(seg)  # True = masked
    assert mask.shape == (2, 1, 6, 6)
    allowed = (~mask[0, 0]).int().tolist()
    assert allowed == [[1, 0, 0, 0, 0, 0], [1, 1, 0, 0, 0, 0], [0, 0, 1, 0, 0, 0], [0, 0, 1, 1, 0, 0],
                       [0, 0, 1, 1, 1, 0], [0, 0, 0, 0, 0, 1]]
    params = packed_seq_params(seg)  # THD: both sequences laid end to end
    assert params.qkv_format == "thd" and params.cu_seqlens_q.dtype == torch.int32
    assert params.cu_seqlens_q.tolist() == [0, 2, 5, 6, 10, 12] and params.max_seqlen_q == 4


@pytest.fixture(scope="module")
def per_sample_losses(sft_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("per_sample") / "losses.json"
    # init std 0.1 (not 0.02): sharper attention, so that a sample seeing its neighbours shows in the loss.
    run_distributed_test(sft_per_sample_losses, 1, str(sft_data["stage1"]), 256, 0.1, str(out))
    return {variant: {int(k): v for k, v in losses.items()} for variant, losses in json.loads(out.read_text()).items()}


def _max_rel_diff(a: dict[int, float], b: dict[int, float], only=None) -> float:
    keys = only if only is not None else a.keys()
    return max(abs(a[k] - b[k]) / abs(b[k]) for k in keys)


def test_packed_and_unpacked_batches_give_the_same_per_sample_losses(per_sample_losses, sft_data):
    alone, packed = per_sample_losses["alone"], per_sample_losses["packed"]
    assert sorted(alone) == sorted(packed) and len(alone) == 16
    assert per_sample_losses["alone_megatron_rope"] == alone  # RoPE from position_ids 0..s-1: bit for bit Megatron's
    diff = _max_rel_diff(packed, alone)
    print(f"packed vs unpacked per-sample losses: max relative difference {diff:.2e} over {len(alone)} samples")
    assert diff <= 1e-6
    # The oracle is sensitive: samples that are not first in their sequence change when they can see the samples
    # before them (a plain causal mask) ...
    ds = SFTDataset([str(sft_data["stage1"])], 256, packing=True, shuffle=False)
    later = [int(x) for i in range(len(ds)) for x in ds.sample_ids(i)[1:]]
    assert len(later) >= 4
    assert _max_rel_diff(per_sample_losses["causal_mask"], alone, later) > 1e-3
    # ... and RoPE really follows the restarted position_ids (with the samples visible to each other, restarting the
    # positions changes the losses). With a correct mask, RoPE's relative form makes un-restarted positions equal up
    # to rounding; restarting them is what makes packed == alone exact rather than approximate.
    assert _max_rel_diff(per_sample_losses["causal_mask_no_restart"], per_sample_losses["causal_mask"], later) > 1e-4
    assert _max_rel_diff(per_sample_losses["no_position_restart"], alone) < 1e-5


# ---- pipeline parallel: the sample boundaries reach every stage ------------------------------------------------------
def test_packing_with_three_pipeline_stages_matches_data_parallel(tiny_data, sft_data, tmp_path):
    base = tiny_train_config(tiny_data, tmp_path / "unused", model={"preset": "tiny", "num_layers": 3,
                                                                     "init_method_std": 0.1},
                             train={"iters": 3, "micro_batch_size": 1, "global_batch_size": 6, "seq_length": 256},
                             schedule={"style": "cosine", "warmup_steps": 1}, checkpoint={"interval": 0,
                                                                                          "save_final": False})
    base["data"] = {"tokenizer": str(tiny_data["tokenizer"]), "sft": {"paths": [str(sft_data["stage1"])],
                                                                      "epochs": 2}}
    runs = {"pp3": tmp_path / "pp3", "dp3": tmp_path / "dp3"}
    # PP3: stage 2 has neither the embedding nor the loss, and still needs the mask and the positions.
    run_distributed_test(train_layouts, 3, base, [("pp3", [f"output_dir={runs['pp3']}", "parallel.pipeline=3"]),
                                                  ("dp3", [f"output_dir={runs['dp3']}"])])
    pp3, dp3 = read_losses(runs["pp3"]), read_losses(runs["dp3"])
    print(f"packed SFT, PP3 vs DP3 losses: {pp3} vs {dp3}")
    assert sorted(pp3) == [1, 2, 3]
    assert_same_losses(pp3, dp3, range(1, 4), "packed SFT at PP3 (6 microbatches) vs DP3")


# ---- the two-stage recipe --------------------------------------------------------------------------------------------
def test_two_stage_sft_from_a_pretrained_checkpoint(reference, tiny_data, sft_data, tmp_path):
    def stage(n: int, init: Path) -> tuple[Path, str]:
        run = tmp_path / f"stage{n}"
        proc = run_cli(EXAMPLES / f"sft_tiny_stage{n}.yaml", f"output_dir={run}",
                       f"data.tokenizer={tiny_data['tokenizer']}", f"data.sft.paths=[{sft_data[f'stage{n}']}]",
                       f"data.sft.valid_paths=[{sft_data['valid']}]", f"checkpoint.init_from.path={init}")
        return run, proc.stderr

    run1, log1 = stage(1, reference["dir"] / "checkpoints")
    assert "kept weights; reset optimizer (Adam step 0), LR (schedule peak 0.001 = optimizer.lr), iteration (0)" \
        in log1, log1[-3000:]
    run2, log2 = stage(2, run1 / "checkpoints")
    for run, epochs, peak, log in ((run1, 1, 1e-3, log1), (run2, 3, 2e-3, log2)):
        ds = SFTDataset([str(sft_data[f"stage{1 if run == run1 else 2}"])], 256, epochs=epochs, seed=1234)
        iters = math.ceil(len(ds) / 2)  # epochs x packed sequences / global batch 2
        assert f"train.iters: {iters} ({len(ds)} sequences over {epochs} epochs" in log
        metrics = read_metrics(run)
        assert sorted(metrics) == list(range(1, iters + 1))
        for k, rec in metrics.items():  # 1 warmup step (from 0), then cosine to 0 over the rest
            want = 0.0 if k == 1 else peak * 0.5 * (1 + math.cos(math.pi * (k - 2) / (iters - 1)))
            assert rec["lr"] == pytest.approx(want, abs=1e-12), (run.name, k)
        assert read_losses(run, "valid")
    stage2 = read_losses(run2)
    assert stage2[max(stage2)] < stage2[1] - 0.3  # 3 epochs on its data: it learns
    assert f"init from {run1 / 'checkpoints'}" in log2
    shutil.rmtree(run1)  # keep the tmp dir small
