"""Executors for NeMo Curator pipelines: in-process or a local process pool (laptop, one node, CI, tests), or Ray (a
local Ray or a Slurm-started cluster).

Ray costs 10-30 s to start on a 2-core box and serialises every batch between actors; for CPU-bound shards it was
slower on 2 cores than one process (docs/platform.md). NeMo Curator 1.4 has no local multi-process executor (its
executors are Ray actor pools, Ray Data and Xenna, all on Ray), so ``--executor local`` is ours:

- ``--workers 1`` (``InProcessExecutor``): the very same stage objects, through NeMo Curator's ``BaseStageAdapter``
  (so task ids and stage perf stats are identical), one shard at a time in this process.
- ``--workers N`` (``LocalProcessExecutor``): N worker processes forked from this one, each setting the stages up once
  and running whole shards through every stage, as the in-process executor does; shards are handed out as workers
  free up. A shard's output depends only on that shard, so the output is identical to one process for any N (the
  tests compare the bytes); only timing counters differ. Parallelism is per shard: a corpus needs at least N shards.
"""

from __future__ import annotations

import logging
import multiprocessing
import multiprocessing.util
import os
import signal
import sys
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from typing import TYPE_CHECKING

from nemo_curator.backends.base import BaseExecutor, BaseStageAdapter

from oc_common.log import get_logger

if TYPE_CHECKING:
    from nemo_curator.stages.base import ProcessingStage
    from nemo_curator.tasks import Task

log = get_logger(__name__)

EXECUTORS = ("local", "ray", "xenna")


def check_executor(name: str) -> None:
    """Reject an unknown ``--executor`` before any output is written."""
    if name not in EXECUTORS:
        from oc_common.errors import OcError

        raise OcError(f"--executor {name!r}: choose one of {', '.join(EXECUTORS)}")


class InProcessExecutor(BaseExecutor):
    """Runs the stages in the calling process, depth first: each initial task goes through every stage before the
    next one starts, so only one shard is in memory and a killed run has written every shard it got through.
    Stages are set up once. ``on_task_done`` (if given) is called after each initial task (progress bars)."""

    def __init__(self, config: dict | None = None, on_task_done=None):  # noqa: ANN001
        super().__init__(config)
        self.on_task_done = on_task_done

    def execute(self, stages: list[ProcessingStage], initial_tasks: list[Task] | None = None) -> list[Task]:
        adapters = [BaseStageAdapter(s) for s in stages]
        for a in adapters:
            a.setup_on_node()
            a.setup()
        results: list[Task] = []
        try:
            for task in _initial(initial_tasks):
                results.extend(run_through(adapters, task))
                if self.on_task_done is not None:
                    self.on_task_done(task)
        finally:
            for a in adapters:
                a.teardown()
        return results


def _initial(initial_tasks: list[Task] | None) -> list[Task]:
    from nemo_curator.tasks import EmptyTask

    return list(initial_tasks) if initial_tasks else [EmptyTask]


def run_through(adapters: list[BaseStageAdapter], task: Task) -> list[Task]:
    """One initial task through every stage, depth first (each stage in its own batch size)."""
    tasks = [task]
    for a in adapters:
        size = a.stage.batch_size or 1
        out: list[Task] = []
        for i in range(0, len(tasks), size):
            out.extend(a.process_batch(tasks[i : i + size]))
        tasks = out
    return tasks


