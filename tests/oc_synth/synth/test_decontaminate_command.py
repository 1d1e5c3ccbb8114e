"""`oc-synth decontaminate IN OUT`: OpenCoder's rule on any records, through the real CLI."""

from __future__ import annotations

import json
import subprocess
import sys

import datasets

from oc_common.outputs import read_stats

RECORDS = [
    {"id": "uses-entry-point", "instruction": "Write a function", "output": "def add(a, b):\n    return a + b\n"},
    {"id": "clean", "instruction": "Sum two numbers", "output": "def plus(x, y):\n    return x + y\n"},
    {"id": "chat-ngram", "messages": [
        {"role": "user", "content": "Check if in given list of numbers, are any two numbers closer to each other "
                                    "than given threshold."},
        {"role": "assistant", "content": "Sort them first."}]},
    {"id": "method-call", "text": "total = calculator.add(1, 2)\n"},  # obj.add( is not HumanEval's add()
]


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "oc_synth.cli", "decontaminate", *args], capture_output=True,
                          text=True, timeout=300)


def read(directory) -> dict[str, dict]:
    return {r["id"]: r for f in sorted(directory.glob("*.jsonl")) for r in map(json.loads, f.read_text().splitlines())}


def test_drops_benchmark_overlap_with_its_reason(tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "part.jsonl").write_text("".join(json.dumps(r) + "\n" for r in RECORDS))
    out, dropped = tmp_path / "out", tmp_path / "dropped"
    proc = run(str(tmp_path / "in"), str(out), "--dropped", str(dropped), "-q")
    assert proc.returncode == 0, proc.stderr
    assert set(read(out)) == {"clean", "method-call"}
    gone = read(dropped)
    assert gone["uses-entry-point"]["drop_reasons"] == ["decontam:entry_point"]
    assert "HumanEval/" in gone["uses-entry-point"]["drop_details"][0]
    assert gone["chat-ngram"]["drop_reasons"] == ["decontam:ngram"]  # a chat turn is scanned
    assert read_stats(out)["groups"]["drop_reasons"] == {"decontam:entry_point": 1, "decontam:ngram": 1}
    assert len(datasets.load_dataset(str(out), split="train")) == 2  # OUT holds only records

    # the rule's knobs: a name can be exempted, and only the named fields are scanned
    relaxed = tmp_path / "relaxed"
    proc = run(str(tmp_path / "in"), str(relaxed), "--ignore-name", "add", "--field", "output", "-q")
    assert proc.returncode == 0, proc.stderr
    assert set(read(relaxed)) == set(r["id"] for r in RECORDS)


def test_a_mistake_is_one_line(tmp_path):
    proc = run(str(tmp_path / "missing.jsonl"), str(tmp_path / "out"))
    assert proc.returncode == 2 and proc.stderr.startswith("error:") and "Traceback" not in proc.stderr
