"""The output contract of every command that writes (docs/outputs.md), in one module.

1. **Inputs are never touched.** Before anything is written, an output (OUT, ``--dropped``, an output prefix or
   file) that is an input, contains one or lies inside one is refused, and so is an output whose location cannot be
   written (a file in the way, a read-only file system, no permission).
2. **We only delete what we wrote.** Each output directory lists what runs of ours wrote there in
   ``.oc/manifest.json``; ``--overwrite`` removes exactly those paths and ``.oc/``. A non-empty directory without our
   manifest is refused, with or without ``--overwrite``.
3. **Run metadata stays out of the data.** ``OUT/.oc/`` holds the manifest, the totals (``stats.json``), the
   per-shard done-markers and work files. The ``datasets`` builders skip hidden folders, so
   ``load_dataset("json", data_dir=OUT)`` and ``load_dataset(OUT)`` read exactly the records; our own input
   discovery skips them too, and never descends into an output of ours that was made from the input it lists.
4. **Resume is keyed on the inputs' identity**, not only their names: size, modification and change times and inode
   (``stat_identity``), and a BLAKE2b content hash that decides whenever the cheap fields differ
   (``identity_change``). This is the check git's index, make and rsync rely on (a file whose content changed
   keeps neither its size nor its mtime, short of a tool that restores both, and ctime cannot be restored), plus a
   hash so that a copied or touched file is not redone.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import json
import os
import shutil
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from oc_common.errors import EnvironmentProblem, OutputError, OutputExistsError
from oc_common.fileio import atomic_write_json, remove_stale_temps
from oc_common.log import get_logger

log = get_logger(__name__)

META_DIR = ".oc"  # hidden: datasets' builders and our own input discovery skip it
MANIFEST = "manifest.json"
STATS = "stats.json"
SHARDS = "shards"  # per-shard done-markers: stats, input identity, output names
LEGACY_MANIFEST = "_manifest.json"  # layout of oc-cookbook before the output contract
MANIFEST_FORMAT = 1
QUICK_KEYS = ("size", "mtime_ns", "ctime_ns", "inode")
HASH_CHUNK = 1 << 20


# ---- where things live ---------------------------------------------------------------------------------------------
def meta_dir(out: str | Path) -> Path:
    return Path(out) / META_DIR


def manifest_path(out: str | Path) -> Path:
    return meta_dir(out) / MANIFEST


def stats_path(out: str | Path) -> Path:
    """``OUT/.oc/stats.json``: the totals of the run that wrote OUT."""
    return meta_dir(out) / STATS


def shard_marker(out: str | Path, shard: str) -> Path:
    """The done-marker of one shard, written last: its stats, its input's identity and its output names."""
    return meta_dir(out) / SHARDS / f"{shard}.json"


def is_our_output(directory: str | Path) -> bool:
    return manifest_path(directory).is_file()


def read_stats(out: str | Path) -> dict[str, Any]:
    return json.loads(stats_path(out).read_text(encoding="utf-8"))


def read_manifest(directory: str | Path) -> dict[str, Any] | None:
    """The manifest of an output directory of ours, or None when it has none."""
    path = manifest_path(directory)
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise OutputError(f"{path}: unreadable ({e}); remove {directory} yourself or choose another output") from None
    if not isinstance(data, dict) or not isinstance(data.get("writes"), list):
        raise OutputError(f"{path}: not a manifest of ours; remove {directory} yourself or choose another output")
    return data


# ---- inputs and outputs never overlap ------------------------------------------------------------------------------
def real_path(path: str | Path) -> Path:
    """Absolute, with every symbolic link in the existing part resolved (an alias of an input is that input)."""
    return Path(os.path.realpath(os.path.abspath(path)))


def overlap(a: str | Path, b: str | Path) -> str | None:
    """How ``a`` relates to ``b``: "is", "contains" or "inside"; None when they are separate."""
    ra, rb = real_path(a), real_path(b)
    if ra == rb:
        return "is"
    if ra in rb.parents:
        return "contains"
    if rb in ra.parents:
        return "inside"
    return None


