"""Checkpoint conversion between Megatron-Core torch_dist checkpoints and Hugging Face ``LlamaForCausalLM`` (and
``Qwen2ForCausalLM``).

* ``llama_mapping``: the declarative tensor table (names, shapes, vocabulary padding, grouped-QKV and gate/up fusion
  rules; tied embeddings and q/k/v biases as table variants).
* ``hf``: HF model directories: config translation, streaming safetensors read/write with an index, tokenizer files.
* ``megatron_ckpt``: torch_dist checkpoints: per-layer loads (any saved TP/PP) and a streaming save.
* ``to_hf`` / ``from_hf``: the two directions; ``cli``: ``oc-megatron convert to-hf | from-hf``.
* ``layout`` (valid TP sizes and pipeline splits), ``staging`` (atomic output directories), ``errors``, ``verify``
  (logits of both sides, for tests and benchmarks).

Submodules import torch / Megatron-Core lazily where they can, so importing this package is cheap. See docs/convert.md.
"""
