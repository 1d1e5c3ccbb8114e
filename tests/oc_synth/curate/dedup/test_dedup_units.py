"""Building blocks: shingles, signatures/band keys, keep-rule parsing and ordering, clustering."""

import random
from datetime import datetime, timezone

import numpy as np
import pytest

from oc_common.errors import ConfigError, EnvironmentProblem
from oc_synth.curate.dedup.keep_rule import commit_epoch, pick_survivors, stars_value
from oc_synth.curate.dedup.settings import build_settings
from oc_synth.minhash.lsh import Components, bucket_edges, bucket_pairs, group_equal
from oc_synth.minhash.shingles import WORD_RE, has_shingles, shingle_hashes, shingle_sets, unit_hashes
from oc_synth.minhash.signatures import band_keys, signatures

WORD5 = build_settings().minhash
CHAR24 = build_settings(preset="nemo").minhash


def test_fast_word_cut_equals_the_documented_regex():
    text = "def f(x_1):\n    return ünïcode[x_1] + 3.14 // naïve—dash, 日本語 tab\tz"
    words = WORD_RE.findall(text)
    assert words == ["def", "f", "x_1", "return", "ünïcode", "x_1", "3", "14", "naïve—dash", "日本語", "tab", "z"]
    _, lengths = unit_hashes([text], WORD5)
    assert lengths.tolist() == [len(words)]


def test_short_empty_and_formatting_only_documents():
    sets = shingle_sets(["import os", "import   os\n", "", "  ;; {} ", "a b c d e f"], WORD5)
    assert len(sets[0]) == 1 and sets[0] == sets[1]  # fewer words than n: one shingle of all of them
    assert sets[2] == set() and sets[3] == set()  # nothing to shingle: no part in fuzzy dedup
    assert len(sets[4]) == 2
    assert not has_shingles("  ;; {} ", WORD5) and has_shingles("  ;; {} ", CHAR24) and not has_shingles("", CHAR24)
    chars = shingle_sets(["short", "x" * 30], CHAR24)
    assert len(chars[0]) == 1 and len(chars[1]) == 1  # 7 identical 24-char windows are one shingle


def test_band_keys_are_seeded_and_reproducible():
    texts = [" ".join(f"tok{random.Random(i).randrange(10**6)}_{j}" for j in range(60)) for i in range(5)] + [""]
    k1, has1 = band_keys(texts, WORD5)
    k2, _ = band_keys(texts, WORD5)
    k3, _ = band_keys(texts, build_settings(seed=7).minhash)
    assert k1.shape == (6, 16) and k1.dtype == np.uint64
    assert np.array_equal(k1, k2)
    assert not np.array_equal(k1[:5], k3[:5])
    assert has1.tolist() == [True] * 5 + [False] and not k1[5].any()


