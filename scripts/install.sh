#!/usr/bin/env bash
# Install oc-cookbook for CPU work (laptop, CI). Usage: bash scripts/install.sh [--dev]
#   --dev  also test tools and system packages used by the tests (bubblewrap for the sandbox).
# torch is pinned first: a loose `torch` requirement would otherwise pull a multi-GB CUDA build on a CPU box.
# GPU clusters: use an NGC PyTorch container and `pip install -e ".[gpu]"` instead (see docs/install.md).
set -euo pipefail
cd "$(dirname "$0")/.."
extras=""
if [[ "${1:-}" == "--dev" ]]; then extras="[dev]"; fi
python -m pip install --quiet --disable-pip-version-check "torch==2.13.0"
python -m pip install --quiet --disable-pip-version-check -e ".${extras}"
if [[ -n "$extras" ]] && command -v apt-get >/dev/null && [[ $(id -u) -eq 0 ]]; then
  if ! command -v bwrap >/dev/null; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap >/dev/null) \
      || echo "warning: could not install bubblewrap; sandbox tests that need it will be skipped" >&2
  fi
fi
echo "oc-cookbook installed: $(oc-synth --version)"
