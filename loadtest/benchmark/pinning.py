"""CPU pinning: the service (and PostgreSQL, when used) on one set of CPUs, the load
client on the others, so that the client's work never competes with the server's
and CPU per turn reads the same whichever process the scheduler favoured.

With fewer than 2 CPUs, or `--no-pin`, nothing is pinned and the report says so.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Pinning:
    server: frozenset[int]
    client: frozenset[int]

    def describe(self) -> str:
        return f"pinned: server on CPUs {_ranges(self.server)}, client on {_ranges(self.client)}"


def plan(enabled: bool) -> Pinning | None:
    """A quarter of the CPUs (at least one) for the client, the rest for the server."""
    if not enabled or not hasattr(os, "sched_getaffinity"):
        return None
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return None
    client = max(1, len(cpus) // 4)
    return Pinning(frozenset(cpus[:-client]), frozenset(cpus[-client:]))


def describe(pinning: Pinning | None) -> str:
    return pinning.describe() if pinning else "not pinned"


def pin_client(pinning: Pinning | None) -> None:
    """This process and the client processes it starts later."""
    if pinning:
        os.sched_setaffinity(0, pinning.client)


def pin_server(pinning: Pinning | None, pids: list[int]) -> None:
    """Running server processes; the processes they fork later inherit it."""
    if not pinning:
        return
    for pid in pids:
        for each in (pid, *_children(pid)):
            with contextlib.suppress(ProcessLookupError):
                os.sched_setaffinity(each, pinning.server)


def postmaster_pid(data_dir: Path) -> int | None:
    try:
        return int((data_dir / "postmaster.pid").read_text().split("\n", 1)[0])
    except (OSError, ValueError):
        return None


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def _ranges(cpus: frozenset[int]) -> str:
    return ",".join(str(cpu) for cpu in sorted(cpus))
