"""One backend, ``workers`` copies of it on a Ray cluster, behind the ``Backend`` interface (``--executor ray``).

Each copy lives in a Ray actor that asks for the GPUs its engine needs (``tensor_parallel_size`` for vllm, one for
hf on a GPU cluster; one CPU elsewhere: an openai backend talks to the server its node runs, e.g. a ``base_url`` on
127.0.0.1). ``generate`` cuts a batch into one contiguous slice per copy and joins the answers in request order;
requests carry their own seeds, so the answers are those one backend gives. A copy whose actor dies (its node was
lost) is dropped and its slice goes to a copy that is alive; with none left, the batch fails as a whole (the
caller's failure contract: it is retried by a rerun).
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

from oc_common.errors import BackendError
from oc_common.log import get_logger
from oc_synth.backends.base import Backend, Completion, GenerationRequest

log = get_logger(__name__)


class _BackendActor:
    def __init__(self, name: str, model: str, options: dict[str, Any]):
        self.args = (name, model, options)
        self.backend: Backend | None = None

    def start(self) -> dict[str, Any]:
        """Build the backend (here, not in ``__init__``: its errors reach the driver as themselves)."""
        from oc_synth.backends import make_backend

        name, model, options = self.args
        self.backend = make_backend(name, model, **options)
        return self.backend.describe()

    def generate(self, requests: list[GenerationRequest]) -> list[Completion]:
        return self.backend.generate(requests)

    def close(self) -> None:
        if self.backend is not None:
            self.backend.close()


def actor_resources(name: str, options: dict[str, Any], cluster_gpus: float) -> dict[str, float]:
    if cluster_gpus and name == "vllm":
        return {"num_gpus": float(options.get("tensor_parallel_size", 1)), "num_cpus": 1}
    if cluster_gpus and name == "hf":
        return {"num_gpus": 1.0, "num_cpus": 1}
    return {"num_cpus": 1}


class RayBackendPool(Backend):
    """``workers`` actors, each holding ``make_backend(name, model, **options)``."""

    def __init__(self, name: str, model: str, options: dict[str, Any], workers: int):
        import ray

        from oc_synth.pipeline.executors import init_local_ray

        super().__init__(model)
        self.name = name
        init_local_ray()
        resources = actor_resources(name, options, ray.cluster_resources().get("GPU", 0))
        cls = ray.remote(_BackendActor).options(max_restarts=0, **resources)
        self.actors = [cls.remote(name, model, options) for _ in range(workers)]
        try:
            described = ray.get([a.start.remote() for a in self.actors])
        except ray.exceptions.RayTaskError as e:
            self.close()
            raise (e.cause if isinstance(e.cause, BaseException) else e) from None
        self._describe = {**described[0], "ray_workers": workers}
        log.info("%s backend: %d copies on Ray (%s each)", name, workers,
                 ", ".join(f"{v:g} {k[4:].upper()}" for k, v in resources.items()))

    def describe(self) -> dict[str, Any]:
        return dict(self._describe)

    def check_request(self, request: GenerationRequest) -> None:
        """The copies check their requests themselves."""

    def _generate(self, requests: list[GenerationRequest]) -> list[Completion]:
        import ray

        pending = list(_slices(requests, len(self.actors)))  # (start, slice)
        answers: dict[int, list[Completion]] = {}
        while pending:
            if not self.actors:
                raise BackendError(f"every Ray worker of the {self.name} backend died; the batch failed (a rerun "
                                   "retries it)")
            calls = {}
            for k, (start, part) in enumerate(pending):
                actor = self.actors[k % len(self.actors)]
                calls[actor.generate.remote(part)] = (start, part, actor)
            pending = []
            for ref, (start, part, actor) in calls.items():
                try:
                    answers[start] = ray.get(ref)
                except ray.exceptions.RayTaskError as e:
                    raise (e.cause if isinstance(e.cause, BaseException) else e) from None
                except ray.exceptions.RayActorError as e:
                    log.warning("a Ray worker of the %s backend died (%s); its %d requests go to another one",
                                self.name, str(e).strip().splitlines()[0][:200], len(part))
                    if actor in self.actors:
                        self.actors.remove(actor)
                    pending.append((start, part))
        return [c for start in sorted(answers) for c in answers[start]]

    def close(self) -> None:
        import ray

        for actor in getattr(self, "actors", []):
            with contextlib.suppress(Exception):  # a dead copy has nothing left to close
                ray.get(actor.close.remote(), timeout=60)
            with contextlib.suppress(Exception):
                ray.kill(actor)
        self.actors = []


def _slices(requests: Sequence[GenerationRequest], parts: int) -> list[tuple[int, list[GenerationRequest]]]:
    """``parts`` contiguous slices of about equal size (none empty), with their start positions."""
    parts = max(1, min(parts, len(requests)))
    size, extra = divmod(len(requests), parts)
    out, start = [], 0
    for k in range(parts):
        end = start + size + (1 if k < extra else 0)
        out.append((start, list(requests[start:end])))
        start = end
    return out
