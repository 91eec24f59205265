"""langgraph's SQLite store on the checkpointer's connections: a read that would restart
TTLs writes only when an item read has a TTL, and then restarts it."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from service.storage.base import Persistence
from service.storage.sqlite.driver import sqlite3


@pytest.fixture
def persistence(sqlite_persistence: Persistence) -> Persistence:
    return sqlite_persistence


def write_transactions() -> float:
    value = REGISTRY.get_sample_value(
        "booking_agent_storage_write_transactions_total", {"backend": "sqlite"}
    )
    return value or 0.0


def expires_at(path: Path, key: str) -> str | None:
    conn = sqlite3.connect(path)
    try:
        return conn.execute("SELECT expires_at FROM store WHERE key = ?", (key,)).fetchone()[0]
    finally:
        conn.close()


async def test_reading_items_without_a_ttl_writes_nothing(
    persistence: Persistence, tmp_path: Path
) -> None:
    store = persistence.store
    await store.aput(("customers",), "plain", {"name": "Ana"})
    before = write_transactions()
    for _ in range(3):
        item = await store.aget(("customers",), "plain")  # refresh_ttl follows the config
        assert item is not None and item.value == {"name": "Ana"}
    assert await store.aget(("customers",), "missing") is None
    assert write_transactions() == before


async def test_reading_an_item_with_a_ttl_restarts_it(
    persistence: Persistence, tmp_path: Path
) -> None:
    store = persistence.store
    await store.aput(("customers",), "short", {"name": "Bo"}, ttl=1)
    first = expires_at(tmp_path / "c.db", "short")
    await asyncio.sleep(1.1)  # SQLite's CURRENT_TIMESTAMP counts whole seconds
    before = write_transactions()
    item = await store.aget(("customers",), "short")
    assert item is not None and item.value == {"name": "Bo"}
    assert write_transactions() == before + 1
    restarted = expires_at(tmp_path / "c.db", "short")
    assert first is not None and restarted is not None and restarted > first
    unchanged = await store.aget(("customers",), "short", refresh_ttl=False)
    assert unchanged is not None and expires_at(tmp_path / "c.db", "short") == restarted
