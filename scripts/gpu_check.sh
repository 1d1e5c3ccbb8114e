#!/usr/bin/env bash
# GPU checks in one go, for a machine with CUDA: the @pytest.mark.gpu tests, then each component's GPU benchmark
# fragment (scripts/gpu_check_*.sh). Prints a summary; exits non-zero if any part failed.
# Usage: bash scripts/gpu_check.sh [OUT_DIR]      (results and logs go to OUT_DIR, default gpu_check_out/)
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-gpu_check_out}
mkdir -p "$OUT"
python - <<'PY' || { echo "no CUDA device visible: nothing to check"; exit 1; }
import torch
assert torch.cuda.is_available()
print("GPU:", torch.cuda.get_device_name(0), "| torch", torch.__version__, "| CUDA", torch.version.cuda)
PY
status=0
summary=()
run_part() {
  local name=$1; shift
  local t0=$SECONDS
  if "$@" >"$OUT/$name.log" 2>&1; then summary+=("PASS  $name  ($((SECONDS - t0)) s)")
  else status=1; summary+=("FAIL  $name  ($((SECONDS - t0)) s, see $OUT/$name.log)"); fi
  tail -n 25 "$OUT/$name.log"
}
# OC_TEST_GPU=1: the session keeps the GPUs and runs only the @pytest.mark.gpu tests (tests/conftest.py). The
# Megatron GPU tests run in their own fragment below (scripts/gpu_check_megatron.sh, with their figures printed).
run_part pytest-gpu env OC_TEST_GPU=1 python -m pytest -q -m gpu -p no:cacheprovider \
  --ignore=tests/oc_megatron/test_megatron_gpu.py
for fragment in scripts/gpu_check_*.sh; do
  [[ -e "$fragment" ]] || continue
  name=$(basename "$fragment" .sh)
  run_part "$name" bash "$fragment" "$OUT"
done
printf '\n== GPU check summary\n'
printf '%s\n' "${summary[@]}"
exit $status