def check_separate(inputs: Mapping[str, str | Path | None], outputs: Mapping[str, str | Path | None]) -> None:
    """Refuse an output that is, contains or lies inside an input, and outputs that overlap each other."""
    ins = {k: Path(v) for k, v in inputs.items() if v is not None}
    outs = {k: Path(v) for k, v in outputs.items() if v is not None}
    for olabel, out in outs.items():
        for ilabel, inp in ins.items():
            how = overlap(out, inp)
            if how == "is":
                raise OutputError(f"{olabel} {out} is the input {ilabel} {inp}: writing there would destroy the "
                                  f"input; choose another {olabel}")
            if how == "contains":
                raise OutputError(f"{olabel} {out} contains the input {ilabel} {inp}: a run or --overwrite there "
                                  f"could change or delete it; choose an {olabel} that does not contain it")
            if how == "inside":
                raise OutputError(f"{olabel} {out} lies inside the input {ilabel} {inp}: the output would mix with "
                                  f"the input and be read back by the next run; choose an {olabel} outside {inp}")
    labels = list(outs)
    for i, a in enumerate(labels):
        for b in labels[i + 1:]:
            how = overlap(outs[a], outs[b])
            if how is not None:
                relation = {"is": "is the same path as", "contains": "contains", "inside": "lies inside"}[how]
                raise OutputError(f"{a} {outs[a]} {relation} {b} {outs[b]}: the two outputs must be separate")


def check_writable(label: str, path: str | Path, *, directory: bool | None = True) -> None:
    """Refuse, before any work, an output that cannot be created where asked: a file where a directory is wanted (or
    the reverse; ``directory=None``: either will do), a read-only file system, no permission."""
    p = Path(path)
    if p.is_symlink() and not p.exists():
        raise OutputError(f"{label} {p}: a symbolic link to nothing; remove it or choose another {label}")
    if p.exists():
        if directory is True and not p.is_dir():
            raise OutputError(f"{label} {p}: exists and is a file, not a directory; choose a directory")
        if directory is False and p.is_dir():
            raise OutputError(f"{label} {p}: is a directory, a file is written there; choose a file name")
        where = p if p.is_dir() else p.parent
    else:
        where = p.absolute().parent
        while not where.exists() and where != where.parent:
            where = where.parent
        if not where.is_dir():
            raise OutputError(f"{label} {p}: cannot be created: {where} is a file, not a directory")
    try:
        read_only = bool(os.statvfs(where).f_flag & os.ST_RDONLY)
    except OSError:
        read_only = False
    if read_only:
        raise EnvironmentProblem(f"{label} {p}: {where} is on a read-only file system; choose a writable location")
    if not os.access(where, os.W_OK | os.X_OK):
        raise EnvironmentProblem(f"{label} {p}: no permission to write in {where}; choose a location you can "
                                 "write, or fix its permissions")


# ---- what a run wrote ----------------------------------------------------------------------------------------------
def _files_under(directory: Path) -> Iterator[str]:
    """Relative paths (POSIX) of everything below ``directory`` except ``.oc/``; links are listed, not followed."""
    for root, dirs, files in os.walk(directory):
        rel_root = Path(root).relative_to(directory)
        if rel_root == Path("."):
            dirs[:] = [d for d in dirs if d != META_DIR]
        for name in sorted(files) + sorted(d for d in dirs if os.path.islink(os.path.join(root, d))):
            yield (rel_root / name).as_posix()


def _safe_entry(entry: str) -> bool:
    p = Path(entry)
    return bool(entry) and not p.is_absolute() and ".." not in p.parts and p.parts[0] != META_DIR


def _covered(rel: str, writes: set[str], dirs: tuple[str, ...]) -> bool:
    if rel in writes or rel.startswith(dirs):
        return True
    return _temp_of(rel, writes)


def _temp_of(rel: str, writes: set[str]) -> bool:
    """Is ``rel`` the temp file of an atomic write (``.NAME.XXXX.tmp`` beside NAME) of one of ``writes``?"""
    parent, _, name = rel.rpartition("/")
    if not (name.startswith(".") and name.endswith(".tmp")):
        return False
    for w in writes:
        w_parent, _, w_name = w.rstrip("/").rpartition("/")
        if w_parent == parent and name.startswith(f".{w_name}."):
            return True
    return False


def foreign_files(directory: Path, writes: Iterable[str]) -> list[str]:
    """What lies in ``directory`` that no run of ours listed (``.oc/`` excluded)."""
    ws = set(writes)
    dirs = tuple(w for w in ws if w.endswith("/"))
    return [rel for rel in _files_under(directory) if not _covered(rel, ws, dirs)]


