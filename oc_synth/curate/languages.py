"""The language tables ``curate ingest --languages`` chooses from: ``opencoder`` (OpenCoder's released tables, the
default) or ``linguist`` (GitHub Linguist 9.5 with our doc-type mapping). docs/curation.md lists every difference."""

from __future__ import annotations

from typing import Literal, Protocol

from oc_common.errors import UsageError
from oc_synth.curate.linguist import Language

LanguageTableName = Literal["opencoder", "linguist"]
LANGUAGE_TABLES: tuple[str, ...] = ("opencoder", "linguist")
DEFAULT_LANGUAGE_TABLE: LanguageTableName = "opencoder"


class LanguageTable(Protocol):
    name: str
    source: str
    languages: dict[str, Language]

    def extension_of(self, path: str) -> str: ...

    def detect(self, path: str, head: str | None = None) -> Language | None: ...


def language_table(name: str = DEFAULT_LANGUAGE_TABLE) -> LanguageTable:
    if name == "opencoder":
        from oc_synth.curate.opencoder_languages import opencoder_table

        return opencoder_table()
    if name == "linguist":
        from oc_synth.curate.linguist import default_table

        return default_table()
    raise UsageError(f"--languages {name!r}: choose one of {', '.join(LANGUAGE_TABLES)}")
