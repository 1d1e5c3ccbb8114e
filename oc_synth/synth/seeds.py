"""Seeds: where synthesis starts. JSONL/Parquet files or directories, or Hugging Face datasets.

``--seeds`` accepts
- a JSONL/Parquet file or a directory of them (one output shard per file, names mirror the input);
- ``hf:NAME[:SPLIT]`` (``datasets.load_dataset``; offline boxes need it in the local cache) or a folder written by
  ``Dataset.save_to_disk``: one shard.

Every seed gets a stable id: its ``id`` field (recipe's ``seeds.id_field``) or, without one, a hash of its content;
and a digest of its record as read (``seed_digest``): generate's resume keys on both, so a seed edited under the same
id is generated again (``seed_index`` lists the id and digest of every seed in the input, without enrichment).
Bad seeds (malformed lines, missing or blank required fields, duplicate ids, a package pydoc cannot import) are
never fatal: they come out as ``BadSeed`` with a reason, and the pipeline records them like any other drop.

Enrichment (the recipe's ``seeds.enrich``) derives prompt fields from a seed:
- ``chat``: ``query`` (the first user turn) and ``response`` (the assistant's reply to it) from the conversation
  formats of real-user and general instruction sets: ``messages`` / ``conversation`` (``role``/``content``, as in
  WildChat), ``conversations`` (``from``/``value``, as in ShareGPT dumps and Infinity-Instruct) or an
  ``instruction`` (+ ``input``) / ``output`` pair (Alpaca style, opc-sft). Fields the seed already has win.
- ``pydoc``: the APIs a Python snippet (``text``) uses, found from its imports (``np.linalg.norm`` after
  ``import numpy as np`` is ``numpy.linalg.norm``), restricted to the seed's ``package`` when it names one, plus
  ``package.symbol`` when given; each one's pydoc text from this Python installation (``apis``, ``api_name``,
  ``api_doc``). OpenCoder's Package-Instruct prompt takes a snippet, the API requirement and the API documentation.
"""

from __future__ import annotations

import ast
import hashlib
import importlib
import json
import pydoc
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from oc_common.errors import InputError
from oc_common.records import RecordError, iter_file_records, list_record_files, record_suffix, strip_record_suffix
from oc_synth.synth.recipes.recipe import SeedSpec


@dataclass
class Seed:
    id: str
    record: dict[str, Any]
    where: str  # file:line, for messages
    line: int = 0  # row in its shard: the input order, which dedup keeps (the first of duplicates wins)
    variables: dict[str, Any] = field(default_factory=dict)  # the recipe's variables drawn for this seed
    digest: str = ""  # seed_digest of the record as read: what the generation log is keyed on, with the id


@dataclass
class BadSeed:
    id: str
    reason: str  # stable key: seed:malformed, seed:empty, seed:duplicate_id, seed:bad_id, seed:pydoc, seed:chat
    detail: str
    record: dict[str, Any] | None
    where: str
    digest: str = ""


@dataclass
class SeedShard:
    name: str
    source: str
    rows: Callable[[], Iterator[tuple[int, dict[str, Any] | RecordError]]]
    size_hint: int | None  # rows, when cheap to know (progress bar total)


def plan_seed_shards(spec: str | Path) -> list[SeedShard]:
    text = str(spec)
    if text.startswith("hf:"):
        return [_hf_shard(text[3:])]
    path = Path(text)
    if path.is_dir() and (path / "dataset_info.json").is_file() and not any(
            record_suffix(p) for p in path.iterdir()):
        return [_hf_shard(str(path), from_disk=True)]
    files = list_record_files(path)
    base = path if path.is_dir() else path.parent
    return [SeedShard(strip_record_suffix(str(f.relative_to(base))), str(f),
                      (lambda f=f: iter_file_records(f)), _count_rows(f)) for f in files]


