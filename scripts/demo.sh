#!/usr/bin/env bash
# The OpenCoder recipe in miniature, on embedded inputs, every stage reading the previous stage's output:
#   curate (ingest, dedup, transform, filter, sample, select-algorithmic) -> web recall -> synthesis (annealing
#   snippets and textbooks; educational, package and diverse instructions) -> verify -> decontaminate -> preprocess ->
#   pretrain ->
#   anneal on OpenCoder's blend -> SFT stage 1 -> SFT stage 2 -> convert to Hugging Face -> eval -> a report
# about 10 minutes on 2 CPU cores (docs/platform.md has the measured time). Usage: bash scripts/demo.sh [OUT_DIR]
# (default demo_out/; a rerun starts over). Everything goes under OUT_DIR; it ends by printing the report's path.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-demo_out}
export OMP_NUM_THREADS=1 TOKENIZERS_PARALLELISM=false PYTHONWARNINGS=ignore
rm -rf "$OUT"
mkdir -p "$OUT"
t0=$(date +%s)
step() { printf '\n\033[1m== %s\033[0m  [%ss]\n' "$*" "$(( $(date +%s) - t0 ))"; }

# The synthesis and eval engine: vLLM where it is installed, transformers otherwise. `bash scripts/install_vllm.sh`
# puts vLLM's CPU build in an environment of its own (.venv-vllm/, or OC_VLLM_PYTHON names its python); the demo then
# serves each model with vLLM's OpenAI-compatible server and generates through `--backend openai`. A vLLM importable
# here is used offline (`--backend vllm`). The generation model is a tiny random Llama: its answers are gibberish, so
# every recipe also runs on canned answers of ours (examples/demo/canned/), through the same parsing, checks, dedup,
# decontamination and sandbox, so that the verified sets are never empty and what each stage drops is visible.
has_vllm() { "$1" -c "import importlib.util as u, sys; sys.exit(u.find_spec('vllm') is None)" >/dev/null 2>&1; }
VLLM_PY=${OC_VLLM_PYTHON:-.venv-vllm/bin/python}
if [[ -x "$VLLM_PY" ]] && has_vllm "$VLLM_PY"; then
  ENGINE=vllm-server; WHY="vLLM from $VLLM_PY, served (OpenAI-compatible API)"
elif has_vllm python; then
  ENGINE=vllm; WHY="vLLM in this environment, offline engine"
else
  ENGINE=hf; WHY="transformers: vLLM is not installed (bash scripts/install_vllm.sh installs it)"
fi
echo "generation and eval engine: $ENGINE ($WHY)"
SERVER_PID=""
SERVER_TMP=""  # the server's TMPDIR: vLLM leaves its distributed-init file store there (short: it also holds sockets)
stop_server() {
  if [[ -n "$SERVER_PID" ]]; then kill -TERM -- "-$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
  if [[ -n "$SERVER_TMP" ]]; then rm -rf "$SERVER_TMP"; fi
  SERVER_PID=""
  SERVER_TMP=""
}
trap stop_server EXIT
# vLLM 0.32 on CPU kills its engine when a seeded request's prompt is prefilled in chunks ("CPU Generator does not use
# offset"): the server prefills whole prompts (no chunked prefill, a token budget of the model's whole context).
max_context() { python -c "import json, sys; print(json.load(open(sys.argv[1] + '/config.json'))['max_position_embeddings'])" "$1"; }
start_model() {  # MODEL LOG: with the vLLM server engine, start serving MODEL (in the background); see use_model
  stop_server
  MODEL_LOG=$2
  [[ "$ENGINE" == vllm-server ]] || return 0
  PORT=$(python -c "import socket; s = socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])")
  SERVER_TMP=$(mktemp -d "${TMPDIR:-/tmp}/oc-vllm.XXXXXX")
  TMPDIR="$SERVER_TMP" OMP_NUM_THREADS=1 VLLM_CPU_KVCACHE_SPACE=1 HF_HUB_OFFLINE=1 VLLM_NO_USAGE_STATS=1 DO_NOT_TRACK=1 setsid \
      "$VLLM_PY" -m vllm.entrypoints.openai.api_server --model "$1" --dtype float32 --host 127.0.0.1 --port "$PORT" \
      --no-enable-chunked-prefill --max-num-batched-tokens "$(max_context "$1")" > "$2" 2>&1 &
  SERVER_PID=$!
}
use_model() {  # sets BACKEND for the model start_model started (waiting until vLLM's server answers)
  if [[ "$ENGINE" != vllm-server ]]; then BACKEND=(--backend "$ENGINE"); return 0; fi
  python - "$PORT" "$SERVER_PID" "$MODEL_LOG" <<'PY'
import os, sys, time, urllib.request
port, pid, log = sys.argv[1], int(sys.argv[2]), sys.argv[3]
for _ in range(900):
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2)
        sys.exit(0)
    except OSError:
        pass
    if not os.path.exists(f"/proc/{pid}"):
        break
    time.sleep(1)
