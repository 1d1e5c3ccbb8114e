#!/usr/bin/env python3
"""Regenerate oc_synth/curate/data/opencoder_languages.json (OpenCoder's released language tables) and
oc_synth/curate/data/reference_signal_order.json (the order in which its filter computes its quality signals).

Source: github OpenCoder-llm/opc_data_filtering (MIT License, Copyright (c) 2024 OpenCoder-LLM), the files
``artifacts/extension_to_program.py`` (extension -> language key), ``artifacts/filename_to_program.py`` (exact file
name -> language key), ``artifacts/program_to_type.py`` (language key -> code | data | text) and the list
``excluded_code_langs`` in ``utils/preprocessing.py``. These are tables of facts; this script reads them as Python
literals (``ast.literal_eval``: nothing of the source is imported or run) and writes them, with the source commit and
licence, into our data file. How the tables are applied is ours: oc_synth/curate/opencoder_languages.py.

Signal order: the reference registers each quality signal with a ``@register_quality_signal(name, ...)`` class
decorator and computes them group by group in registration order, abandoning the rest of a group when one raises.
``curate filter --compat reference`` follows that order; it is read here from the decorators (innermost first) of the
modules in the order ``quality_signals/__init__.py`` imports them.

Display names: the reference keys are lower-cased GitHub Linguist names ("python", "c++" spelled "cpp", ...). Records
carry the Linguist spelling ("Python", "C++"), taken from our Linguist table (data/linguist_languages.json) where a
Linguist 9.5 name lower-cases to the key, else from DISPLAY_NAMES below; lower-casing a display name gives the key
back (with "c++" -> "cpp", "c#" -> "csharp", the spelling the filter's signals already use).

Usage: python scripts/build_opencoder_table.py GIT_DIR [COMMIT]
  GIT_DIR: a clone of OpenCoder-llm/opc_data_filtering (a bare mirror is fine); COMMIT defaults to PINNED_COMMIT.
       python scripts/build_opencoder_table.py --differences
  prints, as Markdown, every difference between the opencoder and linguist tables (docs/curation.md carries it).
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "oc_synth" / "curate" / "data" / "opencoder_languages.json"
SIGNAL_ORDER_OUT = ROOT / "oc_synth" / "curate" / "data" / "reference_signal_order.json"
SIGNAL_MODULES = ["quality_signals/doc.py", "quality_signals/code.py"] + [
    f"quality_signals/code_specific/{m}.py" for m in ("html", "python", "go", "c", "c_plus", "c_sharp", "java",
                                                      "javascript")]
LINGUIST = ROOT / "oc_synth" / "curate" / "data" / "linguist_languages.json"
REPOSITORY = "github OpenCoder-llm/opc_data_filtering"
PINNED_COMMIT = "44b857e837a56d859906c83d0ec91b4d5ef5bcc9"  # 2025-03-13, the newest commit
LICENCE = "MIT License, Copyright (c) 2024 OpenCoder-LLM"

SOURCES = {  # our key: (file in the repository, the literal assigned there)
    "extensions": ("artifacts/extension_to_program.py", "EXTENSION_TO_PROGRAM"),
    "filenames": ("artifacts/filename_to_program.py", "FILENAME_TO_PROGRAM"),
    "types": ("artifacts/program_to_type.py", "PROGRAM_TO_TYPE"),
    "excluded": ("utils/preprocessing.py", "excluded_code_langs"),
}

# Keys whose spelling differs from Linguist 9.5's names (renamed since, or OpenCoder's own spelling).
DISPLAY_NAMES = {"cpp": "C++", "csharp": "C#", "coq": "Coq", "mathematica": "Mathematica", "prover9": "Prover9",
                 "robots.txt": "robots.txt", "saltstack": "SaltStack"}


def read_literal(git_dir: Path, commit: str, path: str, name: str) -> object:
    source = subprocess.run(["git", f"--git-dir={git_dir}", "show", f"{commit}:{path}"], check=True,
                            capture_output=True, text=True).stdout
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == name for t in node.targets):
            return ast.literal_eval(node.value)
    raise SystemExit(f"{path}@{commit}: no assignment to {name}")


def signal_order(git_dir: Path, commit: str) -> list[str]:
    order = []
    for path in SIGNAL_MODULES:
        source = subprocess.run(["git", f"--git-dir={git_dir}", "show", f"{commit}:{path}"], check=True,
                                capture_output=True, text=True).stdout
        for node in ast.parse(source).body:
            if isinstance(node, ast.ClassDef):
                for dec in reversed(node.decorator_list):  # the innermost decorator registers first
                    if isinstance(dec, ast.Call) and getattr(dec.func, "id", None) == "register_quality_signal":
                        order.append(ast.literal_eval(dec.args[0]))
    return order


def display_names(keys: set[str]) -> dict[str, str]:
    linguist = json.loads(LINGUIST.read_text(encoding="utf-8"))["languages"]
    by_lower = {name.lower(): name for name in linguist}
    names = {}
    for key in sorted(keys):
        name = DISPLAY_NAMES.get(key) or by_lower.get(key)
        if name is None:
            raise SystemExit(f"no display name for {key!r}: add it to DISPLAY_NAMES")
        names[key] = name
    return names


def main(git_dir: str, commit: str = PINNED_COMMIT) -> None:
    git = Path(git_dir)
    if (git / ".git").exists():
        git = git / ".git"
    commit = subprocess.run(["git", f"--git-dir={git}", "rev-parse", f"{commit}^{{commit}}"], check=True,
                            capture_output=True, text=True).stdout.strip()
    tables = {key: read_literal(git, commit, path, name) for key, (path, name) in SOURCES.items()}
    keys = set(tables["types"]) | set(tables["extensions"].values()) | set(tables["filenames"].values())
    data = {
        "source": f"{REPOSITORY} @ {commit}: " + ", ".join(path for path, _ in SOURCES.values()),
        "license": LICENCE,
        "commit": commit,
        "extensions": tables["extensions"],
        "filenames": tables["filenames"],
        "types": tables["types"],
        "excluded": tables["excluded"],
        "display_names": display_names(keys),
    }
    OUT.write_text(json.dumps(data, indent=0, ensure_ascii=False) + "\n", encoding="utf-8")
    order = signal_order(git, commit)
    SIGNAL_ORDER_OUT.write_text(json.dumps({
        "source": f"{REPOSITORY} @ {commit}: " + ", ".join(SIGNAL_MODULES), "license": LICENCE, "commit": commit,
        "order": order}, indent=0) + "\n", encoding="utf-8")
    print(f"wrote the order of {len(order)} signals to {SIGNAL_ORDER_OUT.relative_to(ROOT)}")
    print(f"wrote {len(data['extensions'])} extensions, {len(data['filenames'])} file names, {len(data['types'])} "
          f"types, {len(data['excluded'])} exclusions from {commit[:12]} to {OUT.relative_to(ROOT)}")


def differences() -> str:
    """Every extension, file name and type on which ``--languages opencoder`` and ``--languages linguist`` differ."""
    sys.path.insert(0, str(ROOT))
    from oc_synth.curate.languages import language_table
    from oc_synth.curate.signals.document import program_lang

    oc, li = language_table("opencoder"), language_table("linguist")
    data = json.loads(OUT.read_text(encoding="utf-8"))

    def state(lang: object) -> str:
        return "excluded" if lang.excluded else lang.doc_type

    def show(lang: object) -> str:
        return "unknown (dropped)" if lang is None else f"{lang.name} ({state(lang)})"

    def key(lang: object) -> tuple:
        return (None,) if lang is None else (program_lang(lang.name), lang.excluded or lang.doc_type)

    rows = {"extension": [], "file name": []}
    linguist_exts = {e for e in li._by_ext}  # noqa: SLF001 - our own table
    for ext in sorted(set(data["extensions"]) | {e[1:] for e in linguist_exts}, key=str.lower):
        a, b = oc.detect(f"x.{ext}"), li.detect(f"x.{ext}")
        if key(a) != key(b):
            rows["extension"].append(f"`.{ext}`: {show(a)} / {show(b)}")
    for name in sorted(set(data["filenames"]) | set(li._by_name), key=str.lower):  # noqa: SLF001
        a, b = oc.detect(name), li.detect(name)
        if key(a) != key(b):
            rows["file name"].append(f"`{name}`: {show(a)} / {show(b)}")
    types = []
    for name, lang in sorted(oc.languages.items(), key=lambda kv: kv[0].lower()):
        other = next((x for x in li.languages.values() if program_lang(x.name) == program_lang(name)), None)
        if other is not None and (lang.excluded, lang.doc_type) != (other.excluded, other.doc_type):
            types.append(f"{name}: {state(lang)} / {state(other)}")
    out = ["Each item: opencoder / linguist. `.h` under linguist also looks at the content (C, C++ or "
           "Objective-C); extensions are case-sensitive under opencoder, lower-cased under linguist."]
    out.append(f"\n**Doc type or exclusion of the same language ({len(types)})**: " + "; ".join(types) + ".")
    for what, items in rows.items():
        out.append(f"\n**By {what} ({len(items)})**: " + "; ".join(items) + ".")
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    if sys.argv[1:] == ["--differences"]:
        print(differences(), end="")
        raise SystemExit(0)
    if len(sys.argv) not in (2, 3):
        raise SystemExit(__doc__)
    main(*sys.argv[1:])
