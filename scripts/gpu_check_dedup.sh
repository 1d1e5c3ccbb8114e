#!/usr/bin/env bash
# Dedup's part of scripts/gpu_check.sh (its @pytest.mark.gpu tests run there already, in tests/oc_synth/curate/dedup/
# test_dedup_gpu.py): the CLI picks the GPU engine by itself, then GPU vs CPU throughput on 10k real source files at
# the OpenCoder and NeMo Curator presets. Needs cuDF (nemo-curator[deduplication_cuda12] from pypi.nvidia.com, or
# NVIDIA's NeMo Curator container).
# Usage: bash scripts/gpu_check_dedup.sh [OUT_DIR]     (writes OUT_DIR/dedup/)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-gpu_check_out}/dedup
mkdir -p "$OUT"
export RAY_AUTH_MODE=${RAY_AUTH_MODE:-disabled}
python -c "import cudf" || { echo "cuDF is not importable: the GPU dedup engine cannot run here"; exit 1; }

echo "== --engine auto must choose the GPU engine"
python - "$OUT" <<'PY'
import json, random, sys
from pathlib import Path
from oc_common.records import write_records
out = Path(sys.argv[1])
rng = random.Random(0)
docs = [" ".join(f"w{rng.randrange(10**6)}" for _ in range(300)) for _ in range(200)]
recs = [{"id": f"d{i}", "text": t, "stars": i} for i, t in enumerate(docs)]
recs += [{"id": f"copy{i}", "text": docs[i], "stars": 0} for i in range(20)]
recs += [{"id": f"near{i}", "text": docs[i] + " tail", "stars": 0} for i in range(20, 40)]
write_records(out / "smoke_in" / "part-0.jsonl", recs)
PY
rm -rf "$OUT/smoke_out"
python -m oc_synth.cli curate dedup "$OUT/smoke_in" "$OUT/smoke_out" --engine auto --overwrite 2>&1 | tee "$OUT/smoke.log"
python - "$OUT" <<'PY'
import json, sys
d = json.load(open(f"{sys.argv[1]}/smoke_out/stats.json"))["dedup"]
print("engine:", d["engine"], "|", d["engine_choice"], "| clusters:", d["clusters"])
assert d["engine"].startswith("GPU"), "auto did not pick the GPU engine"
assert d["clusters"]["exact_removed"] == 20 and d["clusters"]["fuzzy_removed"] >= 19, d["clusters"]
PY

echo "== throughput, OpenCoder preset (word 5-grams, 2048 permutations, 16x128)"
python benchmarks/dedup_throughput.py --sizes 10000 --engines cpu,gpu --out "$OUT/throughput_opencoder.json"
echo "== throughput, NeMo Curator preset (char 24-grams, 20x13)"
python benchmarks/dedup_throughput.py --sizes 10000 --engines cpu,gpu --preset nemo --out "$OUT/throughput_nemo.json"
