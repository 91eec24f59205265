"""Tests that need a Docker engine: registered marker, and skip or fail without one.

`pytest -m docker` selects them, `-m "not docker"` leaves them out. With no engine
reachable they are skipped, unless REQUIRE_DOCKER=1 (CI, `deploy/docker-smoke.sh`):
then they fail, so a broken engine cannot pass as a green run.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

SANDBOX_HINT = 'start one with: eval "$(../shared/tools/container-sandbox up)"'


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "docker: needs a Docker engine and docker compose v2 (REQUIRE_DOCKER=1: fail, not skip)",
    )


def engine_problem() -> str | None:
    """Why the Docker tests cannot run here, or None when they can."""
    if shutil.which("docker") is None:
        return "the docker CLI is not installed"
    where = os.environ.get("DOCKER_HOST") or "unset, so the default socket"
    try:
        info = subprocess.run(
            ["docker", "info", "--format", "{{.ServerVersion}}"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except subprocess.TimeoutExpired:
        return f"`docker info` timed out (DOCKER_HOST {where})"
    if info.returncode != 0:
        detail = (info.stderr.strip().splitlines() or ["no output"])[-1]
        return f"no Docker engine reachable (DOCKER_HOST {where}): {detail}"
    compose = subprocess.run(
        ["docker", "compose", "version"], capture_output=True, text=True, timeout=30
    )
    if compose.returncode != 0:
        return "the docker compose v2 plugin is missing (DOCKER_CONFIG/cli-plugins)"
    return None


@pytest.fixture(scope="session")
def docker_engine() -> None:
    """Skip (or with REQUIRE_DOCKER=1, fail) when no usable engine is reachable."""
    problem = engine_problem()
    if problem is None:
        return
    if os.environ.get("REQUIRE_DOCKER") == "1":
        pytest.fail(f"REQUIRE_DOCKER=1 but {problem}", pytrace=False)
    pytest.skip(f"{problem}; {SANDBOX_HINT}")
