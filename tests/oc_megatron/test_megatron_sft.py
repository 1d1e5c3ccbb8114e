"""SFT (docs/opencoder.md §4): OpenCoder's released format token for token (against their finetune.py's tokenization,
rebuilt with transformers), ChatML tokens with a loss mask on the answers only, steps of global_batch_size samples
whether packed or not (the same samples and losses either way), packed sequences that compute every sample exactly as
if it were alone, packing through a 3-stage pipeline, and the two-stage recipe end to end."""

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

from oc_megatron.data.sft import (
    IM_END,
    OPENCODER_SYSTEM_PROMPT,
    ChatEncoder,
    ChatTemplate,
    SFTBatches,
    SFTSamples,
    packed_attention_mask,
    packed_seq_params,
    sequence_item,
)
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
    encoder = ChatEncoder(tiny_data["tokenizer"], system_prompt=None, target="template")
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


# ---- OpenCoder's released format ------------------------------------------------------------------------------------
# OpenCoder-Instruct's chat template (its tokenizer_config.json): the system prompt when a conversation has none.
OPENCODER_TEMPLATE = ("{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
                      "{{ '<|im_start|>system\\nYou are OpenCoder, created by OpenCoder Team.<|im_end|>\\n' }}"
                      "{% endif %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + "
                      "'\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")


def _released_example(tokenizer, instruction: str, output: str, max_length: int) -> tuple[list[int], list[int]]:
    """(input_ids, labels) as OpenCoder's sft/tools/finetune.py builds them (OpenCoder-llm, read for this test): the
    prompt is the chat template with a generation prompt, the target ``output + "\\n<|im_end|>"``, both tokenized
    with truncation at model_max_length, and the prompt's tokens masked with -100."""
    source = tokenizer.apply_chat_template([{"role": "user", "content": instruction}], tokenize=False,
                                           add_generation_prompt=True)
    target = f"{output}\n{IM_END}"
    ids = tokenizer(source + target, max_length=max_length, truncation=True).input_ids
    source_len = len(tokenizer(source, max_length=max_length, truncation=True).input_ids)
    return ids, [-100] * source_len + ids[source_len:]


def test_opencoder_target_matches_the_released_finetune_token_for_token(tiny_data, tmp_path):
    from transformers import PreTrainedTokenizerFast

    from oc_megatron.data.sft import sft_data

    pairs = [{"instruction": "Write add(a, b).", "output": "def add(a, b):\n    return a + b"},
             {"instruction": "Reverse a list.", "output": "```python\nitems[::-1]\n```\nThat is all."},
             {"instruction": "Explain recursion in depth. " * 4, "output": "A function that calls itself. " * 30}]
    (tmp_path / "pairs.jsonl").write_text("".join(json.dumps(p) + "\n" for p in pairs))
    # Their tokenizer carries OpenCoder's template; ours too here, and the tiny tokenizer's plain ChatML template
    # must give the same tokens (the system prompt is added whatever the tokenizer).
    opencoder_tok = tmp_path / "opencoder_tokenizer"
    shutil.copytree(tiny_data["tokenizer"], opencoder_tok)
    config = json.loads((opencoder_tok / "tokenizer_config.json").read_text())
    (opencoder_tok / "tokenizer_config.json").write_text(json.dumps({**config, "chat_template": OPENCODER_TEMPLATE}))
    hf = PreTrainedTokenizerFast(tokenizer_file=str(opencoder_tok / "tokenizer.json"))
    hf.chat_template = OPENCODER_TEMPLATE
    for tokenizer in (opencoder_tok, tiny_data["tokenizer"]):
        prefix = tmp_path / f"sft_{tokenizer.name}"
        sft_data(tmp_path / "pairs.jsonl", prefix, tokenizer, progress=False)  # the defaults: OpenCoder's format
        for max_length in (1216, 120):  # stage 1's model_max_length, and one that truncates the long pair
            samples = SFTSamples([str(prefix)], max_length, shuffle=False)
            truncated = 0
            for i, pair in enumerate(pairs):
                ids, labels = _released_example(hf, pair["instruction"], pair["output"], max_length)
                truncated += len(ids) == max_length
                item = sequence_item(samples, [i], max_length, pad_id=0)
                n = len(ids) - 1  # the causal shift: position t predicts token t + 1
                assert item["tokens"][:n].tolist() == ids[:-1], (tokenizer.name, max_length, i)
                assert item["labels"][:n].tolist() == ids[1:], (tokenizer.name, max_length, i)
                assert item["loss_mask"][:n].tolist() == [float(x != -100) for x in labels[1:]]
                assert item["loss_mask"][n:].sum() == 0
                if len(ids) < max_length:  # whole: the trained part is the answer, "\n" and <|im_end|>, the end
                    trained = [t for t, m in zip(ids[1:], item["loss_mask"][:n].tolist(), strict=True) if m]
                    assert hf.decode(trained) == pair["output"] + "\n" + IM_END
                    assert hf.decode(ids).startswith(f"<|im_start|>system\n{OPENCODER_SYSTEM_PROMPT}<|im_end|>")
            assert truncated == (1 if max_length == 120 else 0)
    # The template target trains what the template renders (content<|im_end|>), and adds no system prompt if asked.
    text, spans = ChatEncoder(tiny_data["tokenizer"], system_prompt=None, target="template").extract(pairs[0])
    assert [text[a:b] for a, b in spans] == [pairs[0]["output"] + IM_END] and text.endswith(IM_END + "\n")
    assert not text.startswith("<|im_start|>system")


