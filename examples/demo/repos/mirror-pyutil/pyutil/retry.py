"""Retrying flaky calls with exponential backoff and jitter."""

import random
import time


def retry(fn, attempts=5, base_delay=0.1, max_delay=5.0, exceptions=(Exception,), sleep=time.sleep, rng=random):
    """Call ``fn()`` until it succeeds or ``attempts`` calls failed; re-raise the last error."""
    if attempts < 1:
        raise ValueError("attempts must be at least 1")
    for attempt in range(attempts):
        try:
            return fn()
        except exceptions:
            if attempt == attempts - 1:
                raise
            delay = min(max_delay, base_delay * 2 ** attempt)
            sleep(delay * (0.5 + rng.random() / 2))
    raise AssertionError("unreachable")


class CircuitBreaker:
    """Stop calling a failing dependency for ``cooldown`` seconds after ``threshold`` failures in a row."""

    def __init__(self, threshold=3, cooldown=30.0, clock=time.monotonic):
        self.threshold, self.cooldown, self.clock = threshold, cooldown, clock
        self.failures = 0
        self.opened_at = None

    def call(self, fn):
        if self.opened_at is not None and self.clock() - self.opened_at < self.cooldown:
            raise RuntimeError("circuit open")
        try:
            result = fn()
        except Exception:
            self.failures += 1
            if self.failures >= self.threshold:
                self.opened_at = self.clock()
            raise
        self.failures, self.opened_at = 0, None
        return result
