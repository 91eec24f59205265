"""Benchmark: the same graph and load under peer runtimes, next to ours. `make bench-peers`.

    python loadtest/peers.py                          # 100 users x 5 turns, 2 rounds
    python loadtest/peers.py --users 10 --repeats 1   # a short sanity run
    python loadtest/peers.py --peers aegra            # one peer only (ours always runs)

The booking graph (offline model, SQLite appointments) runs under LangGraph Server's
own runtime (`langgraph dev`, in memory) and under Aegra (`aegra serve`, PostgreSQL),
each from a throwaway virtualenv at pinned versions (loadtest/benchmark/peers/venvs.py,
kept under reports/peers/venvs/ and reused), and under this project's service as
`make bench` runs it. The closed-loop client is the project's own
(loadtest/benchmark/workload.py). Rounds alternate ours, LangGraph, Aegra; on 2 or more
CPUs the server (and PostgreSQL) is pinned apart from the client. Results go to
reports/peers/ (peers.md, peers.csv, peers_runs.csv, peers.png).
"""

from __future__ import annotations

import argparse
import atexit
import datetime as dt
import platform
import sys
from importlib import metadata
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `python loadtest/peers.py`

from loadtest.benchmark import pinning
from loadtest.benchmark.machine import cpus
from loadtest.benchmark.peers import report, venvs
from loadtest.benchmark.peers.measure import OURS, OURS_CONFIG, Result, measure_ours, measure_peer
from loadtest.benchmark.peers.report import Runtime
from loadtest.benchmark.peers.servers import PEERS, Aegra, LangGraphDev, PeerServer

ROOT = Path(__file__).resolve().parents[1]
WORKERS = 2  # ours, as `make bench` runs it


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=100, help="concurrent users (100)")
    parser.add_argument("--turns", type=int, default=5, help="turns per user (5)")
    parser.add_argument("--repeats", type=int, default=2, help="rounds over all runtimes (2)")
    parser.add_argument("--peers", default="langgraph,aegra", help=f"comma list from {list(PEERS)}")
    parser.add_argument("--latency-ms", type=int, default=0, help="offline model latency (0)")
    parser.add_argument(
        "--check-threads", type=int, default=0,
        help="threads whose state is read back after the load (0: all)",
    )  # fmt: skip
    parser.add_argument(
        "--aegra-durability", default="", choices=["", "sync", "async", "exit"],
        help="AEGRA_CHECKPOINT_DURABILITY ('' leaves Aegra's default, async)",
    )  # fmt: skip
    parser.add_argument("--no-pin", action="store_true", help="leave server and client unpinned")
    parser.add_argument("--out", type=Path, default=ROOT / "reports" / "peers")
    args = parser.parse_args(argv)
    args.peer_list = [p.strip() for p in args.peers.split(",") if p.strip()]
    unknown = [p for p in args.peer_list if p not in PEERS]
    if unknown:
        raise SystemExit(f"unknown peers {unknown}; choose from {list(PEERS)}")
    args.pinning = pinning.plan(not args.no_pin)
    return args


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "?"


def machine() -> str:
    return cpus()


def runtimes(envs: dict[str, venvs.Venv], args: argparse.Namespace) -> dict[str, Runtime]:
    """Label, version and what each runtime persists, for the table."""
    out = {
        OURS: Runtime(
            OURS,
            f"ours ({WORKERS} Gunicorn workers, {OURS_CONFIG.label.split(', ')[1]})",
            f"booking-agent-service {_version('booking-agent-service')}",
            "SQLite WAL file: checkpoints at run end, threads/runs/store tables",
        )
    }
    if "langgraph" in envs:
        env = envs["langgraph"]
        out["langgraph"] = Runtime(
            "langgraph",
            LangGraphDev.label,
            f"langgraph-api {env.version('langgraph-api')} (cli {env.version('langgraph-cli')}, "
            f"runtime-inmem {env.version('langgraph-runtime-inmem')})",
            LangGraphDev.persists,
        )
    if "aegra" in envs:
        env = envs["aegra"]
        out["aegra"] = Runtime(
            "aegra",
            Aegra.label,
            f"aegra-api {env.version('aegra-api')}",
            Aegra.describe_persistence(args.aegra_durability),
        )
    return out


