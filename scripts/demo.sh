#!/usr/bin/env bash
# The main job, end to end on CPU in a few minutes, on embedded inputs: RefineCode curation of examples/sample_repos
# (ingest, dedup, transform, filter, sample), a web-recall run on a generated web corpus, then a tiny model
# pretrained on Megatron-Core, converted to Hugging Face and evaluated on HumanEval in the sandbox.
# Usage: bash scripts/demo.sh [OUT_DIR]   (default: demo_out/; rerunning starts over)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-demo_out}
export OMP_NUM_THREADS=1
rm -rf "$OUT"
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "1. ingest: repositories -> code-file records (Linguist languages, drops with reasons)"
oc-synth curate ingest examples/sample_repos "$OUT/ingest" --dropped "$OUT/dropped/ingest"

step "2. dedup: exact SHA-256 + MinHash LSH (OpenCoder: 5-grams, 2048 perms, 16x128)"
oc-synth curate dedup "$OUT/ingest" "$OUT/dedup" --mode both --dropped "$OUT/dropped/dedup"

step "3. transform: strip head copyright notices, replace PII"
oc-synth curate transform "$OUT/dedup" "$OUT/transform"

step "4. filter: RefineCode heuristic rules"
oc-synth curate filter "$OUT/transform" "$OUT/filtered" --dropped "$OUT/dropped/filter"

step "5. sample: downsample over-represented languages (Java, HTML)"
oc-synth curate sample "$OUT/filtered" "$OUT/sampled" --dropped "$OUT/dropped/sample"

step "6. recall: 3 rounds of fastText web recall (domains, URL patterns) on a generated web corpus"
python examples/recall/make_corpus.py "$OUT/recall_data"
oc-synth recall run --seeds "$OUT/recall_data/seeds.jsonl" --corpus "$OUT/recall_data/web" --out "$OUT/recall" \
    --url-patterns examples/recall/url_patterns.yaml --config examples/recall/config.yaml

step "7. preprocess: a small code corpus + a BPE tokenizer trained here -> Megatron indexed dataset"
python examples/make_tiny_data.py "$OUT/tiny_data"

step "8. pretrain: the tiny OpenCoder-architecture model on Megatron-Core (CPU, gloo), WSD schedule"
oc-megatron train examples/pretrain_tiny.yaml -s output_dir="$OUT/pretrain" -s data.tokenizer="$OUT/tiny_data/tokenizer" \
    -s "data.blend=[{path: $OUT/tiny_data/code_text_document, weight: 1.0}]"

step "9. convert: Megatron-Core checkpoint -> Hugging Face LlamaForCausalLM"
oc-megatron convert to-hf "$OUT/pretrain/checkpoints" "$OUT/hf" --tokenizer "$OUT/tiny_data/tokenizer"

step "10. eval: HumanEval (3 problems) through transformers, executed in the sandbox"
oc-synth eval humaneval "$OUT/hf" --backend hf --limit 3 --max-tokens 32 --out "$OUT/eval"

printf '\nDone. Curated records: %s/sampled/ (drops with reasons under %s/dropped/); recalled web pages: %s/recall/recalled/;\n      HF model: %s/hf/; eval summary: %s/eval/summary.json\n' "$OUT" "$OUT" "$OUT" "$OUT" "$OUT"