def _count_rows(path: Path) -> int | None:
    suffix = record_suffix(path)
    try:
        if suffix == ".parquet":
            import pyarrow.parquet as pq

            return pq.ParquetFile(path).metadata.num_rows
        if suffix in (".jsonl", ".ndjson"):
            with open(path, "rb") as f:
                return sum(1 for line in f if line.strip())
    except Exception:  # noqa: BLE001 - only a progress hint; reading reports the real error
        return None
    return None


def _hf_shard(name: str, from_disk: bool = False) -> SeedShard:
    import datasets

    if from_disk:
        ds = datasets.load_from_disk(name)
        label = Path(name).name
    else:
        ref, _, split = name.partition(":")
        try:
            ds = datasets.load_dataset(ref, split=split or "train")
        except Exception as e:  # noqa: BLE001 - datasets raises many types for "not found / offline"
            raise InputError(f"hf:{name}: cannot load the dataset ({type(e).__name__}: {e}); offline machines need "
                             "it in the local Hugging Face cache or saved with save_to_disk") from None
        label = f"{ref.replace('/', '__')}-{split or 'train'}"
    if isinstance(ds, datasets.DatasetDict):
        raise InputError(f"{name}: a DatasetDict; name the split (hf:NAME:SPLIT)")

    def rows() -> Iterator[tuple[int, dict[str, Any]]]:
        for i, row in enumerate(ds, 1):
            yield i, dict(row)

    return SeedShard(f"hf-{label}", f"hf:{name}", rows, len(ds))


def _canonical(record: dict[str, Any]) -> bytes:
    return json.dumps(record, sort_keys=True, default=str).encode()


def content_id(record: dict[str, Any]) -> str:
    return "h" + hashlib.sha1(_canonical(record)).hexdigest()[:16]


def seed_digest(record: dict[str, Any]) -> str:
    """The content of a seed record as read (every field, before enrichment and truncation)."""
    return hashlib.blake2b(_canonical(record), digest_size=12).hexdigest()


def _identify(item: dict[str, Any] | RecordError, spec: SeedSpec, seen: set[str],
              fallback: str) -> tuple[str, str, tuple[str, str] | None]:
    """A seed's id and digest, and (reason, detail) when the row cannot be a seed because of its id or its syntax.
    ``seen`` spans shards: the second seed with an id already seen is a ``seed:duplicate_id``."""
    if isinstance(item, RecordError):
        return fallback, seed_digest({"malformed": item.reason}), ("seed:malformed", item.reason)
    digest = seed_digest(item)
    raw_id = item.get(spec.id_field)
    if raw_id is None or raw_id == "":
        sid = content_id(item)
    elif isinstance(raw_id, (str, int)) and not isinstance(raw_id, bool):
        sid = str(raw_id)
    else:
        return fallback, digest, ("seed:bad_id", f"field {spec.id_field!r} is a {type(raw_id).__name__}, "
                                                 "expected a string or an integer")
    if sid in seen:
        return f"{sid}@{fallback}", digest, ("seed:duplicate_id", f"id {sid!r} already seen")
    seen.add(sid)
    return sid, digest, None


def seed_index(shards: list[SeedShard], spec: SeedSpec) -> dict[str, str]:
    """id -> digest of every row of the seeds input (bad seeds too, under the ids ``prepare_seeds`` gives them):
    what the output is rebuilt from. Reads the rows without enriching them."""
    seen: set[str] = set()
    index: dict[str, str] = {}
    for shard in shards:
        for line, item in shard.rows():
            sid, digest, _ = _identify(item, spec, seen, f"{shard.name}:{line}")
            index[sid] = digest
    return index


def prepare_seeds(shard: SeedShard, spec: SeedSpec, seen: set[str]) -> Iterator[Seed | BadSeed]:
    """Validate, identify, truncate and enrich the seeds of one shard, in input order. ``seen`` spans shards:
    the second seed with an id already seen is a ``seed:duplicate_id``."""
    for line, item in shard.rows():
        where = f"{shard.source}:{line}"
        sid, digest, problem = _identify(item, spec, seen, f"{shard.name}:{line}")
        if problem is not None:
            yield BadSeed(sid, *problem, None if isinstance(item, RecordError) else item, where, digest)
            continue
        prepared = _prepare(sid, item, spec, where)
        prepared.digest = digest
        if isinstance(prepared, Seed):
            prepared.line = line
        yield prepared


