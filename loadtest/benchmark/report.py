"""Turning benchmark runs into the comparison table, CSVs and the plot.

Throughput and CPU ratios compare run r of a configuration with the memory ceiling's
runs just before and just after it (their geometric mean), so a slow phase of a noisy
machine that starts or ends between runs hits both sides of each ratio; the spread is
min/median/max over repeats.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from loadtest.benchmark.runner import CONFIGS, RunResult
from loadtest.common import promtext
from loadtest.common.tables import markdown_table, percentile, write_csv


def spread(values: Sequence[float], digits: int = 2) -> str:
    """'median [min-max]', or the single value."""
    clean = [v for v in values if v is not None and not math.isnan(v)]
    if not clean:
        return "n/a"
    mid = statistics.median(clean)
    if len(clean) == 1:
        return f"{mid:.{digits}f}"
    return f"{mid:.{digits}f} [{min(clean):.{digits}f}-{max(clean):.{digits}f}]"


def _ratios(
    runs: list[RunResult], ceiling: list[RunResult], attr: str, ceiling_first: bool = True
) -> list[float]:
    """Each run against the ceiling runs around it: repeats r and r+1 when the ceiling
    runs first in each round (the bench then adds a closing one), else r-1 and r.
    The ceiling's own runs are 1 by definition."""
    if runs is ceiling:
        return [1.0 for _ in runs]
    base = {
        r.repeat: getattr(r, attr)
        for r in ceiling
        if getattr(r, attr) and not math.isnan(getattr(r, attr))
    }
    ratios = []
    for run in runs:
        around = (run.repeat, run.repeat + 1) if ceiling_first else (run.repeat - 1, run.repeat)
        values = [base[k] for k in around if k in base]
        if values:
            ratios.append(getattr(run, attr) / statistics.geometric_mean(values))
    return ratios


def _per_turn(total: float | None, turns: int) -> float | None:
    return None if total is None or not turns else total / turns


def _size(value: float | None) -> str:
    if value is None:
        return "n/a"
    for unit, scale in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if value >= scale:
            return f"{value / scale:.1f} {unit}"
    return f"{value:.0f} B"


def summarize(runs: list[RunResult]) -> list[dict[str, Any]]:
    """One row per configuration, in the order the configurations first ran."""
    order = list(dict.fromkeys(r.config for r in runs))
    ceiling = [r for r in runs if r.config == "memory"]
    first = order[0] == "memory"
    rows = []
    for key in order:
        mine = ceiling if key == "memory" else [r for r in runs if r.config == key]
        turns = sum(r.turns for r in mine)
        latencies = [ms for r in mine for ms in r.latencies_ms]
        buckets: dict[float, float] = {}
        for r in mine:
            for bound, count in r.put_buckets:
                buckets[bound] = buckets.get(bound, 0.0) + count
        put = sorted(buckets.items())
        has_put = bool(put) and put[-1][1] > 0
        tx = [r.tx for r in mine if r.tx is not None]
        stored = [r.stored_bytes for r in mine if r.stored_bytes is not None]
        wal = [r.wal_bytes for r in mine if r.wal_bytes is not None]
        rows.append(
            {
                "config": key,
                "label": CONFIGS[key].label if key in CONFIGS else key,
                "runs": len(mine),
                "turns": turns,
                "turns_per_s": statistics.median(r.turns_per_s for r in mine),
                "turns_per_s_min": min(r.turns_per_s for r in mine),
                "turns_per_s_max": max(r.turns_per_s for r in mine),
                "tps_ratio": spread(_ratios(mine, ceiling, "turns_per_s", first))
                if ceiling
                else "n/a",
                "p50_ms": percentile(latencies, 50),
                "p99_ms": percentile(latencies, 99),
                "put_p50_ms": promtext.quantile(0.5, put) * 1000 if has_put else None,
                "put_p99_ms": promtext.quantile(0.99, put) * 1000 if has_put else None,
                "tx_per_turn": _per_turn(sum(tx), turns) if tx else None,
                "stored_bytes_per_turn": _per_turn(sum(stored), turns) if stored else None,
                "wal_end_bytes": statistics.median(wal) if wal else None,
                "errors": sum(r.errors for r in mine),
                "lost_turns": sum(r.lost for r in mine),
                "cpu_ms_per_turn": statistics.median(r.cpu_ms_per_turn for r in mine),
                "cpu_ratio": spread(_ratios(mine, ceiling, "cpu_ms_per_turn", first))
                if ceiling
                else "n/a",
                "worker_skew": statistics.median(r.worker_skew for r in mine),
            }
        )
    return rows


def comparison_table(rows: list[dict[str, Any]]) -> str:
    headers = [
        "configuration",
        "turns/s",
        "x ceiling",
        "turn p50 ms",
        "turn p99 ms",
        "put p50 ms",
        "put p99 ms",
        "write tx/turn",
        "stored/turn",
        "WAL at end",
        "CPU ms/turn",
        "CPU x ceiling",
        "errors",
    ]
    body = []
    for row in rows:
        tps = spread([row["turns_per_s_min"], row["turns_per_s"], row["turns_per_s_max"]], 1)
        body.append(
            [
                row["label"],
                tps if row["runs"] > 1 else f"{row['turns_per_s']:.1f}",
                row["tps_ratio"],
                row["p50_ms"],
                row["p99_ms"],
                _num(row["put_p50_ms"], 3),
                _num(row["put_p99_ms"], 3),
                _num(row["tx_per_turn"], 2),
                _size(row["stored_bytes_per_turn"]),
                _size(row["wal_end_bytes"]),
                row["cpu_ms_per_turn"],
                row["cpu_ratio"],
                f"{row['errors']}" + (f" ({row['lost_turns']} lost)" if row["lost_turns"] else ""),
            ]
        )
    return markdown_table(headers, body)


