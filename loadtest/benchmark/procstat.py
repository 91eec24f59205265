"""CPU time of the server's processes, from /proc (Linux).

Per-turn CPU is a steadier cost measure than throughput on a shared, noisy machine:
other work slows the wall clock but does not bill this server's processes.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterable
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def cpu_seconds(pid: int) -> float:
    """user + system time of one process so far; 0 when it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    fields = text[text.rindex(")") + 2 :].split()
    # After the command name: state is field 3, utime and stime are fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / _TICKS


def total_cpu_seconds(pids: Iterable[int]) -> dict[int, float]:
    return {pid: cpu_seconds(pid) for pid in pids}


def cpu_delta(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU used between two readings, over the processes alive at either."""
    pids = set(before) | set(after)
    return sum(after.get(pid, before.get(pid, 0.0)) - before.get(pid, 0.0) for pid in pids)


class CpuAt:
    """The processes' CPU seconds read at a given time.monotonic(), from a thread."""

    def __init__(self, when: float, pids: Iterable[int]) -> None:
        self._pids = list(pids)
        self._reading: dict[int, float] = {}
        self._thread = threading.Thread(target=self._read, args=(when,), daemon=True)
        self._thread.start()

    def _read(self, when: float) -> None:
        time.sleep(max(0.0, when - time.monotonic()))
        self._reading = total_cpu_seconds(self._pids)

    def result(self) -> dict[int, float]:
        self._thread.join()
        return self._reading
