"""``oc-synth curate transform``: remove the copyright notice at a file's head and replace PII with placeholders.

docs/opencoder.md §1: ~15% of files start with a copyright notice, which teaches a model nothing but costs tokens; PII
(emails, IP addresses, passwords, keys) is replaced by placeholders such as ``<EMAIL>``.

- Copyright: the first comment block of the file (after a shebang / encoding line / blank lines), in the comment
  syntax of the record's language, is removed when it mentions a copyright or a license and is at most
  ``copyright.max_block_lines`` long.
- Emails and IPv4/IPv6 addresses: our regexes, with each IP validated by ``ipaddress`` (private, loopback, reserved
  and well-known public DNS addresses are not personal and are left alone, as in BigCode's PII pipeline).
- Keys, tokens, passwords: Yelp's ``detect-secrets`` plugins (regex detectors for cloud keys, private keys, JWTs,
  ``password = "..."`` assignments, ...), run line by line. Its high-entropy-string plugins are off by default
  (hashes and base64 test data in code make them fire constantly) and can be switched on in the config.

Nothing is dropped here; every replacement is counted by kind, and each record gets ``copyright_removed`` and
``pii_replaced`` so the effect is auditable.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import Field

from oc_common.config import StrictModel, load_config
from oc_common.stats import Stats
from oc_synth.pipeline.runner import run_sharded
from oc_synth.pipeline.stages import RecordStage


# ---------------------------------------------------------------------------------------------------------- config
class CopyrightConfig(StrictModel):
    enabled: bool = True
    max_block_lines: int = Field(100, ge=1, description="Longer head comments are left alone (docs, not notices).")


class PiiConfig(StrictModel):
    emails: bool = True
    ip_addresses: bool = True
    secrets: bool = True
    high_entropy_strings: bool = False
    placeholders: dict[str, str] = Field(default_factory=lambda: {
        "email": "<EMAIL>", "ip_address": "<IP_ADDRESS>", "key": "<KEY>", "password": "<PASSWORD>"})
    keep_email_domains: list[str] = Field(default_factory=lambda: [
        "example.com", "example.org", "example.net", "localhost", "users.noreply.github.com"])
    keep_ips: list[str] = Field(default_factory=lambda: [
        "8.8.8.8", "8.8.4.4", "1.1.1.1", "1.0.0.1", "9.9.9.9", "208.67.222.222", "208.67.220.220",
        "2001:4860:4860::8888", "2001:4860:4860::8844", "2606:4700:4700::1111", "2606:4700:4700::1001"])


class TransformConfig(StrictModel):
    text_field: str = "text"
    copyright: CopyrightConfig = Field(default_factory=CopyrightConfig)
    pii: PiiConfig = Field(default_factory=PiiConfig)


# ------------------------------------------------------------------------------------------------------- copyright
NOTICE_RE = re.compile(r"copyright|\(c\)\s*\d{4}|©|all rights reserved|licensed under|spdx-license-identifier|"
                       r"permission is hereby granted|gnu (lesser |affero )?general public license|apache license|"
                       r"mozilla public license|redistribution and use in source", re.I)
CODING_RE = re.compile(r"^[ \t\f]*#.*?coding[:=]")

# comment syntaxes per language; unknown languages try C-style and hash comments
_C_STYLE = ("/*", "//")
_HASH = ("#",)
COMMENT_STYLES: dict[str, tuple[str, ...]] = {
    **{lang: _C_STYLE for lang in (
        "C", "C++", "C#", "Java", "JavaScript", "TypeScript", "TSX", "JSX", "Go", "Rust", "Kotlin", "Scala", "Swift",
        "Objective-C", "Objective-C++", "PHP", "Dart", "Groovy", "CSS", "SCSS", "Less", "Protocol Buffer", "Solidity",
        "Verilog", "SystemVerilog", "Cuda", "GLSL", "HLSL", "Zig", "D", "Apex", "Vala", "Haxe", "ActionScript")},
    **{lang: _HASH for lang in (
        "Python", "Shell", "Ruby", "Perl", "R", "YAML", "Makefile", "Dockerfile", "CMake", "TOML", "PowerShell",
        "Nix", "Tcl", "Elixir", "Julia", "Crystal", "Nim", "GraphQL", "Starlark", "INI", "Raku")},
    **{lang: ("--", "/*") for lang in ("SQL", "PLSQL", "PLpgSQL", "TSQL")},
    **{lang: ("--",) for lang in ("Lua", "Haskell", "Ada", "Elm", "PureScript", "VHDL")},
    **{lang: (";",) for lang in ("Common Lisp", "Clojure", "Emacs Lisp", "Scheme", "Racket", "Assembly")},
    **{lang: ("%",) for lang in ("TeX", "MATLAB", "Erlang", "Prolog")},
    **{lang: ("<!--",) for lang in ("HTML", "XML", "Markdown", "Vue", "Svelte", "XSLT")},
    "Fortran": ("!",), "Fortran Free Form": ("!",), "Visual Basic .NET": ("'",), "VBA": ("'",), "VBScript": ("'",),
}
_DEFAULT_STYLES = ("/*", "//", "#")
_BLOCK_CLOSERS = {"/*": "*/", "<!--": "-->"}


def _head_comment_block(lines: list[str], start: int, styles: tuple[str, ...], python: bool) -> int | None:
    """Index just past the comment block starting at ``lines[start]``, or None if no comment starts there."""
    first = lines[start].lstrip()
    for opener, closer in _BLOCK_CLOSERS.items():
        if opener in styles and first.startswith(opener):
            for j in range(start, len(lines)):
                if closer in (lines[j] if j > start else first[len(opener):]):
                    return j + 1
            return None  # unterminated: not a notice we can cut safely
    if python and first.startswith(('"""', "'''")):
        quote = first[:3]
        if quote in first[3:]:
            return start + 1
        for j in range(start + 1, len(lines)):
            if quote in lines[j]:
                return j + 1
        return None
    for prefix in styles:
        if prefix in _BLOCK_CLOSERS or not first.startswith(prefix):
            continue
        if prefix == "#" and first.startswith(("#include", "#define", "#if", "#pragma", "#!")):
            return None
        j = start
        while j < len(lines) and lines[j].lstrip().startswith(prefix):
            j += 1
        return j
    return None


