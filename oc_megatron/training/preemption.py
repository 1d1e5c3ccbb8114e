"""Save-and-exit on preemption signals (Slurm ``--signal=USR1@T``, ``scancel``, torchrun forwarding SIGTERM).

The handler only sets a flag; the training loop checks it once per step with an all-reduce (MAX) over all ranks, so
every rank stops after the *same* step, writes one consistent checkpoint, and exits with ``PREEMPTED_EXIT_CODE``
(the sbatch script requeues the job on that code). A second signal while saving is ignored.
"""

from __future__ import annotations

import signal
from types import FrameType

import torch

from oc_common.log import get_logger

log = get_logger(__name__)

PREEMPTED_EXIT_CODE = 124  # "stopped early on request": the Slurm script requeues on it


class PreemptionHandler:
    def __init__(self, signal_names: list[str]) -> None:
        self.signals = []
        for name in signal_names:
            sig = getattr(signal, name, None)
            if not isinstance(sig, signal.Signals):
                raise ValueError(f"unknown signal {name!r}")
            self.signals.append(sig)
        self._received: int | None = None
        self._previous: dict[signal.Signals, object] = {}

    def __enter__(self) -> PreemptionHandler:
        for sig in self.signals:
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, prev in self._previous.items():
            signal.signal(sig, prev)  # type: ignore[arg-type]

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self._received is None:
            self._received = signum
            # No logging here: the logging lock may be held by the interrupted frame.

    @property
    def received_locally(self) -> bool:
        return self._received is not None

    def should_stop(self) -> bool:
        """True on every rank as soon as any rank got a signal (collective: call on all ranks each step)."""
        flag = torch.tensor([1 if self._received is not None else 0], dtype=torch.int32,
                            device="cuda" if torch.cuda.is_available() else "cpu")
        if torch.distributed.is_initialized() and torch.distributed.get_world_size() > 1:
            torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
        stop = bool(flag.item())
        if stop and self._received is not None:
            log.warning("received %s: saving a checkpoint and exiting", signal.Signals(self._received).name)
        return stop
