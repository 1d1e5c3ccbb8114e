"""Checkpoint conversion between Megatron-Core torch_dist checkpoints and Hugging Face ``LlamaForCausalLM`` (and
``Qwen2ForCausalLM``).

* ``llama_mapping``: the declarative tensor table (names, shapes, vocabulary padding, grouped-QKV and gate/up fusion
  rules; tied embeddings and q/k/v biases as table variants).
* ``hf``: HF model directories: config translation, streaming safetensors read/write with an index, tokenizer files.
* ``torch_dist`` (the torch_dist / DCP files read and written directly, one process, checksums on the way) and
  ``torch_record`` (one ``torch.save`` tensor record, parsed in place and framed around copied data).
* ``megatron_ckpt``: Megatron-Core's checkpoint layout on top of them: the saved chunks of the table's tensors placed
  in HF tensors (any saved TP/PP), and the records Megatron-Core's save writes, from HF files.
* ``to_hf`` / ``from_hf``: the two directions; ``cli``: ``oc-megatron convert to-hf | from-hf``.
* ``layout`` (valid TP sizes and pipeline splits), ``staging`` (atomic output directories), ``verify`` (logits of
  both sides, for tests and benchmarks, with Megatron-Core in a one-process gloo world).

Submodules import torch / Megatron-Core lazily where they can, so importing this package is cheap. See docs/convert.md.
"""
