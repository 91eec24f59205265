"""Starting and stopping each peer runtime, as its own documentation starts it.

Both load `graph_entry.py` by path as graph `agent`, with the offline model and a fresh
SQLite appointments file, logging at warning (as ours runs in the benchmark). Each
server runs in a session of its own, so stopping it signals the whole process group
(`aegra serve` runs uvicorn as a child and does not forward SIGTERM), and its process
tree is found by session id.

- `langgraph dev` (langgraph-cli[inmem]): one process, `--no-reload`, runs queued on
  its in-memory queue with `--n-jobs-per-worker` at least the number of users, so no
  run waits for a job slot (ours has no such cap). Its thread ids must be UUIDs.
- `aegra serve` (aegra-cli): uvicorn with one worker, Aegra's local asyncio executor
  (no Redis), auth off (`AUTH_TYPE=noop`, its default), on a database of its own in a
  throwaway PostgreSQL cluster; it runs its Alembic migrations at start.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from loadtest.benchmark.peers.venvs import Venv
from loadtest.benchmark.pinning import Pinning, pin_server, postmaster_pid
from tests.support.server import free_port

GRAPH_ENTRY = Path(__file__).resolve().parent / "graph_entry.py"
THREAD_NAMESPACE = uuid.UUID("5b0c6f4e-7d1a-4c53-9a55-3f1f0b8f7a21")  # any fixed one
START_TIMEOUT_S = 180.0


def _stat_fields(pid: int) -> list[str] | None:
    """/proc/PID/stat after the command name: state, ppid, pgrp, session, ..."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()


def _all_pids() -> list[int]:
    return [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()]


def session_pids(sid: int) -> list[int]:
    """Every live process of session `sid` (a server started with start_new_session)."""
    found = []
    for pid in _all_pids():
        fields = _stat_fields(pid)
        if fields and int(fields[3]) == sid:
            found.append(pid)
    return found


def tree_pids(root: int) -> list[int]:
    """`root` and all its live descendants."""
    children: dict[int, list[int]] = {}
    for pid in _all_pids():
        fields = _stat_fields(pid)
        if fields:
            children.setdefault(int(fields[1]), []).append(pid)
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


class PeerServer:
    """One peer runtime serving the graph on a free port, from a scratch directory."""

    key = ""
    label = ""
    persists = ""

    def __init__(self, venv: Venv, work_dir: Path, *, users: int, latency_ms: int) -> None:
        self.venv = venv
        self.work_dir = work_dir
        self.users = users
        self.latency_ms = latency_ms
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log_path = work_dir / "server.log"
        self.proc: subprocess.Popen[bytes] | None = None

    # --- what each peer supplies ---------------------------------------------------
    def command(self) -> list[str]:
        raise NotImplementedError

    def extra_env(self) -> dict[str, str]:
        return {}

    def thread_id(self, name: str) -> str:
        """The peer's id for the workload's thread `name` (the workload's, by default)."""
        return name

    def db_pids(self) -> list[int]:
        """Database server processes whose CPU the peer's turns also cost."""
        return []

    # --- common ----------------------------------------------------------------------
    def env(self) -> dict[str, str]:
        env = {
            key: value
            for key, value in os.environ.items()
            # Nothing of this project's own configuration or virtualenv leaks in.
            if not key.startswith(("VIRTUAL_ENV", "PYTHON", "PROMETHEUS_", "CHECKPOINT"))
        }
        env.update(
            {
                "PATH": f"{self.venv.bin}:{os.environ.get('PATH', '')}",
                "LLM_PROVIDER": "offline",
                "OFFLINE_LLM_LATENCY_MS": str(self.latency_ms),
                "APPOINTMENTS_DB_PATH": str(self.work_dir / "appointments.db"),
                "LOG_LEVEL": "warning",
                "LANGSMITH_TRACING": "false",
                "LANGCHAIN_TRACING_V2": "false",
                "PYTHONUNBUFFERED": "1",
                **self.extra_env(),
            }
        )
        return env

    def start(self, pinning: Pinning | None) -> PeerServer:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                self.command(),
                cwd=self.work_dir,
                env=self.env(),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        pin_server(pinning, self.pids())
        return self

    def _wait_ready(self) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.label} exited ({self.proc.returncode}):\n{self.log()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.base_url}/info", timeout=5).status_code == 200:
                    return
            time.sleep(0.5)
        raise RuntimeError(f"{self.label} not ready after {START_TIMEOUT_S:.0f} s:\n{self.log()}")

    def log(self, chars: int = 4000) -> str:
        with contextlib.suppress(OSError):
            return self.log_path.read_text(errors="replace")[-chars:]
        return ""

    def app_pids(self) -> list[int]:
        return session_pids(self.proc.pid) if self.proc else []

    def pids(self) -> list[int]:
        return [*self.app_pids(), *self.db_pids()]

    def stop(self) -> None:
        if self.proc is None:
            return
        for sig, wait_s in ((signal.SIGTERM, 30), (signal.SIGKILL, 10)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)
            deadline = time.monotonic() + wait_s
            while time.monotonic() < deadline and session_pids(self.proc.pid):
                time.sleep(0.2)
                self.proc.poll()
            if not session_pids(self.proc.pid):
                break
        self.proc.wait(timeout=10)
        self.proc = None


