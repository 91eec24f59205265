"""Cross-process record locks, and on them the per-thread run guard: at most one run
per thread across all worker processes.

LangGraph reads a thread's latest checkpoint once when a run starts and appends its
own chain after it. Two concurrent runs on one thread fork the history and one
branch is lost. The guard serializes runs per thread.

`FileLockGuard` (one host, any number of processes) uses POSIX record locks on one
lock file: each thread id maps to one byte at a 62-bit hashed offset, so unrelated
threads never wait on each other. The kernel drops a process's record locks the
moment it dies, SIGKILL included, so a crashed worker frees its threads
immediately; a waiting run notices within one poll interval (at most 25 ms).
POSIX record locks belong to the process, so a per-thread `asyncio.Lock` orders
runs inside one worker first. A backend that spans hosts (PostgreSQL advisory
locks) implements the same `ThreadGuard` protocol.
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import os
import struct
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Protocol

from service.observability import metrics

_OFFSET_MASK = (1 << 62) - 1
_POLL_START_S = 0.001
_POLL_MAX_S = 0.025
# struct flock on Linux: short l_type, short l_whence, off_t l_start, off_t l_len, pid_t l_pid.
_FLOCK = "hhqqi"


class ThreadBusyError(RuntimeError):
    """The thread has a run in flight and the strategy does not wait (409)."""


class ThreadWaitTimeoutError(ThreadBusyError):
    """An enqueued run waited longer than the configured timeout (409)."""


class ThreadGuard(Protocol):
    """What the run lifecycle needs from a guard; each backend provides one."""

    def hold(
        self, thread_id: str, *, wait: bool, timeout_s: float, counted: bool = True
    ) -> AbstractAsyncContextManager[bool | None]:
        """Async context manager: hold the thread, waiting up to `timeout_s` if `wait`.

        It yields whether it had to wait (None: unknown), so a caller can skip
        re-reading state that cannot have changed. An uncounted hold (the queue's
        probe of a thread) leaves the waits and rejections metrics alone.
        """
        ...

    def is_busy(self, thread_id: str) -> bool:
        """True when any process holds the thread now."""
        ...

    def close(self) -> None: ...


def try_record_lock(fd: int, offset: int) -> bool:
    """Take the byte at `offset` for this process if no other process holds it; never waits."""
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, offset, os.SEEK_SET)
    except (BlockingIOError, PermissionError):
        return False
    return True


def locked_by_another_process(fd: int, offset: int) -> bool:
    """Whether another process holds the byte at `offset` (F_GETLK asks without taking it)."""
    query = struct.pack(_FLOCK, fcntl.F_WRLCK, os.SEEK_SET, offset, 1, 0)
    answer = fcntl.fcntl(fd, fcntl.F_GETLK, query)
    return struct.unpack(_FLOCK, answer)[0] != fcntl.F_UNLCK


def thread_offset(thread_id: str) -> int:
    digest = hashlib.blake2b(thread_id.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") & _OFFSET_MASK


class LocalLocks:
    """Per-thread asyncio locks, dropped when no coroutine uses them."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    def enter(self, key: str) -> asyncio.Lock:
        lock, users = self._locks.get(key, (None, 0))
        if lock is None:
            lock = asyncio.Lock()
        self._locks[key] = (lock, users + 1)
        return lock

    def leave(self, key: str) -> None:
        lock, users = self._locks[key]
        if users <= 1:
            del self._locks[key]
        else:
            self._locks[key] = (lock, users - 1)

    def locked(self, key: str) -> bool:
        entry = self._locks.get(key)
        return entry is not None and entry[0].locked()


TryLock = Callable[[], Awaitable[bool]]
# Given the wait's deadline, a context that yields a try-lock function and releases the
# lock, if it was taken, on exit.
Session = Callable[[float], AbstractAsyncContextManager[TryLock]]


@asynccontextmanager
async def hold_in_turn(
    local: LocalLocks,
    thread_id: str,
    *,
    wait: bool,
    timeout_s: float,
    session: Session,
    counted: bool = True,
) -> AsyncIterator[bool]:
    """What every guard does around its own lock: runs of this worker line up on an
    asyncio lock first, then the cross-process lock is polled with backoff until the
    deadline; waits and refusals are counted. Yields whether the run had to wait."""
    deadline = time.monotonic() + timeout_s
    started = time.perf_counter()
    waited = False
    lock = local.enter(thread_id)
    try:
        if lock.locked():
            if not wait:
                raise ThreadBusyError(thread_id)
            waited = True
            try:
                await asyncio.wait_for(lock.acquire(), max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                raise ThreadWaitTimeoutError(thread_id) from None
        else:
            await lock.acquire()
        try:
            async with session(deadline) as try_lock:
                delay = _POLL_START_S
                while not await try_lock():
                    if not wait:
                        raise ThreadBusyError(thread_id)
                    waited = True
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise ThreadWaitTimeoutError(thread_id)
                    await asyncio.sleep(min(delay, remaining))
                    delay = min(delay * 2, _POLL_MAX_S)
                if waited:
                    metrics.GUARD_WAITS.inc()
                    metrics.GUARD_WAIT_SECONDS.observe(time.perf_counter() - started)
                yield waited
        finally:
            lock.release()
    except ThreadWaitTimeoutError:
        metrics.GUARD_REJECTIONS.labels(reason="timeout").inc()
        raise
    except ThreadBusyError:
        if counted:
            metrics.GUARD_REJECTIONS.labels(reason="reject").inc()
        raise
    finally:
        local.leave(thread_id)


class _RecordLock:
    """One hold of a thread's byte in the lock file (a plain class: this is the hot path)."""

    __slots__ = ("guard", "held", "offset")

    def __init__(self, guard: FileLockGuard, offset: int) -> None:
        self.guard, self.offset, self.held = guard, offset, False

    async def try_lock(self) -> bool:
        self.held = self.guard._try_lock(self.offset)
        return self.held

    async def __aenter__(self) -> TryLock:
        return self.try_lock

    async def __aexit__(self, *exc: object) -> None:
        if self.held:
            self.guard._unlock(self.offset)


class FileLockGuard:
    """Cross-process guard for one host, on a lock file beside the database."""

    def __init__(self, lock_path: Path | str) -> None:
        self.lock_path = Path(lock_path)
        self.lock_path.parent.mkdir(parents=True, exist_ok=True)
        # One descriptor for the life of the process: closing any descriptor of the
        # file would drop all of this process's locks on it.
        self._fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        self._local = LocalLocks()

    def _try_lock(self, offset: int) -> bool:
        return try_record_lock(self._fd, offset)

    def _unlock(self, offset: int) -> None:
        fcntl.lockf(self._fd, fcntl.LOCK_UN, 1, offset, os.SEEK_SET)

    def is_busy(self, thread_id: str) -> bool:
        if self._local.locked(thread_id):
            return True
        # Probing never disturbs a run: it does not take the lock.
        return locked_by_another_process(self._fd, thread_offset(thread_id))

    def hold(
        self, thread_id: str, *, wait: bool, timeout_s: float, counted: bool = True
    ) -> AbstractAsyncContextManager[bool]:
        return hold_in_turn(
            self._local,
            thread_id,
            wait=wait,
            timeout_s=timeout_s,
            session=self._session(thread_id),
            counted=counted,
        )

    def _session(self, thread_id: str) -> Session:
        offset = thread_offset(thread_id)
        return lambda _deadline: _RecordLock(self, offset)

    def close(self) -> None:
        os.close(self._fd)