def header(args: argparse.Namespace, envs: dict[str, venvs.Venv], postgres: str) -> str:
    when = dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    stack = ("langgraph", "langchain-core", "fastapi", "gunicorn")
    ours_stack = ", ".join(f"{name} {_version(name)}" for name in stack)
    lines = [
        f"Peer runtimes, same graph and load, {when}. Machine: {machine()}; "
        f"{pinning.describe(args.pinning)}"
        + (" (PostgreSQL with the server)" if "aegra" in envs else "")
        + ".",
        "",
        f"Workload: {args.users} users x {args.turns} turns, closed loop, no think time, the "
        "five-step booking dialogue of loadtest/benchmark/workload.py (one client process), "
        f"offline model at {args.latency_ms} ms, after a warm-up of 4 users x 2 turns on other "
        f"threads; {args.repeats} round(s), each: ours, "
        + ", ".join(PEERS[p].label.split(" (")[0] for p in args.peer_list)
        + ". Every run starts a fresh server on empty data. Server CPU: user+system time of "
        "all the runtime's processes (and PostgreSQL's, for Aegra) from the first measured "
        "turn to the last.",
        "",
        "Versions:",
        f"- ours: Python {platform.python_version()}, {ours_stack}; CHECKPOINTER=sqlite, "
        f"durability=exit, {WORKERS} workers on the server's CPU(s).",
    ]
    if "langgraph" in envs:
        env = envs["langgraph"]
        lines.append(
            f"- LangGraph Server: Python {env.python_version}, "
            + ", ".join(f"{n} {env.version(n)}" for n in env.spec.report)
            + f"; `langgraph dev --no-reload --n-jobs-per-worker {max(10, args.users)}`, one "
            "process, its dev defaults otherwise (blocking-call detection on); runs at the "
            "API's default durability (async), in memory. Its in-memory queue polls for new "
            "runs, sleeping 0.5 s after a poll that finds none (langgraph_runtime_inmem "
            "`Runs.next`): with one user its own log shows each run queued 0.7-1.0 s and "
            "executed in about 8 ms, so at low concurrency its turns/s and latency measure "
            "that polling; its CPU per turn is the cost of the runtime."
        )
    if "aegra" in envs:
        env = envs["aegra"]
        lines.append(
            f"- Aegra: Python {env.python_version} (aegra-api needs 3.12+), "
            + ", ".join(f"{n} {env.version(n)}" for n in env.spec.report)
            + "; `aegra serve` (one uvicorn process, local asyncio executor, no Redis, auth "
            f"noop), durability {args.aegra_durability or 'async (its default)'}; {postgres}."
        )
    lines += [
        "",
        "Peer-specific adaptations (the request bodies are the workload's, unchanged): "
        "neither peer's /info names a pid, so the workload treats each as one worker; "
        "LangGraph's in-memory runtime accepts only UUID thread ids, so each workload "
        "thread name maps to a uuid5; Aegra ignores `if_not_exists` and creates a missing "
        "thread on runs/wait by itself. The graph (loadtest/benchmark/peers/graph_entry.py) "
        "is the service's, compiled without a checkpointer; every runtime books on its own "
        "fresh SQLite appointments file.",
    ]
    return "\n".join(lines)


def _progress(index: int, total: int, label: str, result: Result) -> None:
    print(
        f"[{index}/{total}] {label:<44} {result.turns_per_s:7.1f} turns/s  "
        f"p99 {result.p99_ms:7.1f} ms  CPU {result.cpu_ms_per_turn:6.2f} ms/turn  "
        f"errors {result.errors}  lost {result.lost}  unchecked {result.unchecked_turns}",
        flush=True,
    )
    for sample in result.error_samples[:3]:
        print(f"    error: {sample}", flush=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    pinning.pin_client(args.pinning)
    envs = {key: venvs.ensure(venvs.SPECS[key]) for key in args.peer_list}
    postgres, postgres_note = None, ""
    if "aegra" in envs:
        from tests.support.postgres import start_postgres

        postgres, reason = start_postgres()
        if postgres is None:
            raise SystemExit(f"Aegra needs PostgreSQL: {reason}")
        atexit.register(postgres.stop)
        postgres_note = (
            "throwaway PostgreSQL cluster (tests/support/postgres.py: fsync and "
            "synchronous_commit off), a fresh database per run"
            if postgres.cluster is not None
            else "PostgreSQL at TEST_DATABASE_URL, a fresh database per run"
        )
    names = runtimes(envs, args)
    text = header(args, envs, postgres_note)
    print(text, flush=True)

    def make(key: str):
        def build(work_dir: Path) -> PeerServer:
            options = {"users": args.users, "latency_ms": args.latency_ms}
            if key == "aegra":
                return Aegra(envs[key], work_dir, postgres=postgres,
                             durability=args.aegra_durability, **options)  # fmt: skip
            return PEERS[key](envs[key], work_dir, **options)

        return build

    plan = [(r, key) for r in range(args.repeats) for key in (OURS, *args.peer_list)]
    results: list[Result] = []
    for index, (repeat, key) in enumerate(plan, 1):
        if key == OURS:
            result = measure_ours(
                users=args.users,
                turns=args.turns,
                workers=WORKERS,
                latency_ms=args.latency_ms,
                repeat=repeat,
                pinning=args.pinning,
            )
        else:
            result = measure_peer(
                make(key),
                users=args.users,
                turns=args.turns,
                repeat=repeat,
                pinning=args.pinning,
                check_threads=args.check_threads,
            )
        _progress(index, len(plan), names[key].label, result)
        results.append(result)

    rows = report.summarize(results, names)
    table = report.table(rows)
    report.save(args.out, results, rows)
    report.plot(args.out / "peers.png", rows)
    markdown = (
        f"{text}\n\n{table}\n\nCPU ms/turn counts every process of the runtime; for Aegra "
        "the part in parentheses is PostgreSQL's. Lost: acknowledged turns missing from the "
        "thread's state; unchecked: acknowledged turns whose thread was not read back.\n\n"
        f"{report.checks(rows)}\n\n![turns/s and CPU ms per turn](peers.png)\n"
    )
    (args.out / "peers.md").write_text(markdown)
    print()
    print(table)
    print()
    print(report.checks(rows))
    print(f"\nreports: {args.out}/peers.md, peers.csv, peers_runs.csv, peers.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
