#!/bin/bash
# oc_megatron's part of scripts/gpu_check.sh: Transformer Engine spec, FP8 (delayed and tensorwise/current scaling),
# NCCL, and tokens/s + MFU of opencoder-1.5b (4 layers, 4,096 tokens) on one GPU in BF16 and FP8.
# Prints lines starting with "[megatron gpu]". About 2-4 minutes on one H100 (most of it CUDA/TE start-up).
#   bash scripts/gpu_check_megatron.sh            # from the repository root
set -euo pipefail
cd "$(dirname "$0")/.."
python - <<'PY'
import torch, importlib.util
print("[megatron gpu] torch", torch.__version__, "| CUDA", torch.version.cuda, "| GPUs", torch.cuda.device_count(),
      "|", torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU")
import megatron.core
print("[megatron gpu] megatron-core", megatron.core.__version__, "| transformer_engine",
      "found" if importlib.util.find_spec("transformer_engine") else "MISSING")
PY
python -m pytest tests/oc_megatron/test_megatron_gpu.py -m gpu -s -q -p no:cacheprovider -W ignore "$@"
