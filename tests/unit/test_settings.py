"""Settings: defaults, parsing, and start failures that name the setting."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from service.settings import Settings, SettingsError, load_settings
from service.storage.sqlite.driver import (
    AffectedSqliteError,
    check_sqlite_version,
    has_wal_reset_bug,
)

ROOT = Path(__file__).resolve().parents[2]


def make(**values: object) -> Settings:
    return Settings(_env_file=None, **values)


def test_defaults_match_env_example(monkeypatch: pytest.MonkeyPatch) -> None:
    example = Settings(_env_file=ROOT / ".env.example")
    assert example == make()
    assert example.host == "127.0.0.1" and example.port == 8000
    assert example.web_concurrency == 2 and example.checkpointer == "sqlite"
    assert example.checkpoint_durability == "exit"


def test_every_setting_is_documented_in_env_example() -> None:
    text = (ROOT / ".env.example").read_text()
    documented = {
        line.split("=", 1)[0]
        for line in text.splitlines()
        if "=" in line and not line.startswith("#")
    }
    assert documented == {name.upper() for name in Settings.model_fields}


def test_lists_parse_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BOOKING_SERVICES", "Haircut, Massage")
    monkeypatch.setenv("BOOKING_OPEN_DAYS", "4,0")
    settings = load_settings()
    assert settings.booking_services == ["haircut", "massage"]
    assert settings.booking_open_days == [0, 4]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("PORT", "eighty"),
        ("WEB_CONCURRENCY", "0"),
        ("CHECKPOINTER", "mysql"),
        ("CHECKPOINT_DURABILITY", "sometimes"),
        ("BOOKING_HOURS", "18:00-09:00"),
        ("BOOKING_TIMEZONE", "Mars/Olympus"),
        ("BOOKING_OPEN_DAYS", "7"),
        ("SQLITE_SYNCHRONOUS", "MAYBE"),
    ],
)
def test_bad_value_names_the_setting(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as err:
        load_settings()
    assert name in str(err.value)


def test_openai_provider_needs_key_or_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLM_PROVIDER", "openai")
    with pytest.raises(SettingsError) as err:
        load_settings()
    assert "OPENAI_API_KEY" in str(err.value)


def test_server_refuses_to_start_with_bad_setting(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "service", "check-config"],
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "WEB_CONCURRENCY": "lots", "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "WEB_CONCURRENCY" in result.stderr


@pytest.mark.parametrize(
    ("version", "affected"),
    [
        ("3.40.1", True),
        ("3.51.2", True),
        ("3.51.3", False),
        ("3.53.4", False),
        ("3.50.6", True),
        ("3.50.7", False),
        ("3.44.5", True),
        ("3.44.6", False),
        ("3.6.23", False),
    ],
)
def test_wal_reset_bug_versions(version: str, affected: bool) -> None:
    assert has_wal_reset_bug(version) is affected


def test_affected_sqlite_refused_with_several_workers() -> None:
    with pytest.raises(AffectedSqliteError) as err:
        check_sqlite_version(make(web_concurrency=4), version="3.40.1")
    message = str(err.value)
    assert (
        "3.40.1" in message
        and "pysqlite3" in message
        and "SQLITE_ALLOW_AFFECTED_VERSION" in message
    )
    check_sqlite_version(make(web_concurrency=1), version="3.40.1")
    check_sqlite_version(
        make(web_concurrency=4, sqlite_allow_affected_version=True), version="3.40.1"
    )
    check_sqlite_version(make(web_concurrency=4), version="3.53.4")


def test_cors_origins_are_origins_and_never_any_with_credentials(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CORS_ALLOW_ORIGINS", " http://localhost:3000, https://app.example ")
    monkeypatch.setenv("CORS_ALLOW_METHODS", "get,post")
    settings = load_settings()
    assert settings.cors_origins == ["http://localhost:3000", "https://app.example"]
    assert settings.cors_methods == ["GET", "POST"]
    for origins, credentials in (
        ("localhost:3000", "false"),
        ("http://a/b", "false"),
        ("*", "true"),
    ):
        monkeypatch.setenv("CORS_ALLOW_ORIGINS", origins)
        monkeypatch.setenv("CORS_ALLOW_CREDENTIALS", credentials)
        with pytest.raises(SettingsError):
            load_settings()