def strip_copyright_header(text: str, language: str | None, max_block_lines: int = 100) -> tuple[str, bool]:
    """Remove the head comment block if it is a copyright/license notice. Returns (text, removed)."""
    lines = text.splitlines(keepends=True)
    i = 0
    while i < len(lines) and ((i == 0 and lines[0].startswith("#!")) or CODING_RE.match(lines[i])
                              or not lines[i].strip()):
        i += 1
    if i >= len(lines):
        return text, False
    styles = COMMENT_STYLES.get(language or "", _DEFAULT_STYLES)
    end = _head_comment_block(lines, i, styles, python=language in (None, "Python"))
    if end is None or end - i > max_block_lines or not NOTICE_RE.search("".join(lines[i:end])):
        return text, False
    while end < len(lines) and not lines[end].strip():
        end += 1
    return "".join(lines[:i]) + "".join(lines[end:]), True


# ------------------------------------------------------------------------------------------------------------- PII
EMAIL_RE = re.compile(r"(?<![\w.%+-])[A-Za-z0-9][A-Za-z0-9._%+-]{0,63}@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}"
                      r"[A-Za-z0-9])?\.)+[A-Za-z]{2,24}(?![\w-])")
IPV4_RE = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?![\w.]*\d)")
IPV6_RE = re.compile(r"(?<![\w:])(?:[0-9A-Fa-f]{1,4}:){2,7}(?::|[0-9A-Fa-f]{1,4})(?:/\d{1,3})?(?![\w:])|"
                     r"(?<![\w:])(?:[0-9A-Fa-f]{1,4}:){1,6}(?::[0-9A-Fa-f]{1,4}){1,6}(?![\w:])")
NON_PERSONAL_LOCAL_PARTS = frozenset({"git", "noreply", "no-reply", "donotreply"})


def _is_personal_ip(candidate: str, keep: frozenset[str]) -> bool:
    try:
        ip = ipaddress.ip_address(candidate.split("/")[0])
    except ValueError:
        return False
    if candidate in keep:
        return False
    return not (ip.is_private or ip.is_loopback or ip.is_reserved or ip.is_multicast or ip.is_link_local
                or ip.is_unspecified)


# detect-secrets secret types that are passwords rather than keys
_PASSWORD_TYPES = frozenset({"Secret Keyword", "Basic Auth Credentials"})
_SKIP_TYPES = frozenset({"Public IP (ipv4)"})  # IPs are handled (v4 and v6) by our own rule above
_HIGH_ENTROPY_TYPES = frozenset({"Base64 High Entropy String", "Hex High Entropy String"})


def _prefilter(secret_type: str) -> re.Pattern | None:
    """The keyword plugin costs ~40% of the scan; a line without any of its keywords cannot match it."""
    if secret_type != "Secret Keyword":
        return None
    from detect_secrets.plugins.keyword import DENYLIST

    return re.compile("|".join(DENYLIST), re.I)


