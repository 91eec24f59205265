"""Run the Locust profile headless and judge it: what `make loadtest` calls.

    python loadtest/run.py                       # starts its own server (fresh database)
    LOADTEST_HOST=http://host:8000 python loadtest/run.py   # against a running service
    LOADTEST_PROFILE=full python loadtest/run.py

Prints one table per step and exits non-zero when a gate fails: any Locust failure
(expected 409s of double-texts are not failures), any 5xx, the p95 of conversation
turns above LOADTEST_P95_MS, or, when it started the server, a database that fails
`PRAGMA integrity_check`. Reports land in LOADTEST_REPORT_DIR (reports/loadtest).
Other settings: `loadtest/locust_profile/shape.py`; LOADTEST_WORKERS sets the server's workers.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `python loadtest/run.py` too

import httpx

from loadtest.common import promtext
from loadtest.common.tables import fmt, markdown_table, read_csv
from loadtest.locust_profile.shape import Profile, load_profile
from loadtest.locust_profile.steps import TURN
from tests.support.server import ServerProcess

ROOT = Path(__file__).resolve().parents[1]
OUTPUTS = ("report.html", "locust.log", "server.log")


def default_workers() -> int:
    return max(2, min(4, os.cpu_count() or 2))


def integrity_problems(paths: list[Path]) -> list[str]:
    """`PRAGMA integrity_check` of each existing database file; empty when all are ok."""
    from service.storage.sqlite.driver import sqlite3

    problems = []
    for path in paths:
        if not path.exists():
            continue
        conn = sqlite3.connect(str(path))
        try:
            rows = [row[0] for row in conn.execute("PRAGMA integrity_check")]
        finally:
            conn.close()
        if rows != ["ok"]:
            problems.append(f"{path.name}: {'; '.join(rows[:5])}")
    return problems


def run_locust(host: str, report_dir: Path, profile: Profile) -> int:
    prefix = report_dir / "loadtest"
    command = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(ROOT / "loadtest" / "locust_profile" / "locustfile.py"),
        "--headless",
        "--host",
        host,
        "--csv",
        str(prefix),
        "--csv-full-history",
        "--html",
        str(report_dir / "report.html"),
        "--only-summary",
    ]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    log_path = report_dir / "locust.log"
    with log_path.open("wb") as log:
        try:
            return subprocess.run(
                command,
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                timeout=profile.duration_s + 120,
                check=False,
            ).returncode
        except subprocess.TimeoutExpired:
            return 124


def server_facts(base_url: str) -> dict[str, float]:
    """A few server-side counters worth printing next to the client's view."""
    try:
        key = os.environ.get("LOADTEST_API_KEY")
        headers = {"x-api-key": key} if key else {}
        response = httpx.get(f"{base_url}/metrics", headers=headers, timeout=10)
        response.raise_for_status()
        samples = promtext.parse(response.text)
    except httpx.HTTPError:
        return {}
    put = promtext.bucket_deltas(
        {}, samples, "booking_agent_checkpoint_operation_seconds", operation="put"
    )
    return {
        "storage busy errors": promtext.total(samples, "booking_agent_storage_busy_errors_total"),
        "guard rejections (409)": promtext.total(
            samples, "booking_agent_thread_guard_rejections_total"
        ),
        "guard waits (enqueue)": promtext.total(samples, "booking_agent_thread_guard_waits_total"),
        "runs failed": promtext.total(samples, "booking_agent_run_duration_seconds_count")
        - promtext.total(samples, "booking_agent_run_duration_seconds_count", outcome="success")
        - promtext.total(
            samples, "booking_agent_run_duration_seconds_count", outcome="interrupted"
        ),
        "runs waiting for approval": promtext.total(
            samples, "booking_agent_run_duration_seconds_count", outcome="interrupted"
        ),
        "checkpoint put p99 ms": promtext.quantile(0.99, put) * 1000,
        "write transactions": promtext.total(
            samples, "booking_agent_storage_write_transactions_total"
        ),
    }