# ---- steps and packing -----------------------------------------------------------------------------------------------
def test_sft_steps_take_global_batch_samples_packed_or_not(sft_data):
    from megatron.core.datasets.indexed_dataset import IndexedDataset

    prefix = str(sft_data["stage1"])
    ids = [np.asarray(x, dtype=np.int64) for x in IndexedDataset(prefix)]
    masks = [np.asarray(x, dtype=np.int64) for x in IndexedDataset(f"{prefix}.loss_mask")]
    s, g, epochs = 256, 6, 2
    samples = SFTSamples([prefix], s, epochs=epochs, seed=7)
    assert samples.stats.samples == len(ids) == 16 and samples.stats.truncated == 0
    layouts = {"unpacked": SFTBatches(samples, s, g, 1, 1, 0, packing=False, pad_id=0),
               "packed": SFTBatches(samples, s, g, 1, 1, 0, packing=True, pad_id=0)}
    per_epoch = math.ceil(len(ids) / g)  # 6 + 6 + 4: an epoch's last step takes the rest
    assert layouts["packed"].total_steps() == epochs * per_epoch == 6
    position, seen, packed_sequences = 0, {"unpacked": [], "packed": []}, 0
    for step in range(epochs * per_epoch):
        want = min(g, len(ids) - position % len(ids))
        for name, batches in layouts.items():
            batch = batches.step(position)
            seqs = [q.tolist() for q in batches.sequences(position) if len(q)]
            got = [x for q in seqs for x in q]
            seen[name].append(got)
            assert batch.samples == len(got) == want, (name, step)
            assert batch.tokens == sum(len(ids[x]) - 1 for x in got)
            if name == "unpacked":
                assert all(len(q) == 1 for q in seqs) and batch.num_microbatches == want
            else:
                assert len(seqs) <= want and batch.num_microbatches == len(seqs)
                packed_sequences += len(seqs)
            # Each sequence holds whole samples, (ids[:-1] -> ids[1:]), positions restarting at 0, then padding.
            for q in seqs:
                item = sequence_item(samples, q, s, pad_id=0)
                at = 0
                for k, x in enumerate(q):
                    n = len(ids[x]) - 1
                    sl = slice(at, at + n)
                    assert item["tokens"][sl].tolist() == ids[x][:-1].tolist()
                    assert item["labels"][sl].tolist() == ids[x][1:].tolist()
                    assert item["loss_mask"][sl].tolist() == masks[x][1:].tolist()
                    assert item["position_ids"][sl].tolist() == list(range(n))
                    assert set(item["segment_ids"][sl].tolist()) == {k}
                    at += n
                assert at <= s and item["loss_mask"][at:].sum() == 0
                assert set(item["segment_ids"][at:].tolist()) <= {len(q)}
        assert seen["packed"][-1] == seen["unpacked"][-1]  # the same samples, in the same order, every step
        position += want
    assert packed_sequences < epochs * len(ids)  # packing packs
    flat = [x for step in seen["packed"] for x in step]
    first, second = flat[: len(ids)], flat[len(ids):]
    assert sorted(first) == sorted(second) == list(range(len(ids)))  # every sample once per epoch
    assert first != second  # reshuffled each epoch
    assert layouts["packed"].step(position).samples == 0  # past the last epoch: nothing
    # Data parallel: every rank takes its blocks of micro_batch_size sequences, together all of them, once.
    dp = [SFTBatches(samples, s, g, 1, 3, r, packing=True, pad_id=0) for r in range(3)]
    sequences = dp[0].sequences(0)
    assert len(sequences) % 3 == 0  # padded with empty sequences to whole microbatches of every rank
    taken = sorted(tuple(row.tolist()) for r in range(3) for mb in dp[r].step(0).microbatches(True)
                   for row in mb["tokens"])
    assert taken == sorted(tuple(sequence_item(samples, q, s, pad_id=0)["tokens"].tolist()) for q in sequences)
    assert {dp[r].step(0).num_microbatches for r in range(3)} == {len(sequences) // 3}
    # Truncation (OpenCoder: cut at model_max_length) or drop.
    short = SFTSamples([prefix], 80, too_long="truncate")
    dropped = SFTSamples([prefix], 80, too_long="drop")
    n_long = sum(len(x) > 80 for x in ids)
    assert n_long > 0 and short.stats.truncated == n_long and len(short) == len(ids)
    assert dropped.stats.dropped_too_long == n_long and len(dropped) == len(ids) - n_long
    longest = int(np.argmax([len(x) for x in ids]))
    assert short.read(longest)[0].tolist() == ids[longest][:80].tolist()


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
    samples = SFTSamples([str(sft_data["stage1"])], 256, shuffle=False)
    packed = SFTBatches(samples, 256, len(samples), 1, 1, 0, packing=True, pad_id=0).sequences(0)
    later = [int(x) for q in packed for x in q[1:]]
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
                                                                      "epochs": 2, "packing": True}}
    runs = {name: tmp_path / name for name in ("pp3", "dp3", "pp3_unpacked")}
    # PP3: stage 2 has neither the embedding nor the loss, and still needs the mask and the positions. Unpacked
    # (OpenCoder's default), every stage runs a plain causal mask over one sample per sequence.
    run_distributed_test(train_layouts, 3, base, [
        ("pp3", [f"output_dir={runs['pp3']}", "parallel.pipeline=3"]),
        ("dp3", [f"output_dir={runs['dp3']}"]),
        ("pp3_unpacked", [f"output_dir={runs['pp3_unpacked']}", "parallel.pipeline=3", "data.sft.packing=false"])])
    pp3, dp3, unpacked = (read_losses(runs[name]) for name in ("pp3", "dp3", "pp3_unpacked"))
    print(f"packed SFT, PP3 vs DP3 losses: {pp3} vs {dp3}; unpacked at PP3: {unpacked}")
    assert sorted(pp3) == [1, 2, 3]
    assert_same_losses(pp3, dp3, range(1, 4), "packed SFT at PP3 vs DP3")
    assert_same_losses(unpacked, dp3, range(1, 4), "unpacked SFT at PP3 (6 microbatches) vs packed at DP3")