@dataclass
class PiiReplacer:
    cfg: PiiConfig
    _plugins: list = field(default_factory=list, init=False)

    def __post_init__(self) -> None:
        if self.cfg.secrets:
            from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class

            for secret_type, cls in sorted(get_mapping_from_secret_type_to_class().items()):
                if secret_type in _SKIP_TYPES or (secret_type in _HIGH_ENTROPY_TYPES
                                                  and not self.cfg.high_entropy_strings):
                    continue
                self._plugins.append((cls(), _prefilter(secret_type)))
        self._keep_domains = tuple(d.lower() for d in self.cfg.keep_email_domains)
        self._keep_ips = frozenset(self.cfg.keep_ips)

    def replace(self, text: str, counts: Stats) -> str:
        ph = self.cfg.placeholders
        if self.cfg.secrets:
            text = self._replace_secrets(text, counts)
        if self.cfg.emails:
            def email(m: re.Match) -> str:
                local, domain = m.group(0).lower().rsplit("@", 1)
                if local in NON_PERSONAL_LOCAL_PARTS or domain.endswith(self._keep_domains):
                    return m.group(0)
                counts.add_to("pii", "email")
                return ph["email"]
            text = EMAIL_RE.sub(email, text)
        if self.cfg.ip_addresses:
            def ip(m: re.Match) -> str:
                if not _is_personal_ip(m.group(0), self._keep_ips):
                    return m.group(0)
                counts.add_to("pii", "ip_address")
                return ph["ip_address"]
            text = IPV6_RE.sub(ip, IPV4_RE.sub(ip, text))
        return text

    def _replace_secrets(self, text: str, counts: Stats) -> str:
        lines = text.split("\n")
        ph = self.cfg.placeholders
        for i, line in enumerate(lines):
            if len(line) < 8 or len(line) > 10_000:  # no secret fits in 8 chars; minified blobs are not configs
                continue
            found: dict[str, str] = {}
            for plugin, prefilter in self._plugins:
                if prefilter is not None and not prefilter.search(line):
                    continue
                for secret in plugin.analyze_line(filename="<record>", line=line, line_number=i + 1):
                    value = secret.secret_value
                    if value and len(value) >= 4 and value in line:
                        kind = "password" if secret.type in _PASSWORD_TYPES else "key"
                        found.setdefault(value, kind)
            for value in sorted(found, key=len, reverse=True):
                kind = found[value]
                line = line.replace(value, ph[kind])
                counts.add_to("pii", kind)
            lines[i] = line
        return "\n".join(lines)


# ----------------------------------------------------------------------------------------------------------- stage
@dataclass
class CopyrightPiiTransform(RecordStage):
    """Strips the head copyright notice and replaces PII in ``text``; adds ``copyright_removed``, ``pii_replaced``."""

    config: dict[str, Any] = field(default_factory=dict)
    name: str = "copyright_pii_transform"

    def setup_worker(self) -> None:
        self._cfg = TransformConfig.model_validate(self.config)
        self._pii = PiiReplacer(self._cfg.pii)

    def output_fields(self) -> dict[str, str]:
        return {"copyright_removed": "bool", "pii_replaced": "int64"}  # null on a record without text

    def process_record(self, record: dict[str, Any], stats: Stats) -> dict[str, Any]:
        cfg = self._cfg
        text = record.get(cfg.text_field)
        if not isinstance(text, str):
            stats.add("records_without_text")
            return record
        removed = False
        if cfg.copyright.enabled:
            text, removed = strip_copyright_header(text, record.get("language"), cfg.copyright.max_block_lines)
            if removed:
                stats.add("copyright_removed")
                if record.get("language"):
                    stats.add_to("copyright_removed_by_language", str(record["language"]))
        local = Stats()
        text = self._pii.replace(text, local)
        n = sum(local.groups.get("pii", {}).values())
        stats.merge(local)
        if n:
            stats.add("records_with_pii")
        record[cfg.text_field] = text
        record["copyright_removed"] = removed
        record["pii_replaced"] = n
        return record


def run_transform(inp: Path, out: Path, *, config: Path | None = None, overrides: list[str] = (),
                  executor: str = "local", overwrite: bool = False, quiet: bool = False,
                  output_format: str = "jsonl") -> Stats:
    cfg = load_config(config, overrides, TransformConfig)
    return run_sharded(command="curate transform", inp=inp, out=out,
                       stages=[CopyrightPiiTransform(config=cfg.model_dump())], options=cfg.model_dump(),
                       executor=executor, overwrite=overwrite, quiet=quiet, output_format=output_format)