def step_table(rows: list[dict[str, str]]) -> str:
    steps = sorted({int(r["users"]) for r in rows})
    table = []
    for users in steps:
        agg = next((r for r in rows if int(r["users"]) == users and r["name"] == "Aggregated"), {})
        turn = next((r for r in rows if int(r["users"]) == users and r["name"] == TURN), {})
        table.append(
            [
                users,
                agg.get("rps", ""),
                turn.get("rps", ""),
                turn.get("p50_ms", ""),
                turn.get("p95_ms", ""),
                turn.get("p99_ms", ""),
                agg.get("failures", ""),
                agg.get("status_5xx", ""),
                agg.get("expected_409", ""),
            ]
        )
    headers = ["users", "req/s", "turns/s", "turn p50 ms", "turn p95 ms", "turn p99 ms"]
    return markdown_table([*headers, "failures", "5xx", "409 (expected)"], table)


def gates(summary: dict, profile: Profile, locust_rc: int, problems: list[str]) -> list[str]:
    failed = []
    if locust_rc == 124:
        failed.append("Locust did not finish in time")
    if summary.get("failures"):
        names = ", ".join(f"{k}: {v}" for k, v in summary["failures_by_name"].items())
        failed.append(f"{summary['failures']} failures ({names})")
    if summary.get("status_5xx"):
        failed.append(f"{summary['status_5xx']} responses with status 5xx")
    p95 = summary.get("turn_p95_ms")
    if not summary.get("turns"):
        failed.append("no conversation turn completed")
    elif p95 is not None and p95 > profile.p95_ms:
        failed.append(f"turn p95 {p95:.0f} ms > LOADTEST_P95_MS={profile.p95_ms:.0f}")
    if locust_rc not in (0, 124) and not failed:
        failed.append(f"Locust exited with {locust_rc} (see locust.log)")
    failed += [f"integrity_check failed: {p}" for p in problems]
    return failed


def main() -> int:
    profile = load_profile()
    report_dir = Path(os.environ.get("LOADTEST_REPORT_DIR", ROOT / "reports" / "loadtest"))
    report_dir.mkdir(parents=True, exist_ok=True)
    for old in [*report_dir.glob("loadtest_*"), *(report_dir / n for n in OUTPUTS)]:
        old.unlink(missing_ok=True)  # never judge a run by an earlier run's files
    host = os.environ.get("LOADTEST_HOST", "").rstrip("/")
    problems: list[str] = []
    facts: dict[str, float] = {}
    print(
        f"load profile {profile.name}: steps {list(profile.steps)} users, "
        f"{profile.step_seconds:g} s each, spawn {profile.spawn_rate:g}/s, "
        f"gate p95 <= {profile.p95_ms:g} ms",
        flush=True,
    )
    with contextlib.ExitStack() as stack:
        server = None
        if not host:
            data_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="loadtest-")))
            workers = int(os.environ.get("LOADTEST_WORKERS", default_workers()))
            server = stack.enter_context(ServerProcess(data_dir, workers=workers))
            host = server.base_url
            print(f"server: {workers} workers on {host}, database {server.db_path}", flush=True)
        rc = run_locust(host, report_dir, profile)
        if server is not None:
            facts = server_facts(host)
            server.stop()
            shutil.copy(server.log_path, report_dir / "server.log")
            problems = integrity_problems([server.db_path, server.data_dir / "appointments.db"])

    steps_csv = report_dir / "loadtest_steps.csv"
    summary_path = report_dir / "loadtest_summary.json"
    if not steps_csv.exists() or not summary_path.exists():
        print((report_dir / "locust.log").read_text(errors="replace")[-4000:])
        print(f"FAIL: Locust wrote no step report (exit code {rc})")
        return 1
    summary = json.loads(summary_path.read_text())
    print()
    print(step_table(read_csv(steps_csv)))
    print()
    print(
        f"turns: {summary['turns']}, p50 {fmt(summary['turn_p50_ms'])} ms, "
        f"p95 {fmt(summary['turn_p95_ms'])} ms, p99 {fmt(summary['turn_p99_ms'])} ms; "
        f"conversations: {summary['outcomes']}"
    )
    if facts:
        print("server: " + ", ".join(f"{k} {fmt(v)}" for k, v in facts.items()))
    missing = [
        name
        for name in ("loadtest_stats.csv", "loadtest_stats_history.csv", "report.html")
        if not (report_dir / name).exists()
    ]
    failed = gates(summary, profile, rc, problems)
    failed += [f"missing report {name}" for name in missing]
    print(f"reports: {report_dir}")
    if failed:
        for reason in failed:
            print(f"FAIL: {reason}")
        return 1
    print("PASS: no failures, no 5xx, p95 within the bound" + (", database ok" if server else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
