"""``oc-synth curate ingest``: raw repositories (or The Stack v2 style records) -> code-file records.

RefineCode's preprocessing (docs/opencoder.md §1): drop files over 8 MB, keep only languages known to the language
table (``--languages``: OpenCoder's released table by default, or GitHub Linguist's; minus excluded types), type each
file as code / data / text. Binary and undecodable files are dropped with a counted reason. Dropped files are written
(without their content) to ``--dropped`` so every decision can be audited.

A tree source is planned into shards of ``shard_size`` files in a deterministic (sorted) order, so a killed ingest
resumes by shard like every other stage.
"""

from __future__ import annotations

import os
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nemo_curator.stages.base import ProcessingStage
from nemo_curator.tasks import DocumentBatch, FileGroupTask

from oc_common.errors import OcError
from oc_common.log import get_logger
from oc_common.outcome import DROP_REASONS, KEEP, reject
from oc_common.outputs import group_identity, is_our_output
from oc_common.records import RecordError, check_fields, iter_file_records, list_record_files, record_suffix
from oc_common.stats import Stats
from oc_synth.curate.languages import DEFAULT_LANGUAGE_TABLE, LanguageTable, language_table
from oc_synth.pipeline.runner import Shard, run_sharded
from oc_synth.pipeline.stages import RecordStage, batch_stats, ensure_keep_columns, frame_from_records

log = get_logger(__name__)

MAX_FILE_BYTES = 8 * 2**20  # OpenCoder: files larger than 8 MB are dropped
BINARY_SNIFF_BYTES = 8000  # a NUL byte in the first 8000 bytes marks a binary file (git's own heuristic)
VCS_DIRS = frozenset({".git", ".hg", ".svn", ".bzr"})
REPOS_FILE = "repos.jsonl"


@dataclass
class ClassifiedFile:
    text: str | None
    language: str | None
    doc_type: str | None
    ext: str
    reason: str | None  # None when the file is kept


def classify_file(path: str, data: bytes | str, table: LanguageTable,
                  max_bytes: int = MAX_FILE_BYTES) -> ClassifiedFile:
    """Decide whether one file becomes a record: size, known language, excluded type, binary, UTF-8, empty."""
    size = len(data) if isinstance(data, bytes) else len(data.encode("utf-8", "surrogatepass"))
    ext = table.extension_of(path)
    if size > max_bytes:
        return ClassifiedFile(None, None, None, ext, "too_large")
    if isinstance(data, bytes):
        if b"\0" in data[:BINARY_SNIFF_BYTES]:
            return ClassifiedFile(None, None, None, ext, "binary")
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            return ClassifiedFile(None, None, None, ext, "not_utf8")
    else:
        text = data
        if "\0" in text[:BINARY_SNIFF_BYTES]:
            return ClassifiedFile(None, None, None, ext, "binary")
    lang = table.detect(path, head=text[:4096])
    if lang is None:
        return ClassifiedFile(None, None, None, ext, "unknown_language")
    if lang.excluded:
        return ClassifiedFile(None, lang.name, lang.doc_type, ext, f"excluded_language:{lang.name}")
    if not text.strip():
        return ClassifiedFile(None, lang.name, lang.doc_type, ext, "empty")
    return ClassifiedFile(text, lang.name, lang.doc_type, ext, None)


def code_record(*, rid: str, path: str, repo: str, cf: ClassifiedFile, size: int, meta: dict[str, Any]) -> dict:
    rec = {
        "id": rid,
        "text": cf.text,
        "path": path,
        "repo": repo,
        "language": cf.language,
        "doc_type": cf.doc_type,
        "ext": cf.ext,
        "size_bytes": size,
        "stars": meta.get("stars"),
        "commit_time": meta.get("commit_time"),
        "license": meta.get("license"),
    }
    if cf.reason is not None:
        rec.pop("text")  # dropped files are kept for audit without their content
        reject(rec, cf.reason)
    return rec