# ---- the two-stage recipe --------------------------------------------------------------------------------------------
def _sft_stage(n: int, run: Path, init: Path, tiny_data, sft_data, *overrides: str) -> str:
    proc = run_cli(EXAMPLES / f"sft_tiny_stage{n}.yaml", f"output_dir={run}",
                   f"data.tokenizer={tiny_data['tokenizer']}", f"data.sft.paths=[{sft_data[f'stage{n}']}]",
                   f"data.sft.valid_paths=[{sft_data['valid']}]", f"checkpoint.init_from.path={init}", *overrides)
    return proc.stderr


def test_two_stage_sft_from_a_pretrained_checkpoint(reference, tiny_data, sft_data, tmp_path):
    run1, run2 = tmp_path / "stage1", tmp_path / "stage2"
    log1 = _sft_stage(1, run1, reference["dir"] / "checkpoints", tiny_data, sft_data)
    assert "kept weights; reset optimizer (Adam step 0), LR (schedule peak 0.001 = optimizer.lr), iteration (0)" \
        in log1, log1[-3000:]
    log2 = _sft_stage(2, run2, run1 / "checkpoints", tiny_data, sft_data)
    g = 4  # samples per step in both tiny stages
    for run, epochs, peak, log in ((run1, 1, 1e-3, log1), (run2, 3, 2e-3, log2)):
        n = len(SFTSamples([str(sft_data[f"stage{1 if run == run1 else 2}"])], 256))
        iters = epochs * math.ceil(n / g)  # OpenCoder's steps: epochs x ceil(samples / batch)
        assert f"train.iters: {iters} ({n} samples over {epochs} epochs, {g} samples per step)" in log
        metrics = read_metrics(run)
        assert sorted(metrics) == list(range(1, iters + 1))
        assert [rec["samples"] for rec in metrics.values()] == [min(g, n - (k * g) % n) for k in range(iters)]
        for k, rec in metrics.items():  # 1 warmup step (from 0), then cosine to 0 over the rest
            want = 0.0 if k == 1 else peak * 0.5 * (1 + math.cos(math.pi * (k - 2) / (iters - 1)))
            assert rec["lr"] == pytest.approx(want, abs=1e-12), (run.name, k)
        assert read_losses(run, "valid")
    stage2 = read_losses(run2)
    assert stage2[max(stage2)] < stage2[1] - 0.3  # 3 epochs on its data: it learns
    assert f"init from {run1 / 'checkpoints'}" in log2
    shutil.rmtree(run1)  # keep the tmp dir small


