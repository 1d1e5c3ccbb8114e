#!/usr/bin/env python3
"""Regenerate oc_synth/curate/data/linguist_languages.json from the npm package `linguist-languages`.

That package republishes GitHub Linguist's languages.yml as JSON (MIT). We keep, per language, its Linguist type,
extensions and exact file names; the mapping to OpenCoder's doc types (code / data / text) and the excluded
languages are ours and live in oc_synth/curate/linguist.py, not here.

Usage: python scripts/build_linguist_table.py [VERSION]   (needs node and npm on PATH)
"""

import json
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "oc_synth" / "curate" / "data" / "linguist_languages.json"


def main(version: str = "9.5.0") -> None:
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["npm", "pack", f"linguist-languages@{version}"], cwd=tmp, check=True, capture_output=True)
        (tgz,) = Path(tmp).glob("linguist-languages-*.tgz")
        with tarfile.open(tgz) as tf:
            tf.extractall(tmp, filter="data")
        dump = subprocess.run(["node", "--input-type=module", "-e",
                               "import * as L from './package/index.js'; "
                               "console.log(JSON.stringify(Object.fromEntries("
                               "Object.values(L).map(x => [x.name, x]))))"],
                              cwd=tmp, check=True, capture_output=True, text=True).stdout
    languages = {}
    for name, info in sorted(json.loads(dump).items()):
        languages[name] = {
            "type": info["type"],
            "extensions": info.get("extensions", []),
            "filenames": info.get("filenames", []),
            **({"group": info["group"]} if "group" in info else {}),
        }
    table = {"source": f"npm linguist-languages {version} (MIT), GitHub Linguist languages.yml",
             "languages": languages}
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(table, indent=0, sort_keys=False, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {len(languages)} languages to {OUT}")


if __name__ == "__main__":
    main(*sys.argv[1:])
