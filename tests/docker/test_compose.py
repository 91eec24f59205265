"""Smoke test of the deployment bundle: Dockerfile + docker-compose.yml on a real engine.

Builds the image, starts `app` and `prometheus` under a project name of its own on
free host ports, talks to the agent through the published port with `langgraph-sdk`,
restarts and stops the app, asks Prometheus what it scraped, and always ends with
`docker compose down -v`. Grafana is not started (no image here); its provisioning
is checked offline elsewhere.

    deploy/docker-smoke.sh                 # starts the sandbox engine when needed
    REQUIRE_DOCKER=1 .venv/bin/pytest tests/docker -q
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from langgraph_sdk import get_sync_client

from tests.support.server import ROOT, free_port

# The compose stack has API keys on; by default it uses the demo secret files.
DEMO_KEY = next(
    line.split(":", 1)[1].strip()
    for line in (ROOT / "deploy/secrets/api-keys.example").read_text().splitlines()
    if line.strip() and not line.startswith("#")
)
AUTH = {"Authorization": f"Bearer {DEMO_KEY}"}

pytestmark = [pytest.mark.docker, pytest.mark.timeout(1500)]

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
# A stable tag, so the layers of earlier runs are reused; `down` leaves it in place.
IMAGE = "booking-agent:smoke-test"
# Offline model delay per call: long enough that a run is surely in flight at `stop`.
MODEL_LATENCY_MS = 1500
HEALTHY_TIMEOUT_S = 180
PROMETHEUS_TIMEOUT_S = 60
CHECKPOINT_SERIES = "booking_agent_checkpoint_operation_seconds_count"
# Variables docker-compose.yml reads; a developer's shell must not change the test.
COMPOSE_VARIABLES = (
    "APP_BIND",
    "APP_PORT",
    "APP_IMAGE",
    "APP_STOP_GRACE_PERIOD",
    "WEB_CONCURRENCY",
    "GRACEFUL_TIMEOUT_S",
    "PROMETHEUS_PORT",
    "PROMETHEUS_RETENTION",
    "COMPOSE_PROJECT_NAME",
    "COMPOSE_FILE",
    "COMPOSE_PROFILES",
)


def humans(values: dict[str, Any]) -> list[str]:
    return [m["content"] for m in values.get("messages", []) if m["type"] == "human"]


def version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(".")[:3])


def wait_for(what: str, check: Callable[[], Any], timeout: float, every: float = 1.0) -> Any:
    """Call `check` until it returns something truthy; fail naming `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except (httpx.HTTPError, ValueError, KeyError) as exc:
            last = exc
        else:
            if last:
                return last
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}; last: {last!r}")


class ComposeProject:
    """One `docker compose` project with its own name, ports, volumes and override file."""

    def __init__(self, workdir: Path) -> None:
        self.name = f"bookingsmoke{uuid.uuid4().hex[:10]}"
        self.app_port = free_port()
        self.prometheus_port = free_port()
        while self.prometheus_port == self.app_port:
            self.prometheus_port = free_port()
        empty_env = workdir / "empty.env"
        empty_env.write_text("")
        self.override = workdir / "compose.smoke.yml"
        self.override.write_text(self._override_yaml())
        self.base = [
            "docker",
            "compose",
            "--project-name",
            self.name,
            "--project-directory",
            str(ROOT),
            # Neither the checkout's .env (interpolation) nor its app settings apply.
            "--env-file",
            str(empty_env),
            "--file",
            str(COMPOSE_FILE),
            "--file",
            str(self.override),
        ]
        self.env = {k: v for k, v in os.environ.items() if k not in COMPOSE_VARIABLES}
        self.env.update(
            APP_IMAGE=IMAGE,
            APP_PORT=str(self.app_port),
            PROMETHEUS_PORT=str(self.prometheus_port),
        )

    @staticmethod
    def _override_yaml() -> str:
        # No .env settings from the checkout; a slower model keeps runs in flight longer.
        return (
            "services:\n"
            "  app:\n"
            "    env_file: !reset []\n"
            "    environment:\n"
            f'      OFFLINE_LLM_LATENCY_MS: "{MODEL_LATENCY_MS}"\n'
        )

    @property
    def app_url(self) -> str:
        return f"http://127.0.0.1:{self.app_port}"

    @property
    def prometheus_url(self) -> str:
        return f"http://127.0.0.1:{self.prometheus_port}"

    def compose(
        self, *args: str, timeout: float = 300, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [*self.base, *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"docker compose {' '.join(args)} exited {result.returncode}:\n"
                f"{result.stdout}\n{result.stderr}"
            )
        return result

    def container(self, service: str) -> dict[str, Any]:
        ids = self.compose("ps", "--all", "--quiet", service).stdout.split()
        assert len(ids) == 1, f"expected one {service} container, got {ids}"
        out = subprocess.run(
            ["docker", "inspect", ids[0]], capture_output=True, text=True, check=True, timeout=60
        ).stdout
        return json.loads(out)[0]

    def wait_healthy(self, service: str, previous_start: str = "") -> dict[str, Any]:
        """Wait until the service's container, started anew since `previous_start`, is healthy."""

        def healthy() -> dict[str, Any] | None:
            info = self.container(service)
            state = info["State"]
            if state["Status"] in ("exited", "dead"):
                raise AssertionError(f"{service} exited ({state['ExitCode']}):\n{self.logs()}")
            fresh = state["StartedAt"] != previous_start
            return info if fresh and state.get("Health", {}).get("Status") == "healthy" else None

        return wait_for(f"{service} to be healthy", healthy, HEALTHY_TIMEOUT_S)

    def logs(self, *services: str) -> str:
        result = self.compose("logs", "--no-color", "--tail", "200", *services, check=False)
        return result.stdout + result.stderr

    def down(self) -> None:
        self.compose("down", "--volumes", "--remove-orphans", "--timeout", "60", check=False)


@pytest.fixture
def project(docker_engine: None, tmp_path: Path) -> Iterator[ComposeProject]:
    proj = ComposeProject(tmp_path)
    try:
        yield proj
    finally:
        proj.down()


def runs_in_flight(base_url: str) -> float:
    text = httpx.get(f"{base_url}/metrics", headers=AUTH, timeout=5).text
    match = re.search(r"^booking_agent_runs_in_flight(?:\{[^}]*\})? (\S+)$", text, re.M)
    return float(match.group(1)) if match else 0.0


def prometheus_sees_the_app(prometheus_url: str) -> bool:
    targets = httpx.get(f"{prometheus_url}/api/v1/targets", timeout=5).json()["data"]
    if not any(
        "app:8000" in t["scrapeUrl"] and t["health"] == "up" for t in targets["activeTargets"]
    ):
        return False
    found = httpx.get(
        f"{prometheus_url}/api/v1/query", params={"query": CHECKPOINT_SERIES}, timeout=5
    ).json()["data"]["result"]
    return any(float(series["value"][1]) > 0 for series in found)


def test_compose_bundle(project: ComposeProject, capsys: pytest.CaptureFixture[str]) -> None:
    timings: dict[str, float] = {}

    def timed(name: str, start: float) -> None:
        timings[name] = round(time.monotonic() - start, 1)

    try:
        start = time.monotonic()
        project.compose("build", "app", timeout=1200)
        timed("build", start)

        start = time.monotonic()
        project.compose("up", "--detach", "app", "prometheus", timeout=HEALTHY_TIMEOUT_S + 60)
        app = project.wait_healthy("app")
        timed("up_healthy", start)

        # The container: gunicorn is PID 1, not root, published on 127.0.0.1 only.
        assert app["Config"]["User"] not in ("", "0", "root")
        assert app["HostConfig"]["ReadonlyRootfs"] is True
        for bindings in app["NetworkSettings"]["Ports"].values():
            assert all(b["HostIp"] == "127.0.0.1" for b in bindings or []), bindings
        pid1 = project.compose(
            "exec", "-T", "app", "python", "-c", "print(open('/proc/1/cmdline').read())"
        ).stdout
        assert "gunicorn" in pid1, pid1

        # The SQLite under the service is pysqlite3's, with the WAL-reset fix.
        assert httpx.get(f"{project.app_url}/info", timeout=10).status_code == 401
        info = httpx.get(f"{project.app_url}/info", headers=AUTH, timeout=10).json()
        assert info["sqlite"]["driver"] == "pysqlite3", info["sqlite"]
        assert version_tuple(info["sqlite"]["version"]) >= (3, 51, 3), info["sqlite"]
        assert info["sqlite"]["wal_reset_bug"] is False
        assert info["storage"]["database"] == "/app/data/checkpoints.db"

        # A conversation through the published port.
        start = time.monotonic()
        client = get_sync_client(url=project.app_url, timeout=60, api_key=DEMO_KEY)
        tid = str(uuid.uuid4())
        say = [{"role": "user", "content": "Quiero una cita"}]
        first = client.runs.wait(tid, "agent", input={"messages": say}, if_not_exists="create")
        assert humans(first) == ["Quiero una cita"]
        say = [{"role": "user", "content": "corte de pelo"}]
        second = client.runs.wait(tid, "agent", input={"messages": say})
        assert humans(second) == ["Quiero una cita", "corte de pelo"]
        assert second["messages"][-1]["type"] == "ai" and second["messages"][-1]["content"]
        timed("two_turns", start)

        # Prometheus scrapes the app over the compose network and stores its series.
        start = time.monotonic()
        wait_for(
            "Prometheus to answer",
            lambda: httpx.get(f"{project.prometheus_url}/-/ready", timeout=5).status_code == 200,
            HEALTHY_TIMEOUT_S,
        )
        wait_for(
            f"Prometheus to scrape app:8000 and store {CHECKPOINT_SERIES}",
            lambda: prometheus_sees_the_app(project.prometheus_url),
            PROMETHEUS_TIMEOUT_S,
        )
        timed("prometheus_scraped", start)
        config = yaml.safe_load((ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text())
        if config.get("rule_files"):
            groups = httpx.get(f"{project.prometheus_url}/api/v1/rules", timeout=5).json()
            assert groups["data"]["groups"], "rule_files are configured but no rules loaded"

        # `restart`: the conversation is on the volume, not in the container.
        start = time.monotonic()
        project.compose("restart", "app", timeout=120)
        app = project.wait_healthy("app", previous_start=app["State"]["StartedAt"])
        timed("restart_healthy", start)
        values = client.threads.get_state(tid)["values"]
        assert humans(values) == ["Quiero una cita", "corte de pelo"]
        backup = project.compose("exec", "-T", "app", "python", "-m", "service", "backup")
        assert "integrity_check ok" in backup.stdout, backup.stdout

        # `stop` with a run in flight: the run finishes, gunicorn exits 0, no SIGKILL.
        reply: dict[str, Any] = {}

        def third_turn() -> None:
            with httpx.Client(base_url=project.app_url, timeout=60, headers=AUTH) as http:
                response = http.post(
                    f"/threads/{tid}/runs/wait",
                    json={
                        "assistant_id": "agent",
                        "input": {"messages": [{"role": "user", "content": "mañana a las 11"}]},
                    },
                )
                reply.update(status=response.status_code, body=response.json())

        turn = threading.Thread(target=third_turn)
        turn.start()
        wait_for("a run in flight", lambda: runs_in_flight(project.app_url) >= 1, 10, every=0.05)
        start = time.monotonic()
        project.compose("stop", "app", timeout=120)
        timed("stop", start)
        turn.join(60)
        assert reply.get("status") == 200, reply
        assert humans(reply["body"])[-1] == "mañana a las 11"
        stopped = project.container("app")
        assert stopped["State"]["ExitCode"] == 0, stopped["State"]
        assert stopped["State"]["OOMKilled"] is False
        grace_s = stopped["Config"]["StopTimeout"]
        assert timings["stop"] < grace_s, (timings["stop"], grace_s)
        assert "SIGKILL" not in project.logs("app")
        # Maintenance in a fresh container on the volume, as a restore is done.
        check = project.compose(
            "run", "--rm", "--no-deps", "-T", "app", "python", "-m", "service", "integrity-check"
        )
        assert "integrity_check ok" in check.stdout, check.stdout + check.stderr

        # The drained run's checkpoint was committed before the exit.
        start = time.monotonic()
        project.compose("start", "app", timeout=120)
        project.wait_healthy("app", previous_start=stopped["State"]["StartedAt"])
        timed("start_healthy", start)
        values = client.threads.get_state(tid)["values"]
        assert humans(values) == ["Quiero una cita", "corte de pelo", "mañana a las 11"]
    except BaseException:
        print(f"--- docker compose logs (project {project.name}) ---\n{project.logs()}")
        raise
    finally:
        with capsys.disabled():
            print(f"\ndocker smoke timings (s): {json.dumps(timings)}")
