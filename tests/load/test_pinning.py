"""The benchmark's CPU pinning: server and client on CPUs of their own, children of a
pinned server inherit it, and one CPU (or --no-pin) pins nothing."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from loadtest.benchmark import pinning

needs_two = pytest.mark.skipif(
    not hasattr(os, "sched_getaffinity") or len(os.sched_getaffinity(0)) < 2,
    reason="needs 2 CPUs",
)


@needs_two
def test_the_plan_splits_the_cpus() -> None:
    plan = pinning.plan(True)
    assert plan is not None
    cpus = os.sched_getaffinity(0)
    assert plan.server | plan.client == cpus and not plan.server & plan.client
    assert len(plan.client) == max(1, len(cpus) // 4)
    assert "server on CPUs" in pinning.describe(plan)
    assert pinning.plan(False) is None and pinning.describe(None) == "not pinned"


@needs_two
def test_a_pinned_process_and_what_it_forks_stay_on_the_server_cpus() -> None:
    plan = pinning.plan(True)
    assert plan is not None
    parent = subprocess.Popen(
        [sys.executable, "-c", "import subprocess, sys, time; time.sleep(0.5); "
         "print(subprocess.run([sys.executable, '-c', 'import os; print(sorted("
         "os.sched_getaffinity(0)))'], capture_output=True, text=True).stdout)"],
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    pinning.pin_server(plan, [parent.pid])
    assert os.sched_getaffinity(parent.pid) == plan.server
    out, _ = parent.communicate(timeout=30)
    assert out.strip() == str(sorted(plan.server))