class LangGraphDev(PeerServer):
    key = "langgraph"
    label = "LangGraph Server (langgraph dev, in-memory)"
    persists = (
        "nothing durable: in memory; pickles the whole state to .langgraph_api/ "
        "every 10 s (dev convenience, not per turn)"
    )

    def command(self) -> list[str]:
        config = self.work_dir / "langgraph.json"
        config.write_text(json.dumps({"dependencies": ["."], "graphs": {"agent": _graph()}}))
        return [
            str(self.venv.bin / "langgraph"),
            "dev",
            "--host", "127.0.0.1",
            "--port", str(self.port),
            "--config", str(config),
            "--no-browser",
            "--no-reload",
            "--n-jobs-per-worker", str(self.jobs),
            "--server-log-level", "WARNING",
        ]  # fmt: skip

    @property
    def jobs(self) -> int:
        return max(10, self.users)

    def extra_env(self) -> dict[str, str]:
        return {"LANGGRAPH_CLI_NO_ANALYTICS": "1"}

    def thread_id(self, name: str) -> str:
        # The in-memory runtime parses thread ids as UUIDs ("bench-0-1" is a 400).
        return str(uuid.uuid5(THREAD_NAMESPACE, name))


class Aegra(PeerServer):
    key = "aegra"
    label = "Aegra (aegra serve, PostgreSQL)"

    def __init__(self, venv: Venv, work_dir: Path, *, postgres: Any, durability: str = "",
                 **kwargs: Any) -> None:  # fmt: skip
        super().__init__(venv, work_dir, **kwargs)
        self.postgres = postgres
        self.durability = durability
        self.database_url = ""
        self.persists = self.describe_persistence(durability)

    @staticmethod
    def describe_persistence(durability: str) -> str:
        mode = durability or "async, its default"
        return (
            f"PostgreSQL: LangGraph's PostgreSQL checkpointer (durability {mode}) and store, "
            "its own assistant/thread/run tables"
        )

    def command(self) -> list[str]:
        config = self.work_dir / "aegra.json"
        config.write_text(json.dumps({"graphs": {"agent": _graph()}}))
        return [
            str(self.venv.bin / "aegra"),
            "serve",
            "--host", "127.0.0.1",
            "--port", str(self.port),
            "--config", str(config),
        ]  # fmt: skip

    def extra_env(self) -> dict[str, str]:
        env = {"DATABASE_URL": self.database_url, "AUTH_TYPE": "noop", "HOST": "127.0.0.1"}
        if self.durability:
            env["AEGRA_CHECKPOINT_DURABILITY"] = self.durability
        return env

    def start(self, pinning: Pinning | None) -> PeerServer:
        self.database_url = self.postgres.create_database(f"aegra_{self.port}")
        return super().start(pinning)

    def stop(self) -> None:
        super().stop()
        if self.database_url:
            with contextlib.suppress(Exception):
                self.postgres.drop_database(self.database_url)
            self.database_url = ""

    def db_pids(self) -> list[int]:
        cluster = getattr(self.postgres, "cluster", None)
        postmaster = postmaster_pid(cluster.data) if cluster is not None else None
        return tree_pids(postmaster) if postmaster else []


def _graph() -> str:
    return f"{GRAPH_ENTRY}:graph"


PEERS: dict[str, type[PeerServer]] = {"langgraph": LangGraphDev, "aegra": Aegra}
