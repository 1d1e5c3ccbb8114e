"""The GPU engine (NeMo Curator on cuDF/RAPIDS) against brute force and against the CPU engine. Needs CUDA and cuDF:
skipped elsewhere; run by scripts/gpu_check.sh (scripts/gpu_check_dedup.sh)."""

import pytest
from dedup_corpus import all_pairs_jaccard, check_s_curve, clusters_after, planted_corpus, same_cluster_pairs

from oc_common.records import iter_records, write_records
from oc_synth.curate.dedup.settings import build_settings
from oc_synth.curate.dedup.workflow import run_dedup

pytestmark = pytest.mark.gpu


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    pytest.importorskip("cudf")
    c = planted_corpus({0.99: 40, 0.98: 100, 0.95: 40, 0.9: 20, 0.7: 20}, unrelated=150)
    root = tmp_path_factory.mktemp("planted_gpu")
    half = len(c.records) // 2
    write_records(root / "in" / "part-0.jsonl", c.records[:half])
    write_records(root / "in" / "part-1.parquet", c.records[half:])
    return c, root


@pytest.mark.parametrize("preset", ["opencoder", "nemo"])
def test_gpu_fuzzy_follows_the_s_curve_and_agrees_with_cpu(corpus, preset):
    c, root = corpus
    gpu, summary, mh = clusters_after(root, f"gpu-{preset}", engine="gpu", preset=preset)
    assert summary["engine"].startswith("GPU")
    truth = all_pairs_jaccard(c.records, mh)
    report = check_s_curve(c, truth, gpu, mh)
    cpu, _, _ = clusters_after(root, f"cpu-{preset}", engine="cpu", preset=preset)
    gpu_pairs, cpu_pairs = same_cluster_pairs(gpu), same_cluster_pairs(cpu)
    agreement = len(gpu_pairs & cpu_pairs) / max(1, len(gpu_pairs | cpu_pairs))
    print(f"\n{preset}: GPU caught/expected {report}; GPU/CPU pair agreement {agreement:.3f}")
    assert agreement >= 0.8  # borderline pairs (J ~ threshold) differ by chance; the rest must agree


def test_gpu_exact_groups_and_survivors_equal_cpu(corpus, tmp_path):
    c, _ = corpus
    recs = c.records[:50] + [dict(r, id=r["id"] + "-copy", stars=r["stars"] + 1) for r in c.records[:20]]
    write_records(tmp_path / "in.jsonl", recs)
    kept = {}
    for engine in ("gpu", "cpu"):
        run_dedup(tmp_path / "in.jsonl", tmp_path / engine, build_settings(mode="exact", engine=engine), quiet=True)
        kept[engine] = sorted((r["id"], r["dup_cluster"], r["dup_count"]) for r in iter_records(tmp_path / engine))
    assert kept["gpu"] == kept["cpu"]
    assert sum(1 for k in kept["cpu"] if k[0].endswith("-copy")) == 20  # more stars: the copies survive
