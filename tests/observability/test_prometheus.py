"""A real Prometheus scrapes a real server; every dashboard and alert query is evaluated."""

from __future__ import annotations

import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from langgraph_sdk import get_sync_client

from tests.observability.support import (
    ALERTS,
    GREETING,
    JOB,
    PROMETHEUS_CONFIG,
    RUNS_ROUTE,
    TOOL_QUESTION,
    alert_queries,
    dashboard_queries,
    finite_values,
    metric_names,
    require_binary,
)
from tests.observability.support import (
    turn as _turn,
)
from tests.support.server import ServerProcess, free_port

pytestmark = pytest.mark.timeout(120)

API_KEY = "observability-test-key-0123456789"
METRICS_TOKEN = "observability-metrics-token-0123"
LOAD_SECONDS = 10.0
TURNS = 36


@dataclass
class Prometheus:
    url: str
    proc: subprocess.Popen[bytes]
    log_path: Path

    def query(self, expr: str) -> dict[str, Any]:
        response = httpx.post(f"{self.url}/api/v1/query", data={"query": expr}, timeout=10)
        return response.json()

    def vector(self, expr: str) -> list[dict[str, Any]]:
        answer = self.query(expr)
        assert answer["status"] == "success", (expr, answer)
        return answer["data"]["result"]

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def scrape_config(target: str, token_file: Path) -> dict[str, Any]:
    """deploy/prometheus/prometheus.yml, scraping `target` every second with our token."""
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    config["global"].update(scrape_interval="1s", scrape_timeout="1s", evaluation_interval="1s")
    config["rule_files"] = [str(PROMETHEUS_CONFIG.parent / path) for path in config["rule_files"]]
    (job,) = [job for job in config["scrape_configs"] if job["job_name"] == JOB]
    job["static_configs"] = [{"targets": [target]}]
    job["authorization"]["credentials_file"] = str(token_file)
    return config


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    # Slow model calls make two runs on one thread overlap, for a 409 and a guard wait;
    # frequent maintenance passes give the maintenance panels data.
    srv = ServerProcess(
        tmp_path_factory.mktemp("app"),
        workers=2,
        env={
            "OFFLINE_LLM_LATENCY_MS": "150",
            "MAINTENANCE_INTERVAL_S": "2",
            # As in compose: keys on, Prometheus scrapes with the metrics token.
            "AUTH_ENABLED": "true",
            "API_KEYS": f"test:{API_KEY}",
            "METRICS_TOKEN": METRICS_TOKEN,
        },
    )
    srv.start()
    try:
        yield srv
    finally:
        try:
            srv.stop(timeout=20)
        except Exception:
            srv.kill()