def fx_band_hashes(sigs: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """rensa's LSH band hash written out (rensa/src/utils.rs calculate_band_hash: FxHash over each 4 values as two
    little-endian u64 words, then the remaining values one by one, rotated left by 26)."""
    k = np.uint64(0xF1357AEA2E62A9C5)
    v = sigs.astype(np.uint64).reshape(len(sigs), bands, rows)
    paired = rows // 4 * 4
    words = [v[..., j] | (v[..., j + 1] << np.uint64(32)) for j in range(0, paired, 2)]
    words += [v[..., j] for j in range(paired, rows)]
    h = np.zeros((len(sigs), bands), np.uint64)
    for w in words:
        h = (h + w) * k
    return (h << np.uint64(26)) | (h >> np.uint64(38))


@pytest.mark.parametrize("mh", [WORD5, CHAR24], ids=["opencoder", "nemo"])
def test_band_keys_are_rensas_band_hashes_of_the_signatures(mh):
    """Band keys are read out of rensa's LSH state (signatures.py); they must be the FxHash of each band of the
    signature, for 128 rows and for 13 (a remainder after the 4-value blocks), over more than one chunk."""
    texts = [" ".join(f"tok{random.Random(i).randrange(10**6)}_{j}" for j in range(5 + i % 90)) for i in range(700)]
    keys, has = band_keys(texts, mh)
    flat, lengths = unit_hashes(texts, mh)
    sh, offsets = shingle_hashes(flat, lengths, mh.ngram)
    assert has.all() and np.array_equal(keys, fx_band_hashes(signatures(sh, offsets, mh), mh.bands, mh.rows))


def test_an_lsh_state_of_another_layout_is_refused_with_the_rensa_version():
    from rensa import RMinHashLSH

    from oc_synth.minhash.signatures import _key_bands, digest_matrix

    flat, lengths = unit_hashes(["a b c d e f g", "h i j k l m"], WORD5)
    sh, offsets = shingle_hashes(flat, lengths, WORD5.ngram)
    lsh = RMinHashLSH(WORD5.threshold(), WORD5.num_perm, WORD5.bands)
    lsh.insert_matrix(digest_matrix(sh, offsets, WORD5), 0)
    state = lsh.__getstate__()
    assert _key_bands(state, 2, WORD5).shape == (2, 16)
    for bad, why in [(b"Rensa:RMinHashLSH:3" + state[19:], "starts"), (state, "key_bands"),
                     (state[:-1], "varint|key_bands")]:
        with pytest.raises(EnvironmentProblem, match=f"rensa .*({why})"):
            _key_bands(bad, 3 if bad is state else 2, WORD5)


def test_settings_validation_names_the_problem():
    with pytest.raises(ConfigError, match="num_perm"):
        build_settings(num_perm=1000)
    assert build_settings(bands=8, rows=64).minhash.num_perm == 512  # follows bands x rows
    with pytest.raises(ConfigError, match="preset"):
        build_settings(preset="fast")
    with pytest.raises(ConfigError, match="mode"):
        build_settings(mode="fuzz")
    mh = build_settings().minhash
    assert abs(mh.threshold() - 0.9786) < 1e-3 and mh.catch_probability(0.99) > 0.99


@pytest.mark.parametrize("value, expected", [
    ("2023-01-01T00:00:00Z", 1672531200.0),
    ("2023-01-01T02:00:00+02:00", 1672531200.0),
    ("2023-01-01T00:00:00", 1672531200.0),  # no offset: UTC
    ("2023-01-01", 1672531200.0),
    (datetime(2023, 1, 1, tzinfo=timezone.utc), 1672531200.0),
    (1672531200, 1672531200.0),
    ("last tuesday", None), (True, None), (None, None),
])
def test_commit_time_parsing(value, expected):
    assert commit_epoch(value) == expected


def test_stars_parsing():
    assert [stars_value(v) for v in (3, 2.0, " 12 ", "n/a", True, None, float("nan"), np.int64(4))] == \
        [3.0, 2.0, 12.0, None, None, None, None, 4.0]


def test_pick_survivors_orders_by_stars_time_id_then_input_order():
    nan = np.nan
    clusters = np.array([0, 0, 0, 1, 1, 2, 2, 3, 3])
    stars = np.array([3, 7, nan, 5, 5, 1, 1, nan, nan])
    times = np.array([0, 0, 0, 10, 20, 5, 5, nan, nan])
    ids = np.array(["a1", "a2", "a3", "b1", "b2", "c9", "c10", "d", "d"], dtype=object)
    survivor, size = pick_survivors(clusters, stars, times, ids, np.arange(9))
    assert survivor.tolist() == [1, 1, 1, 4, 4, 6, 6, 7, 7]
    assert size.tolist() == [3, 3, 3, 2, 2, 2, 2, 2, 2]
    survivor, _ = pick_survivors(np.array([0, 0]), np.array([nan, nan]), np.array([nan, nan]),
                                 np.array([None, "z"], dtype=object), np.array([0, 1]))
    assert survivor.tolist() == [1, 1]  # a missing id ranks below any id


def test_components_match_a_reference_union_find():
    rng = np.random.default_rng(1)
    n = 300
    u, v = rng.integers(0, n, 200), rng.integers(0, n, 200)
    comp = Components(n)
    for lo in range(0, 200, 50):  # edges arrive in batches, as bands do
        comp.union(u[lo:lo + 50], v[lo:lo + 50])
    ref = list(range(n))

    def find(x):
        while ref[x] != x:
            x = ref[x]
        return x
    for a, b in zip(u.tolist(), v.tolist(), strict=True):
        ra, rb = find(a), find(b)
        ref[max(ra, rb)] = min(ra, rb)
    assert comp.labels().tolist() == [find(x) for x in range(n)]


def test_grouping_and_bucket_edges():
    keys = np.array([5, 3, 5, 9, 3, 5], dtype=np.uint64)
    assert group_equal(keys).tolist() == [0, 1, 0, 3, 1, 0]
    u, v = bucket_edges(keys)
    assert sorted(zip(u.tolist(), v.tolist(), strict=True)) == [(2, 0), (4, 1), (5, 0)]
    u, v = bucket_pairs(keys)
    assert sorted(zip(u.tolist(), v.tolist(), strict=True)) == [(0, 2), (0, 5), (1, 4), (2, 5)]


def test_band_files_partitions_cover_every_entry_once(tmp_path):
    from oc_synth.curate.dedup.bands import read_partition, write_bands

    rng = np.random.default_rng(3)
    files, starts, expected = [], [0, 40], []
    for s, n in enumerate((40, 25)):
        keys = rng.integers(0, 2**64, size=(n, 4), dtype=np.uint64, endpoint=False)
        keys[:3, 2] = 7  # three records of each shard with one equal band
        rows = np.arange(n, dtype=np.int64)[::-1].copy()
        files.append(tmp_path / f"s{s}.bands.npy")
        assert write_bands(files[-1], keys, rows) == n * 4
        expected += [(int(k), int(r) + starts[s]) for k, r in
                     zip(np.load(files[-1])[0].tolist(), np.load(files[-1])[1].tolist(), strict=True)]
    for count in (1, 2, 7):
        got = []
        for p in range(count):
            keys, positions = read_partition(files, starts, p, count)
            got += list(zip(keys.tolist(), positions.tolist(), strict=True))
        assert sorted(got) == sorted(expected)
    all_keys = np.array([k for k, _ in expected], np.uint64)
    _, counts = np.unique(all_keys, return_counts=True)
    assert sorted(counts.tolist())[-2:] == [1, 6]  # the equal band is one key across shards, every other is unique
