"""A cross-process queue for this service's SQLite writers.

SQLite makes a writer that finds the lock taken sleep and retry with growing pauses
(1, 2, 5, 10 … 100 ms). With many worker processes those pauses, not the writes,
set the pace: each worker has one writer thread, and it sleeps while the lock is
long free again. Taking a POSIX record lock first (`F_SETLKW`) puts the writers in
the kernel's wait queue instead: the next one wakes the moment the previous commit
releases it. SQLite's own lock and `busy_timeout` still guard against writers from
outside the service (a backup, a `sqlite3` shell).
"""

from __future__ import annotations

import fcntl
import os
import threading
from pathlib import Path

from service.storage.locks import locked_by_another_process, try_record_lock


class WriteGate:
    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        # Own file and one descriptor for the process's life: closing another
        # descriptor of the same file would drop this process's lock on it.
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)

    def acquire(self) -> None:
        """Block the calling thread until this process holds the gate."""
        fcntl.lockf(self._fd, fcntl.LOCK_EX, 1, 0, os.SEEK_SET)

    def try_acquire(self) -> bool:
        """Take the gate only if no other process holds it; never waits."""
        return try_record_lock(self._fd, 0)

    def is_free(self) -> bool:
        """No other process holds the gate now."""
        return not locked_by_another_process(self._fd, 0)

    def release(self) -> None:
        fcntl.lockf(self._fd, fcntl.LOCK_UN, 1, 0, os.SEEK_SET)

    def close(self) -> None:
        os.close(self._fd)


class WriteTicket:
    """One queued write: a coroutine that gave up waiting cancels it before it starts."""

    __slots__ = ("_lock", "cancelled", "started")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.cancelled = False
        self.started = False

    def start(self) -> bool:
        """Called by the writer thread with the gate held: False means give up."""
        with self._lock:
            if self.cancelled:
                return False
            self.started = True
            return True

    def cancel(self) -> bool:
        """Called by the waiting coroutine: True if the write will never start."""
        with self._lock:
            if self.started:
                return False
            self.cancelled = True
            return True
