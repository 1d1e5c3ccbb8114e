"""Fuzzy dedup against brute force: planted near-duplicates at Jaccard 0.99 / 0.98 / 0.95 / 0.9 / 0.7 plus unrelated
files, run through the real CPU engine (rensa, LSH, components, keep rule, removal), then compared with the exact
Jaccard similarity of every pair and with the LSH S-curve 1 - (1 - J^r)^b."""

import pytest
from dedup_corpus import all_pairs_jaccard, check_s_curve, clusters_after, planted_corpus, same_cluster_pairs

from oc_common.records import write_records
from oc_synth.curate.dedup import bands

LEVELS = {0.99: 40, 0.98: 100, 0.95: 40, 0.9: 20, 0.7: 20}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    c = planted_corpus(LEVELS, unrelated=150)
    root = tmp_path_factory.mktemp("planted")
    half = len(c.records) // 2
    write_records(root / "in" / "part-0.jsonl", c.records[:half])
    write_records(root / "in" / "part-1.parquet", c.records[half:])
    return c, root


def test_opencoder_settings_follow_the_s_curve_with_full_precision(corpus):
    c, root = corpus
    cluster, summary, mh = clusters_after(root, "opencoder")
    truth = all_pairs_jaccard(c.records, mh)
    report = check_s_curve(c, truth, cluster, mh)
    predicted = same_cluster_pairs(cluster)
    near = {p for p, j in truth.items() if j >= 0.99}
    recall = len(near & predicted) / len(near)
    precision = sum(truth.get(p, 0.0) >= 0.95 for p in predicted) / len(predicted)
    print(f"\nopencoder 16x128: caught/expected per level {report}; recall@J>=0.99 {recall:.3f}, "
          f"precision@J>=0.95 {precision:.3f}, {len(predicted)} pairs")
    assert precision == 1.0  # nothing unrelated merged
    assert recall >= 0.9  # S-curve: 0.995 at J = 0.99
    assert report[0.9][0] == 0 and report[0.7][0] == 0
    assert summary["clusters"]["fuzzy_removed"] == len(predicted)  # every cluster here is one pair
    assert summary["records"] == len(c.records)


def test_nemo_preset_char_ngrams_follow_their_s_curve(corpus):
    c, root = corpus
    cluster, _, mh = clusters_after(root, "nemo", preset="nemo")
    assert (mh.shingle, mh.ngram, mh.bands, mh.rows, mh.num_perm) == ("char", 24, 20, 13, 260)
    truth = all_pairs_jaccard(c.records, mh)
    report = check_s_curve(c, truth, cluster, mh)
    print(f"\nnemo 20x13 char-24: caught/expected per level {report}")
    assert report[0.99][0] == len(c.pairs[0.99])


def test_jaccard_check_drops_candidates_below_the_threshold(corpus):
    c, root = corpus
    cluster, summary, mh = clusters_after(root, "checked", preset="nemo", jaccard_check=0.85)
    truth = all_pairs_jaccard(c.records, mh)
    predicted = same_cluster_pairs(cluster)
    assert predicted and all(truth[p] >= 0.85 for p in predicted)
    assert summary["clusters"]["candidate_pairs_below_jaccard"] > 0  # the J~0.7 pairs LSH let through
    print(f"\njaccard check 0.85: {summary['clusters']}")


@pytest.mark.parametrize("options", [{}, {"preset": "nemo", "jaccard_check": 0.85}])
def test_band_keys_grouped_one_small_partition_at_a_time_give_the_same_clusters(corpus, monkeypatch, options):
    """Pass 2 reads the band keys one key range at a time (bands.py); with ranges of at most 500 entries this corpus
    is ~20 partitions (or ~24 at 20 bands), and the clusters are the ones grouped in one partition, which the tests
    above hold to brute force."""
    c, root = corpus
    name = "_".join(map(str, options.values())) or "default"
    whole, whole_summary, mh = clusters_after(root, f"whole-{name}", **options)
    monkeypatch.setattr(bands, "PARTITION_ENTRIES", 500)
    parts, summary, _ = clusters_after(root, f"parts-{name}", **options)
    assert whole_summary["clusters"]["band_key_partitions"] == 1
    assert summary["clusters"]["band_key_partitions"] >= 19
    assert parts == whole and same_cluster_pairs(parts)
    assert {k: v for k, v in summary["clusters"].items() if k != "band_key_partitions"} == \
        {k: v for k, v in whole_summary["clusters"].items() if k != "band_key_partitions"}
