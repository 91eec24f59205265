"""Reading the service's /metrics text: samples, deltas, and histogram quantiles."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable

Labels = frozenset[tuple[str, str]]
Samples = dict[tuple[str, Labels], float]

_LINE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse(text: str) -> Samples:
    samples: Samples = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = _LINE.match(line)
        if not match:
            continue
        name, raw_labels, value = match.groups()
        labels = frozenset(_LABEL.findall(raw_labels or ""))
        samples[(name, labels)] = float(value)
    return samples


def total(samples: Samples, name: str, **wanted: str) -> float:
    """Sum of every series of `name` whose labels include `wanted`."""
    want = set(wanted.items())
    return sum(v for (n, labels), v in samples.items() if n == name and want <= labels)


def delta(before: Samples, after: Samples, name: str, **wanted: str) -> float:
    return total(after, name, **wanted) - total(before, name, **wanted)


def bucket_deltas(
    before: Samples, after: Samples, histogram: str, **wanted: str
) -> list[tuple[float, float]]:
    """Cumulative (upper bound, count) pairs of a histogram's growth, summed over series."""
    name = f"{histogram}_bucket"
    bounds: dict[float, float] = {}
    want = set(wanted.items())
    for (n, labels), value in after.items():
        if n != name or not want <= labels:
            continue
        le = dict(labels)["le"]
        bound = math.inf if le == "+Inf" else float(le)
        bounds[bound] = bounds.get(bound, 0.0) + value - before.get((n, labels), 0.0)
    return sorted(bounds.items())


def quantile(q: float, buckets: Iterable[tuple[float, float]]) -> float:
    """Linear interpolation inside the bucket, as Prometheus' histogram_quantile does.

    NaN without observations; the last finite bound when the rank falls in +Inf.
    """
    ordered = sorted(buckets)
    if not ordered or ordered[-1][1] <= 0:
        return math.nan
    rank = q * ordered[-1][1]
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in ordered:
        if count >= rank:
            if math.isinf(bound):
                return lower_bound
            if count == lower_count:
                return bound
            return lower_bound + (bound - lower_bound) * (rank - lower_count) / (
                count - lower_count
            )
        lower_bound, lower_count = bound, count
    return lower_bound