def remove_written(directory: Path, manifest: dict[str, Any]) -> int:
    """Delete what ``manifest`` lists under ``directory`` (and ``.oc/``), nothing else; returns how many paths."""
    root = real_path(directory)
    removed = 0
    for entry in manifest.get("writes", []):
        if not isinstance(entry, str) or not _safe_entry(entry):
            log.warning("%s: ignoring manifest entry %r (outside the directory)", directory, entry)
            continue
        target = directory / entry.rstrip("/")
        if root not in real_path(target.parent).parents and real_path(target.parent) != root:
            continue  # a linked folder leading out of the directory: never follow it
        if target.is_symlink() or target.is_file():
            target.unlink()
            removed += 1
        elif target.is_dir() and entry.endswith("/"):
            shutil.rmtree(target)
            removed += 1
        if target.parent.is_dir():
            remove_stale_temps_named(target.parent, target.name)
        _prune_empty(target.parent, directory)
    shutil.rmtree(meta_dir(directory), ignore_errors=True)
    return removed


def remove_stale_temps_named(directory: Path, name: str) -> None:
    for p in directory.glob(f".{glob.escape(name)}.*.tmp"):
        with contextlib.suppress(OSError):
            p.unlink()


def remove_our_temps(directory: Path, writes: Iterable[str]) -> int:
    """Delete the temp files a killed run of ours left (of our writes, and in ``.oc/``); returns how many."""
    ws = set(writes)
    n = 0
    for rel in _files_under(directory):
        if _temp_of(rel, ws):
            with contextlib.suppress(OSError):
                (directory / rel).unlink()
                n += 1
    if meta_dir(directory).is_dir():
        n += remove_stale_temps(meta_dir(directory))
    return n


def _prune_empty(d: Path, stop: Path) -> None:
    stop = stop.absolute()
    d = d.absolute()
    while d != stop and stop in d.parents:
        try:
            d.rmdir()
        except OSError:
            return
        d = d.parent


# ---- claiming output directories -----------------------------------------------------------------------------------
@dataclass
class OutputDir:
    """One output directory of a run: where, how the CLI calls it, and what this run writes there (relative paths;
    a folder this run owns entirely ends with "/")."""

    path: Path
    label: str = "OUT"
    writes: Iterable[str] = ()
    manifest: dict[str, Any] | None = field(default=None, repr=False)


def normalized(options: Mapping[str, Any]) -> dict[str, Any]:
    """Options as they read back from JSON (tuples become lists, paths strings), so a resume compares equal."""
    return json.loads(json.dumps(dict(options), sort_keys=True, default=str))


def describe_difference(old: Mapping[str, Any], new: Mapping[str, Any], limit: int = 3) -> str:
    """``mode: 'exact' there, 'both' now; seed: ...``: the first few keys (dotted) whose values differ."""
    a, b = _flatten(old), _flatten(new)
    keys = [k for k in sorted(set(a) | set(b)) if a.get(k, _MISSING) != b.get(k, _MISSING)]
    parts = [f"{k}: {_show(a.get(k, _MISSING))} there, {_show(b.get(k, _MISSING))} now" for k in keys[:limit]]
    if len(keys) > limit:
        parts.append(f"{len(keys) - limit} more")
    return "; ".join(parts) or "no difference"


_MISSING = object()


def _show(v: Any) -> str:
    if v is _MISSING:
        return "(not set)"
    text = json.dumps(v, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


def _flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping) and v:
            out.update(_flatten(v, f"{key}."))
        else:
            out[key] = v
    return out


