"""One line naming the machine a benchmark ran on, so numbers are never read without it."""

from __future__ import annotations

import os
import platform
from pathlib import Path


def cpus() -> str:
    """How many CPUs, which model, and how loaded the machine was at the start."""
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = " ".join(f"{x:.1f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    return f"{os.cpu_count()} CPUs ({model or platform.machine()}), load average {load} at start"