@pytest.fixture(scope="module")
def prometheus(
    tmp_path_factory: pytest.TempPathFactory, app: ServerProcess
) -> Iterator[Prometheus]:
    binary = require_binary("prometheus")
    workdir = tmp_path_factory.mktemp("prometheus")
    config = workdir / "prometheus.yml"
    token = workdir / "metrics-token"
    token.write_text(METRICS_TOKEN)
    config.write_text(
        yaml.safe_dump(scrape_config(f"127.0.0.1:{app.port}", token), sort_keys=False)
    )
    port = free_port()
    log_path = workdir / "prometheus.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--log.level=warn",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    server = Prometheus(f"http://127.0.0.1:{port}", proc, log_path)
    try:
        wait_ready(server)
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def wait_ready(server: Prometheus, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            pytest.fail(f"prometheus exited with {server.proc.returncode}:\n{server.log()}")
        try:
            if httpx.get(f"{server.url}/-/ready", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    pytest.fail(f"prometheus did not become ready:\n{server.log()}")


def turn(base_url: str, thread_id: str, text: str = GREETING, **options: Any) -> dict:
    return _turn(base_url, thread_id, text, api_key=API_KEY, **options)


def overlapping_turns(base_url: str) -> int:
    """While a slow run holds a thread: an `enqueue` run waits, a `reject` run gets 409."""
    thread_id = str(uuid.uuid4())
    turn(base_url, thread_id)
    first = threading.Thread(target=turn, args=(base_url, thread_id, TOOL_QUESTION))
    first.start()
    time.sleep(0.05)
    queued = threading.Thread(target=turn, args=(base_url, thread_id))
    queued.start()
    with pytest.raises(httpx.HTTPStatusError) as refused:
        turn(base_url, thread_id, multitask_strategy="reject")
    assert refused.value.response.status_code == 409
    first.join()
    queued.join()
    return 3  # successful runs


def background_turns(base_url: str) -> None:
    """Background runs, accepted and then joined, for the queue's panels."""
    client = get_sync_client(url=base_url, api_key=API_KEY)
    thread_id = client.threads.create()["thread_id"]
    runs = [
        client.runs.create(thread_id, "agent", input={"messages": [{"role": "user", "content": t}]})
        for t in (GREETING, TOOL_QUESTION, GREETING)
    ]
    client.runs.join(thread_id, runs[-1]["run_id"])


def drive_load(base_url: str) -> int:
    """About TURNS turns spread over LOAD_SECONDS; returns how many runs succeeded."""
    succeeded = 0
    started = time.monotonic()
    with ThreadPoolExecutor(4) as pool:
        futures = []
        for i in range(TURNS):
            if i == TURNS // 2:  # mid-load, so scrapes on both sides see the counters move
                succeeded += overlapping_turns(base_url)
                background_turns(base_url)
            text = TOOL_QUESTION if i % 3 == 0 else GREETING
            futures.append(pool.submit(turn, base_url, str(uuid.uuid4()), text))
            time.sleep(max(0.0, started + (i + 1) * LOAD_SECONDS / TURNS - time.monotonic()))
        for future in futures:
            future.result()
    return succeeded + TURNS


@pytest.fixture(scope="module")
def loaded(app: ServerProcess, prometheus: Prometheus) -> Prometheus:
    """Prometheus once it has scraped before, during and after a load."""
    scrapes = f'count_over_time(up{{job="{JOB}"}}[1m])'
    wait_for(prometheus, lambda: first_value(prometheus, scrapes) >= 2, "first scrapes")
    requests = drive_load(app.base_url) + 1  # the refused run is a request on the route too
    runs = f'sum(booking_agent_http_requests_total{{job="{JOB}", route="{RUNS_ROUTE}"}})'
    wait_for(prometheus, lambda: first_value(prometheus, runs) == requests, "the whole load")
    return prometheus


def wait_for(prometheus: Prometheus, condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 20
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"prometheus did not see {what} in 20 s:\n{prometheus.log()}")
        time.sleep(0.25)


def first_value(prometheus: Prometheus, expr: str) -> float:
    result = prometheus.vector(expr)
    return float(result[0]["value"][1]) if result else float("nan")


def test_target_is_up(loaded: Prometheus) -> None:
    up = loaded.vector(f'up{{job="{JOB}"}}')
    assert [float(item["value"][1]) for item in up] == [1.0]


def test_every_dashboard_query_returns_data(loaded: Prometheus) -> None:
    empty = []
    for title, expr in dashboard_queries():
        result = loaded.vector(expr)
        if not finite_values(result):
            empty.append((title, expr, result))
    assert not empty, f"dashboard queries without data: {empty}"


def test_every_alert_expression_parses(loaded: Prometheus) -> None:
    for name, expr in alert_queries():
        answer = loaded.query(expr)
        assert answer["status"] == "success", (name, expr, answer)


def test_alert_rules_load_and_evaluate(loaded: Prometheus) -> None:
    deadline = time.monotonic() + 10
    while True:
        groups = httpx.get(f"{loaded.url}/api/v1/rules", timeout=10).json()["data"]["groups"]
        rules = {rule["name"]: rule for group in groups for rule in group["rules"]}
        if all(rule.get("lastEvaluation", "").startswith("2") for rule in rules.values()):
            break
        assert time.monotonic() < deadline, rules
        time.sleep(0.5)
    assert set(rules) == {name for name, _ in alert_queries()}
    assert {name: rule["health"] for name, rule in rules.items()} == dict.fromkeys(rules, "ok")
    assert rules["BookingAgentDown"]["state"] == "inactive"
    source = str(ALERTS)
    assert all(group["file"] == source for group in groups)


def test_queried_metrics_exist_in_prometheus(loaded: Prometheus) -> None:
    names = set(httpx.get(f"{loaded.url}/api/v1/label/__name__/values", timeout=10).json()["data"])
    used = {
        name for _, expr in dashboard_queries() + alert_queries() for name in metric_names(expr)
    }
    assert used <= names, sorted(used - names)
