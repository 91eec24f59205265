"""Benchmark: what each checkpointer setting costs per conversation turn. `make bench`.

    python loadtest/bench.py                  # 100 users x 5 turns x 2 workers, 3 repeats
    python loadtest/bench.py --quick          # 10 users x 2 turns, 1 repeat: a sanity run
    python loadtest/bench.py --scaling        # turns/s at 1 worker vs --scaling-workers
    python loadtest/bench.py --no-pin         # server and client left to the scheduler
    python loadtest/bench.py --profile        # and where each turn's server CPU goes (py-spy)

The same closed-loop HTTP workload (loadtest/benchmark/workload.py) runs against each
configuration on a fresh server: the memory ceiling, the stock AsyncSqliteSaver,
and ours with durability exit, async and sync. Configurations alternate (A B C …
A B C …) over the repeats, so ratios stay fair on a noisy machine. On 2 or more CPUs
the server (and PostgreSQL) runs on its own CPUs and the load client on the others. Results go to
reports/bench/ (markdown, CSV, PNG). Every option also reads a BENCH_* variable.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `python loadtest/bench.py` too

from loadtest.benchmark import pinning, profiling, report
from loadtest.benchmark.machine import cpus
from loadtest.benchmark.runner import CONFIGS, DEFAULT_CONFIGS, Config, RunResult, measure

ROOT = Path(__file__).resolve().parents[1]


def _env(name: str, default: str) -> str:
    return os.environ.get(name, "").strip() or default


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, help="concurrent users (BENCH_USERS, 100)")
    parser.add_argument("--turns", type=int, help="turns per user (BENCH_TURNS, 5)")
    parser.add_argument("--workers", type=int, help="Gunicorn workers (BENCH_WORKERS, 2)")
    parser.add_argument("--repeats", type=int, help="rounds over all configs (BENCH_REPEATS, 3)")
    parser.add_argument(
        "--configs",
        default=_env("BENCH_CONFIGS", ",".join(DEFAULT_CONFIGS)),
        help=f"comma list from {list(CONFIGS)}",
    )
    parser.add_argument(
        "--latency-ms", type=int, default=int(_env("BENCH_LATENCY_MS", "0")),
        help="offline model latency per call (BENCH_LATENCY_MS, 0)",
    )  # fmt: skip
    parser.add_argument("--sweep", help="users for the plot (BENCH_SWEEP, 10,25,50,100; '' skips)")
    parser.add_argument("--sweep-configs", default=_env("BENCH_SWEEP_CONFIGS", "memory,exit"))
    parser.add_argument(
        "--client-procs", type=int, default=int(_env("BENCH_CLIENT_PROCS", "0")),
        help="client processes (BENCH_CLIENT_PROCS; 0 = one per 8 CPUs)",
    )  # fmt: skip
    parser.add_argument(
        "--out", type=Path, default=Path(_env("BENCH_OUT", str(ROOT / "reports" / "bench")))
    )
    parser.add_argument("--quick", action="store_true", help="10 users x 2 turns x 1 repeat")
    parser.add_argument(
        "--no-pin", action="store_true", default=_env("BENCH_PIN", "1") == "0",
        help="leave server and client unpinned (BENCH_PIN=0); pinned by default on 2+ CPUs",
    )  # fmt: skip
    parser.add_argument(
        "--profile", action="store_true", default=_env("BENCH_PROFILE", "0") == "1",
        help="sample the workers with py-spy: CPU per turn by part (BENCH_PROFILE=1)",
    )  # fmt: skip
    parser.add_argument("--scaling", action="store_true", help="1 worker vs --scaling-workers")
    parser.add_argument(
        "--scaling-workers", type=int, default=int(_env("BENCH_SCALING_WORKERS", "0")),
        help="workers for the scaling mode (0 = one per CPU)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    quick = args.quick
    args.users = args.users or int(_env("BENCH_USERS", "10" if quick else "100"))
    args.turns = args.turns or int(_env("BENCH_TURNS", "2" if quick else "5"))
    args.workers = args.workers or int(_env("BENCH_WORKERS", "2"))
    args.repeats = args.repeats or int(_env("BENCH_REPEATS", "1" if quick else "3"))
    sweep = args.sweep if args.sweep is not None else os.environ.get("BENCH_SWEEP")
    if sweep is None:
        sweep = "5,10" if quick else "10,25,50,100"
    args.sweep_users = [int(x) for x in sweep.split(",") if x.strip()]
    args.config_list = [_config(x) for x in args.configs.split(",") if x.strip()]
    args.sweep_list = [_config(x) for x in args.sweep_configs.split(",") if x.strip()]
    cpus = os.cpu_count() or 1
    args.client_procs = args.client_procs or max(1, cpus // 8)
    args.scaling_workers = args.scaling_workers or cpus
    args.pinning = pinning.plan(not args.no_pin)
    return args


def _config(key: str) -> Config:
    key = key.strip()
    if key not in CONFIGS:
        raise SystemExit(f"unknown configuration {key!r}; choose from {list(CONFIGS)}")
    return CONFIGS[key]


def machine() -> str:
    """The machine, and the SQLite each saver runs on."""
    import sqlite3

    from service.storage.sqlite.driver import DRIVER_NAME, SQLITE_VERSION

    return (
        f"{cpus()}; Python {platform.python_version()}; SQLite {SQLITE_VERSION} ({DRIVER_NAME}) "
        f"for ours, {sqlite3.sqlite_version} (sqlite3 via aiosqlite) for the stock saver"
    )


def _progress(index: int, total: int, config: Config, result: RunResult) -> None:
    print(
        f"[{index}/{total}] {config.label:<26} users={result.users:<4} workers={result.workers} "
        f"{result.turns_per_s:7.1f} turns/s  p99 {result.p99_ms:7.1f} ms  "
        f"CPU {result.cpu_ms_per_turn:6.2f} ms/turn  errors {result.errors}"
        + (f" lost {result.lost}" if result.lost else ""),
        flush=True,
    )
    for sample in result.error_samples[:3]:
        print(f"    error: {sample}", flush=True)


def _run_all(plan: list[tuple[Config, dict]], args: argparse.Namespace) -> list[RunResult]:
    results = []
    for index, (config, overrides) in enumerate(plan, 1):
        options = {
            "users": args.users,
            "turns": args.turns,
            "workers": args.workers,
            "latency_ms": args.latency_ms,
            "client_procs": args.client_procs,
            "pinning": args.pinning,
            "profile_dir": args.out / "profiles" if args.profile else None,
            **overrides,
        }
        result = measure(config, **options)
        _progress(index, len(plan), config, result)
        results.append(result)
    return results


def _header(args: argparse.Namespace, what: str) -> str:
    when = dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    return (
        f"{what}, {when}. Machine: {machine()}.\n"
        f"Workload: {args.users} users x {args.turns} turns, closed loop, "
        f"offline model at {args.latency_ms} ms, {args.repeats} repeat(s), "
        f"{args.client_procs} client process(es); {pinning.describe(args.pinning)}."
    )


def compare(args: argparse.Namespace) -> None:
    out: Path = args.out
    header = _header(args, f"Checkpointer comparison, {args.workers} workers")
    print(header, flush=True)
    plan = [(c, {"repeat": r}) for r in range(args.repeats) for c in args.config_list]
    if len(args.config_list) > 1 and args.config_list[0].key == "memory":
        # A closing ceiling run: every other run then has one before and one after it.
        plan.append((args.config_list[0], {"repeat": args.repeats}))
    runs = _run_all(plan, args)
    rows = report.summarize(runs)
    table = report.comparison_table(rows)
    report.save_runs(out / "bench_runs.csv", runs)
    report.save_summary(out / "bench.csv", rows)
    costs = report.cost_table(runs)
    if costs:
        table += f"\nWhat a turn costs sent another way, same repeat:\n\n{costs}\n"
    profile = report.profile_table(runs)
    if profile:
        table += (
            "\nServer CPU per turn (ms) split by part, by py-spy's samples at "
            f"{profiling.RATE_HZ} Hz, medians over the repeats:\n\n{profile}"
        )
    sweep_note = ""
    if args.sweep_users:
        print(f"sweep over users {args.sweep_users}:", flush=True)
        sweep_plan = [
            (c, {"users": u, "profile_dir": None})
            for u in args.sweep_users
            for c in args.sweep_list
        ]
        sweep = _run_all(sweep_plan, args)
        report.save_runs(out / "bench_sweep.csv", sweep)
        report.plot_sweep(out / "bench.png", sweep)
        sweep_note = "\n\n![turns/s and p99 against users](bench.png)\n"
    markdown = f"{header}\n\n{table}\n{sweep_note}"
    (out / "bench.md").write_text(markdown + "\n")
    print()
    print(table)
    print(
        f"\nreports: {out}/bench.md, bench.csv, bench_runs.csv"
        + (", bench.png" if sweep_note else "")
    )


def scaling(args: argparse.Namespace) -> None:
    high = args.scaling_workers
    if high <= 1:
        raise SystemExit("--scaling needs --scaling-workers of 2 or more")
    header = _header(args, f"Scaling, 1 vs {high} workers")
    print(header, flush=True)
    configs = [c for c in args.config_list if c.key in ("memory", "exit")] or [
        CONFIGS["memory"],
        CONFIGS["exit"],
    ]
    plan = [
        (c, {"repeat": r, "workers": w})
        for r in range(args.repeats)
        for c in configs
        for w in (1, high)
    ]
    runs = _run_all(plan, args)
    table = report.scaling_table(runs, 1, high)
    report.save_runs(args.out / "scaling_runs.csv", runs)
    (args.out / "scaling.md").write_text(f"{header}\n\n{table}\n")
    print()
    print(table)
    print(f"\nreports: {args.out}/scaling.md, scaling_runs.csv")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    pinning.pin_client(args.pinning)
    (scaling if args.scaling else compare)(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
