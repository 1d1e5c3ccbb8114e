"""Fuzzy dedup throughput and peak memory: our engine next to rensa used directly and datasketch's MinHashLSH.

Same parameters for every engine (the OpenCoder preset unless --preset says otherwise): word 5-gram shingles cut
by the same word definition, 2,048 permutations, LSH 16 bands x 128 rows. Each run is a fresh process (so peak RSS
is that run's own), the engines alternate and the order reverses every round (benchmarks/measure.py), and each is
summarised as the median with the spread (min-max) of wall time, CPU time (user + system: the fair measure on a
shared box) and peak RSS. What is timed, for every engine: read the JSONL corpus, shingle, sign, LSH, group
candidates. Ours is its whole `curate dedup --mode fuzzy` (clusters, keep rule, and the deduplicated corpus written).
rensa's "removed" counts every document flagged by its insert-and-query call, which flags both members of a pair
inserted in the same call, so it is higher than the number of documents a dedup removes.

    python benchmarks/dedup_throughput.py                                   # 10k and 100k real files
    python benchmarks/dedup_throughput.py --sizes 20000 --engines cpu,rensa,datasketch --rounds 3
    python benchmarks/dedup_throughput.py --synthetic --sizes 20000,100000,1000000 --engines cpu,rensa --rounds 3,3,1
    python benchmarks/dedup_throughput.py --engines cpu,gpu --out results.json  # on a GPU machine

The corpus: source files found under --roots (default: this Python's stdlib and site-packages, /usr/include,
/usr/lib, /usr/share, /usr/local), sampled with a fixed seed, as JSONL records (text, id = path). Real trees contain
real duplicates (vendored copies, empty __init__.py files), so the engines' duplicate counts are comparable too.
--synthetic generates small code-like files instead, for sizes up to millions. docs/performance.md has the numbers
measured on this project's CPU boxes.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from measure import alternate, fmt, load_average, measured, run_child, summarize  # noqa: E402

# programming languages, plus the markup/data/prose types RefineCode keeps (no HTML: generated API docs would
# dominate the sample on most boxes)
CODE_SUFFIXES = {".py", ".pyi", ".c", ".h", ".cc", ".cpp", ".hpp", ".cu", ".cuh", ".js", ".ts", ".go", ".rs", ".java",
                 ".rb", ".pl", ".pm", ".sh", ".lua", ".php", ".cs", ".scala", ".kt", ".swift", ".m", ".f90",
                 ".rst", ".md", ".json", ".yaml", ".yml", ".toml", ".xml", ".css", ".sql", ".cmake", ".vim", ".cfg",
                 ".ini", ".txt"}
MAX_BYTES = 1 << 20


def default_roots() -> list[str]:
    paths = sysconfig.get_paths()
    roots = [paths["stdlib"], paths["purelib"], "/usr/include", "/usr/lib", "/usr/share", "/usr/local"]
    return sorted({r for r in roots if os.path.isdir(r)})


def find_sources(roots: list[str]) -> list[str]:
    found = set()
    for root in roots:
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            for name in filenames:
                if os.path.splitext(name)[1] in CODE_SUFFIXES:
                    path = os.path.realpath(os.path.join(dirpath, name))
                    if os.path.isfile(path) and os.path.getsize(path) <= MAX_BYTES:
                        found.add(path)
    return sorted(found)


def write_corpus(paths: list[str], n: int, seed: int, directory: Path, shard_size: int = 10_000) -> int:
    """``n`` readable UTF-8 files as JSONL shards; returns how many were written."""
    rng = random.Random(seed)
    order = paths[:]
    rng.shuffle(order)
    directory.mkdir(parents=True, exist_ok=True)
    written, batch, shards = 0, [], 0

    def flush() -> None:
        nonlocal shards
        (directory / f"part-{shards:05d}.jsonl").write_text("\n".join(batch) + "\n")
        batch.clear()
        shards += 1

    for path in order:
        if written == n:
            break
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        batch.append(json.dumps({"id": path, "text": text, "stars": rng.randrange(100),
                                 "commit_time": f"2024-01-{rng.randrange(1, 29):02d}T00:00:00Z"}))
        if len(batch) == shard_size:
            flush()
        written += 1
    if batch:
        flush()
    return written


def write_synthetic_corpus(n: int, seed: int, directory: Path, shard_size: int = 10_000) -> int:
    """``n`` generated code-like files (~60-400 words from a 5,000-word vocabulary; one in ten a copy of an earlier
    one, alternately with three words changed (Jaccard ~0.9, below OpenCoder's threshold) or laid out on lines of
    another width (same words: a near-duplicate that is not an exact one)), for sizes beyond this machine's real
    files: memory must stay flat however many documents there are."""
    import numpy as np

    rng = np.random.default_rng(seed)
    vocabulary = np.array([f"w{i}" for i in range(5000)], dtype=object)
    directory.mkdir(parents=True, exist_ok=True)
    recent: list[list[str]] = []
    for shard, lo in enumerate(range(0, n, shard_size)):
        lines = []
        for i in range(lo, min(n, lo + shard_size)):
            width = 6
            if recent and rng.random() < 0.1:
                words = list(recent[int(rng.integers(len(recent)))])
                if i % 2:
                    for k in rng.integers(0, len(words), 3):
                        words[k] = vocabulary[int(rng.integers(5000))]
                else:
                    width = 4
            else:
                words = list(vocabulary[rng.integers(0, 5000, int(rng.integers(60, 400)))])
                recent = (recent + [words])[-1000:]
            text = "\n".join(" = ".join(words[k:k + width]) for k in range(0, len(words), width))
            lines.append(json.dumps({"id": f"doc-{i}", "text": text, "stars": int(rng.integers(100))}))
        (directory / f"part-{shard:05d}.jsonl").write_text("\n".join(lines) + "\n")
    return n


# ---- one measured run per process -------------------------------------------------------------------------------

def run_ours(corpus: Path, work: Path, engine: str, preset: str) -> dict:
    from oc_synth.curate.dedup.settings import build_settings
    from oc_synth.curate.dedup.workflow import run_dedup

    summary = run_dedup(corpus, work / "out", build_settings(mode="fuzzy", engine=engine, preset=preset), quiet=True)
    return {"removed": summary["clusters"].get("fuzzy_removed", 0), "records": summary["records"],
            "signature_docs_per_s": summary["index_docs_per_s"], "engine_detail": summary["engine"],
            "seconds_by_pass": summary["seconds"]}


def run_datasketch(corpus: Path, preset: str) -> dict:
    """datasketch's MinHash + MinHashLSH with the same shingles, permutations and bands x rows."""
    import numpy as np
    from datasketch import MinHash, MinHashLSH

    from oc_common.records import iter_records
    from oc_synth.curate.dedup.settings import build_settings
    from oc_synth.minhash.lsh import Components
    from oc_synth.minhash.shingles import words

    mh = build_settings(preset=preset).minhash
    if mh.shingle != "word":
        raise SystemExit("the datasketch baseline implements word shingles only")
    lsh = MinHashLSH(num_perm=mh.num_perm, params=(mh.bands, mh.rows))
    template = MinHash(num_perm=mh.num_perm, seed=mh.seed)  # permutations drawn once, copied per document
    t0 = time.perf_counter()
    u, v, n = [], [], 0
    for i, rec in enumerate(iter_records(corpus)):
        w = words(rec["text"])
        if not w:
            continue
        shingles = {b" ".join(w[k:k + mh.ngram]) for k in range(max(1, len(w) - mh.ngram + 1))}
        m = template.copy()
        m.update_batch(list(shingles))
        for j in lsh.query(m):
            u.append(i)
            v.append(j)
        lsh.insert(i, m)
        n = i + 1
    comp = Components(n)
    comp.union(np.array(u, np.int64), np.array(v, np.int64))
    labels = comp.labels()
    removed = int(n - len(np.unique(labels)))
    return {"removed": removed, "records": n, "signature_docs_per_s": round(n / (time.perf_counter() - t0), 1),
            "engine_detail": "datasketch MinHash + MinHashLSH (in-memory)"}


def run_rensa(corpus: Path, preset: str) -> dict:
    """rensa used directly, as its documentation's bulk path: word 5-gram shingles (the same word cut) per document,
    ``RMinHash.digest_matrix_from_token_sets`` for a chunk of documents, ``RMinHashLSH.insert_matrix_and_query_
    duplicate_flags`` (16 bands): a document is a duplicate when it shares a band with one seen before."""
    from rensa import RMinHash, RMinHashLSH

    from oc_common.records import iter_records
    from oc_synth.curate.dedup.settings import build_settings
    from oc_synth.minhash.shingles import words

    mh = build_settings(preset=preset).minhash
    if mh.shingle != "word":
        raise SystemExit("the rensa baseline implements word shingles only")
    lsh = RMinHashLSH(mh.threshold(), mh.num_perm, mh.bands)
    n = removed = 0
    chunk: list[list[bytes]] = []

    def flush() -> int:
        matrix = RMinHash.digest_matrix_from_token_sets(chunk, mh.num_perm, mh.seed)
        flags = lsh.insert_matrix_and_query_duplicate_flags(matrix, n - len(chunk))
        chunk.clear()
        return sum(flags)

    for rec in iter_records(corpus):
        w = words(rec["text"])
        if not w:
            continue
        chunk.append(list({b" ".join(w[k:k + mh.ngram]) for k in range(max(1, len(w) - mh.ngram + 1))}))
        n += 1
        if len(chunk) == 512:
            removed += flush()
    if chunk:
        removed += flush()
    return {"removed": removed, "records": n, "signature_docs_per_s": None,
            "engine_detail": "rensa RMinHash digest matrix + RMinHashLSH (in-memory)"}


def run_rensa_per_document(corpus: Path, preset: str) -> dict:
    """rensa used directly, one ``RMinHash`` per document as its README shows (``update`` with the shingles, then
    ``RMinHashLSH.query`` for earlier candidates and ``insert``): a document is a duplicate when it shares a band with
    one seen before."""
    from rensa import RMinHash, RMinHashLSH

    from oc_common.records import iter_records
    from oc_synth.curate.dedup.settings import build_settings
    from oc_synth.minhash.shingles import words

    mh = build_settings(preset=preset).minhash
    lsh = RMinHashLSH(mh.threshold(), mh.num_perm, mh.bands)
    n = removed = 0
    for rec in iter_records(corpus):
        w = words(rec["text"])
        if not w:
            continue
        m = RMinHash(mh.num_perm, mh.seed)
        m.update([b" ".join(w[k:k + mh.ngram]) for k in range(max(1, len(w) - mh.ngram + 1))])
        removed += bool(lsh.query(m))
        lsh.insert(n, m)
        n += 1
    return {"removed": removed, "records": n, "signature_docs_per_s": None,
            "engine_detail": "rensa RMinHash per document + RMinHashLSH query/insert (in-memory)"}


def child(args: argparse.Namespace) -> None:
    """One measured run (a fresh process from measure.run_child): prints its figures as one JSON line."""
    # imports (NeMo Curator's alone take seconds) are not part of the measurement; each engine imports only what it
    # uses, so that its peak RSS is its own (the peers' runs borrow only our word cut and settings)
    if args.engine == "datasketch":
        import datasketch  # noqa: F401
    elif args.engine.startswith("rensa"):
        import rensa  # noqa: F401
    else:
        import oc_synth.curate.dedup.workflow  # noqa: F401

    runners = {"datasketch": lambda: run_datasketch(Path(args.corpus), args.preset),
               "rensa": lambda: run_rensa(Path(args.corpus), args.preset),
               "rensa-doc": lambda: run_rensa_per_document(Path(args.corpus), args.preset)}
    result: dict = {}
    with measured(result):
        if args.engine in runners:
            result.update(runners[args.engine]())
        else:
            shutil.rmtree(args.work, ignore_errors=True)
            result.update(run_ours(Path(args.corpus), Path(args.work), args.engine, args.preset))
    print(json.dumps(result))


# ---- driver -----------------------------------------------------------------------------------------------------

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,100000", help="corpus sizes (files), comma separated")
    parser.add_argument("--engines", default="cpu,rensa,datasketch",
                        help="cpu (ours), gpu (ours), rensa (its bulk matrix API), rensa-doc (its per-document "
                             "README path), datasketch; comma separated")
    parser.add_argument("--rounds", default="3",
                        help="measured runs per engine, alternating (reversed every round); one value, or one per "
                             "size (3,3,1)")
    parser.add_argument("--preset", default="opencoder", help="opencoder (word 5-grams, 16x128) or nemo")
    parser.add_argument("--roots", nargs="*", default=None, help="where to look for source files")
    parser.add_argument("--synthetic", action="store_true",
                        help="generated files instead of this machine's (for sizes up to millions; memory curves)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the file sample")
    parser.add_argument("--out", default=None, help="also write the results as JSON here")
    parser.add_argument("--keep", action="store_true", help="keep the generated corpora (printed path)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)  # one measured run (measure.py)
    parser.add_argument("--engine", help=argparse.SUPPRESS)
    parser.add_argument("--corpus", help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return

    sizes = [int(s) for s in args.sizes.split(",")]
    rounds = [int(r) for r in args.rounds.split(",")]
    rounds = rounds * len(sizes) if len(rounds) == 1 else rounds
    if len(rounds) != len(sizes):
        raise SystemExit(f"--rounds: one value or one per size ({len(sizes)})")
    engines = args.engines.split(",")
    t0 = time.perf_counter()
    paths = [] if args.synthetic else find_sources(args.roots or default_roots())
    print("generated files" if args.synthetic else f"{len(paths):,} candidate source files under "
          f"{', '.join(args.roots or default_roots())} "
          f"({time.perf_counter() - t0:.1f} s)", flush=True)
    print(f"load average at the start: {load_average()}", flush=True)
    tmp = Path(tempfile.mkdtemp(prefix="dedup_bench_"))
    results = []
    for size, n_rounds in zip(sizes, rounds, strict=True):
        corpus = tmp / f"corpus_{size}"
        n = write_synthetic_corpus(size, args.seed, corpus) if args.synthetic else \
            write_corpus(paths, size, args.seed, corpus)
        mb = sum(p.stat().st_size for p in corpus.iterdir()) / 2**20
        print(f"\n== {n:,} files ({mb:,.0f} MB of JSONL), {n_rounds} run(s) per engine", flush=True)
        if n < size:
            print(f"   only {n:,} readable files found; pass --roots with more code to reach {size:,}")

        def side(engine: str, corpus: Path = corpus, size: int = size):
            return lambda: run_child(sys.executable, __file__, ["--engine", engine, "--corpus", str(corpus),
                                                                 "--work", str(tmp / f"work_{size}_{engine}"),
                                                                 "--preset", args.preset])

        runs = alternate({engine: side(engine) for engine in engines}, n_rounds)
        print(f"   {'engine':<11} {'docs/s (wall)':>14} {'docs/CPU-s':>11} {'wall s':>22} {'CPU s':>22} "
              f"{'peak RSS MiB':>20}  removed", flush=True)
        summaries = {}
        for engine, engine_runs in runs.items():
            s = summaries[engine] = summarize(engine_runs, rate_of="records")
            results.append({"files": n, "megabytes": round(mb, 1), "engine": engine, **s,
                            "load_average_end": os.getloadavg()})
            print(f"   {engine:<11} {s['records_per_s']:>14,.0f} {s['records_per_cpu_s']:>11,.0f} "
                  f"{fmt(s, 'wall_s'):>22} {fmt(s, 'cpu_s'):>22} {fmt(s, 'peak_rss_mib', 0):>20}  "
                  f"{s['removed']:,}", flush=True)
        ours = summaries.get("cpu")
        for peer in ("rensa", "rensa-doc", "datasketch"):
            if ours and peer in summaries:
                base = summaries[peer]
                print(f"   cpu vs {peer}: {ours['records_per_s'] / base['records_per_s']:.2f}x docs/s (wall medians), "
                      f"{ours['records_per_cpu_s'] / base['records_per_cpu_s']:.2f}x docs per CPU-second, "
                      f"{ours['peak_rss_mib']['median'] / base['peak_rss_mib']['median']:.2f}x peak RSS")
        shutil.rmtree(tmp / f"work_{size}_cpu", ignore_errors=True)
        if not args.keep:
            shutil.rmtree(corpus, ignore_errors=True)
    print(f"\nload average at the end: {load_average()}")
    if args.out:
        Path(args.out).write_text(json.dumps({"preset": args.preset, "results": results}, indent=2) + "\n")
    if args.keep:
        print(f"\ncorpora kept in {tmp}")
    else:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