def _prepare(sid: str, record: dict[str, Any], spec: SeedSpec, where: str) -> Seed | BadSeed:
    record = dict(record)
    if spec.enrich == "chat":
        try:
            record = {**chat_turns(record), **{k: v for k, v in record.items() if not _blank(v)}}
        except LookupError as e:
            if _blank(record.get("query")):
                return BadSeed(sid, "seed:chat", str(e), record, where)
    blank = [f for f in spec.require if _blank(record.get(f))]
    if blank:
        return BadSeed(sid, "seed:empty", f"missing or blank field(s): {', '.join(blank)}", record, where)
    for name, chars in spec.truncate.items():
        if isinstance(record.get(name), str) and len(record[name]) > chars:
            record[name] = record[name][:chars]
    if spec.enrich == "pydoc":
        try:
            record.update(package_apis(record, spec.api_doc_chars, spec.max_apis))
        except LookupError as e:
            return BadSeed(sid, "seed:pydoc", str(e), record, where)
    return Seed(sid, record, where)


# Roles and field names of the conversation formats seen in instruction sets.
_USER_ROLES = frozenset({"user", "human"})
_ASSISTANT_ROLES = frozenset({"assistant", "gpt", "chatgpt", "bot", "model"})


def chat_turns(record: dict[str, Any]) -> dict[str, str]:
    """``query`` (first user turn) and, when there is one, ``response`` (the next assistant turn) of a seed; see the
    module docstring for the formats. LookupError when the seed has no user turn."""
    for key in ("messages", "conversation", "conversations"):
        turns = record.get(key)
        if not isinstance(turns, list) or not turns:
            continue
        out: dict[str, str] = {}
        for turn in turns:
            if not isinstance(turn, dict):
                continue
            role = str(turn.get("role", turn.get("from", ""))).lower()
            text = turn.get("content", turn.get("value"))
            if not isinstance(text, str) or not text.strip():
                continue
            if "query" not in out and role in _USER_ROLES:
                out["query"] = text
            elif "query" in out and role in _ASSISTANT_ROLES:
                out["response"] = text
                break
        if "query" in out:
            return out
        raise LookupError(f"{key}: no user turn (roles user/human with content/value)")
    if isinstance(record.get("instruction"), str) and record["instruction"].strip():
        extra = record.get("input")
        query = record["instruction"] + (f"\n\n{extra}" if isinstance(extra, str) and extra.strip() else "")
        out = {"query": query}
        if isinstance(record.get("output"), str) and record["output"].strip():
            out["response"] = record["output"]
        return out
    if isinstance(record.get("query"), str):
        return {}
    raise LookupError("no conversation: expected messages, conversation, conversations, instruction or query")


