"""Reaching one worker of a multi-worker server, and reading which worker ran a run."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

import httpx
import pytest
from langgraph_sdk import get_sync_client
from langgraph_sdk.client import SyncLangGraphClient

from tests.support.server import ServerProcess

T = TypeVar("T")


@contextlib.contextmanager
def only(server: ServerProcess, pid: int) -> Iterator[SyncLangGraphClient]:
    """A client whose new connections reach worker `pid` alone while the block lasts:
    the others are stopped (SIGSTOP), and a stopped worker accepts nothing. The client
    is closed at the end; one that must outlive the block is made outside it."""
    others = [other for other in server.worker_pids() if other != pid]
    for other in others:
        os.kill(other, signal.SIGSTOP)
    client = get_sync_client(url=server.base_url)
    try:
        yield client
    finally:
        client.http.client.close()
        for other in others:
            os.kill(other, signal.SIGCONT)


def wait_for(condition: Callable[[], T], seconds: float, what: str) -> T:
    """The condition's first true value, polled; a connection a dead worker had is retried."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if value := condition():
                return value
        time.sleep(0.05)
    pytest.fail(f"not within {seconds} s: {what}")


def worker_of(server: ServerProcess, run_id: str) -> str:
    """Which worker ran the run (host:pid), from its record in the database."""
    url = server.env.get("DATABASE_URL")
    if url:
        import psycopg

        with psycopg.connect(url) as conn:
            row = conn.execute("SELECT worker FROM runs WHERE run_id = %s", (run_id,)).fetchone()
    else:
        from service.storage.sqlite.driver import sqlite3

        with contextlib.closing(sqlite3.connect(server.db_path)) as conn:
            row = conn.execute("SELECT worker FROM runs WHERE run_id = ?", (run_id,)).fetchone()
    return row[0]


def worker_pid(server: ServerProcess, run_id: str) -> int:
    return int(worker_of(server, run_id).rsplit(":", 1)[1])
