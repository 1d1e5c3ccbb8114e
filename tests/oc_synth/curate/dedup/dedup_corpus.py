"""A generated corpus with planted near-duplicates at known Jaccard similarity, and brute-force ground truth.

Each base document is ``S + 4`` distinct random identifiers laid out like code, so it has ``S`` distinct word
5-grams that no other document shares. A variant replaces the last ``m`` words: ``m`` shingles leave, ``m`` new ones
arrive, and the Jaccard similarity of the word 5-gram sets is exactly ``(S - m) / (S + m)``.

Also the checks shared by the CPU and GPU accuracy tests: run a fuzzy dedup, read back its clusters, compare the
catches of each planted level with the S-curve over the pairs' brute-force similarities.
"""

from __future__ import annotations

import math
import random
from collections import defaultdict
from dataclasses import dataclass, field
from itertools import combinations

from oc_common.records import iter_records
from oc_synth.curate.dedup.settings import build_settings
from oc_synth.curate.dedup.workflow import run_dedup
from oc_synth.minhash.settings import MinHashSettings
from oc_synth.minhash.shingles import jaccard, shingle_sets

S = 200  # word 5-gram shingles per base document
SEPARATORS = (" = ", "(", ", ", ")\n", ".", " + ", "[", "]\n", " ")


@dataclass
class PlantedCorpus:
    records: list[dict] = field(default_factory=list)
    pairs: dict[float, list[tuple[str, str]]] = field(default_factory=dict)  # target J -> (base id, variant id)


def _words(rng: random.Random, n: int) -> list[str]:
    return ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz_") for _ in range(7)) + str(rng.randrange(100))
            for _ in range(n)]


def _as_code(words: list[str]) -> str:
    # the separator follows from the word, so a variant differs from its base only where its words do
    return "".join(w + SEPARATORS[sum(map(ord, w)) % len(SEPARATORS)] for w in words)


def replaced_for(target: float, s: int = S) -> int:
    """Tail words to replace so that (s - m) / (s + m) is closest to ``target``."""
    return min(range(s), key=lambda m: abs((s - m) / (s + m) - target))


def planted_corpus(levels: dict[float, int], unrelated: int, seed: int = 0) -> PlantedCorpus:
    """``levels``: target Jaccard -> number of (base, variant) pairs; plus ``unrelated`` singleton documents."""
    rng = random.Random(seed)
    corpus = PlantedCorpus()

    def add(doc_id: str, words: list[str]) -> None:
        corpus.records.append({"id": doc_id, "text": _as_code(words), "stars": rng.randrange(50),
                               "commit_time": f"2024-0{rng.randrange(1, 10)}-1{rng.randrange(10)}T12:00:00Z",
                               "repo": f"org/repo{rng.randrange(1000)}", "language": "Python"})

    for target, n in levels.items():
        m = replaced_for(target)
        corpus.pairs[target] = []
        for k in range(n):
            base = _words(rng, S + 4)
            variant = base[: len(base) - m] + _words(rng, m)
            add(f"b{target}-{k}", base)
            add(f"v{target}-{k}", variant)
            corpus.pairs[target].append((f"b{target}-{k}", f"v{target}-{k}"))
    for k in range(unrelated):
        add(f"u{k}", _words(rng, rng.randrange(20, S + 4)))
    rng.shuffle(corpus.records)
    return corpus


def all_pairs_jaccard(records: list[dict], settings: MinHashSettings) -> dict[tuple[str, str], float]:
    """Exact Jaccard similarity of every pair of documents that shares at least one shingle (every other pair has
    similarity 0). Keys are (id, id) sorted."""
    ids = [r["id"] for r in records]
    sets = shingle_sets([r["text"] for r in records], settings)
    postings = defaultdict(list)
    for i, s in enumerate(sets):
        for h in s:
            postings[h].append(i)
    sharing = {(a, b) for docs in postings.values() if len(docs) > 1 for a, b in combinations(docs, 2)}
    return {tuple(sorted((ids[a], ids[b]))): jaccard(sets[a], sets[b]) for a, b in sharing}


def clusters_after(root, name, engine="cpu", **options):
    """Run fuzzy dedup on ``root/in``; return id -> minhash_cluster over kept and removed records, and the summary."""
    settings = build_settings(mode="fuzzy", engine=engine, **options)
    out, dropped = root / name, root / f"{name}-dropped"
    summary = run_dedup(root / "in", out, settings, dropped=dropped, quiet=True)
    cluster = {r["id"]: r["minhash_cluster"] for d in (out, dropped) for r in iter_records(d)}
    return cluster, summary, settings.minhash


def same_cluster_pairs(cluster):
    members = {}
    for doc, c in cluster.items():
        members.setdefault(c, []).append(doc)
    return {tuple(sorted(p)) for m in members.values() for p in combinations(m, 2)}


def check_s_curve(corpus, truth, cluster, mh):
    """Per planted level: catches vs the S-curve's expectation over the pairs' brute-force similarities."""
    report = {}
    for level, pairs in corpus.pairs.items():
        probs = [mh.catch_probability(truth.get(tuple(sorted(p)), 0.0)) for p in pairs]
        caught = sum(cluster[a] == cluster[b] for a, b in pairs)
        expected = sum(probs)
        sd = math.sqrt(sum(p * (1 - p) for p in probs))
        report[level] = (caught, round(expected, 1))
        assert abs(caught - expected) <= 4 * sd + 1, f"J~{level}: caught {caught}, S-curve expects {expected:.1f}"
    return report