class LocalProcessExecutor(BaseExecutor):
    """``--executor local --workers N``: the in-process executor's work, one initial task (shard) per worker process
    at a time, ``workers`` processes at once. Results come back in task order; ``on_task_done`` is called in this
    process as each task finishes.

    Workers are forked (where the platform has fork): they start in milliseconds with every module and the stages
    already in memory, where spawned workers would each import NeMo Curator (1-2 CPU-seconds). In a worker, SIGINT is
    ignored (Ctrl-C is this process's to handle: it stops the workers and keeps the shards they finished) and
    logging gets its own console (no lock of this process's progress-bar thread is inherited).
    """

    def __init__(self, workers: int, config: dict | None = None, on_task_done=None):  # noqa: ANN001
        super().__init__(config)
        self.workers = workers
        self.on_task_done = on_task_done

    def execute(self, stages: list[ProcessingStage], initial_tasks: list[Task] | None = None) -> list[Task]:
        tasks = _initial(initial_tasks)
        workers = min(self.workers, len(tasks))
        if workers <= 1:
            return InProcessExecutor(on_task_done=self.on_task_done).execute(stages, tasks)
        for stage in stages:
            BaseStageAdapter(stage).setup_on_node()  # once per node, before the workers exist
        method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
        pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context(method),
                                   initializer=_start_worker, initargs=(stages,))
        futures = {pool.submit(_run_in_worker, task): i for i, task in enumerate(tasks)}
        results: list[list[Task]] = [[] for _ in tasks]
        try:
            pending = set(futures)
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    results[futures[future]] = future.result()  # a worker's exception is raised here
                    if self.on_task_done is not None:
                        self.on_task_done(tasks[futures[future]])
        except BaseException:
            _stop(pool)
            raise
        pool.shutdown()
        return [t for shard in results for t in shard]


_worker_adapters: list[BaseStageAdapter] = []


def _start_worker(stages: list[ProcessingStage]) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _own_log_console()
    _worker_adapters[:] = [BaseStageAdapter(s) for s in stages]
    for a in _worker_adapters:
        a.setup()
    multiprocessing.util.Finalize(None, _stop_worker, exitpriority=10)


def _run_in_worker(task: Task) -> list[Task]:
    return run_through(_worker_adapters, task)


def _stop_worker() -> None:
    for a in _worker_adapters:
        a.teardown()
    _worker_adapters.clear()


def _own_log_console() -> None:
    """Give the ``oc`` loggers' rich handler a console of this process's own: the parent's console lock may have been
    held by its progress-bar thread when it forked."""
    from rich.console import Console
    from rich.logging import RichHandler

    for handler in logging.getLogger("oc").handlers:
        if isinstance(handler, RichHandler):
            handler.console = Console(file=sys.stderr)


def _stop(pool: ProcessPoolExecutor) -> None:
    """Cancel what has not started and stop the workers now (Ctrl-C, or a shard failed)."""
    processes = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        if process.is_alive():
            process.terminate()
    for process in processes:
        process.join(5)


def init_local_ray(num_cpus: int | None = None, object_store_gb: float = 1.0) -> None:
    """Start (or join, when RAY_ADDRESS is set) Ray with settings that work on small boxes.

    - Ray >= 2.60 turns token auth on once ~/.ray/auth_token exists; a private local cluster does not need it.
    - The object store defaults to 30% of RAM; cap it so a laptop keeps memory for the workers.
    """
    import ray

    if ray.is_initialized():
        return
    if os.environ.get("RAY_ADDRESS"):
        log.info("joining the Ray cluster at %s", os.environ["RAY_ADDRESS"])
        ray.init(address=os.environ["RAY_ADDRESS"], ignore_reinit_error=True)
        return
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    log.info("starting a local Ray (num_cpus=%s, object store %.1f GB)", num_cpus or os.cpu_count(), object_store_gb)
    ray.init(num_cpus=num_cpus, object_store_memory=int(object_store_gb * 2**30), include_dashboard=False,
             ignore_reinit_error=True, log_to_driver=False)


def make_executor(name: str, num_cpus: int | None = None, on_task_done=None,  # noqa: ANN001
                  workers: int = 1) -> BaseExecutor:
    """``local`` (in-process, or ``workers`` processes), ``ray`` (NeMo Curator's RayActorPoolExecutor) or ``xenna``
    (streaming, Ray-based)."""
    check_executor(name)
    if name == "local":
        if workers > 1:
            return LocalProcessExecutor(workers, on_task_done=on_task_done)
        return InProcessExecutor(on_task_done=on_task_done)
    init_local_ray(num_cpus)
    if name == "ray":
        from nemo_curator.backends.ray_actor_pool import RayActorPoolExecutor

        return RayActorPoolExecutor()
    from nemo_curator.backends.xenna import XennaExecutor

    return XennaExecutor()
