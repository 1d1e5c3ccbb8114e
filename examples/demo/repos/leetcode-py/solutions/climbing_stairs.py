"""Dynamic programming warm-up: the number of distinct ways to climb n stairs taking 1 or 2 steps at a time."""


def solution(n: int) -> int:
    if n < 0:
        raise ValueError("n must be non-negative")
    previous, current = 1, 1
    for _ in range(n):
        previous, current = current, previous + current
    return previous


def table(limit: int) -> list:
    """Ways for 0..limit stairs, handy when checking the recurrence by eye."""
    return [solution(k) for k in range(limit + 1)]
