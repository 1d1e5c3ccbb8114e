#!/usr/bin/env python3
"""Regenerate tests/oc_synth/curate/data/reference_decisions.jsonl.gz: OpenCoder's reference decisions on a sample of
real files, for tests/oc_synth/curate/test_reference_agreement.py.

The reference is OpenCoder-llm/opc_data_filtering (MIT License, Copyright (c) 2024 OpenCoder-LLM). Its code is run
here, never copied: give this script a checkout of it (at REFERENCE_COMMIT) and a Python environment with its
pinned requirements, both outside this repository, e.g.

    git --git-dir=<clone>/.git archive 44b857e837a56d859906c83d0ec91b4d5ef5bcc9 | tar -x -C /work/venvs/opc_src
    python -m venv /work/venvs/opc_ref && /work/venvs/opc_ref/bin/pip install nltk==3.9.1 beautifulsoup4==4.12.3 \\
        esprima==4.0.1 jieba==0.42.1 zhconv==1.4.3 regex==2024.11.6 pygments==2.18.0 numpy==1.26.4 \\
        typing_extensions==4.12.2
    python scripts/build_reference_fixture.py --reference-src /work/venvs/opc_src \\
        --reference-python /work/venvs/opc_ref/bin/python

What it does: picks the sample (files of 64 B to 100 kB, valid UTF-8, from the sources in
tests/oc_synth/curate/reference_sample.py; per source and extension at most CAPS files, chosen by the hash of their
path), copies them to a temporary folder, and runs the reference's published workflow on each
(examples/data_cleaning_example.ipynb: ``get_program_lang``, ``get_doc_type``, ``ComputeCodeQualitySignal.evaluate``,
``CodeFilter.evaluate``) with two choices of ours, both documented in docs/curation.md and docs/filter.md:

- the file name handed to the reference is the whole name (the notebook hands it the name without its extension,
  which disables its file-name table's dotted names and its ``_test.go`` rule);
- ``lang`` (the natural language) comes from our detector (oc_synth/curate/signals/natural_language.py): the
  reference's fastText model is not published with its code.

The reference draws ``random.random()`` for its sampled rules (the no-logic and ``_test.go`` rules); here every draw
says "drop", so ``hits`` lists every rule that fired, and the test applies the same coin to both sides.
Only decisions are written: per file its source, path, SHA-256, the reference's language key, doc type, rules hit,
signals that errored, and for JavaScript whether esprima parsed it.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "tests" / "oc_synth" / "curate" / "data" / "reference_decisions.jsonl.gz"
REFERENCE = "github OpenCoder-llm/opc_data_filtering"
REFERENCE_COMMIT = "44b857e837a56d859906c83d0ec91b4d5ef5bcc9"
LICENCE = "MIT License, Copyright (c) 2024 OpenCoder-LLM"
MIN_BYTES, MAX_BYTES = 64, 100_000
DEFAULT_CAP = 12
CAPS = {
    ("stdlib", ".py"): 150, ("purelib", ".py"): 80, ("purelib", ".pyi"): 20, ("stdlib", ".txt"): 25,
    ("purelib", ".rst"): 25, ("purelib", ".md"): 30, ("purelib", ".json"): 30, ("purelib", ".yaml"): 25,
    ("purelib", ".h"): 40, ("purelib", ".hpp"): 25, ("purelib", ".c"): 25, ("purelib", ".cpp"): 25,
    ("purelib", ".cc"): 20, ("purelib", ".css"): 20, ("purelib", ".txt"): 20,
    ("include", ".h"): 80, ("include", ".hpp"): 20, ("include", ".tcc"): 15,
    ("npm", ".js"): 120, ("npm", ".md"): 40, ("npm", ".html"): 40, ("npm", ".json"): 20,
    ("jdk", ".java"): 100, ("jdk", ".html"): 10,
    ("stdlib", "cjk"): 20,  # the codec tests' Chinese, Japanese and Korean texts: the zh rules' only real files here
}
MAX_UNKNOWN_GROUPS = 12  # extensions the OpenCoder table does not know: a few, to check both sides drop them
UNKNOWN_CAP = 3


def _load(name: str, path: Path):  # noqa: ANN202 - a module loaded by path
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def select_sample() -> list[dict]:
    sample = _load("reference_sample", ROOT / "tests" / "oc_synth" / "curate" / "reference_sample.py")
    natural = _load("natural_language", ROOT / "oc_synth" / "curate" / "signals" / "natural_language.py")
    known = set(json.loads((ROOT / "oc_synth" / "curate" / "data" / "opencoder_languages.json").read_text())
                ["extensions"])
    groups: dict[tuple[str, str], list[str]] = defaultdict(list)
    for source, root in sample.source_roots().items():
        if root is None:
            print(f"source {source}: not on this machine, skipped", file=sys.stderr)
            continue
        for path, size in sample.list_source_files(source):
            if MIN_BYTES <= size <= MAX_BYTES:
                group = "cjk" if "cjkencodings/" in path and path.endswith("-utf8.txt") else \
                    os.path.splitext(os.path.basename(path))[1]
                groups[(source, group)].append(path)
    picked, unknown_groups = [], 0
    for (source, ext), paths in sorted(groups.items()):
        cap = CAPS.get((source, ext), DEFAULT_CAP)
        if ext != "cjk" and ext[1:] not in known:
            if unknown_groups >= MAX_UNKNOWN_GROUPS or not ext:
                continue
            unknown_groups += 1
            cap = UNKNOWN_CAP
        taken = 0
        for path in sorted(paths, key=lambda p: hashlib.sha256(p.encode()).hexdigest()):
            if taken >= cap:
                break
            data = sample.read_source_file(source, path)
            if data is None or b"\0" in data[:8000] or data.startswith(b"\xef\xbb\xbf"):
                continue
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError:
                continue
            picked.append({"source": source, "path": path, "sha256": sample.sha256(data),
                           "lang": natural.natural_language_of(text), "_data": data})
            taken += 1
    return picked


def score(manifest: Path, out: Path, reference_src: Path) -> None:
    """Runs inside the reference's environment: its published workflow on every file of the manifest."""
    import types

    sys.path.insert(0, str(reference_src))
    from pipeline import compute_filtering
    from pipeline.compute_quality_signals import ComputeCodeQualitySignal
    from utils.preprocessing import get_doc_type, get_program_lang

    compute_filtering.random = types.SimpleNamespace(random=lambda: 1.0)  # every sampled rule that fires drops
    signals, code_filter = ComputeCodeQualitySignal(), compute_filtering.CodeFilter()
    entries = [json.loads(line) for line in manifest.read_text().splitlines()]
    with out.open("w") as f:
        for i, entry in enumerate(entries):
            with open(entry["file"], encoding="utf-8") as fh:  # as the notebook reads: text mode, newlines folded
                text = fh.read()
            name = os.path.basename(entry["path"])
            ext = os.path.splitext(name)[1][1:]
            program_lang = get_program_lang(name, ext)
            doc_type = get_doc_type(program_lang)
            qs = json.loads(signals.evaluate(text=text, filename=name, lang=entry["lang"], ext=ext,
                                             file_size_in_byte=os.path.getsize(entry["file"]),
                                             program_lang=program_lang, doc_type=doc_type))
            verdict = json.loads(code_filter.evaluate(doc_type=doc_type, lang=entry["lang"],
                                                      program_lang=program_lang,
                                                      quality_signal=qs.get("quality_signal")))
            values = json.loads(qs.get("quality_signal") or "{}")
            decision = {"program_lang": program_lang, "doc_type": doc_type, "effective": verdict["effective"] == "1",
                        "hits": sorted(k for k, v in json.loads(verdict["hit_map"]).items() if v),
                        "errors": sorted(json.loads(qs.get("err_msg") or "{}"))}
            if program_lang == "javascript":
                decision["esprima_parsed"] = values.get("qsc_codejavascript_cate_ast")
            f.write(json.dumps({"id": entry["id"], **decision}) + "\n")
            if i % 100 == 0:
                print(f"{i}/{len(entries)}", file=sys.stderr, flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reference-src", type=Path, required=True)
    ap.add_argument("--reference-python", type=Path, required=True)
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--score", nargs=2, type=Path, metavar=("MANIFEST", "OUT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.score:
        score(*args.score, args.reference_src)
        return
    picked = select_sample()
    with tempfile.TemporaryDirectory(prefix="opc_ref_sample_") as tmp:
        manifest, scored = Path(tmp) / "manifest.jsonl", Path(tmp) / "scored.jsonl"
        with manifest.open("w") as f:
            for i, entry in enumerate(picked):
                copy = Path(tmp) / "files" / entry["source"] / entry["path"]
                copy.parent.mkdir(parents=True, exist_ok=True)
                copy.write_bytes(entry.pop("_data"))
                f.write(json.dumps({"id": i, "file": str(copy), "path": entry["path"], "lang": entry["lang"]}) + "\n")
        subprocess.run([str(args.reference_python), __file__, "--reference-src", str(args.reference_src),
                        "--reference-python", str(args.reference_python), "--score", str(manifest), str(scored)],
                       check=True)
        decisions = {d.pop("id"): d for d in map(json.loads, scored.read_text().splitlines())}
    header = {"reference": REFERENCE, "commit": REFERENCE_COMMIT, "license": LICENCE,
              "generated_by": "scripts/build_reference_fixture.py", "files": len(picked)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(args.out, "wt", encoding="utf-8") as f:
        f.write(json.dumps({"_meta": header}) + "\n")
        for i, entry in enumerate(picked):
            f.write(json.dumps({**entry, **decisions[i]}, sort_keys=True) + "\n")
    print(f"wrote {len(picked)} decisions to {args.out}")


if __name__ == "__main__":
    main()
