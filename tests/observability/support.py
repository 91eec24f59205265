"""Helpers for the observability tests: scrapes, turns, binaries, dashboard and rule queries."""

from __future__ import annotations

import json
import math
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from langgraph_sdk import get_sync_client
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS_DIR = ROOT / "deploy" / "prometheus"
PROMETHEUS_CONFIG = PROMETHEUS_DIR / "prometheus.yml"
ALERTS = PROMETHEUS_DIR / "alerts.yml"
GRAFANA_DIR = ROOT / "deploy" / "grafana"
DASHBOARD = GRAFANA_DIR / "dashboards" / "booking-agent.json"
DATASOURCE_UID = "booking-agent-prometheus"
JOB = "booking-agent"
RUNS_ROUTE = "/threads/{thread_id}/runs/wait"

# Two kinds of turn: a greeting (one model call) and a question that calls a tool.
GREETING = "hi"
TOOL_QUESTION = "What times are free for a haircut tomorrow?"

# Grafana's built-in variables, replaced by values Prometheus accepts on its own.
GRAFANA_VARIABLES = {
    "$__rate_interval": "1m",
    "$__interval": "15s",
    "$__range": "5m",
    "${__rate_interval}": "1m",
    "${__interval}": "15s",
    "${__range}": "5m",
}


def require_binary(name: str) -> str:
    """Path of a Prometheus tool; skip without it, except in CI, where it must be installed."""
    path = shutil.which(name) or (
        f"/usr/bin/{name}" if os.access(f"/usr/bin/{name}", os.X_OK) else None
    )
    if path:
        return path
    reason = f"`{name}` is not installed (Debian package `prometheus`, which .ci/run installs)"
    if os.environ.get("CI"):
        pytest.fail(f"{reason}; CI is set, so this is an error, not a skip", pytrace=False)
    pytest.skip(reason)


SeriesKey = tuple[str, tuple[tuple[str, str], ...]]


@dataclass
class Scrape:
    """One parsed `/metrics` answer."""

    text: str
    samples: dict[SeriesKey, float] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str) -> Scrape:
        scrape = cls(text)
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                key = (sample.name, tuple(sorted(sample.labels.items())))
                assert key not in scrape.samples, f"duplicate series {key}"
                scrape.samples[key] = sample.value
        return scrape

    @property
    def names(self) -> set[str]:
        return {name for name, _ in self.samples}

    def series(self, name: str, **labels: str) -> dict[tuple[tuple[str, str], ...], float]:
        """Series of `name` whose labels include `labels`, keyed by their full label set."""
        return {
            key: value
            for (sample_name, key), value in self.samples.items()
            if sample_name == name and set(labels.items()) <= set(key)
        }

    def total(self, name: str, **labels: str) -> float:
        return sum(self.series(name, **labels).values())

    def by_label(self, name: str, label: str, **labels: str) -> dict[str, float]:
        return {dict(key)[label]: value for key, value in self.series(name, **labels).items()}

    def series_lines(self) -> list[str]:
        return [line for line in self.text.splitlines() if line and not line.startswith("#")]


def scrape(base_url: str) -> Scrape:
    """GET /metrics on a fresh connection."""
    response = httpx.get(f"{base_url}/metrics", timeout=10)
    response.raise_for_status()
    return Scrape.parse(response.text)


def turn(
    base_url: str,
    thread_id: str,
    text: str = GREETING,
    *,
    api_key: str | None = None,
    **options: Any,
) -> dict:
    """One run on its own client, so on its own connection (and maybe another worker)."""
    client = get_sync_client(url=base_url, timeout=60, api_key=api_key)
    try:
        return client.runs.wait(
            thread_id,
            "agent",
            input={"messages": [{"role": "user", "content": text}]},
            if_not_exists="create",
            **options,
        )
    finally:
        client.close()


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def load_dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def dashboard_queries() -> list[tuple[str, str]]:
    """(panel title, PromQL with Grafana variables replaced) for every panel target."""
    queries = []
    for panel in load_dashboard()["panels"]:
        for target in panel.get("targets", []):
            queries.append((panel["title"], to_promql(target["expr"])))
    return queries


def alert_queries() -> list[tuple[str, str]]:
    """(alert name, expression) for every rule in alerts.yml."""
    return [
        (rule.get("alert") or rule["record"], rule["expr"])
        for group in load_yaml(ALERTS)["groups"]
        for rule in group["rules"]
    ]


def to_promql(expr: str) -> str:
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    assert "$" not in expr, f"unknown Grafana variable left in {expr!r}"
    return expr


_SELECTOR = re.compile(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\s*\{")
_OWN_METRIC = re.compile(r"\bbooking_agent_[a-zA-Z0-9_]+")


def metric_names(expr: str) -> set[str]:
    """Metric names an expression selects: every `name{...}` and every `booking_agent_*`."""
    return set(_SELECTOR.findall(expr)) | set(_OWN_METRIC.findall(expr))


def finite_values(result: list[dict[str, Any]]) -> list[float]:
    """Finite numbers in an instant-query vector result."""
    values = [float(item["value"][1]) for item in result]
    return [value for value in values if math.isfinite(value)]
