"""The demo's raw repositories, assembled into one tree for `oc-synth curate ingest` (one folder per repository).

    python examples/demo/make_inputs.py OUT_DIR [--stdlib-files N]

OUT_DIR/repos/ gets the repositories of examples/sample_repos and examples/demo/repos (ours: LeetCode-style
solutions in Python and Java, a Java/HTML/JavaScript shop, HTML docs, a Python library and a mirror of it with an
exact and a near-duplicate file, a generated file and a CSV), plus `cpython-stdlib/`: the first N Python files of
the running interpreter's standard library (real code in volume, so that pretraining has tokens to learn from),
`vendor-utils/`: two of those files vendored with a one-line header (near-duplicates, what MinHash dedup is for),
and one repos.jsonl with every repository's stars, last commit time and licence.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[1]
SOURCES = (EXAMPLES / "sample_repos", EXAMPLES / "demo" / "repos")
REPOS_FILE = "repos.jsonl"
STDLIB_REPO = {"repo": "cpython-stdlib", "stars": 60000, "commit_time": "2024-10-01T00:00:00Z",
               "license": "PSF-2.0"}
VENDOR_REPO = {"repo": "vendor-utils", "stars": 2, "commit_time": "2024-11-05T12:00:00Z", "license": "PSF-2.0"}
VENDORED_FILES = 2  # the first standard-library files over VENDOR_MIN_BYTES get a vendored copy
VENDOR_MIN_BYTES = 15_000


def main(argv: list[str] | None = None) -> int:
    from oc_megatron.data.tiny import stdlib_code_records

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--stdlib-files", type=int, default=150, help="standard-library files to add (default 150)")
    args = ap.parse_args(argv)
    repos = args.out / "repos"
    if repos.exists():
        print(f"error: {repos} exists; choose a new OUT_DIR", file=sys.stderr)
        return 2
    repos.mkdir(parents=True)
    metadata = []
    for source in SOURCES:
        metadata += [json.loads(line) for line in (source / REPOS_FILE).read_text().splitlines() if line.strip()]
        for repo in sorted(p for p in source.iterdir() if p.is_dir()):
            shutil.copytree(repo, repos / repo.name)
    n = vendored = 0
    for rec in stdlib_code_records(max_files=args.stdlib_files, max_bytes=40_000):
        dest = repos / STDLIB_REPO["repo"] / "Lib" / rec["path"]
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text(rec["text"], encoding="utf-8")
        n += 1
        if vendored < VENDORED_FILES and len(rec["text"]) >= VENDOR_MIN_BYTES and "/" not in rec["path"]:
            copy = repos / VENDOR_REPO["repo"] / "vendor" / rec["path"]
            copy.parent.mkdir(parents=True, exist_ok=True)
            copy.write_text(f"# vendored from CPython's Lib/{rec['path']}\n{rec['text']}", encoding="utf-8")
            vendored += 1
    metadata += [STDLIB_REPO, VENDOR_REPO]
    (repos / REPOS_FILE).write_text("".join(json.dumps(m) + "\n" for m in metadata))
    files = sum(1 for p in repos.rglob("*") if p.is_file()) - 1
    print(f"{repos}: {len(metadata)} repositories, {files} files ({n} from the standard library)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
