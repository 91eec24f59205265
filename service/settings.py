"""All configuration in one place: environment variables and `.env`.

Every setting is documented in `.env.example`. A bad value stops the service at
start with a message that names the setting, instead of failing on first use.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import zoneinfo
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

Durability = Literal["sync", "async", "exit"]
MultitaskStrategy = Literal["reject", "enqueue", "interrupt", "rollback"]

_HOURS = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-3]):([0-5]\d)$")


_ORIGIN = re.compile(r"^https?://[^/\s?#]+$")


class Settings(BaseSettings):
    """The service's settings. Field names map to upper-case environment variables."""

    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", frozen=True
    )

    # --- serving -----------------------------------------------------------------
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    web_concurrency: int = Field(2, ge=1, le=256)
    graceful_timeout_s: int = Field(30, ge=1, le=3600)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    # One JSON line per request on stderr (request, thread and run ids); off by default.
    access_log: bool = False
    gil_switch_interval_ms: float = Field(0.1, gt=0, le=100)
    # Connections (per worker): idle and stalled ones are closed within seconds.
    http_keepalive_timeout_s: int = Field(5, ge=1, le=600)
    http_header_timeout_s: float = Field(10.0, gt=0, le=600)
    http_body_timeout_s: float = Field(20.0, gt=0, le=3600)
    http_max_header_bytes: int = Field(16 * 1024, ge=1024, le=1024 * 1024)
    http_max_connections: int = Field(1000, ge=1, le=100_000)
    # Browser apps on other origins (CORS): comma-separated origins ("*": any); empty,
    # the default, sends no CORS headers, and a page on another site gets none.
    cors_allow_origins: str = ""
    cors_allow_methods: str = "GET,POST,PUT,PATCH,DELETE"
    cors_allow_headers: str = "*"
    cors_allow_credentials: bool = False
    cors_max_age_s: int = Field(600, ge=0, le=86_400)
    # The chat page at `/` (static files; its API calls need a key when auth is on).
    chat_page: bool = True
    # Webhooks (a run's `webhook`): private, loopback and link-local addresses are
    # refused unless allowed (a client must not make the server call inside its network).
    webhook_allow_private: bool = False
    webhook_timeout_s: float = Field(10.0, gt=0, le=120)
    webhook_retries: int = Field(2, ge=0, le=10)

    # --- persistence -------------------------------------------------------------
    checkpointer: Literal["sqlite", "memory", "postgres", "sqlite-stock"] = "sqlite"
    checkpoints_db_path: Path = Path("data/checkpoints.db")
    appointments_db_path: Path = Path("data/appointments.db")
    checkpoint_durability: Durability = "exit"
    database_url: str = ""
    postgres_pool_min_size: int = Field(1, ge=0, le=1000)
    postgres_pool_max_size: int = Field(8, ge=1, le=1000)
    postgres_pool_timeout_s: float = Field(5.0, gt=0, le=600)
    database_lock_url: str = ""

    # --- SQLite tuning (applied to every connection the service opens) ----------
    sqlite_journal_mode: Literal["WAL"] = "WAL"
    sqlite_synchronous: Literal["OFF", "NORMAL", "FULL", "EXTRA"] = "NORMAL"
    sqlite_cache_size: int = -64000
    sqlite_temp_store: Literal["DEFAULT", "FILE", "MEMORY"] = "MEMORY"
    sqlite_busy_timeout_ms: int = Field(30000, ge=0, le=600_000)
    sqlite_connect_timeout_s: float = Field(30.0, ge=0, le=600)
    sqlite_wal_autocheckpoint: int = Field(1000, ge=0)
    sqlite_wal_checkpoint_interval_ms: int = Field(50, ge=0, le=60_000)
    sqlite_journal_size_limit: int = Field(64 * 1024 * 1024, ge=-1)
    sqlite_allow_affected_version: bool = False
    sqlite_loop_first: bool = True

    # --- data lifecycle --------------------------------------------------------------
    checkpoint_retention: str = "all"
    checkpoint_cache_mb: int = Field(4, ge=0, le=4096)
    thread_ttl_days: float = Field(30.0, ge=0)
    # The Store API's items: a TTL in minutes for items put without one (0: they never
    # expire), and whether a read restarts an item's TTL.
    store_default_ttl_minutes: float = Field(0.0, ge=0, le=10 * 525_600)
    store_ttl_refresh_on_read: bool = True
    maintenance_interval_s: float = Field(60.0, gt=0, le=86_400)
    maintenance_batch_size: int = Field(100, ge=1, le=100_000)
    wal_truncate_bytes: int = Field(16 * 1024 * 1024, ge=0)

    # --- runs and the per-thread guard ------------------------------------------
    default_multitask_strategy: MultitaskStrategy = "enqueue"
    enqueue_timeout_s: float = Field(30.0, gt=0, le=3600)
    run_timeout_s: float = Field(120.0, gt=0, le=3600)
    # Background runs (`POST /threads/{id}/runs`): how many one worker runs at once,
    # and how often an idle worker looks for runs accepted by others (and for cancels).
    background_runs_per_worker: int = Field(8, ge=1, le=1000)
    run_queue_poll_s: float = Field(0.1, ge=0.01, le=60)
    # Resumable streams (`stream_resumable=True`): how long their events are kept, and
    # at most how many of one run.
    resumable_stream_ttl_s: int = Field(600, ge=1, le=7 * 24 * 3600)
    resumable_stream_max_events: int = Field(10_000, ge=1, le=1_000_000)
    busy_retry_after_s: int = Field(1, ge=1, le=600)
    max_message_chars: int = Field(8000, ge=1, le=1_000_000)
    max_messages_per_request: int = Field(20, ge=1, le=1000)
    max_request_bytes: int = Field(256 * 1024, ge=1024, le=64 * 1024 * 1024)

    # --- authentication and input limits ------------------------------------------------
    auth_enabled: bool = False
    api_keys: SecretStr = SecretStr("")
    api_keys_file: Path | None = None
    metrics_token: SecretStr = SecretStr("")
    allow_unauthenticated: bool = False
    api_docs_public: bool = False
    max_metadata_bytes: int = Field(4096, ge=2, le=1_000_000)
    max_json_depth: int = Field(8, ge=1, le=64)

    # --- model ---------------------------------------------------------------------
    llm_provider: Literal["offline", "openai"] = "offline"
    openai_api_key: str = ""
    openai_model: str = "gpt-4o-mini"
    openai_base_url: str = ""
    offline_llm_latency_ms: int = Field(0, ge=0, le=60_000)
    tool_max_retries: int = Field(2, ge=0, le=10)
    model_context_messages: int = Field(40, ge=2, le=10_000)

    # --- booking schedule ------------------------------------------------------------
    booking_services: Annotated[list[str], NoDecode] = [
        "haircut",
        "beard trim",
        "hair coloring",
        "manicure",
    ]
    booking_open_days: Annotated[list[int], NoDecode] = [0, 1, 2, 3, 4, 5]
    booking_hours: str = "09:00-18:00"
    booking_slot_minutes: int = Field(30, ge=5, le=480)
    booking_timezone: str = "Europe/Madrid"
    booking_horizon_days: int = Field(60, ge=1, le=366)
    # `interrupt`: a booking waits for a person's approval (human in the loop).
    booking_confirmation: Literal["none", "interrupt"] = "none"

    @field_validator("booking_services", mode="before")
    @classmethod
    def _split_services(cls, value: object) -> object:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @field_validator("booking_open_days", mode="before")
    @classmethod
    def _split_days(cls, value: object) -> object:
        if isinstance(value, str):
            return [int(item) for item in value.split(",") if item.strip()]
        return value

    @field_validator("api_keys_file", mode="before")
    @classmethod
    def _empty_path_is_none(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("checkpoint_retention")
    @classmethod
    def _retention(cls, value: str) -> str:
        value = value.strip().lower()
        if value in ("all", "keep_latest") or (value.isdigit() and int(value) >= 1):
            return value
        raise ValueError("expected all, keep_latest, or a number N >= 1 (keep the last N)")

    @field_validator("booking_services")
    @classmethod
    def _services_not_empty(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("at least one service is required")
        return [item.lower() for item in value]

    @field_validator("booking_open_days")
    @classmethod
    def _days_in_range(cls, value: list[int]) -> list[int]:
        if not value or any(day < 0 or day > 6 for day in value):
            raise ValueError("weekday numbers 0 (Monday) to 6 (Sunday), at least one")
        return sorted(set(value))

    @field_validator("booking_hours")
    @classmethod
    def _hours_format(cls, value: str) -> str:
        match = _HOURS.match(value)
        if not match or value[:5] >= value[6:]:
            raise ValueError("expected HH:MM-HH:MM with opening before closing, e.g. 09:00-18:00")
        return value

    @field_validator("booking_timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @staticmethod
    def _listed(value: str) -> list[str]:
        return [item.strip() for item in value.split(",") if item.strip()]

    @property
    def cors_origins(self) -> list[str]:
        return self._listed(self.cors_allow_origins)

    @property
    def cors_methods(self) -> list[str]:
        return [method.upper() for method in self._listed(self.cors_allow_methods)]

    @property
    def cors_headers(self) -> list[str]:
        return self._listed(self.cors_allow_headers)

    @model_validator(mode="after")
    def _cors_origins(self) -> Settings:
        for origin in self.cors_origins:
            if origin != "*" and not _ORIGIN.match(origin):
                raise ValueError(
                    f"CORS_ALLOW_ORIGINS: {origin!r} is not an origin (scheme://host[:port])"
                )
        if self.cors_allow_credentials and "*" in self.cors_origins:
            raise ValueError(
                "CORS_ALLOW_CREDENTIALS=true needs the origins listed, not '*' (any site "
                "could then call the API with the user's credentials)"
            )
        return self

    @model_validator(mode="after")
    def _provider_requirements(self) -> Settings:
        if self.llm_provider == "openai" and not (self.openai_api_key or self.openai_base_url):
            raise ValueError(
                "LLM_PROVIDER=openai needs OPENAI_API_KEY (or OPENAI_BASE_URL for a local server)"
            )
        if self.checkpointer == "postgres" and not self.database_url:
            raise ValueError("CHECKPOINTER=postgres needs DATABASE_URL")
        if self.auth_enabled and not (self.api_keys.get_secret_value() or self.api_keys_file):
            raise ValueError("AUTH_ENABLED=true needs API_KEYS or API_KEYS_FILE")
        loopback = self.host in ("127.0.0.1", "localhost", "::1")
        if not self.auth_enabled and not loopback and not self.allow_unauthenticated:
            raise ValueError(
                f"HOST={self.host} exposes the API beyond this machine without authentication; "
                "set AUTH_ENABLED=true with API_KEYS, or ALLOW_UNAUTHENTICATED=true"
            )
        return self

    # --- derived values ------------------------------------------------------------
    @property
    def opening_time(self) -> dt.time:
        return dt.time.fromisoformat(self.booking_hours[:5])

    @property
    def closing_time(self) -> dt.time:
        return dt.time.fromisoformat(self.booking_hours[6:])

    @property
    def keep_last_checkpoints(self) -> int | None:
        """How many root checkpoints each thread keeps; None keeps all."""
        if self.checkpoint_retention == "all":
            return None
        if self.checkpoint_retention == "keep_latest":
            return 1
        return int(self.checkpoint_retention)

    @property
    def tz(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.booking_timezone)

    def writer_wal_autocheckpoint(self) -> int:
        """Pages after which a commit checkpoints the WAL itself.

        With background checkpoints on, commits only do it as a backstop, at 2x the
        setting: a checkpoint inside a commit holds the write lock while it copies
        pages and syncs, and every writer of every worker waits behind it.
        """
        if self.sqlite_wal_checkpoint_interval_ms and self.sqlite_wal_autocheckpoint:
            return 2 * self.sqlite_wal_autocheckpoint
        return self.sqlite_wal_autocheckpoint

    def sqlite_pragmas(self) -> dict[str, str | int]:
        """The PRAGMAs applied to each connection, in the order they are set."""
        return {
            "journal_mode": self.sqlite_journal_mode,
            "synchronous": self.sqlite_synchronous,
            "cache_size": self.sqlite_cache_size,
            "temp_store": self.sqlite_temp_store,
            "busy_timeout": self.sqlite_busy_timeout_ms,
            "wal_autocheckpoint": self.sqlite_wal_autocheckpoint,
            "journal_size_limit": self.sqlite_journal_size_limit,
        }


class SettingsError(SystemExit):
    """Raised at start when the environment holds an invalid value."""


def format_validation_error(exc: ValidationError) -> str:
    lines = ["Invalid configuration:"]
    for error in exc.errors():
        name = "_".join(str(part) for part in error["loc"]).upper() or "settings"
        lines.append(f"  {name}: {error['msg']} (got {error.get('input')!r})")
    return "\n".join(lines)


def load_settings() -> Settings:
    """Build settings, turning a validation error into a readable start failure.

    `SECRETS_DIR` (e.g. /run/secrets) adds files named after settings as a source,
    such as `metrics_token`, so secrets need not sit in the environment.
    """
    try:
        return Settings(_secrets_dir=os.environ.get("SECRETS_DIR") or None)
    except ValidationError as exc:
        raise SettingsError(format_validation_error(exc)) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (cached: the environment does not change after start)."""
    return load_settings()
