"""Web pages: what makes a record usable (a URL with a host, non-empty UTF-8 text) and which domain it belongs to.

A domain here is the URL's host, lower-cased, without ``www.`` and port: ``https://www.Example.com:8080/a`` ->
``example.com``. Sub-domains stay apart (``docs.python.org`` is not ``python.org``): code sites often live on a
sub-domain of a non-code site, and the paper's example (stackoverflow.com) is a host.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from oc_common.outcome import reject
from oc_common.stats import Stats
from oc_synth.pipeline.stages import RecordStage

DOMAIN_FIELD = "domain"


def url_host_path(url: str) -> tuple[str, str] | None:
    """``(domain, path)`` of a URL, or None when it has no host. A URL without a scheme is read as ``http://``."""
    url = url.strip()
    try:
        parts = urlsplit(url if "://" in url else f"http://{url}")
        host = (parts.hostname or "").rstrip(".")
    except ValueError:  # e.g. an invalid IPv6 literal or port
        return None
    if not host:
        return None
    host = host.removeprefix("www.")
    return host, parts.path or "/"


def url_domain(url: str) -> str | None:
    hp = url_host_path(url)
    return hp[0] if hp else None


def stable_key(value: str, salt: int = 0) -> int:
    """A stable 64-bit hash (the same in every process and run; Python's hash() is salted per process), for
    duplicate detection, sampling and held-out splits. Different salts give independent orders."""
    data = f"{salt}\x00{value.strip()}".encode("utf-8", "surrogatepass")
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "big")


def is_utf8(s: str) -> bool:
    try:
        s.encode("utf-8")
        return True
    except UnicodeEncodeError:  # lone surrogates from a JSON \ud800 escape: not text, and unwritable as UTF-8
        return False


def escape_surrogates(record: dict[str, Any]) -> None:
    """Make a record's string fields writable (lone surrogates become ``\\udXXX`` text) so a dropped record can be
    kept, with its reason, instead of failing the writer."""
    for k, v in record.items():
        if isinstance(v, str) and not is_utf8(v):
            record[k] = v.encode("utf-8", "backslashreplace").decode("utf-8")


def page_problem(record: dict[str, Any], text_field: str = "text", url_field: str | None = "url") -> str | None:
    """Why a record cannot be used as a web page (a drop reason), or None."""
    if any(isinstance(v, str) and not is_utf8(v) for v in record.values()):
        return "not_utf8"
    if url_field:
        url = record.get(url_field)
        if not isinstance(url, str) or not url.strip():
            return "missing_url"
        if url_host_path(url) is None:
            return "bad_url"
    text = record.get(text_field)
    if not isinstance(text, str) or not text.strip():
        return "missing_text"
    return None


@dataclass
class RecallPageCheck(RecordStage):
    """Rejects records that are not usable pages (counted per reason) and adds ``domain`` when pages have URLs."""

    name: str = "recall_page_check"
    text_field: str = "text"
    url_field: str | None = "url"

    def output_fields(self) -> dict[str, str]:
        return {DOMAIN_FIELD: "string"} if self.url_field else {}

    def process_record(self, record: dict[str, Any], stats: Stats) -> dict[str, Any]:
        problem = page_problem(record, self.text_field, self.url_field)
        if problem:
            if problem == "not_utf8":
                escape_surrogates(record)
            reject(record, problem)
            return record
        if self.url_field:
            record[DOMAIN_FIELD] = url_domain(record[self.url_field])
        return record
