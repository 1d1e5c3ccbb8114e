"""A tiny random Llama checkpoint with a real BPE tokenizer and a ChatML chat template, built in a second.

For tests and smoke runs of every backend on CPU without a model download: transformers and vLLM both load it.
Its text is gibberish (random weights), so it exercises the machinery, never the parsing of good answers.
Heads are 64 wide: vLLM's CPU attention kernels reject small head sizes (16 fails).
"""

from __future__ import annotations

from pathlib import Path

# OpenCoder's SFT template (ChatML), as in its tokenizer_config.json.
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

_CORPUS = [
    "def add(a, b):\n    return a + b\n",
    "assert add(1, 2) == 3\n",
    "Write a Python function that sorts a list of integers.",
    "```python\nimport math\nprint(math.sqrt(2))\n```",
    "class Solution:\n    def twoSum(self, nums, target):\n        seen = {}\n",
    "for i in range(10):\n    if i % 2 == 0:\n        continue\n",
    "The function returns the sum of two numbers. Task, analysis, solution and tests follow.",
]


def build_tiny_llama(out_dir: str | Path, *, vocab_size: int = 512, hidden_size: int = 128, layers: int = 2,
                     context: int = 8192, seed: int = 0) -> Path:
    """Write ``config.json``, ``model.safetensors`` and tokenizer files to ``out_dir``; return the path.
    ``context`` is the model's ``max_position_embeddings``: by default OpenCoder-8B's, which holds every shipped
    recipe's prompt even in this small tokenizer (package-instruct's pydoc pages run to ~5,000 tokens)."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    bpe = Tokenizer(models.BPE(unk_token=None))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    bpe.train_from_iterator(_CORPUS * 20, trainer=trainer)
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe, bos_token="<|endoftext|>", eos_token="<|im_end|>",
                                  pad_token="<|endoftext|>", unk_token=None)
    tok.chat_template = CHATML_TEMPLATE
    tok.save_pretrained(out)
    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=hidden_size, intermediate_size=2 * hidden_size,
                      num_hidden_layers=layers, num_attention_heads=hidden_size // 64, num_key_value_heads=1,
                      max_position_embeddings=context, rms_norm_eps=1e-5, tie_word_embeddings=False,
                      bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    model = LlamaForCausalLM(cfg).to(torch.float32)
    model.generation_config.eos_token_id = tok.eos_token_id
    model.save_pretrained(out)
    return out
