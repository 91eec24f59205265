"""Static checks of the Prometheus and Grafana files: keys, the fixed datasource, panel basics."""

from __future__ import annotations

import re

import pytest

from tests.observability.support import (
    ALERTS,
    DASHBOARD,
    DATASOURCE_UID,
    GRAFANA_DIR,
    JOB,
    PROMETHEUS_CONFIG,
    load_dashboard,
    load_yaml,
)

REQUIRED_ALERTS = {
    "BookingAgentDown",
    "BookingAgentSqliteWalLarge",
    "BookingAgentStorageBusyErrors",
    "BookingAgentCheckpointLatencyHigh",
    "BookingAgentHttp5xxRatioHigh",
    "BookingAgentThreadGuardRejections",
}


def seconds(duration: str) -> float:
    match = re.fullmatch(r"(\d+)(ms|s|m)", duration)
    assert match, duration
    return int(match[1]) * {"ms": 0.001, "s": 1, "m": 60}[match[2]]


def test_prometheus_config() -> None:
    config = load_yaml(PROMETHEUS_CONFIG)
    assert config["rule_files"] == ["alerts.yml"]
    assert (PROMETHEUS_CONFIG.parent / config["rule_files"][0]).resolve() == ALERTS.resolve()
    (job,) = config["scrape_configs"]
    assert job["job_name"] == JOB
    assert job.get("metrics_path", "/metrics") == "/metrics"
    assert [c["targets"] for c in job["static_configs"]] == [["app:8000"]]
    interval = seconds(job.get("scrape_interval", config["global"]["scrape_interval"]))
    assert 5 <= interval <= 15


def test_alert_rules_are_complete() -> None:
    rules = [rule for group in load_yaml(ALERTS)["groups"] for rule in group["rules"]]
    assert {rule["alert"] for rule in rules} >= REQUIRED_ALERTS
    for rule in rules:
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}, rule["alert"]
        assert rule["annotations"]["summary"].strip(), rule["alert"]
        assert rule["annotations"]["description"].strip(), rule["alert"]
    by_name = {rule["alert"]: rule["expr"] for rule in rules}
    assert 'up{job="booking-agent"} == 0' in by_name["BookingAgentDown"]
    assert (
        "booking_agent_checkpoint_operation_seconds_bucket"
        in (by_name["BookingAgentCheckpointLatencyHigh"])
    )
    assert "histogram_quantile(0.99" in by_name["BookingAgentCheckpointLatencyHigh"]


def test_grafana_datasource_has_the_fixed_uid() -> None:
    provisioning = load_yaml(GRAFANA_DIR / "provisioning" / "datasources" / "prometheus.yml")
    assert provisioning["apiVersion"] == 1
    (source,) = provisioning["datasources"]
    assert source["uid"] == DATASOURCE_UID
    assert source["type"] == "prometheus"
    assert source["url"] == "http://prometheus:9090"
    assert source["access"] == "proxy"


def test_grafana_dashboard_provider() -> None:
    provisioning = load_yaml(GRAFANA_DIR / "provisioning" / "dashboards" / "dashboards.yml")
    assert provisioning["apiVersion"] == 1
    (provider,) = provisioning["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"


def test_dashboard_uses_only_the_fixed_datasource() -> None:
    text = DASHBOARD.read_text()
    assert "${DS_" not in text and "__inputs" not in text
    dashboard = load_dashboard()
    assert dashboard["uid"] and dashboard["title"]
    assert not dashboard.get("templating", {}).get("list"), "no datasource variables"


def panels() -> list[dict]:
    return load_dashboard()["panels"]


@pytest.mark.parametrize("panel", panels(), ids=lambda panel: panel["title"])
def test_every_panel_is_complete(panel: dict) -> None:
    assert panel["datasource"] == {"type": "prometheus", "uid": DATASOURCE_UID}
    assert panel.get("description", "").strip()
    defaults = panel["fieldConfig"]["defaults"]
    assert defaults.get("unit")
    steps = defaults["thresholds"]["steps"]
    assert steps and steps[0]["value"] is None
    assert [s["value"] for s in steps[1:]] == sorted(s["value"] for s in steps[1:])
    assert panel["targets"]
    for target in panel["targets"]:
        assert target["datasource"]["uid"] == DATASOURCE_UID
        assert target["expr"].strip() and target["refId"]


def test_panel_ids_are_unique_and_cover_the_topics() -> None:
    ids = [panel["id"] for panel in panels()]
    assert len(ids) == len(set(ids))
    exprs = " ".join(t["expr"] for panel in panels() for t in panel["targets"])
    checkpoint = "sum by (le, operation) (rate(booking_agent_checkpoint_operation_seconds_bucket"
    for quantile in ("0.5", "0.95", "0.99"):
        assert f"histogram_quantile({quantile}, {checkpoint}" in exprs
    for needle in (
        "booking_agent_run_duration_seconds_count",
        "booking_agent_run_duration_seconds_bucket",
        "booking_agent_sqlite_file_bytes",
        "booking_agent_storage_busy_errors_total",
        "booking_agent_storage_deferred_operations_total",
        "booking_agent_thread_guard_waits_total",
        "booking_agent_thread_guard_rejections_total",
        "booking_agent_runs_in_flight",
        "sum by (status) (rate(booking_agent_http_requests_total",
        "sum by (pid) (rate(booking_agent_worker_http_requests_total",
        "booking_agent_worker_up",
        "sum by (action) (rate(booking_agent_run_client_disconnects_total",
        "sum by (phase) (rate(booking_agent_http_read_timeouts_total",
        "max by (status) (booking_agent_threads",
        "booking_agent_runs_recovered_total",
    ):
        assert needle in exprs, needle
