#!/usr/bin/env bash
# The main job on the embedded sample (examples/sample_repos): RefineCode curation end to end on CPU, in seconds.
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

printf '\nDone. Curated records: %s/sampled/ (drops with reasons under %s/dropped/); recalled web pages: %s/recall/recalled/\n' "$OUT" "$OUT" "$OUT"
