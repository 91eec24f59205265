"""Start the real service (Gunicorn + uvicorn workers) on a free port and a temp database."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def children_of(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except FileNotFoundError:
        return []
    return [int(item) for item in text.split()]


class ServerProcess:
    """One Gunicorn master with its workers, as `make run` starts it."""

    def __init__(
        self,
        data_dir: Path,
        *,
        workers: int = 2,
        env: dict[str, str] | None = None,
        port: int | None = None,
        run_dir: Path | None = None,
        user: str | None = None,
        prefix: list[str] | None = None,
    ) -> None:
        """`run_dir` holds the log and metrics files (default: beside the data)."""
        self.data_dir = Path(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        run_dir = Path(run_dir or data_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        self.workers = workers
        self.port = port or free_port()
        self.db_path = self.data_dir / "checkpoints.db"
        self.log_path = run_dir / f"server-{self.port}.log"
        self.env = {
            **os.environ,
            "HOST": "127.0.0.1",
            "PORT": str(self.port),
            "WEB_CONCURRENCY": str(workers),
            "CHECKPOINTS_DB_PATH": str(self.db_path),
            "APPOINTMENTS_DB_PATH": str(self.data_dir / "appointments.db"),
            "PROMETHEUS_MULTIPROC_DIR": str(run_dir / f"metrics-{self.port}"),
            "LOG_LEVEL": "warning",
            # Open every day, so "tomorrow" in a test books whatever day the suite runs on
            # (closed days are tested against a fixed clock in the unit tests).
            "BOOKING_OPEN_DAYS": "0,1,2,3,4,5,6",
            **(env or {}),
        }
        self.user = user
        self.prefix = prefix or []
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0, ready_path: str = "/readyz") -> ServerProcess:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [
                *self.prefix,
                sys.executable,
                "-m",
                "gunicorn",
                "-c",
                str(ROOT / "deploy" / "gunicorn.conf.py"),
            ],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            user=self.user,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log()}")
            try:
                if httpx.get(f"{self.base_url}{ready_path}", timeout=2).status_code == 200:
                    self._wait_for_workers(deadline)
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.kill()
        raise RuntimeError(f"server did not become ready:\n{self.log()}")

    def _wait_for_workers(self, deadline: float) -> None:
        while time.monotonic() < deadline and len(self.worker_pids()) < self.workers:
            time.sleep(0.05)
        time.sleep(0.3)  # let every worker finish its lifespan start-up

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def worker_pids(self) -> list[int]:
        return children_of(self.proc.pid) if self.proc else []

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 40.0) -> int:
        """Signal the master and wait; returns the exit code."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise

    def kill(self) -> None:
        """SIGKILL the master and every worker at once, like a crash or power cut of the app."""
        if self.proc is None:
            return
        for pid in [*self.worker_pids(), self.proc.pid]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.proc.wait(10)

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        if self.proc and self.proc.poll() is None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.stop(timeout=20)
