#!/bin/bash
# oc_megatron's part of scripts/gpu_check.sh (tests/oc_megatron/test_megatron_gpu.py): Transformer Engine spec, FP8
# (delayed and tensorwise/current scaling), NCCL, tokens/s + MFU of opencoder-1.5b (4 layers, 4,096 tokens) in BF16
# and FP8, packed SFT (THD vs mask), and checkpoints on the TE spec: save + resume with FP8 and TE's FusedAdam,
# init_from keeping the optimizer, a TE checkpoint through `convert to-hf` (logits vs transformers), a local-spec and a
# from-hf checkpoint loaded into a TE model. Every case runs in its own worker process, so one failure does not hide
# the others. Prints lines starting with "[megatron gpu]". About 8-12 minutes on one H100 (most of it CUDA / TE
# start-up, once per case).
#   bash scripts/gpu_check_megatron.sh [OUT_DIR]      # from the repository root; the log also goes to OUT_DIR
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-gpu_check_out}
mkdir -p "$OUT"
export OC_TEST_GPU=1  # tests/conftest.py: keep the GPUs, run the @pytest.mark.gpu tests
python - <<'PY'
import importlib.util
import os
import torch
print("[megatron gpu] torch", torch.__version__, "| CUDA", torch.version.cuda, "| GPUs", torch.cuda.device_count(),
      "|", torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU")
import megatron.core
from oc_megatron.models.specs import te_available, te_unavailable_reason
print("[megatron gpu] megatron-core", megatron.core.__version__, "| Transformer Engine:",
      "usable" if te_available() else te_unavailable_reason())
constraint = "/etc/pip/constraint.txt"
print("[megatron gpu] NGC container:", os.environ.get("NVIDIA_PYTORCH_VERSION") or "no",
      "| pip constraints:", constraint if os.path.isfile(constraint) else "none",
      "| apex:", "found" if importlib.util.find_spec("apex") else "absent")
PY
python -m pytest tests/oc_megatron/test_megatron_gpu.py -m gpu -s -q -p no:cacheprovider -W ignore \
  --junitxml="$OUT/megatron_gpu.xml" 2>&1 | tee "$OUT/megatron_gpu.log"
exit "${PIPESTATUS[0]}"
