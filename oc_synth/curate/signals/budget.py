"""A time budget per signal and document, so one pathological file (a regex that backtracks for minutes, a huge
parse) costs at most a few seconds and drops only that file.

The check is cheap: one ``setitimer`` call before and after each signal. Where a real-time alarm can be used (the
main thread of a POSIX process: the in-process executor, Ray's actor workers) it interrupts the signal at the budget;
elsewhere the signal runs to its end and is flagged when it took longer than the budget. No thread per document.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class SignalTimeout(BaseException):
    """A signal ran past its budget. A BaseException, so that no ``except Exception`` in signal code swallows it."""


class TimeBudget:
    """``with TimeBudget(10.0) as budget: budget.call(fn, doc)`` runs ``fn(doc)`` or raises ``SignalTimeout``."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self._armed = False
        self._previous_handler = None
        self._uses_alarm = False

    def __enter__(self) -> TimeBudget:
        self._uses_alarm = hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()
        if self._uses_alarm:
            self._previous_handler = signal.signal(signal.SIGALRM, self._on_alarm)
        return self

    def __exit__(self, *exc) -> None:  # noqa: ANN002
        if self._uses_alarm:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, self._previous_handler)
            self._uses_alarm = False

    def _on_alarm(self, _signum, _frame) -> None:  # noqa: ANN001
        if self._armed:  # an alarm landing just after the signal returned is ignored
            raise SignalTimeout

    def call(self, fn: Callable[..., T], *args) -> T:  # noqa: ANN002
        start = time.perf_counter()
        self._armed = True
        if self._uses_alarm:
            signal.setitimer(signal.ITIMER_REAL, self.seconds)
        try:
            result = fn(*args)
        finally:
            self._armed = False
            if self._uses_alarm:
                signal.setitimer(signal.ITIMER_REAL, 0)
        if time.perf_counter() - start > self.seconds:
            raise SignalTimeout
        return result