def claim_outputs(command: str, options: Mapping[str, Any], *, inputs: Mapping[str, str | Path | None],
                  dirs: Iterable[OutputDir], overwrite: bool = False,
                  also_check: Mapping[str, str | Path | None] | None = None,
                  input_state: Mapping[str, Any] | None = None, concurrent: bool = False) -> bool:
    """Check every output, then create, resume or start over each output directory; True when resuming.

    Nothing is created or deleted until every check passed. ``also_check``: output files or prefixes this command
    writes outside the directories (checked for overlap and writability only). ``input_state``: for commands whose
    result depends on all inputs at once (dedup, recall), the inputs' identities (``input_state``); a resume with
    inputs that changed since is refused, saying what changed. ``concurrent``: other processes of the same run
    (data-parallel ranks) may be writing there now, so a resume leaves temp files alone (they may be theirs, in
    flight); the run that finalizes afterwards removes what killed ranks left.
    """
    dirs = list(dirs)
    extra = {k: v for k, v in (also_check or {}).items() if v is not None}
    check_separate(inputs, {**{d.label: d.path for d in dirs}, **extra})
    for d in dirs:
        check_writable(d.label, d.path, directory=True)
    for label, p in extra.items():
        check_writable(label, p, directory=None)
    opts = normalized(options)
    resumed = False
    for d in dirs:
        d.manifest = _check_dir(d, command, opts, overwrite, input_state)
        resumed = resumed or (d.manifest is not None and not overwrite)
    for d in dirs:
        if d.manifest is not None and overwrite:
            n = remove_written(d.path, d.manifest)
            log.info("%s %s: removed %d paths an earlier run wrote (--overwrite)", d.label, d.path, n)
            left = foreign_files(d.path, ()) if d.path.exists() else []
            if left:
                log.warning("%s %s: left %d files no run of ours wrote in place (e.g. %s)", d.label, d.path,
                            len(left), left[0])
        elif d.manifest is not None and not concurrent:
            n = remove_our_temps(d.path, d.manifest.get("writes", []))
            log.info("resuming into %s%s", d.path, f" (removed {n} partial files of a killed run)" if n else "")
    for d in dirs:
        d.path.mkdir(parents=True, exist_ok=True)
        earlier = d.manifest if d.manifest is not None and not overwrite else {}
        state = input_state if input_state is not None else earlier.get("input_state")
        write_manifest(d.path, command, opts, label=d.label, inputs=inputs,
                       writes=sorted(set(earlier.get("writes", [])) | set(d.writes)), input_state=state)
    return resumed


