"""`make run` is `python -m service serve`: it validates the settings, then becomes Gunicorn."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.support.server import free_port

pytestmark = [pytest.mark.timeout(120), pytest.mark.backends("sqlite")]


def test_serve_starts_several_workers_that_answer(tmp_path: Path) -> None:
    port = free_port()
    env = {
        **os.environ,
        "PORT": str(port),
        "CHECKPOINTS_DB_PATH": str(tmp_path / "checkpoints.db"),
        "APPOINTMENTS_DB_PATH": str(tmp_path / "appointments.db"),
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
        "LOG_LEVEL": "warning",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "service", "serve"],
        cwd=tmp_path,  # not the checkout: the command finds its own Gunicorn configuration
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        pids = set()
        while time.monotonic() < deadline and len(pids) < 2:
            assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
            try:
                pids.add(httpx.get(f"http://127.0.0.1:{port}/info", timeout=2).json()["pid"])
            except httpx.HTTPError:
                time.sleep(0.2)
        assert len(pids) == 2, "two workers answer, as the README says"
        assert httpx.get(f"http://127.0.0.1:{port}/ok").json() == {"ok": True}
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(40)


def test_serve_refuses_a_bad_setting(tmp_path: Path) -> None:
    env = {**os.environ, "WEB_CONCURRENCY": "0"}
    result = subprocess.run(
        [sys.executable, "-m", "service", "serve"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "WEB_CONCURRENCY" in result.stderr + result.stdout
