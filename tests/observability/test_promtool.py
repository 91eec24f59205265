"""The Prometheus config and alert rules pass `promtool`, and the alerts fire when they should."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from tests.observability import support
from tests.observability.support import ALERTS, PROMETHEUS_CONFIG, ROOT, require_binary

pytestmark = pytest.mark.timeout(60)

MIB = 1024 * 1024


def promtool(*args: str | Path) -> subprocess.CompletedProcess[str]:
    tool = require_binary("promtool")
    return subprocess.run(
        [tool, *map(str, args)], cwd=ROOT, capture_output=True, text=True, timeout=30
    )


def test_check_config(tmp_path: Path) -> None:
    """The file as shipped (syntax: its token file exists only in the container), then a
    copy with a real token file, checked completely."""
    result = promtool("check", "config", "--syntax-only", PROMETHEUS_CONFIG.relative_to(ROOT))
    assert result.returncode == 0, result.stdout + result.stderr
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    token = tmp_path / "metrics_token"
    token.write_text("token")
    for job in config["scrape_configs"]:
        job["authorization"]["credentials_file"] = str(token)
    config["rule_files"] = [str(PROMETHEUS_CONFIG.parent / f) for f in config["rule_files"]]
    copy = tmp_path / "prometheus.yml"
    copy.write_text(yaml.safe_dump(config))
    result = promtool("check", "config", copy)
    assert result.returncode == 0, result.stdout + result.stderr


def test_check_rules() -> None:
    result = promtool("check", "rules", ALERTS.relative_to(ROOT))
    assert result.returncode == 0, result.stdout + result.stderr


def alert(name: str, at: str) -> dict:
    """`name` must not be firing at `at`."""
    return {"eval_time": at, "alertname": name, "exp_alerts": []}


def firing(name: str, at: str, summary: str, severity: str, **labels: str) -> dict:
    """`name` fires at `at` with these labels, and its summary renders to `summary`."""
    return {
        "eval_time": at,
        "alertname": name,
        "exp_alerts": [
            {
                "exp_labels": {"severity": severity, **labels},
                "exp_annotations": {"summary": summary},
            }
        ],
    }


def rules_without_descriptions(tmp_path: Path) -> Path:
    """alerts.yml minus the long descriptions, which `check rules` already validates."""
    rules = yaml.safe_load(ALERTS.read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            rule["annotations"].pop("description")
    path = tmp_path / "alerts.yml"
    path.write_text(yaml.safe_dump(rules, sort_keys=False))
    return path


TARGET = {"job": "booking-agent", "instance": "app:8000"}
INSTANCE = 'job="booking-agent", instance="app:8000"'


def test_alerts_fire_on_synthetic_series(tmp_path: Path) -> None:
    """`promtool test rules` on made-up series: each alert fires after its `for`, not before."""
    cases = {
        "rule_files": [str(rules_without_descriptions(tmp_path))],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [
                    {"series": f"up{{{INSTANCE}}}", "values": "1 0x10"},
                    {
                        "series": f'booking_agent_sqlite_file_bytes{{{INSTANCE}, file="wal"}}',
                        "values": f"{MIB} {80 * MIB}x10",
                    },
                    {
                        "series": "booking_agent_storage_busy_errors_total"
                        f'{{{INSTANCE}, backend="sqlite", operation="put"}}',
                        "values": "0 0 1+1x10",
                    },
                    {
                        "series": "booking_agent_http_requests_total"
                        f'{{{INSTANCE}, method="POST", route="/r", status="200"}}',
                        "values": "0+100x20",
                    },
                    {
                        "series": "booking_agent_http_requests_total"
                        f'{{{INSTANCE}, method="POST", route="/r", status="503"}}',
                        "values": "0+5x20",
                    },
                    {
                        "series": "booking_agent_thread_guard_rejections_total"
                        f'{{{INSTANCE}, reason="reject"}}',
                        "values": "0+60x20",
                    },
                    *(
                        {
                            "series": "booking_agent_checkpoint_operation_seconds_bucket"
                            f'{{{INSTANCE}, backend="sqlite", operation="put", le="{le}"}}',
                            "values": f"0+{per_minute}x20",
                        }
                        for le, per_minute in (("0.05", 1), ("0.1", 10), ("+Inf", 10))
                    ),
                    {
                        "series": "booking_agent_run_duration_seconds_count"
                        f'{{{INSTANCE}, outcome="success"}}',
                        "values": "0+80x20",
                    },
                    {  # waiting for approval is not a failure: still 10 %, not 20 %
                        "series": "booking_agent_run_duration_seconds_count"
                        f'{{{INSTANCE}, outcome="interrupted"}}',
                        "values": "0+10x20",
                    },
                    {
                        "series": "booking_agent_run_duration_seconds_count"
                        f'{{{INSTANCE}, outcome="error"}}',
                        "values": "0+10x20",
                    },
                    {"series": f"booking_agent_maintenance_leader{{{INSTANCE}}}", "values": "0x20"},
                    {
                        "series": "booking_agent_build_info"
                        f'{{{INSTANCE}, backend="sqlite", version="0.1.0"}}',
                        "values": "1x20",
                    },
                    {
                        "series": "booking_agent_maintenance_sweeps_total"
                        f'{{{INSTANCE}, result="error"}}',
                        "values": "0+1x20",
                    },
                    {  # a run waits longer and longer to start
                        "series": f"booking_agent_run_queue_oldest_seconds{{{INSTANCE}}}",
                        "values": "0+60x20",
                    },
                ],
                "alert_rule_test": [
                    alert("BookingAgentDown", "1m"),
                    firing(
                        "BookingAgentDown",
                        "3m",
                        "Booking agent app:8000 does not answer /metrics",
                        "critical",
                        **TARGET,
                    ),
                    alert("BookingAgentSqliteWalLarge", "4m"),
                    firing(
                        "BookingAgentSqliteWalLarge",
                        "7m",
                        "SQLite WAL on app:8000 is 80MiB",
                        "warning",
                        file="wal",
                        **TARGET,
                    ),
                    firing(
                        "BookingAgentStorageBusyErrors",
                        "5m",
                        "SQLite busy errors on put (app:8000)",
                        "warning",
                        operation="put",
                        **TARGET,
                    ),
                    firing(
                        "BookingAgentHttp5xxRatioHigh",
                        "10m",
                        "4.762% of HTTP requests fail with 5xx",
                        "critical",
                        **TARGET,
                    ),
                    firing(
                        "BookingAgentThreadGuardRejections",
                        "15m",
                        "Runs refused by the thread guard (reject): 1/s",
                        "warning",
                        reason="reject",
                        **TARGET,
                    ),
                    alert("BookingAgentCheckpointLatencyHigh", "8m"),
                    firing(
                        "BookingAgentCheckpointLatencyHigh",
                        "15m",
                        "Checkpoint put p99 is 99.44ms",
                        "warning",
                        operation="put",
                        **TARGET,
                    ),
                    alert("BookingAgentMaintenanceLeader", "5m"),
                    firing(
                        "BookingAgentMaintenanceLeader",
                        "12m",
                        "0 workers lead maintenance on app:8000 (expected 1)",
                        "warning",
                        **TARGET,
                    ),
                    alert("BookingAgentMaintenanceFailing", "10m"),
                    firing(
                        "BookingAgentMaintenanceFailing",
                        "17m",
                        "Maintenance passes fail on app:8000",
                        "warning",
                        **TARGET,
                    ),
                    alert("BookingAgentRunQueueStalled", "9m"),
                    firing(
                        "BookingAgentRunQueueStalled",
                        "11m",
                        "A background run on app:8000 has waited 11m 0s",
                        "warning",
                        **TARGET,
                    ),
                    alert("BookingAgentRunFailures", "8m"),
                    firing(
                        "BookingAgentRunFailures",
                        "15m",
                        "10% of runs do not succeed",
                        "warning",
                        **TARGET,
                    ),
                ],
            }
        ],
    }
    spec = tmp_path / "alerts_test.yml"
    spec.write_text(yaml.safe_dump(cases, sort_keys=False))
    result = promtool("test", "rules", spec)
    assert result.returncode == 0, result.stdout + result.stderr


def test_missing_tool_skips_locally_and_fails_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(support.shutil, "which", lambda name: None)
    monkeypatch.setattr(support.os, "access", lambda path, mode: False)
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="not installed"):
        require_binary("promtool")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI is set"):
        require_binary("promtool")
