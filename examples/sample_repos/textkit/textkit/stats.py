"""Descriptive statistics over numeric sequences, written for clarity rather than speed."""

import math


def mean(values):
    values = list(values)
    if not values:
        raise ValueError("mean of an empty sequence")
    return sum(values) / len(values)


def median(values):
    ordered = sorted(values)
    n = len(ordered)
    if n == 0:
        raise ValueError("median of an empty sequence")
    middle = n // 2
    if n % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) / 2


def variance(values, sample=True):
    values = list(values)
    m = mean(values)
    denom = len(values) - 1 if sample else len(values)
    if denom <= 0:
        raise ValueError("variance needs more values")
    return sum((v - m) ** 2 for v in values) / denom


def stdev(values, sample=True):
    return math.sqrt(variance(values, sample))


def zscores(values):
    values = list(values)
    m, s = mean(values), stdev(values)
    return [(v - m) / s for v in values]
