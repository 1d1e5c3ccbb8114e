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

``--executor ray`` (``RayShardExecutor``) is the same shard-at-a-time design on a Ray cluster: one Ray actor per free
worker slot of the cluster (the stages' ``resources``: CPUs, GPUs), each setting the stages up once and taking whole
shards; readers and writers work on the shared file system, so only small results travel. A shard whose actor dies
(its node was lost, the process was killed) is given to another actor and the lost actor replaced; a shard's output
is written atomically with its done-marker last, so a retried shard is written once. NeMo Curator's own
``RayActorPoolExecutor`` runs one stage at a time over every shard (the whole corpus passes through the object store
between stages before the first shard is written), fails the run when an actor is lost, and shuts Ray down at the
end; it stays in use where a workflow needs its shuffle and LSH stages (GPU dedup, ``curator_ray_executor``).
"""

from __future__ import annotations

import contextlib
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
        pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context(_start_method()),
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


def _start_method() -> str:
    """fork, except in a process that is a Ray driver (a test session, a notebook that ran ``--executor ray`` before):
    a fork inherits Ray's threads and gRPC state without the threads, and the child hangs or crashes when Ray's exit
    hooks run in it. forkserver starts workers from a clean server process instead (slower: each imports the stages)."""
    ray = sys.modules.get("ray")
    if ray is not None and ray.is_initialized():
        return "forkserver"
    return "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"


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


class RayShardExecutor(BaseExecutor):
    """``--executor ray``: whole shards on Ray actors, as many actors as the cluster has slots for (see the module
    docstring). Results come back in task order; ``on_task_done`` is called in this (the driver) process.

    ``max_retries``: how many times a shard is given to another actor after its actor died; a stage's own exception
    is never retried (it is raised here as itself, so a user's mistake prints as one line).
    ``ready_timeout_s``: how long to wait for an actor to start when none is running (a cluster without free slots).
    """

    def __init__(self, config: dict | None = None, on_task_done=None, max_retries: int = 3,  # noqa: ANN001
                 ready_timeout_s: float = 600.0):
        super().__init__(config)
        self.on_task_done = on_task_done
        self.max_retries = max_retries
        self.ready_timeout_s = ready_timeout_s

    def execute(self, stages: list[ProcessingStage], initial_tasks: list[Task] | None = None) -> list[Task]:
        import ray

        tasks = _initial(initial_tasks)
        node_stages = [s for s in stages if type(s).setup_on_node is not _base_setup_on_node()]
        if node_stages:
            from nemo_curator.backends.utils import execute_setup_on_node

            execute_setup_on_node(node_stages)
        cpus = max((s.resources.cpus for s in stages if s.resources is not None), default=1.0)
        gpus = max((s.resources.gpus for s in stages if s.resources is not None), default=0.0)
        slots = cluster_slots(cpus, gpus)
        if slots == 0:
            from oc_common.errors import EnvironmentProblem

            raise EnvironmentProblem(f"no node of the Ray cluster has {cpus:g} CPUs" + (f" and {gpus:g} GPUs"
                                     if gpus else "") + " for one worker of this pipeline (ray status lists the "
                                     "nodes; verify asks one CPU per sandbox slot, --workers)")
        actor_cls = ray.remote(_ShardActor).options(num_cpus=cpus, num_gpus=gpus, max_restarts=0)
        stages_ref = ray.put(list(stages))
        pool = _ActorPool(lambda: actor_cls.remote(stages_ref), min(len(tasks), slots))
        log.info("ray: %d shards on %d actors (%s CPU%s per actor)", len(tasks), len(pool.actors), cpus,
                 f", {gpus} GPU" if gpus else "")
        results: list[list[Task] | None] = [None] * len(tasks)
        queue = list(range(len(tasks)))
        attempts = [0] * len(tasks)
        try:
            while queue or pool.busy:
                while queue and pool.free:
                    actor, i = pool.free.pop(0), queue.pop(0)
                    pool.submit(actor, i, actor.run.remote(tasks[i]))
                event = pool.wait(self.ready_timeout_s)
                if event.kind == "done":
                    results[event.task] = event.value
                    if self.on_task_done is not None:
                        self.on_task_done(tasks[event.task])
                elif event.kind == "lost":
                    attempts[event.task] += 1
                    name = getattr(tasks[event.task], "dataset_name", event.task)
                    if attempts[event.task] > self.max_retries:
                        from oc_common.errors import EnvironmentProblem

                        raise EnvironmentProblem(f"shard {name}: its Ray worker died {attempts[event.task]} times "
                                                 f"(last: {event.value}); the shards finished so far are kept, "
                                                 "a rerun resumes")
                    log.warning("shard %s: its Ray worker died (%s); running it again on another worker", name,
                                _first_line(event.value))
                    queue.insert(0, event.task)
                    pool.replace()
        finally:
            pool.close()
        return [t for shard in results for t in (shard or [])]


def _base_setup_on_node():  # noqa: ANN202
    from nemo_curator.stages.base import ProcessingStage

    return ProcessingStage.setup_on_node


def _first_line(error: object) -> str:
    return str(error).strip().splitlines()[0][:300] if str(error).strip() else type(error).__name__


class _ShardActor:
    """A Ray actor that sets the stages up once (in ``ready``: an exception there reaches the driver as itself, where
    one raised in ``__init__`` would arrive as text) and runs whole shards through them (``run_through``)."""

    def __init__(self, stages: list[ProcessingStage]):
        self.stages = stages
        self.adapters: list[BaseStageAdapter] = []

    def ready(self) -> str:
        import ray

        _own_log_console()
        self.adapters = [BaseStageAdapter(s) for s in self.stages]
        for a in self.adapters:
            a.setup()
        return ray.get_runtime_context().get_node_id()

    def run(self, task: Task) -> list[Task]:
        return run_through(self.adapters, task)

    def teardown(self) -> None:
        for a in self.adapters:
            a.teardown()


class _Event:
    def __init__(self, kind: str, task: int, value: object = None):
        self.kind, self.task, self.value = kind, task, value


class _ActorPool:
    """Actors, each known ready (its ``ready`` call returned) before it gets work, each with at most one shard in
    flight. An actor that is still starting holds no shard, so a lost node's replacement that cannot be placed
    never holds the run up while other actors can take its shard."""

    def __init__(self, make, size: int):  # noqa: ANN001
        self.make = make
        self.actors: list = []
        self.ready_refs: dict = {}  # ObjectRef of actor.ready() -> actor
        self.running: dict = {}  # ObjectRef of actor.run() -> (actor, task index)
        self.free: list = []
        for _ in range(max(1, size)):
            self.replace()

    @property
    def busy(self) -> bool:
        return bool(self.running)

    def replace(self) -> None:
        actor = self.make()
        self.actors.append(actor)
        self.ready_refs[actor.ready.remote()] = actor

    def submit(self, actor, task: int, ref) -> None:  # noqa: ANN001
        self.running[ref] = (actor, task)

    def wait(self, ready_timeout_s: float) -> _Event:
        """The next finished shard or lost actor; actors that became ready join the free list on the way."""
        import ray
        from ray.exceptions import RayActorError, RayTaskError

        while True:
            refs = list(self.running) + list(self.ready_refs)
            timeout = None if self.running else ready_timeout_s
            done, _ = ray.wait(refs, num_returns=1, timeout=timeout)
            if not done:
                from oc_common.errors import EnvironmentProblem

                raise EnvironmentProblem(f"no Ray worker started in {ready_timeout_s:.0f} s: the cluster has no free "
                                         "CPU (or GPU) for one (ray status shows its resources)")
            ref = done[0]
            if ref in self.ready_refs:
                actor = self.ready_refs.pop(ref)
                try:
                    ray.get(ref)
                except RayTaskError as e:  # a stage's setup failed: it would fail on every worker
                    raise _stage_error(e) from None
                except RayActorError as e:  # it died while starting (a lost node): the others carry on
                    self._forget(actor)
                    if not self.running and not self.ready_refs and not self.free:
                        raise
                    log.warning("a Ray worker died while starting (%s)", _first_line(e))
                    continue
                self.free.append(actor)
                return _Event("ready", -1)
            actor, task = self.running.pop(ref)
            try:
                value = ray.get(ref)
            except RayTaskError as e:
                raise _stage_error(e) from None
            except (RayActorError, ray.exceptions.WorkerCrashedError, ray.exceptions.NodeDiedError,
                    ray.exceptions.ObjectLostError) as e:
                self._forget(actor)
                return _Event("lost", task, e)
            self.free.append(actor)
            return _Event("done", task, value)

    def _forget(self, actor) -> None:  # noqa: ANN001
        import ray

        if actor in self.actors:
            self.actors.remove(actor)
        with contextlib.suppress(Exception):
            ray.kill(actor)

    def close(self) -> None:
        import ray

        for actor in self.actors:
            with contextlib.suppress(Exception):
                ray.get(actor.teardown.remote(), timeout=60) if actor in self.free else None
            with contextlib.suppress(Exception):
                ray.kill(actor)
        self.actors.clear()


def _stage_error(error: Exception) -> BaseException:
    """A stage's own exception out of Ray's wrapper (an OcError stays an OcError: one red line at the CLI)."""
    cause = getattr(error, "cause", None)
    return cause if isinstance(cause, BaseException) else error


def cluster_slots(cpus: float, gpus: float) -> int:
    """How many actors of ``cpus`` CPUs and ``gpus`` GPUs the alive nodes of the cluster hold."""
    import ray

    slots = 0
    for node in ray.nodes():
        if not node.get("Alive"):
            continue
        res = node.get("Resources", {})
        fits = [int(res.get("CPU", 0) // cpus)] if cpus > 0 else []
        if gpus > 0:
            fits.append(int(res.get("GPU", 0) // gpus))
        slots += min(fits) if fits else 1
    return slots


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
    """``local`` (in-process, or ``workers`` processes), ``ray`` (whole shards on Ray actors: ``RayShardExecutor``)
    or ``xenna`` (NeMo Curator's streaming executor, Ray-based)."""
    check_executor(name)
    if name == "local":
        if workers > 1:
            return LocalProcessExecutor(workers, on_task_done=on_task_done)
        return InProcessExecutor(on_task_done=on_task_done)
    init_local_ray(num_cpus)
    if name == "ray":
        return RayShardExecutor(on_task_done=on_task_done)
    from nemo_curator.backends.xenna import XennaExecutor

    return XennaExecutor()


def curator_ray_executor() -> BaseExecutor:
    """NeMo Curator's ``RayActorPoolExecutor``, for Curator workflows whose stages only it runs (the GPU dedup's
    shuffles, LSH and connected components)."""
    from nemo_curator.backends.ray_actor_pool import RayActorPoolExecutor

    init_local_ray()
    return RayActorPoolExecutor()