sys.exit(f"error: vLLM's server did not start; the end of its log ({log}):\n" + open(log).read()[-3000:])
PY
  BACKEND=(--backend openai -B "base_url=http://127.0.0.1:$PORT/v1")
}

S="$OUT/synth"
step "0. inputs: repositories (examples/sample_repos, examples/demo/repos, standard-library files), a web corpus, a model"
python examples/demo/make_inputs.py "$OUT/inputs"
python examples/recall/make_corpus.py "$OUT/inputs/web"
python -c "import sys; from oc_synth.backends.tiny import build_tiny_llama as b; b(sys.argv[1])" "$S/tiny_llama"
start_model "$S/tiny_llama" "$S/vllm_server.log"  # vLLM's server (if that is the engine) starts while curation runs

C="$OUT/curate"
step "1. curate ingest: repositories -> code-file records (OpenCoder's language tables; drops with reasons)"
oc-synth curate ingest "$OUT/inputs/repos" "$C/ingest" --dropped "$C/dropped/ingest"
step "2. curate dedup: exact SHA-256, then MinHash LSH (OpenCoder: word 5-grams, 2,048 permutations, 16 x 128)"
oc-synth curate dedup "$C/ingest" "$C/dedup" --mode both --dropped "$C/dropped/dedup"
step "3. curate transform: strip copyright headers, replace PII"
oc-synth curate transform "$C/dedup" "$C/transform"
step "4. curate filter: RefineCode's heuristic rules"
oc-synth curate filter "$C/transform" "$C/filter" --dropped "$C/dropped/filter"
step "5. curate sample: downsample Java and HTML (OpenCoder's keep fractions)"
oc-synth curate sample "$C/filter" "$C/sample" --dropped "$C/dropped/sample"
step "6. curate select-algorithmic: the annealing corpus's algorithmic part (\"leetcode\", \"class Solution\", ...)"
oc-synth curate select-algorithmic "$C/sample" "$C/algorithmic"

step "7. recall: 3 rounds of fastText web recall (code domains, URL patterns, new seeds)"
oc-synth recall run --seeds "$OUT/inputs/web/seeds.jsonl" --corpus "$OUT/inputs/web/web" --out "$OUT/recall" \
    --url-patterns examples/recall/url_patterns.yaml --config examples/recall/config.yaml

step "8. synthesize with a model ($ENGINE, a tiny random Llama): seeds from the stages above"
use_model
live() {  # recipe seeds: 2 seeds, 16 tokens per step; verification and decontamination are steps 10 and 11
  oc-synth generate "$1" --seeds "$2" --out "$S/generated/$1/live" "${BACKEND[@]}" --model "$S/tiny_llama" \
      --limit 2 --max-tokens 16 --no-verify --no-decontaminate -q
  python -c "import json, sys; d = json.load(open(sys.argv[1])); c = d['counters']; \
print(f\"  {sys.argv[2]}: {c['generated']} generated, {c['records_out']} kept; dropped: {d['groups'].get('drop reasons') or {}}\")" \
      "$S/generated/$1/live/.oc/stats.json" "$1"
}
live annealing-snippets "$C/algorithmic"        # algorithmic files -> functions + tests
live code-textbook "$C/sample"                  # curated code -> textbook sections
live educational-instruct "$C/sample"           # curated code -> task, analysis, solution, tests
live package-instruct examples/synth/packages.jsonl  # seeds need a `package` to document (pydoc)
live diverse-instruct "$OUT/recall/recalled"    # recalled web pages -> question, answer, tests
stop_server

step "9. synthesize from canned answers (ours, examples/demo/canned/): the same recipes, the same stages"
for recipe in annealing-snippets code-textbook educational-instruct package-instruct diverse-instruct; do
  python examples/demo/replay_answers.py "$recipe" "examples/demo/canned/$recipe.yaml" "$S/generated/$recipe/canned" \
      --seeds-file "$S/canned_seeds/$recipe.jsonl" --no-verify --no-decontaminate
done

step "10. verify: every sample's code and tests in the sandbox (textbooks have no tests)"
verify() {  # recipe group
  oc-synth verify "$S/generated/$1" "$S/verified/$2/$1" --dropped "$S/dropped/$1" --timeout 10
}
verify annealing-snippets anneal
verify diverse-instruct sft1
verify educational-instruct sft2
verify package-instruct sft2

