"""The engines behind ``--engine``: one interface, two implementations, one output.

An engine does passes 1 and 2's engine-specific part: it indexes the shards and labels records with their exact
and near-duplicate clusters. Everything after that (keep rule, decisions, removal, output format) is shared code.

- ``cpu``: SHA-256 groups and rensa MinHash + banded LSH + connected components in numpy (this package).
- ``gpu``: NeMo Curator's exact-duplicate identification and fuzzy dedup workflow on cuDF/RAPIDS
  (``curator_gpu.py``).

Labels are positions into the ``IndexData`` arrays: records with the same label are one cluster; ``-1`` marks a
record that takes no part (no text; for fuzzy: no shingles, or removed as an exact duplicate first).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Protocol

import numpy as np
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from oc_common.errors import OcError
from oc_common.log import console, get_logger
from oc_common.stats import Stats
from oc_synth.curate.dedup.bands import entries_in, partition_count, partition_edges
from oc_synth.curate.dedup.index import IndexData, run_index
from oc_synth.curate.dedup.settings import DedupSettings
from oc_synth.minhash.lsh import Components
from oc_synth.pipeline.runner import Shard

log = get_logger(__name__)


class Engine(Protocol):
    name: str

    def describe(self) -> str:
        """What computes the signatures, for the summary and the run's fingerprint."""

    def index(self, shards: Sequence[Shard], work: Path, settings: DedupSettings, executor: str,
              quiet: bool) -> int:
        """Pass 1: write ``work/index/<shard>.parquet`` (and any engine intermediates); returns the number of
        records indexed by this call."""

    def exact_labels(self, data: IndexData, work: Path) -> np.ndarray:
        """Cluster label per record for identical content."""

    def fuzzy_labels(self, data: IndexData, candidates: np.ndarray, work: Path, settings: DedupSettings,
                     stats: Stats, quiet: bool) -> np.ndarray:
        """Cluster label per record among ``candidates`` (bool mask) for near-identical content."""


class CpuEngine:
    """``executor``: where pass 1's shards ran (set by ``index``); with ``ray``, pass 2's band-key partitions are Ray
    tasks too (``partition_edges_on_ray``), each reading its key range from the band files on the shared file system
    and returning its edges; the union-find over the edges stays here (8 bytes per record)."""

    name = "cpu"
    executor = "local"

    def describe(self) -> str:
        from oc_synth.minhash.signatures import engine_version

        return f"CPU: SHA-256 + {engine_version()}, banded LSH, numpy connected components"

    def index(self, shards: Sequence[Shard], work: Path, settings: DedupSettings, executor: str,
              quiet: bool) -> int:
        self.executor = executor
        return run_index(shards, work / "index", settings, compute_bands=settings.fuzzy, executor=executor, quiet=quiet)

    def exact_labels(self, data: IndexData, work: Path) -> np.ndarray:
        return data.exact_labels()

    def fuzzy_labels(self, data: IndexData, candidates: np.ndarray, work: Path, settings: DedupSettings,
                     stats: Stats, quiet: bool) -> np.ndarray:
        """Union-find over the candidate edges of one band-key partition at a time (``bands.py``)."""
        mh = settings.minhash
        files, starts = data.band_files(), data.shard_starts()
        count = partition_count(sum(entries_in(f) for f in files))
        stats.add("band_key_partitions", count)
        comp = Components(len(data))
        pairs_u, pairs_v = [], []
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=console, disable=quiet, transient=True) as progress:
            bar = progress.add_task("dedup: LSH band-key partitions", total=count)
            all_pairs = mh.jaccard_check is not None
            edges = (partition_edges_on_ray(files, starts, count, candidates, all_pairs) if self.executor == "ray"
                     else (partition_edges(files, starts, p, count, candidates, all_pairs) for p in range(count)))
            for u, v in edges:  # components and the sorted unique pairs do not depend on the partitions' order
                if mh.jaccard_check is None:
                    comp.union(u, v)
                    stats.add("candidate_edges", len(u))
                else:
                    pairs_u.append(np.minimum(u, v))
                    pairs_v.append(np.maximum(u, v))
                progress.advance(bar)
        if mh.jaccard_check is not None and pairs_u:
            from oc_synth.curate.dedup.jaccard import verify_pairs

            pairs = np.unique(np.stack([np.concatenate(pairs_u), np.concatenate(pairs_v)], axis=1), axis=0)
            ok = verify_pairs(data, pairs[:, 0], pairs[:, 1], mh)
            stats.add("candidate_pairs", len(pairs))
            stats.add("candidate_pairs_below_jaccard", int((~ok).sum()))
            comp.union(pairs[ok, 0], pairs[ok, 1])
        labels = np.where(candidates, comp.labels(), -1)
        return labels


def partition_edges_on_ray(files: Sequence[Path], starts: Sequence[int], count: int, candidates: np.ndarray | None,
                           all_pairs: bool) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """``partition_edges`` of every partition as Ray tasks (one CPU each; a task whose worker dies is run again by
    Ray), at most two per CPU of the cluster in flight so finished edges do not pile up in the object store; yields
    each partition's edges as it finishes. ``candidates`` goes to the object store once."""
    import ray

    from oc_synth.pipeline.executors import init_local_ray

    init_local_ray()
    task = ray.remote(partition_edges).options(num_cpus=1, max_retries=3)
    shared = ray.put(candidates)
    window = max(2, 2 * int(ray.cluster_resources().get("CPU", 1)))
    log.info("dedup: %d band-key partitions as Ray tasks (%d at a time)", count, window)
    pending, running = list(range(count)), []
    try:
        while pending or running:
            while pending and len(running) < window:
                running.append(task.remote(list(files), list(starts), pending.pop(0), count, shared, all_pairs))
            done, running = ray.wait(running, num_returns=1)
            try:
                yield ray.get(done[0])
            except ray.exceptions.RayTaskError as e:
                raise (e.cause if isinstance(e.cause, BaseException) else e) from None
    finally:
        for ref in running:  # stopped early (an error, Ctrl-C): the rest is not needed
            with contextlib.suppress(Exception):
                ray.cancel(ref)


def gpu_status() -> tuple[bool, str]:
    """Whether the GPU engine can run here, and why not."""
    try:
        import cudf  # noqa: F401
    except Exception as e:  # noqa: BLE001 - ImportError, or CUDA driver errors raised at import
        return False, f"cuDF is not importable ({e})"
    try:
        import torch

        if not torch.cuda.is_available():
            return False, "no CUDA device visible"
    except ImportError:
        pass
    return True, "cuDF and a CUDA device are available"


def resolve_engine(settings: DedupSettings) -> tuple[Engine, str]:
    """The engine to run and a sentence saying why it was chosen."""
    ok, why = gpu_status()
    if settings.engine == "cpu" or (settings.engine == "auto" and not ok):
        reason = "requested" if settings.engine == "cpu" else f"auto: {why}"
        return CpuEngine(), reason
    if not ok:
        raise OcError(f"--engine gpu: {why}. Install the GPU extra from NVIDIA's index (pip install "
                        "--extra-index-url https://pypi.nvidia.com 'nemo-curator[deduplication_cuda12]') or run in "
                        "NVIDIA's NeMo Curator container; --engine cpu runs the same dedup on CPUs.")
    if settings.fuzzy and settings.minhash.jaccard_check is not None:
        raise OcError("--jaccard-check: NeMo Curator's GPU fuzzy workflow has no candidate check; use --engine cpu "
                        "for a checked run")
    from oc_synth.curate.dedup.curator_gpu import GpuEngine

    return GpuEngine(), "requested" if settings.engine == "gpu" else f"auto: {why}"
