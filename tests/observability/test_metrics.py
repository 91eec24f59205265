"""`/metrics` on a real 4-worker Gunicorn: sums over workers, respawns, and a bounded size."""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from service import __version__
from service.observability.metrics import CHECKPOINT_OPERATIONS
from tests.observability.support import (
    GREETING,
    RUNS_ROUTE,
    TOOL_QUESTION,
    Scrape,
    alert_queries,
    dashboard_queries,
    metric_names,
    scrape,
    turn,
)
from tests.support.server import ServerProcess

pytestmark = pytest.mark.timeout(120)

WORKERS = 4
RUNS = 24


@pytest.fixture(scope="module")
def server4(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A fresh 4-worker server for this module: test order matters only for the respawn."""
    # No maintenance pass while the module runs: file sizes must stay put between a
    # scrape and the stat that checks it.
    srv = ServerProcess(
        tmp_path_factory.mktemp("metrics"),
        workers=WORKERS,
        env={"MAINTENANCE_INTERVAL_S": "3600"},
    )
    srv.start()
    try:
        yield srv
    finally:
        try:
            srv.stop(timeout=20)
        except Exception:
            srv.kill()


def run_many(base_url: str, count: int, parallel: int = 8) -> list[str]:
    """`count` runs on new threads, half of them calling a tool, over separate connections."""
    thread_ids = [str(uuid.uuid4()) for _ in range(count)]
    texts = [TOOL_QUESTION if i % 2 else GREETING for i in range(count)]
    with ThreadPoolExecutor(parallel) as pool:
        list(pool.map(lambda args: turn(base_url, *args), zip(thread_ids, texts, strict=True)))
    return thread_ids


def sizes_on_disk(db_path: Path) -> dict[str, float]:
    paths = {"db": db_path, "wal": Path(f"{db_path}-wal"), "shm": Path(f"{db_path}-shm")}
    return {name: float(os.stat(path).st_size) for name, path in paths.items()}


def wait_until_served_by_all(srv: ServerProcess) -> None:
    """Touch every worker once (new connection each time) so each has its pid series."""
    seen: set[int] = set()
    for _ in range(400):
        with httpx.Client(base_url=srv.base_url) as fresh:
            seen.add(fresh.get("/info").json()["pid"])
        if seen >= set(srv.worker_pids()):
            return
    pytest.fail(f"only workers {sorted(seen)} of {srv.worker_pids()} answered")


def test_one_scrape_sums_every_worker(server4: ServerProcess) -> None:
    run_many(server4.base_url, RUNS)
    time.sleep(0.5)  # counters are written just after each response is sent
    metrics = scrape(server4.base_url)  # the only scrape; no traffic from here on
    on_disk = sizes_on_disk(server4.db_path)

    assert metrics.total("booking_agent_http_requests_total", route=RUNS_ROUTE) == RUNS
    assert (
        metrics.total(
            "booking_agent_http_requests_total", method="POST", route=RUNS_ROUTE, status="200"
        )
        == RUNS
    )
    assert (
        metrics.total("booking_agent_http_request_duration_seconds_count", route=RUNS_ROUTE) == RUNS
    )
    assert metrics.total("booking_agent_run_duration_seconds_count") == RUNS
    assert metrics.total("booking_agent_run_duration_seconds_count", outcome="success") == RUNS
    assert metrics.total("booking_agent_run_duration_seconds_bucket", le="+Inf") == RUNS
    # Every request is counted once by route and once by worker.
    per_worker = metrics.by_label("booking_agent_worker_http_requests_total", "pid")
    assert sum(per_worker.values()) == metrics.total("booking_agent_http_requests_total")
    assert len([pid for pid, count in per_worker.items() if count > 0]) >= 2, per_worker
    assert set(metrics.by_label("booking_agent_worker_up", "pid")) == {
        str(pid) for pid in server4.worker_pids()
    }
    assert metrics.total("booking_agent_runs_in_flight") == 0

    assert metrics.by_label("booking_agent_sqlite_file_bytes", "file") == on_disk
    assert on_disk["wal"] > 0
    assert metrics.total("booking_agent_sqlite_page_size_bytes") == 4096
    assert metrics.series("booking_agent_sqlite_freelist_pages")

    # Rare-event series exist at zero, for exactly the operations the saver times.
    timed = metrics.by_label("booking_agent_checkpoint_operation_seconds_count", "operation")
    busy = metrics.by_label("booking_agent_storage_busy_errors_total", "operation")
    assert set(timed) == set(busy) == set(CHECKPOINT_OPERATIONS)
    assert busy == dict.fromkeys(CHECKPOINT_OPERATIONS, 0.0)
    assert metrics.by_label("booking_agent_thread_guard_rejections_total", "reason") == {
        "reject": 0.0,
        "timeout": 0.0,
    }

    build = metrics.series("booking_agent_build_info")
    assert len(build) == 1, build
    labels, value = next(iter(build.items()))
    assert value == 1 and dict(labels)["version"] == __version__
    assert dict(labels)["backend"] == "sqlite"


def test_dashboard_and_alerts_only_use_exposed_metrics(server4: ServerProcess) -> None:
    turn(server4.base_url, str(uuid.uuid4()), TOOL_QUESTION)  # tool series exist after a call
    exposed = scrape(server4.base_url).names
    used = {
        (origin, name)
        for origin, expr in dashboard_queries() + alert_queries()
        for name in metric_names(expr)
    }
    missing = sorted((origin, name) for origin, name in used if name not in exposed | {"up"})
    assert not missing, f"queries reference metrics /metrics does not expose: {missing}"


def test_output_size_does_not_grow_with_threads(server4: ServerProcess) -> None:
    wait_until_served_by_all(server4)
    run_many(server4.base_url, 2)  # both kinds of turn have run at least once
    httpx.request("BREW", f"{server4.base_url}/ok")  # an unknown method has its series
    scrape(server4.base_url)  # /metrics itself now has its series
    first_ids = run_many(server4.base_url, 10)
    time.sleep(0.3)
    after_10 = scrape(server4.base_url)
    more_ids = run_many(server4.base_url, 60)
    for method in ("BREW2", "PROPFIND", "X-ANY"):  # clients choose methods freely
        httpx.request(method, f"{server4.base_url}/ok")
    time.sleep(0.3)
    after_70 = scrape(server4.base_url)

    assert after_70.total("booking_agent_run_duration_seconds_count") >= 70
    assert len(after_70.series_lines()) == len(after_10.series_lines())
    assert set(after_70.samples) == set(after_10.samples)
    assert len(after_70.text) < 1.1 * len(after_10.text)
    for thread_id in first_ids + more_ids:
        assert thread_id not in after_70.text


def idle_total(scraped: Scrape, name: str) -> float:
    """A total that only work changes: without the queue's polls of an idle worker."""
    return scraped.total(name) - scraped.total(name, operation="queue")


def test_respawned_worker_drops_live_gauges_and_keeps_counters(server4: ServerProcess) -> None:
    multiproc_dir = Path(server4.env["PROMETHEUS_MULTIPROC_DIR"])
    wait_until_served_by_all(server4)
    # A worker counts a request just after answering it: scrape over one kept-alive
    # connection, and kill another worker, whose count can no longer change.
    with httpx.Client(base_url=server4.base_url) as pinned:
        answering = pinned.get("/info").json()["pid"]
        before = Scrape.parse(pinned.get("/metrics").text)
    served = before.by_label("booking_agent_worker_http_requests_total", "pid")
    others = [pid for pid in server4.worker_pids() if pid != answering]
    victim = max(others, key=lambda pid: served.get(str(pid), 0))
    assert served[str(victim)] > 0
    assert (multiproc_dir / f"gauge_liveall_{victim}.db").exists()

    os.kill(victim, signal.SIGKILL)
    after = wait_for_replacement(server4, victim)

    assert str(victim) not in after.by_label("booking_agent_worker_up", "pid")
    assert not (multiproc_dir / f"gauge_liveall_{victim}.db").exists()
    assert not (multiproc_dir / f"gauge_livesum_{victim}.db").exists()
    assert (multiproc_dir / f"counter_{victim}.db").exists()
    assert (
        after.by_label("booking_agent_worker_http_requests_total", "pid")[str(victim)]
        == (served[str(victim)])
    )
    for name in (
        "booking_agent_run_duration_seconds_count",
        "booking_agent_checkpoint_operation_seconds_count",
        "booking_agent_storage_write_transactions_total",
    ):
        assert idle_total(after, name) == idle_total(before, name), name
    assert after.total("booking_agent_http_requests_total", route=RUNS_ROUTE) == before.total(
        "booking_agent_http_requests_total", route=RUNS_ROUTE
    )
    assert after.total("booking_agent_runs_in_flight") == 0

    turn(server4.base_url, str(uuid.uuid4()))
    time.sleep(0.3)
    assert scrape(server4.base_url).total("booking_agent_run_duration_seconds_count") == (
        before.total("booking_agent_run_duration_seconds_count") + 1
    )


def wait_for_replacement(srv: ServerProcess, victim: int, timeout: float = 30) -> Scrape:
    """Scrape once Gunicorn has replaced `victim` and every live worker reports itself up."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pids = srv.worker_pids()
        if victim not in pids and len(pids) == srv.workers:
            metrics = scrape(srv.base_url)
            if set(metrics.by_label("booking_agent_worker_up", "pid")) == {str(p) for p in pids}:
                return metrics
        time.sleep(0.1)
    pytest.fail(f"worker {victim} was not replaced in {timeout} s:\n{srv.log()[-3000:]}")