def _blank(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    if isinstance(value, (list, dict, tuple)):
        return len(value) == 0
    return False


def package_apis(record: dict[str, Any], max_chars: int, max_apis: int) -> dict[str, Any]:
    """The prompt fields of a Package-Instruct seed: ``apis`` (qualified names: ``package.symbol`` first when given,
    then what the snippet in ``text`` uses, restricted to ``package`` when given), ``api_name`` (the first one),
    ``api_doc`` (their pydoc text, ``max_chars`` in all) and ``package`` (the first API's top-level module when the
    seed names none). LookupError when nothing resolves in this installation."""
    package = str(record.get("package") or "").strip() or None
    names: list[str] = []
    if package and record.get("symbol"):
        names.append(f"{package}.{record['symbol']}")
    snippet = record.get("text")
    if isinstance(snippet, str) and snippet.strip():
        try:
            used = snippet_apis(snippet)
        except SyntaxError as e:
            raise LookupError(f"text is not Python (line {e.lineno}: {e.msg}); the snippet must be Python") from None
        names += [n for n in used if package is None or n == package or n.startswith(package + ".")]
    elif package and not names:
        names.append(package)
    names = list(dict.fromkeys(names))
    resolved = []
    for name in names:
        try:
            resolve_api(name)
        except LookupError:
            if name == names[0] and record.get("symbol"):
                raise  # the API the seed asked for explicitly must exist
            continue  # an attribute of an instance, a name the snippet defines itself, ...
        resolved.append(name)
    if not resolved:
        unimportable = _import_error(package) if package else None
        if unimportable:
            raise LookupError(unimportable)
        raise LookupError(f"the snippet uses no API{' of ' + package if package else ''} that imports here")
    resolved = resolved[:max_apis]
    share = max(max_chars // len(resolved), 200)
    docs = [f"## {name}\n{api_doc_of(name, share)}" for name in resolved]
    text = "\n\n".join(docs)
    if len(text) > max_chars:
        text = text[:max_chars].rsplit("\n", 1)[0] + "\n[...]"
    return {"apis": resolved, "api_name": resolved[0], "api_doc": text,
            "package": package or resolved[0].split(".", 1)[0]}


def snippet_apis(code: str) -> list[str]:
    """Qualified names of the imported APIs a Python snippet uses, in order of first use (imported names the code
    never uses come last). SyntaxError when the snippet is not Python."""
    tree = ast.parse(code)
    aliases: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.asname:
                    aliases[a.asname] = a.name
                else:
                    top = a.name.split(".", 1)[0]
                    aliases[top] = top
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for a in node.names:
                if a.name != "*":
                    aliases[a.asname or a.name] = f"{node.module}.{a.name}"
    inner = {id(n.value) for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
    used: list[tuple[int, int, str]] = []
    for node in ast.walk(tree):
        if id(node) in inner or not isinstance(node, (ast.Attribute, ast.Name)):
            continue
        parts, cur = [], node
        while isinstance(cur, ast.Attribute):
            parts.append(cur.attr)
            cur = cur.value
        if isinstance(cur, ast.Name) and cur.id in aliases and isinstance(cur.ctx, ast.Load):
            qual = ".".join([aliases[cur.id], *reversed(parts)])
            used.append((node.lineno, node.col_offset, qual))
    ordered = [q for _, _, q in sorted(used)]
    imported = [q for q in aliases.values() if "." in q]  # from-imports the code never refers to
    return list(dict.fromkeys(ordered + imported))


def resolve_api(name: str) -> Any:
    """The object a dotted name designates: the longest importable module prefix, then attributes."""
    parts = name.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj: Any = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        except Exception as e:  # noqa: BLE001 - anything a package raises at import
            raise LookupError(f"cannot import {'.'.join(parts[:cut])!r}: {type(e).__name__}: {e}") from None
        for k, attr in enumerate(parts[cut:], cut):
            try:
                obj = getattr(obj, attr)
            except AttributeError:
                raise LookupError(f"{'.'.join(parts[:k])} has no attribute {attr!r}") from None
        return obj
    raise LookupError(f"cannot import {parts[0]!r}")


def _import_error(package: str) -> str | None:
    try:
        importlib.import_module(package)
    except Exception as e:  # noqa: BLE001 - ImportError, or anything the package raises at import
        return f"cannot import {package!r}: {type(e).__name__}: {e}"
    return None


@lru_cache(maxsize=4096)
def api_doc_of(name: str, max_chars: int) -> str:
    """pydoc's plain-text documentation of a dotted name, cut at a line boundary to ``max_chars``."""
    text = pydoc.render_doc(resolve_api(name), title="%s", renderer=pydoc.plaintext).strip()
    if len(text) > max_chars:
        text = text[:max_chars].rsplit("\n", 1)[0] + "\n[...]"
    return text
