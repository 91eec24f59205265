"""The short load profile end to end: real server, real Locust, gates applied."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.support.server import ROOT


def test_short_profile_passes_its_gates(tmp_path: Path) -> None:
    report_dir = tmp_path / "reports"
    env = {
        **os.environ,
        "LOADTEST_PROFILE": "short",
        "LOADTEST_STEP_SECONDS": "5",
        "LOADTEST_MAX_USERS": "25",
        "LOADTEST_REPORT_DIR": str(report_dir),
        "LOADTEST_WORKERS": "2",
    }
    env.pop("LOADTEST_HOST", None)
    result = subprocess.run(
        [sys.executable, str(ROOT / "loadtest" / "run.py")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "PASS" in result.stdout
    for name in ("loadtest_stats.csv", "loadtest_steps.csv", "report.html"):
        assert (report_dir / name).stat().st_size > 0, name