def _check_dir(d: OutputDir, command: str, opts: dict[str, Any], overwrite: bool,
               input_state: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The manifest of ``d`` when a run of ours wrote it (and it may be resumed or replaced); None when it is empty
    or absent. Raises when it may not be touched."""
    if not d.path.exists():
        return None
    manifest = read_manifest(d.path)
    if manifest is None:
        if (d.path / LEGACY_MANIFEST).exists():
            raise OutputExistsError(f"{d.label} {d.path}: written by an earlier version of oc-cookbook (with "
                                    f"{LEGACY_MANIFEST}), which this one does not resume; remove it yourself or "
                                    f"choose another {d.label}")
        theirs = next(_files_under(d.path), None)
        if theirs is None:
            return None
        raise OutputExistsError(f"{d.label} {d.path}: holds files no run of ours wrote (e.g. {theirs}); choose a new "
                                f"or empty directory (--overwrite only removes what an earlier run of ours wrote)")
    if overwrite:
        return manifest
    if manifest.get("command") != command or manifest.get("label", d.label) != d.label:
        was = f"`{manifest.get('command')}`" + (f" as {manifest.get('label')}" if manifest.get("label") != d.label
                                                 else "")
        raise OutputExistsError(f"{d.label} {d.path}: written by {was}; choose another {d.label}, or pass "
                                "--overwrite to replace what that run wrote")
    if manifest.get("options") != opts:
        raise OutputExistsError(f"{d.label} {d.path}: written by `{command}` with other options "
                                f"({describe_difference(manifest.get('options') or {}, opts)}); rerun with the same "
                                "options to resume, or pass --overwrite to start over")
    if input_state is not None and manifest.get("input_state") is not None:
        changes = describe_input_changes(manifest["input_state"], input_state)
        if changes:
            more = f"; {len(changes) - 5} more" if len(changes) > 5 else ""
            raise OutputExistsError(f"{d.label} {d.path}: the inputs changed since the run that wrote it "
                                    f"({'; '.join(changes[:5])}{more}); `{command}` decides over all inputs at once, "
                                    "so pass --overwrite to redo it (or restore the inputs to resume)")
    return manifest


def write_manifest(out: Path, command: str, options: Mapping[str, Any], *, label: str,
                   inputs: Mapping[str, str | Path | None], writes: list[str],
                   input_state: Mapping[str, Any] | None = None) -> None:
    from oc_common import __version__

    data = {"format": MANIFEST_FORMAT, "tool": f"oc-cookbook {__version__}", "command": command, "label": label,
            "options": normalized(options),
            "inputs": {k: str(real_path(v)) for k, v in inputs.items() if v is not None},
            "writes": writes}
    if input_state is not None:
        data["input_state"] = dict(input_state)
    atomic_write_json(manifest_path(out), data)


def derived_from(directory: str | Path, inp: str | Path) -> bool:
    """True when ``directory`` is an output of ours made from ``inp`` (or from something inside it, or containing
    it): reading it as part of ``inp`` would read our own output back as input."""
    try:
        manifest = read_manifest(directory)
    except OutputError:
        return True  # ours, damaged: never read it as input either
    if manifest is None:
        return False
    return any(overlap(src, inp) is not None for src in (manifest.get("inputs") or {}).values())


# ---- input identity ------------------------------------------------------------------------------------------------
def stat_identity(path: str | Path) -> dict[str, int]:
    st = os.stat(path)
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "ctime_ns": st.st_ctime_ns, "inode": st.st_ino}


def content_digest(path: str | Path) -> str:
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as f:
        while chunk := f.read(HASH_CHUNK):
            h.update(chunk)
    return f"blake2b:{h.hexdigest()}"


def file_identity(path: str | Path, *, content: bool = True) -> dict[str, Any]:
    """Stat first, hash second: a change after the stat shows at the next check."""
    ident: dict[str, Any] = dict(stat_identity(path))
    if content:
        ident["content"] = content_digest(path)
    return ident


def group_identity(paths: Iterable[str], base: str | Path) -> dict[str, Any]:
    """One identity for a group of files (an ingest shard): their relative names and stat fields."""
    h = hashlib.sha256()
    n = 0
    for p in paths:
        n += 1
        rel = os.fsencode(os.path.relpath(p, base))
        try:
            st = os.lstat(p)
            fields = f"{st.st_mode}\0{st.st_size}\0{st.st_mtime_ns}\0{st.st_ctime_ns}\0{st.st_ino}"
        except OSError as e:
            fields = f"error:{e.errno}"
        h.update(rel + b"\0" + fields.encode() + b"\n")
    return {"files": n, "digest": h.hexdigest()}


@dataclass
class InputCheck:
    change: str | None  # None: the input is what the identity describes; else what changed, in words
    identity: dict[str, Any] | None = None  # the identity now, when unchanged but its stat fields moved (rehashed)


def identity_change(old: Mapping[str, Any] | None, path: str | Path) -> InputCheck:
    """Is the file at ``path`` the one ``old`` describes? Cheap fields first; the content hash decides otherwise."""
    if not old:
        return InputCheck("no identity recorded")
    try:
        now = stat_identity(path)
    except FileNotFoundError:
        return InputCheck("gone")
    if all(old.get(k) == now[k] for k in QUICK_KEYS):
        return InputCheck(None)
    if old.get("size") != now["size"]:
        return InputCheck(f"size {old.get('size', 0):,} -> {now['size']:,} bytes")
    if old.get("content"):
        digest = content_digest(path)
        if digest == old["content"]:
            return InputCheck(None, {**now, "content": digest})
        return InputCheck("content changed (same size)")
    return InputCheck("modified (same size, new modification time)")


def input_state(files: Mapping[str, str | Path], *, content: bool = True) -> dict[str, dict[str, Any]]:
    """name -> identity of each input file, for commands that decide over all inputs at once. Without ``content``
    (inputs too large to hash at every start) a touched file counts as changed."""
    return {name: file_identity(p, content=content) for name, p in sorted(files.items())}


def describe_input_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """What differs between two ``input_state`` maps, in words: changed, new and vanished inputs.

    A file whose stat fields moved but whose content hash is the same (a copy, a touch) is not a change."""
    out = []
    for name in sorted(set(old) | set(new)):
        a, b = old.get(name), new.get(name)
        if a is None:
            out.append(f"{name}: new")
        elif b is None:
            out.append(f"{name}: gone")
        elif a.get("size") != b.get("size"):
            out.append(f"{name}: size {a.get('size', 0):,} -> {b.get('size', 0):,} bytes")
        elif a.get("content") and b.get("content"):
            if a["content"] != b["content"]:
                out.append(f"{name}: content changed (same size)")
        elif any(a.get(k) != b.get(k) for k in QUICK_KEYS):
            out.append(f"{name}: modified (same size, new modification time)")
    return out