def test_packed_and_unpacked_sft_train_on_the_same_samples_with_the_same_losses(reference, tiny_data, sft_data,
                                                                                 tmp_path):
    runs = {}
    for packing in (False, True):
        run = runs[packing] = tmp_path / f"packing_{packing}"
        _sft_stage(1, run, reference["dir"] / "checkpoints", tiny_data, sft_data, f"data.sft.packing={packing}",
                   "train.eval_interval=0", "checkpoint.save_final=false")
    unpacked, packed = read_metrics(runs[False]), read_metrics(runs[True])
    assert sorted(unpacked) == sorted(packed) == [1, 2, 3, 4]
    for step in unpacked:
        a, b = unpacked[step], packed[step]
        print(f"step {step}: unpacked {a['samples']} samples in {a['sequences']} sequences, loss {a['loss']:.6f}; "
              f"packed {b['samples']} samples in {b['sequences']} sequences, loss {b['loss']:.6f}")
        # The same samples per step (their token and trained-token counts agree), in fewer sequences when packed ...
        assert (a["samples"], a["tokens"], a["trained_tokens"]) == (b["samples"], b["tokens"], b["trained_tokens"])
        assert a["samples"] == a["sequences"] == 4 and b["sequences"] <= a["sequences"]
        # ... and the per-token loss of the same samples: the same training, whatever the packing.
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-5)
        assert b["grad_norm"] == pytest.approx(a["grad_norm"], rel=1e-4)
    assert sum(m["sequences"] for m in packed.values()) < sum(m["sequences"] for m in unpacked.values())
