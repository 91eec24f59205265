"""The thread guard across hosts: one PostgreSQL advisory lock per thread.

A run takes a connection of its own from the guard's pool and holds the
session-level lock `pg_try_advisory_lock(key)` on it until the run ends; the key
is a 64-bit hash of the thread id. A waiting run polls with backoff until its
deadline. If a process dies, its sessions end and PostgreSQL frees its locks at
once. The pool's reset hook unlocks everything a returned connection still holds,
so no lock can leak into a later borrower.

Advisory locks are per session: the connection must reach PostgreSQL directly
(or a session-mode pgbouncer pool), never a transaction-mode pool; see
DATABASE_LOCK_URL.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import threading
import time
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from functools import partial
from typing import Any

import psycopg
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from service.storage.locks import LocalLocks, TryLock, hold_in_turn
from service.storage.postgres.pool import application_name, pooled

log = logging.getLogger(__name__)

_POLL_START_S = 0.002
_POLL_MAX_S = 0.05
# After the probe could not reach the database, it answers "not busy" for this long
# instead of blocking the event loop on another connection attempt.
PROBE_BACKOFF_S = 5.0
# pg_locks shows a bigint advisory key as (classid = high 32 bits, objid = low 32 bits).
IS_HELD_SQL = """
SELECT 1 FROM pg_locks
WHERE locktype = 'advisory' AND granted AND objsubid = 1
    AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
    AND classid = %s::bigint::oid AND objid = %s::bigint::oid
LIMIT 1
"""


def advisory_key(thread_id: str) -> int:
    """A signed 64-bit key: what pg_advisory_lock(bigint) takes."""
    digest = hashlib.blake2b(thread_id.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def lock_parts(key: int) -> tuple[int, int]:
    return (key >> 32) & 0xFFFFFFFF, key & 0xFFFFFFFF


async def unlock_all(conn: AsyncConnection[Any]) -> None:
    """The guard pool's reset hook: a returned connection holds no lock, whatever happened."""
    await conn.execute("SELECT pg_advisory_unlock_all()")


class PostgresAdvisoryGuard:
    """At most one run per thread across every worker of every host on one database."""

    def __init__(self, pool: AsyncConnectionPool, probe_url: str, *, retry_after_s: int) -> None:
        self.pool = pool
        self.probe_url = probe_url
        self.retry_after_s = retry_after_s
        self._local = LocalLocks()
        self._probe: psycopg.Connection[Any] | None = None
        self._probe_lock = threading.Lock()
        self._probe_failed_at = -PROBE_BACKOFF_S

    @staticmethod
    async def _try_lock(conn: AsyncConnection[Any], key: int) -> bool:
        row = await (await conn.execute("SELECT pg_try_advisory_lock(%s) AS ok", (key,))).fetchone()
        return bool(row and row["ok"])

    @staticmethod
    async def _unlock(conn: AsyncConnection[Any], key: int) -> None:
        try:
            await conn.execute("SELECT pg_advisory_unlock(%s)", (key,))
        except psycopg.Error:
            # The session is gone, and its locks with it; the pool drops the connection.
            log.warning("advisory unlock failed; the lock ended with its session")

    def hold(
        self, thread_id: str, *, wait: bool, timeout_s: float, counted: bool = True
    ) -> AbstractAsyncContextManager[bool]:
        """Runs of this worker line up first, so only one at a time holds a connection
        while it waits for the thread (see `hold_in_turn`)."""
        return hold_in_turn(
            self._local,
            thread_id,
            wait=wait,
            timeout_s=timeout_s,
            session=partial(self._session, advisory_key(thread_id), wait),
            counted=counted,
        )

    @asynccontextmanager
    async def _session(self, key: int, wait: bool, deadline: float) -> AsyncIterator[TryLock]:
        # Every run in flight holds a guard connection: when all are taken, an enqueued
        # run waits for one until its own deadline.
        patience = max(self.pool.timeout, deadline - time.monotonic() if wait else 0)
        async with pooled(self.pool, self.retry_after_s, timeout=patience) as conn:
            held = False

            async def try_lock() -> bool:
                nonlocal held
                held = await self._try_lock(conn, key)
                return held

            try:
                yield try_lock
            finally:
                # Cancelled halfway, the connection goes back busy and the pool closes
                # it: the session ends and so does the lock.
                if held:
                    await self._unlock(conn, key)

    # --- is_busy: a synchronous look at pg_locks, which never takes the lock -------------
    def _probe_connection(self) -> psycopg.Connection[Any]:
        if self._probe is None or self._probe.closed:
            self._probe = psycopg.connect(
                self.probe_url,
                autocommit=True,
                prepare_threshold=None,
                connect_timeout=2,
                application_name=application_name("probe"),
            )
        return self._probe

    def is_busy(self, thread_id: str) -> bool:
        """True while any session holds the thread's lock.

        Synchronous (the ThreadGuard protocol), so it uses its own small connection;
        when the database cannot answer it says "not busy" rather than block.
        """
        if self._local.locked(thread_id):
            return True
        with self._probe_lock:
            if time.monotonic() - self._probe_failed_at < PROBE_BACKOFF_S:
                return False
            for _ in range(2):  # once more on a fresh connection after a restart
                try:
                    conn = self._probe_connection()
                    row = conn.execute(IS_HELD_SQL, lock_parts(advisory_key(thread_id))).fetchone()
                    return row is not None
                except psycopg.Error:
                    self._close_probe()
            self._probe_failed_at = time.monotonic()
            log.warning("could not read pg_locks; reporting thread %s as not busy", thread_id)
            return False

    def _close_probe(self) -> None:
        if self._probe is not None:
            with contextlib.suppress(psycopg.Error):
                self._probe.close()
            self._probe = None

    def close(self) -> None:
        with self._probe_lock:
            self._close_probe()