# --------------------------------------------------------------------------------------------- tree of repositories
def load_repo_meta(src: Path) -> dict[str, dict[str, Any]]:
    """``SRC/repos.jsonl``: one {"repo", "stars", "commit_time", "license"} per line; errors name file and line."""
    path = src / REPOS_FILE
    meta: dict[str, dict[str, Any]] = {}
    if not path.exists():
        return meta
    for line, item in iter_file_records(path):
        if isinstance(item, RecordError):
            raise OcError(str(item))
        problem = check_fields(item, {"repo": str, "stars": int, "commit_time": str, "license": str}, ["repo"])
        if problem:
            raise OcError(f"{path}:{line}: {problem}")
        meta[item["repo"]] = item
    return meta


def git_commit_time(repo_dir: Path) -> str | None:
    """Last commit time of a git checkout (ISO 8601), used when repos.jsonl does not give one."""
    if not (repo_dir / ".git").exists():
        return None
    try:
        out = subprocess.run(["git", "-C", str(repo_dir), "log", "-1", "--format=%cI"], capture_output=True,
                             text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None


def plan_tree(src: Path, shard_size: int, stats: Stats) -> list[Shard]:
    """Walk SRC (sorted, symlinked folders not entered) and group its files into shards of ``shard_size``."""
    root = src.resolve()
    meta = load_repo_meta(src)
    files: list[str] = []
    for repo_dir in sorted(p for p in src.iterdir()):
        if repo_dir.name == REPOS_FILE:
            continue
        if repo_dir.is_symlink() or not repo_dir.is_dir():
            stats.add_to("skipped", "not_in_a_repo_folder")
            continue
        if is_our_output(repo_dir):
            stats.add_to("skipped", "output_of_ours")
            continue

        def unreadable(_: OSError) -> None:
            stats.add_to("skipped", "unreadable_dir")

        for dirpath, dirnames, filenames in os.walk(repo_dir, onerror=unreadable):
            dirnames[:] = sorted(d for d in dirnames if d not in VCS_DIRS)
            for d in list(dirnames):
                if os.path.islink(os.path.join(dirpath, d)):
                    stats.add_to("skipped", "symlinked_dir")  # os.walk does not follow it; say so
                elif is_our_output(Path(dirpath) / d):  # an output folder of ours is not source code
                    stats.add_to("skipped", "output_of_ours")
                    dirnames.remove(d)
            # every entry that is not a folder, FIFOs and devices included: the reader drops those with a reason
            for fn in sorted(filenames):
                files.append(os.path.join(dirpath, fn))
    repos = {Path(f).relative_to(src).parts[0] for f in files}
    repo_meta = {r: dict(meta.get(r, {})) for r in repos}
    for r, m in repo_meta.items():
        if "commit_time" not in m:
            m["commit_time"] = git_commit_time(src / r)
    stats.add("repos", len(repos))
    shards = []
    for k in range(0, len(files), shard_size):
        chunk = files[k : k + shard_size]
        shards.append(Shard(f"part-{k // shard_size:05d}", chunk, {
            "root": str(root), "src": str(src), "group": True,
            "repo_meta": {r: repo_meta[r] for r in {Path(f).relative_to(src).parts[0] for f in chunk}}},
            identity=group_identity(chunk, src)))
    return shards


@dataclass
class SourceTreeReader(ProcessingStage[FileGroupTask, DocumentBatch]):
    """Reads a shard of source files into code-file records (dropped files carry keep=false and the reason)."""

    max_file_bytes: int = MAX_FILE_BYTES
    languages: str = DEFAULT_LANGUAGE_TABLE
    name: str = "source_tree_reader"

    def inputs(self) -> tuple[list[str], list[str]]:
        return ["data"], []

    def outputs(self) -> tuple[list[str], list[str]]:
        return ["data"], ["text", "id", "path", "repo", "language", "doc_type", KEEP, DROP_REASONS]

    def process(self, task: FileGroupTask) -> DocumentBatch:
        cfg = task.reader_config
        root, src, repo_meta = Path(cfg["root"]), Path(cfg["src"]), cfg["repo_meta"]
        table = language_table(self.languages)
        st = Stats()
        records = []
        for f in task.data:
            rel = Path(f).relative_to(src)
            repo, path = rel.parts[0], "/".join(rel.parts[1:])
            st.add("files_in")
            rec = self._read_one(Path(f), root, path, repo, repo_meta.get(repo, {}), table)
            if rec is not None:
                rec["name_not_utf8"] = not is_utf8(f"{repo}/{path}")  # on every record: one schema for all shards
                if rec["name_not_utf8"]:
                    escape_names(rec)
                    st.add("names_not_utf8")
                st.add("bytes_in", rec["size_bytes"])
                records.append(rec)
        batch = DocumentBatch(dataset_name=cfg["shard"], data=ensure_keep_columns(frame_from_records(records)),
                              _metadata={"source": str(src), "input_identity": cfg.get("identity")})
        batch_stats(batch).merge(st)
        return batch

    def _read_one(self, f: Path, root: Path, path: str, repo: str, meta: dict, table: LanguageTable) -> dict | None:
        rid = f"{repo}/{path}"
        base = {"rid": rid, "path": path, "repo": repo, "meta": meta}
        target = f
        if f.is_symlink():
            target = f.resolve()
            if not target.is_relative_to(root):
                # never read outside SRC: a link to /etc/passwd must not end up in a training corpus
                return code_record(cf=_drop(table, path, "symlink_outside_src"), size=0, **base)
        try:
            data = read_regular_file(target, self.max_file_bytes)
        except NotRegularFile:  # a FIFO would block the read forever; a device could stream without end
            return code_record(cf=_drop(table, path, "not_regular_file"), size=0, **base)
        except TooLarge as e:
            return code_record(cf=_drop(table, path, "too_large"), size=e.size, **base)
        except OSError as e:
            return code_record(cf=_drop(table, path, f"unreadable:{e.strerror or type(e).__name__}"), size=0, **base)
        return code_record(cf=classify_file(path, data, table, self.max_file_bytes), size=len(data), **base)


class NotRegularFile(Exception):
    pass


class TooLarge(Exception):
    def __init__(self, size: int):
        super().__init__(size)
        self.size = size


def read_regular_file(path: Path, max_bytes: int) -> bytes:
    """The bytes of a regular file. A FIFO, socket or device is refused before it is opened (opening one can block,
    or act: a tape rewinds); the open itself is non-blocking and checked again on the descriptor, so a file swapped
    for a FIFO after the walk cannot hang us either."""
    if not stat.S_ISREG(os.stat(path).st_mode):
        raise NotRegularFile(path)
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise NotRegularFile(path)
        if st.st_size > max_bytes:
            raise TooLarge(st.st_size)
        with os.fdopen(fd, "rb", closefd=False) as f:
            return f.read()
    finally:
        os.close(fd)


def is_utf8(name: str) -> bool:
    """False for a name made of bytes that are not UTF-8 (Python holds those as lone surrogates)."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def escape_name(name: str) -> str:
    """A non-UTF-8 file name as valid text: its undecodable bytes written ``\\xNN`` (``caf\\xe9.py``)."""
    return os.fsencode(name).decode("utf-8", "backslashreplace")


def escape_names(rec: dict) -> None:
    """Keep a file whose name is not UTF-8: its names escaped (valid text for JSON, Parquet and ``datasets``); the
    record's ``name_not_utf8`` says so, so the escaped form is never taken for the file's real name."""
    for key in ("id", "path", "repo"):
        if isinstance(rec.get(key), str):
            rec[key] = escape_name(rec[key])


def _drop(table: LanguageTable, path: str, reason: str) -> ClassifiedFile:
    return ClassifiedFile(None, None, None, table.extension_of(path), reason)


# ------------------------------------------------------------------------------------- The Stack v2 style records
STACK_V2_FIELDS = {  # our field <- candidates in The Stack v2 (first present wins)
    "text": ("content", "text"),
    "path": ("path", "max_stars_repo_path"),
    "repo": ("repo_name", "repo", "max_stars_repo_name"),
    "id": ("blob_id", "id", "hexsha"),
    "stars": ("star_events_count", "stars", "max_stars_count"),
    "commit_time": ("committer_date", "revision_date", "commit_time", "visit_date"),
    "license": ("license", "detected_licenses", "license_type", "max_stars_repo_licenses"),
}


@dataclass
class StackV2RecordMapper(RecordStage):
    """Maps The Stack v2 style fields to ours and applies the same file checks as a tree ingest."""

    max_file_bytes: int = MAX_FILE_BYTES
    languages: str = DEFAULT_LANGUAGE_TABLE
    name: str = "stack_v2_record_mapper"

    def process_record(self, record: dict[str, Any], stats: Stats) -> dict[str, Any]:
        table = language_table(self.languages)
        mapped = {}
        for ours, theirs in STACK_V2_FIELDS.items():
            mapped[ours] = next((record[k] for k in theirs if record.get(k) is not None), None)
        lic = mapped["license"]
        if isinstance(lic, (list, tuple)) or hasattr(lic, "tolist"):
            mapped["license"] = ",".join(map(str, list(lic))) or None
        if mapped["commit_time"] is not None and not isinstance(mapped["commit_time"], str):
            mapped["commit_time"] = mapped["commit_time"].isoformat() if hasattr(
                mapped["commit_time"], "isoformat") else str(mapped["commit_time"])
        problem = check_fields(mapped, {"text": str, "path": str, "repo": str, "stars": int}, ["text", "path"])
        if problem:
            out = {k: v for k, v in mapped.items() if k != "text"}
            reject(out, f"bad_record:{problem}")
            stats.add("bad_fields")
            return out
        text = mapped["text"]
        size = len(text.encode("utf-8", "surrogatepass"))
        stats.add("files_in")
        stats.add("bytes_in", size)
        cf = classify_file(mapped["path"], text, table, self.max_file_bytes)
        repo = mapped["repo"] or ""
        rid = str(mapped["id"]) if mapped["id"] is not None else f"{repo}/{mapped['path']}"
        return code_record(rid=rid, path=mapped["path"], repo=repo, cf=cf, size=size,
                           meta={k: mapped[k] for k in ("stars", "commit_time", "license")})


# ------------------------------------------------------------------------------------------------------ entry point
def detect_format(src: Path) -> str:
    if src.is_file():
        return "stack-v2"
    if not src.is_dir():
        raise OcError(f"{src}: no such file or directory")
    entries = [p for p in src.iterdir() if not p.name.startswith((".", "_"))]
    if entries and all(p.is_file() and record_suffix(p) and p.name != REPOS_FILE for p in entries):
        return "stack-v2"
    return "tree"


def run_ingest(src: Path, out: Path, *, source_format: str = "auto", shard_size: int = 10_000,
               max_file_bytes: int = MAX_FILE_BYTES, languages: str = DEFAULT_LANGUAGE_TABLE,
               dropped: Path | None = None, overwrite: bool = False,
               executor: str = "local", quiet: bool = False, output_format: str = "jsonl") -> Stats:
    src, out = Path(src), Path(out)
    if not src.exists():
        raise OcError(f"{src}: no such file or directory")
    fmt = detect_format(src) if source_format == "auto" else source_format
    if fmt not in ("tree", "stack-v2"):
        raise OcError(f"--format {source_format!r}: choose auto, tree or stack-v2")
    if shard_size < 1:
        raise OcError("--shard-size must be at least 1")
    table = language_table(languages)  # an unknown name fails here, before any work
    options = {"format": fmt, "shard_size": shard_size, "max_file_bytes": max_file_bytes, "languages": languages,
               "language_table": table.source}
    common = dict(command="curate ingest", inp=src, out=out, options=options, dropped=dropped, overwrite=overwrite,
                  executor=executor, quiet=quiet, title=f"curate ingest ({fmt})", output_format=output_format)
    if fmt == "stack-v2":
        list_record_files(src)  # fail early, naming the path, if there is nothing to read
        return run_sharded(stages=[StackV2RecordMapper(max_file_bytes=max_file_bytes, languages=languages)], **common)
    plan_stats = Stats()
    shards = plan_tree(src, shard_size, plan_stats)
    if not shards:
        raise OcError(f"{src}: no files found (expected one folder per repository)")
    log.info("planned %d files from %d repositories into %d shards", sum(len(s.files) for s in shards),
             plan_stats.counters["repos"], len(shards))
    reader = SourceTreeReader(max_file_bytes=max_file_bytes, languages=languages)
    return run_sharded(stages=[], shards=shards, reader=reader, extra_stats=plan_stats, **common)