step "11. decontaminate: drop what overlaps HumanEval/MBPP (an entry-point name used as a function, a shared 10-gram)"
decontaminate() {  # input, output
  oc-synth decontaminate "$1" "$2" --dropped "$S/dropped/decontaminated/$(basename "$2")" -q
}
decontaminate "$S/verified/anneal" "$S/clean/anneal"
decontaminate "$S/verified/sft1" "$S/clean/sft1"
decontaminate "$S/verified/sft2" "$S/clean/sft2"
decontaminate "$S/generated/code-textbook" "$S/clean/textbooks"

D="$OUT/data"
step "12. preprocess: a tokenizer trained on the curated and recalled text, then Megatron indexed datasets"
python examples/demo/train_tokenizer.py "$OUT/tokenizer" "$C/sample" "$OUT/recall/recalled"
TOK=(--tokenizer "$OUT/tokenizer")
oc-megatron preprocess "$C/sample" "$D/code" "${TOK[@]}" --append-eod
oc-megatron preprocess "$OUT/recall/recalled" "$D/web" "${TOK[@]}" --append-eod
oc-megatron preprocess "$C/algorithmic" "$D/algorithmic" "${TOK[@]}" --append-eod
oc-megatron preprocess "$S/clean/anneal" "$D/synthetic_snippets" "${TOK[@]}" --append-eod
oc-megatron preprocess "$S/clean/textbooks" "$D/synthetic_textbooks" "${TOK[@]}" --append-eod
oc-megatron sft-data "$S/clean/sft1" "$D/sft_stage1" "${TOK[@]}"
oc-megatron sft-data "$S/clean/sft2" "$D/sft_stage2" "${TOK[@]}"

T="$OUT/train"
step "13. pretrain the tiny model on Megatron-Core (WSD): code 875 : web 74 (OpenCoder's token billions, v1 table)"
oc-megatron train examples/pretrain_tiny.yaml -s output_dir="$T/pretrain" -s data.tokenizer="$OUT/tokenizer" \
    -s "data.blend=[{name: code, path: $D/code, weight: 875}, {name: web, path: $D/web, weight: 74}]"

step "14. anneal on OpenCoder's blend: original 84.21 (code and web as in pretraining), algorithmic 12.44, snippets 2.71, textbooks 0.91"
oc-megatron train examples/anneal_tiny.yaml -s output_dir="$T/anneal" -s data.tokenizer="$OUT/tokenizer" \
    -s "data.blend=[{name: original, path: $D/code, weight: 77.64}, {name: original-web, path: $D/web, weight: 6.57}, \
{name: algorithmic, path: $D/algorithmic}, {name: synthetic_snippets, path: $D/synthetic_snippets}, \
{name: synthetic_textbooks, path: $D/synthetic_textbooks}]" \
    -s "data.valid_blend=[{name: original, path: $D/code}]" -s checkpoint.init_from.path="$T/pretrain/checkpoints"

step "15. SFT stage 1 (diverse instructions), from the annealed model"
oc-megatron train examples/sft_tiny_stage1.yaml -s output_dir="$T/sft1" -s data.tokenizer="$OUT/tokenizer" \
    -s "data.sft.paths=[$D/sft_stage1]" -s data.sft.valid_paths=null -s train.eval_interval=0 \
    -s checkpoint.init_from.path="$T/anneal/checkpoints"

step "16. SFT stage 2 (educational and package instructions), from stage 1"
oc-megatron train examples/sft_tiny_stage2.yaml -s output_dir="$T/sft2" -s data.tokenizer="$OUT/tokenizer" \
    -s "data.sft.paths=[$D/sft_stage2]" -s data.sft.valid_paths=null -s train.eval_interval=0 \
    -s checkpoint.init_from.path="$T/sft1/checkpoints"

step "17. convert: Megatron-Core checkpoint -> Hugging Face LlamaForCausalLM"
oc-megatron convert to-hf "$T/sft2/checkpoints" "$OUT/hf" --tokenizer "$OUT/tokenizer"

step "18. eval: HumanEval (3 problems, chat prompts) through $ENGINE, executed in the sandbox"
start_model "$OUT/hf" "$OUT/eval_vllm_server.log"
use_model
oc-synth eval humaneval "$OUT/hf" "${BACKEND[@]}" --prompt-mode chat --limit 3 --max-tokens 32 --out "$OUT/eval"
stop_server

step "19. report: one HTML page of the whole run"
REPORT=$(oc-synth report "$OUT")
printf '\nDone in %ss (generation and eval: %s). Report: %s\n' "$(( $(date +%s) - t0 ))" "$WHY" "$REPORT"
