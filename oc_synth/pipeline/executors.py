"""Executors for NeMo Curator pipelines: in-process (laptop, CI, tests) or Ray (a local Ray or a Slurm-started cluster).

Ray costs 10-30 s to start on a 2-core box, which dominates small jobs; the in-process executor runs the very same
stage objects (through NeMo Curator's ``BaseStageAdapter``, so task ids and stage perf stats are identical) one batch
at a time in this process.
"""

from __future__ import annotations

import os
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
        from nemo_curator.tasks import EmptyTask

        adapters = [BaseStageAdapter(s) for s in stages]
        for a in adapters:
            a.setup_on_node()
            a.setup()
        results: list[Task] = []
        try:
            for task in list(initial_tasks) if initial_tasks else [EmptyTask]:
                tasks = [task]
                for a in adapters:
                    size = a.stage.batch_size or 1
                    out: list[Task] = []
                    for i in range(0, len(tasks), size):
                        out.extend(a.process_batch(tasks[i : i + size]))
                    tasks = out
                results.extend(tasks)
                if self.on_task_done is not None:
                    self.on_task_done(task)
        finally:
            for a in adapters:
                a.teardown()
        return results


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


def make_executor(name: str, num_cpus: int | None = None, on_task_done=None) -> BaseExecutor:  # noqa: ANN001
    """``local`` (in-process), ``ray`` (NeMo Curator's RayActorPoolExecutor) or ``xenna`` (streaming, Ray-based)."""
    check_executor(name)
    if name == "local":
        return InProcessExecutor(on_task_done=on_task_done)
    init_local_ray(num_cpus)
    if name == "ray":
        from nemo_curator.backends.ray_actor_pool import RayActorPoolExecutor

        return RayActorPoolExecutor()
    from nemo_curator.backends.xenna import XennaExecutor

    return XennaExecutor()
