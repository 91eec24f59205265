"""The peer comparison: peers.md (header and table), peers.csv, peers_runs.csv, peers.png.

Ratios to ours compare runs of the same round (ours, then each peer, repeated), so a
slow phase of a shared machine weighs on both sides of a ratio; each cell is the median
over the rounds with [min-max]. Latency percentiles pool every round's turns.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loadtest.benchmark.peers.measure import OURS, Result
from loadtest.benchmark.report import spread
from loadtest.common.tables import markdown_table, percentile, write_csv


@dataclass(frozen=True)
class Runtime:
    """How the report names one runtime."""

    key: str
    label: str
    version: str
    persists: str


def _ratios(mine: list[Result], ours: list[Result], attr: str) -> list[float]:
    base = {r.repeat: getattr(r, attr) for r in ours}
    out = []
    for run in mine:
        ref = base.get(run.repeat)
        value = getattr(run, attr)
        if ref and not math.isnan(ref) and not math.isnan(value):
            out.append(value / ref)
    return out


def summarize(results: list[Result], runtimes: dict[str, Runtime]) -> list[dict[str, Any]]:
    """One row per runtime, in the order they first ran."""
    ours = [r for r in results if r.runtime == OURS]
    rows = []
    for key in dict.fromkeys(r.runtime for r in results):
        mine = [r for r in results if r.runtime == key]
        latencies = [ms for r in mine for ms in r.latencies_ms]
        tps = [r.turns_per_s for r in mine]
        cpu = [r.cpu_ms_per_turn for r in mine]
        db = [r.db_cpu_ms_per_turn for r in mine if r.db_cpu_ms_per_turn is not None]
        info = runtimes[key]
        rows.append(
            {
                "runtime": key,
                "label": info.label,
                "version": info.version,
                "persists": info.persists,
                "runs": len(mine),
                "turns": sum(r.turns for r in mine),
                "turns_per_s": statistics.median(tps),
                "turns_per_s_min": min(tps),
                "turns_per_s_max": max(tps),
                "tps_x_ours": spread(_ratios(mine, ours, "turns_per_s")) if ours else "n/a",
                "cpu_ms_per_turn": statistics.median(cpu),
                "cpu_ms_per_turn_min": min(cpu),
                "cpu_ms_per_turn_max": max(cpu),
                "db_cpu_ms_per_turn": statistics.median(db) if db else None,
                "cpu_x_ours": spread(_ratios(mine, ours, "cpu_ms_per_turn")) if ours else "n/a",
                "p50_ms": percentile(latencies, 50),
                "p99_ms": percentile(latencies, 99),
                "errors": sum(r.errors for r in mine),
                "lost": sum(r.lost for r in mine),
                "lost_in_band": sum(r.lost_in_band for r in mine),
                "missing_turns": sum(r.missing_turns for r in mine),
                "unchecked_turns": sum(r.unchecked_turns for r in mine),
                "checked_turns": sum(r.checked_turns for r in mine),
                "checked_threads": sum(r.checked_threads for r in mine),
                "extra_turns": sum(r.extra_turns for r in mine),
                "check": mine[0].check,
            }
        )
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    headers = [
        "runtime",
        "version",
        "what it persists",
        "turns/s",
        "x ours",
        "CPU ms/turn",
        "CPU x ours",
        "turn p50 ms",
        "turn p99 ms",
        "lost/unchecked turns",
    ]
    body = []
    for row in rows:
        cpu = spread([row["cpu_ms_per_turn_min"], row["cpu_ms_per_turn"],
                      row["cpu_ms_per_turn_max"]]) if row["runs"] > 1 else (
            f"{row['cpu_ms_per_turn']:.2f}")  # fmt: skip
        if row["db_cpu_ms_per_turn"] is not None:
            cpu += f" (PostgreSQL {row['db_cpu_ms_per_turn']:.2f})"
        tps = spread([row["turns_per_s_min"], row["turns_per_s"], row["turns_per_s_max"]], 1)
        body.append(
            [
                row["label"],
                row["version"],
                row["persists"],
                tps if row["runs"] > 1 else f"{row['turns_per_s']:.1f}",
                row["tps_x_ours"],
                cpu,
                row["cpu_x_ours"],
                row["p50_ms"],
                row["p99_ms"],
                f"{row['lost']}/{row['unchecked_turns']}",
            ]
        )
    return markdown_table(headers, body)


def checks(rows: list[dict[str, Any]]) -> str:
    """One line per runtime: how its acknowledged turns were checked, and the outcome."""
    lines = []
    for row in rows:
        line = (
            f"- {row['label']}: {row['check']}; {row['checked_turns']} acknowledged turns "
            f"checked"
            + (f" on {row['checked_threads']} threads" if row["checked_threads"] else "")
            + f", {row['lost']} lost, {row['unchecked_turns']} unchecked, "
            f"{row['errors']} errors"
        )
        if row["extra_turns"]:
            line += f", {row['extra_turns']} stored but never acknowledged"
        lines.append(line + ".")
    return "\n".join(lines)


def save(out: Path, results: list[Result], rows: list[dict[str, Any]]) -> None:
    write_csv(out / "peers.csv", rows)
    write_csv(out / "peers_runs.csv", [r.row() for r in results])


def plot(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    """Bars: turns/s and server CPU ms/turn per runtime, medians with min-max whiskers."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [row["label"].split(" (")[0] for row in rows]  # short: the bars are narrow
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.6))
    for axis, key, title, unit in (
        (left, "turns_per_s", "Throughput", "turns/s"),
        (right, "cpu_ms_per_turn", "Server CPU per turn", "CPU ms/turn"),
    ):
        mids = [row[key] for row in rows]
        errors = [
            [row[key] - row[f"{key}_min"] for row in rows],
            [row[f"{key}_max"] - row[key] for row in rows],
        ]
        bars = axis.bar(labels, mids, yerr=errors, capsize=6, color=["C0", "C1", "C2", "C3"][
            : len(rows)])  # fmt: skip
        axis.bar_label(bars, fmt="%.1f", padding=3)
        axis.set(title=title, ylabel=unit)
        axis.grid(axis="y", alpha=0.3)
        axis.set_ylim(0, 1.15 * max(row[f"{key}_max"] for row in rows))
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
