"""One interval's samples of a timing, and what is reported of them: percentiles, and EMF distributions
(`{"Values": [...], "Counts": [...]}`, at most 100 each), from which CloudWatch computes any percentile."""

from __future__ import annotations

import itertools
import math
import random
from collections import Counter
from collections.abc import Mapping

SAMPLE_CAP = 10_000  # per series per interval: a uniform sample bounds memory and sorting at any rate
EMF_VALUES_MAX = 100  # values (and counts) per distribution, EMF's limit

Distribution = dict[str, list[float]]


def percentile(samples: list[float], fraction: float) -> float:
    """Nearest-rank percentile: the smallest sample with at least `fraction` of the samples at or below it."""
    if not samples:
        return 0.0
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


class Samples(list[float]):
    """One interval's values of one series: a uniform sample of at most `cap` (reservoir sampling, so a busy
    interval's percentiles cover all of it, not its first seconds) and the exact maximum of all of them."""

    def __init__(self, cap: int = SAMPLE_CAP) -> None:
        super().__init__()
        self.cap = cap
        self.seen = 0
        self.peak = -math.inf

    def add(self, value: float) -> None:
        if not math.isfinite(value):
            return
        self.seen += 1
        self.peak = max(self.peak, value)
        if len(self) < self.cap:
            self.append(value)
        elif (slot := random.randrange(self.seen)) < self.cap:
            self[slot] = value


def distribution(samples: Samples) -> Distribution:
    """EMF's Values and Counts for a series: each distinct value (to 3 significant digits) with its count, or,
    past EMF_VALUES_MAX of them, EMF_VALUES_MAX groups of equal rank, each as its middle value (percentiles stay
    within a rank of the truth). Counts are scaled from the sample to every value seen; the maximum is kept."""
    ordered = sorted(float(f"{value:.3g}") for value in samples)
    scale = samples.seen / len(ordered)
    values, counts = _grouped(ordered)
    values[-1] = max(values[-1], round(samples.peak, 3))
    return {"Values": values, "Counts": [round(count * scale, 3) for count in counts]}


def _grouped(ordered: list[float]) -> tuple[list[float], list[float]]:
    distinct = Counter(ordered)
    if len(distinct) <= EMF_VALUES_MAX:
        return list(distinct), [float(count) for count in distinct.values()]
    size = len(ordered) / EMF_VALUES_MAX
    bounds = [round(i * size) for i in range(EMF_VALUES_MAX + 1)]
    groups = [ordered[start:end] for start, end in itertools.pairwise(bounds) if end > start]
    return [group[len(group) // 2] for group in groups], [float(len(group)) for group in groups]


def summary(figures: Mapping[str, float | Distribution]) -> dict[str, float]:
    """The figures for a log line: each distribution as its p50, p99 and maximum."""
    flat: dict[str, float] = {}
    for name, figure in figures.items():
        if isinstance(figure, dict):
            flat[f"{name}P50"] = weighted_percentile(figure, 0.50)
            flat[f"{name}P99"] = weighted_percentile(figure, 0.99)
            flat[f"{name}Max"] = max(figure["Values"])
        else:
            flat[name] = figure
    return flat


def weighted_percentile(figure: Distribution, fraction: float) -> float:
    """Nearest-rank percentile of a distribution's values, each weighted by its count."""
    pairs = sorted(zip(figure["Values"], figure["Counts"], strict=True))
    wanted, seen = fraction * sum(count for _, count in pairs), 0.0
    for value, count in pairs:
        seen += count
        if seen >= wanted:
            return value
    return pairs[-1][0]
