"""Maintenance leadership: exactly one worker process at a time, handed over on death.

A POSIX record lock on a file beside the database. The kernel drops it the moment
its process dies (SIGKILL included), and a follower that retries every few seconds
takes over. Its own file, because closing any descriptor of a file drops all of the
process's record locks on it, and the thread guard's locks must not be touched.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from service.persistence.locks import locked_by_another_process, try_record_lock


class FileLeaderLock:
    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        self.held = False

    def try_acquire(self) -> bool:
        if not self.held:
            self.held = try_record_lock(self._fd, 0)
        return self.held

    def release(self) -> None:
        if self.held:
            fcntl.lockf(self._fd, fcntl.LOCK_UN, 1, 0, os.SEEK_SET)
            self.held = False

    def close(self) -> None:
        self.release()
        os.close(self._fd)


def service_is_running(path: Path | str) -> bool:
    """True while a live worker holds leadership: the service has this database open."""
    path = Path(path)
    if not path.exists():
        return False
    fd = os.open(path, os.O_RDWR)
    try:
        return locked_by_another_process(fd, 0)
    finally:
        os.close(fd)