def _num(value: float | None, digits: int) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{value:.{digits}f}"


def scaling_table(runs: list[RunResult], low: int, high: int) -> str:
    body = []
    for key in dict.fromkeys(r.config for r in runs):
        one = {r.repeat: r for r in runs if r.config == key and r.workers == low}
        many = {r.repeat: r for r in runs if r.config == key and r.workers == high}
        pairs = [(one[k], many[k]) for k in one if k in many]
        body.append(
            [
                CONFIGS[key].label,
                spread([a.turns_per_s for a, _ in pairs], 1),
                spread([b.turns_per_s for _, b in pairs], 1),
                spread([b.turns_per_s / a.turns_per_s for a, b in pairs]),
                spread([a.cpu_ms_per_turn for a, _ in pairs]),
                spread([b.cpu_ms_per_turn for _, b in pairs]),
            ]
        )
    headers = [
        "configuration",
        f"turns/s, {low} worker",
        f"turns/s, {high} workers",
        "speedup",
        f"CPU ms/turn, {low}",
        f"CPU ms/turn, {high}",
    ]
    return markdown_table(headers, body)


# (configuration, what it is compared with): what a run costs sent another way.
COST_PAIRS = (("exit-background", "exit"), ("exit-resumable", "exit-stream"))


def cost_table(runs: list[RunResult]) -> str:
    """Server CPU per turn and turns/s of each COST_PAIRS configuration against its
    reference, run by run within a repeat (they alternate), median [min-max]."""
    body = []
    for key, reference in COST_PAIRS:
        mine = {r.repeat: r for r in runs if r.config == key}
        theirs = {r.repeat: r for r in runs if r.config == reference}
        pairs = [(mine[k], theirs[k]) for k in mine if k in theirs]
        if not pairs:
            continue
        body.append(
            [
                CONFIGS[key].label,
                CONFIGS[reference].label,
                spread([a.cpu_ms_per_turn / b.cpu_ms_per_turn for a, b in pairs]),
                spread([a.turns_per_s / b.turns_per_s for a, b in pairs]),
            ]
        )
    if not body:
        return ""
    headers = ["configuration", "against", "CPU per turn x", "turns/s x"]
    return markdown_table(headers, body)


def profile_table(runs: list[RunResult]) -> str:
    """CPU ms per turn by part, median over each configuration's profiled runs,
    with each configuration's difference from the ceiling (the first configuration)."""
    order = [key for key in dict.fromkeys(r.config for r in runs) if _profiled(runs, key)]
    if not order:
        return ""
    medians = {key: _median_parts([r for r in runs if r.config == key]) for key in order}
    parts = sorted(
        {part for parts in medians.values() for part in parts},
        key=lambda part: -max(parts.get(part, 0.0) for parts in medians.values()),
    )
    base = medians[order[0]]
    headers = ["part", *(CONFIGS[key].label for key in order)]
    headers += [f"{CONFIGS[key].label} - {CONFIGS[order[0]].label}" for key in order[1:]]
    body = []
    for part in [*parts, "total"]:
        values = {
            key: sum(m.values()) if part == "total" else m.get(part, 0.0)
            for key, m in medians.items()
        }
        base_value = sum(base.values()) if part == "total" else base.get(part, 0.0)
        row = [part, *(f"{values[key]:.2f}" for key in order)]
        row += [f"{values[key] - base_value:+.2f}" for key in order[1:]]
        body.append(row)
    return markdown_table(headers, body)


def _profiled(runs: list[RunResult], key: str) -> bool:
    return any(r.profile_ms for r in runs if r.config == key)


def _median_parts(runs: list[RunResult]) -> dict[str, float]:
    profiled = [r.profile_ms for r in runs if r.profile_ms]
    parts = {part for profile in profiled for part in profile}
    return {part: statistics.median(p.get(part, 0.0) for p in profiled) for part in parts}


def save_runs(path: Path, runs: list[RunResult]) -> None:
    write_csv(path, [r.row() for r in runs])


def save_summary(path: Path, rows: list[dict[str, Any]]) -> None:
    write_csv(path, rows)


def plot_sweep(path: Path, runs: list[RunResult]) -> None:
    """Turns/s and turn p99 against users, one line per configuration."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for key in dict.fromkeys(r.config for r in runs):
        points: dict[int, list[RunResult]] = {}
        for r in runs:
            if r.config == key:
                points.setdefault(r.users, []).append(r)
        users = sorted(points)
        label = CONFIGS[key].label
        left.plot(users, [statistics.median(r.turns_per_s for r in points[u]) for u in users],
                  marker="o", label=label)  # fmt: skip
        right.plot(users, [statistics.median(r.p99_ms for r in points[u]) for u in users],
                   marker="o", label=label)  # fmt: skip
    left.set(xlabel="concurrent users", ylabel="turns/s", title="Throughput")
    right.set(xlabel="concurrent users", ylabel="turn p99 (ms)", title="Tail latency")
    for axis in (left, right):
        axis.grid(alpha=0.3)
        axis.legend()
        axis.set_ylim(bottom=0)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
