"""Data lifecycle: linear storage, retention and TTL, one sweeper, bounded WAL, backup.

Linear storage and the single sweeper run on both backends; the WAL, VACUUM and
backup tests are about the SQLite file (PostgreSQL's sweeps: tests/storage).
"""

from __future__ import annotations

import datetime as dt
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import httpx
import psycopg
import pytest
from langchain_core.messages import messages_from_dict
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from langgraph_sdk import get_sync_client
from psycopg.rows import dict_row

from service.settings import Settings
from service.storage.postgres.schema import LEADER_LOCK, LOCK_CLASS
from service.storage.records import iso_utc
from service.storage.sqlite.driver import sqlite3
from service.storage.sqlite.maintenance import stats, sweep
from service.storage.sqlite.saver import SqliteCheckpointer
from service.storage.sqlite.schema import init_database
from tests.support.server import ROOT, ServerProcess

pytestmark = pytest.mark.timeout(300)


def humans(values: dict) -> list[str]:
    return [m["content"] for m in values.get("messages", []) if m["type"] == "human"]


def turn(base: str, thread_id: str, text: str) -> httpx.Response:
    return httpx.post(
        f"{base}/threads/{thread_id}/runs/wait",
        json={
            "assistant_id": "agent",
            "input": {"messages": [{"role": "user", "content": text}]},
            "if_not_exists": "create",
        },
        timeout=60,
    )


def _stored_sqlite(db_path: Path, tid: str) -> int:
    conn = sqlite3.connect(str(db_path))
    stored = conn.execute(
        "SELECT coalesce(sum(length(checkpoint) + length(metadata)), 0) FROM checkpoints "
        "WHERE thread_id = ?",
        (tid,),
    ).fetchone()[0]
    stored += conn.execute(
        "SELECT coalesce(sum(length(value)), 0) FROM writes WHERE thread_id = ?", (tid,)
    ).fetchone()[0]
    stored += conn.execute(
        "SELECT coalesce(sum(length(messages)), 0) FROM checkpoint_messages WHERE thread_id = ?",
        (tid,),
    ).fetchone()[0]
    conn.close()
    return stored


def _stored_postgres(database_url: str, tid: str) -> int:
    with psycopg.connect(database_url, autocommit=True, row_factory=dict_row) as conn:
        stored = conn.execute(
            "SELECT (SELECT coalesce(sum(octet_length(checkpoint::text) "
            "+ octet_length(metadata::text)), 0) FROM checkpoints WHERE thread_id = %(t)s) "
            "+ (SELECT coalesce(sum(octet_length(blob)), 0) FROM checkpoint_blobs "
            "WHERE thread_id = %(t)s) "
            "+ (SELECT coalesce(sum(octet_length(blob)), 0) FROM checkpoint_writes "
            "WHERE thread_id = %(t)s) "
            "+ (SELECT coalesce(sum(octet_length(messages)), 0) FROM checkpoint_messages "
            "WHERE thread_id = %(t)s) AS stored",
            {"t": tid},
        ).fetchone()["stored"]
    return int(stored)


def test_hundred_turn_conversation_stores_linear_size(
    tmp_path: Path, backend_env: dict[str, str]
) -> None:
    with ServerProcess(tmp_path, workers=2, env=backend_env) as srv:
        tid = str(uuid.uuid4())
        latencies = []
        for i in range(100):
            started = time.perf_counter()
            assert turn(srv.base_url, tid, f"What services do you offer? ({i})").status_code == 200
            latencies.append(time.perf_counter() - started)
        if "DATABASE_URL" in backend_env:
            stored = _stored_postgres(backend_env["DATABASE_URL"], tid)
        else:
            stored = _stored_sqlite(srv.db_path, tid)
        state = httpx.get(f"{srv.base_url}/threads/{tid}/state", timeout=60).json()
        messages = messages_from_dict(
            [{"type": m["type"], "data": m} for m in state["values"]["messages"]]
        )
        assert len([m for m in messages if m.type == "human"]) == 100
        history = httpx.post(
            f"{srv.base_url}/threads/{tid}/history", json={"limit": 1000}, timeout=60
        ).json()
        assert len(history) >= 100  # every turn's checkpoint is kept, by default
        message_bytes = len(JsonPlusSerializer().dumps_typed(messages)[1])
        ratio = stored / message_bytes
        early = sorted(latencies[3:8])[2]
        late = sorted(latencies[-5:])[2]
        print(
            f"stored {stored} B for {message_bytes} B of messages: {ratio:.2f}x; "
            f"turn 5 {early * 1000:.1f} ms, turn 100 {late * 1000:.1f} ms"
        )
        assert ratio <= 3.0


def test_a_conversation_held_on_one_worker_is_not_decoded_again(tmp_path: Path) -> None:
    """On a keep-alive connection (one worker) every read after the first write is a hit,
    and a turn taken by the other worker in between is read, not the stale copy."""
    from tests.observability.support import Scrape

    with ServerProcess(tmp_path, workers=2) as srv, httpx.Client(base_url=srv.base_url) as one:
        tid = str(uuid.uuid4())
        body = {"assistant_id": "agent", "if_not_exists": "create"}

        def say(client: httpx.Client, text: str) -> dict:
            message = {"messages": [{"role": "user", "content": text}]}
            response = client.post(f"/threads/{tid}/runs/wait", json={**body, "input": message})
            assert response.status_code == 200, response.text
            return response.json()

        pinned = one.get("/info").json()["pid"]
        for i in range(10):
            say(one, f"What services do you offer? ({i})")
        before = Scrape.parse(one.get("/metrics").text)
        result = "booking_agent_checkpoint_cache_reads_total"
        assert before.total(result, result="hit") >= 9
        assert before.total(result, result="miss") == 0

        # The other worker takes a turn; the pinned worker must see it.
        for _ in range(50):
            with httpx.Client(base_url=srv.base_url) as other:
                if other.get("/info").json()["pid"] != pinned:
                    say(other, "And on the other worker?")
                    break
        else:
            pytest.fail("no connection reached the other worker")
        values = say(one, "Back on the first one")
        assert humans(values)[-2:] == ["And on the other worker?", "Back on the first one"]
        assert len(humans(values)) == 12
        after = Scrape.parse(one.get("/metrics").text)
        assert after.total(result, result="miss") >= 1


def _seed(path: Path, settings: Settings, threads: int, turns: int) -> None:
    """Write real graph checkpoints (keeping all of them) through the saver."""
    import asyncio

    from service.agent.graph import build_graph
    from service.agent.model import build_model
    from service.agent.tools import build_tools
    from service.bookings.store import BookingStore

    init_database(path, settings)
    store = BookingStore(path.with_name("appointments.db"), settings)
    store.init_schema()
    saver = SqliteCheckpointer(path, settings, keep_last=None)
    graph = build_graph(build_model(settings), build_tools(store, settings), settings).compile(
        checkpointer=saver
    )

    async def run() -> None:
        for t in range(threads):
            for i in range(turns):
                await graph.ainvoke(
                    {"messages": [{"role": "user", "content": f"hello {i}"}]},
                    {"configurable": {"thread_id": f"t{t}"}},
                    durability="sync",
                )

    asyncio.run(run())
    saver.close()
    store.close()


def test_ttl_and_keep_latest_remove_exactly_what_they_should(tmp_path: Path) -> None:
    path = tmp_path / "checkpoints.db"
    settings = Settings(
        _env_file=None, checkpoints_db_path=path, checkpoint_retention="all", thread_ttl_days=7
    )
    _seed(path, settings, threads=6, turns=4)
    conn = sqlite3.connect(str(path), isolation_level=None)
    conn.execute(
        "UPDATE threads SET updated_at = '2000-01-01T00:00:00.000000Z' "
        "WHERE thread_id IN ('t0', 't1')"
    )
    latest_before = dict(
        conn.execute(
            "SELECT thread_id, max(checkpoint_id) FROM checkpoints GROUP BY thread_id"
        ).fetchall()
    )
    counts_before = dict(
        conn.execute("SELECT thread_id, count(*) FROM checkpoints GROUP BY thread_id").fetchall()
    )
    assert all(count > 1 for count in counts_before.values())

    # TTL only: t0 and t1 vanish completely; the rest are untouched.
    report = sweep(path, settings)
    assert report.expired_deleted == 2
    for table in ("threads", "checkpoints", "writes"):
        left = {r[0] for r in conn.execute(f"SELECT DISTINCT thread_id FROM {table}")}
        assert not left & {"t0", "t1"}, table
    assert dict(
        conn.execute("SELECT thread_id, count(*) FROM checkpoints GROUP BY thread_id").fetchall()
    ) == {t: c for t, c in counts_before.items() if t not in ("t0", "t1")}

    # keep_latest: one root checkpoint per thread, the newest, with the conversation intact.
    size_before = path.stat().st_size + Path(f"{path}-wal").stat().st_size
    keep = settings.model_copy(update={"checkpoint_retention": "keep_latest"})
    report = sweep(path, keep)
    assert report.threads_compacted == 4
    rows = conn.execute("SELECT thread_id, checkpoint_id FROM checkpoints").fetchall()
    assert dict(rows) == {t: c for t, c in latest_before.items() if t not in ("t0", "t1")}
    assert len(rows) == 4
    orphans = conn.execute(
        "SELECT count(*) FROM writes w WHERE NOT EXISTS (SELECT 1 FROM checkpoints c "
        "WHERE c.thread_id = w.thread_id AND c.checkpoint_id = w.checkpoint_id)"
    ).fetchone()[0]
    assert orphans == 0
    saver = SqliteCheckpointer(path, settings)
    values = saver.get_tuple({"configurable": {"thread_id": "t3", "checkpoint_ns": ""}})
    texts = [
        m.content for m in values.checkpoint["channel_values"]["messages"] if m.type == "human"
    ]
    assert texts == [f"hello {i}" for i in range(4)]
    saver.close()
    conn.close()
    # Freed pages went back to the file system (auto_vacuum=INCREMENTAL + WAL truncate).
    result = subprocess.run(
        [sys.executable, "-m", "service", "vacuum", "--db", str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert path.stat().st_size < size_before


def _pg_leader_pid(database_url: str) -> int | None:
    """The worker whose session holds the leader's advisory lock (its name carries the pid)."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2 "
            "AND l.classid = %s AND l.objid = %s",
            (LOCK_CLASS, LEADER_LOCK),
        ).fetchone()
    return int(row[0].rsplit(":", 1)[1]) if row else None


def _leader_pid(leader_file: Path) -> int | None:
    inode = os.stat(leader_file).st_ino
    for line in Path("/proc/locks").read_text().splitlines():
        fields = line.split()
        if "POSIX" in fields and len(fields) >= 8 and fields[-3].endswith(f":{inode}"):
            return int(fields[-4])
    return None


def _leader_sum(base: str) -> float:
    text = httpx.get(f"{base}/metrics").text
    match = re.search(r"^booking_agent_maintenance_leader (\S+)$", text, re.M)
    return float(match.group(1)) if match else 0.0


def test_one_sweeper_across_workers_and_takeover_after_sigkill(
    tmp_path: Path, backend_env: dict[str, str]
) -> None:
    env = {"MAINTENANCE_INTERVAL_S": "1", **backend_env}
    with ServerProcess(tmp_path, workers=4, env=env) as srv:
        if "DATABASE_URL" in backend_env:
            url = backend_env["DATABASE_URL"]

            def leader_pid() -> int | None:
                return _pg_leader_pid(url)

        else:
            leader_file = srv.db_path.with_name(srv.db_path.name + ".leader")

            def leader_pid() -> int | None:
                return _leader_pid(leader_file) if leader_file.exists() else None

        deadline = time.monotonic() + 10
        while leader_pid() is None:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        first = leader_pid()
        assert first in srv.worker_pids()
        time.sleep(1.5)
        assert _leader_sum(srv.base_url) == 1.0
        os.kill(first, signal.SIGKILL)
        killed = time.monotonic()
        while (leader := leader_pid()) in (None, first):
            assert time.monotonic() - killed < 10, "no worker took over maintenance"
            time.sleep(0.1)
        print(f"maintenance handed over in {time.monotonic() - killed:.2f} s")
        assert leader in srv.worker_pids()
        time.sleep(2.5)
        assert _leader_sum(srv.base_url) == 1.0


def test_sustained_load_keeps_the_wal_bounded(tmp_path: Path) -> None:
    env = {"MAINTENANCE_INTERVAL_S": "1", "WAL_TRUNCATE_BYTES": str(256 * 1024)}
    with ServerProcess(tmp_path, workers=2, env=env) as srv:
        wal = Path(f"{srv.db_path}-wal")
        stop = time.monotonic() + 20
        sizes = []

        def user(index: int) -> None:
            tid = f"load-{index}-{uuid.uuid4()}"
            while time.monotonic() < stop:
                assert turn(srv.base_url, tid, "What services do you offer?").status_code == 200

        users = [threading.Thread(target=user, args=(i,)) for i in range(8)]
        for u in users:
            u.start()
        while time.monotonic() < stop:
            sizes.append(wal.stat().st_size if wal.exists() else 0)
            time.sleep(0.2)
        for u in users:
            u.join(60)
        time.sleep(2.5)  # one more maintenance pass after the load
        final = wal.stat().st_size if wal.exists() else 0
        print(f"WAL max {max(sizes)} B during load, {final} B after")
        assert max(sizes) < 64 * 1024 * 1024
        assert final <= 256 * 1024 + 4096 * 1100


def test_backup_during_load_restores_complete_histories(tmp_path: Path) -> None:
    srv = ServerProcess(tmp_path / "live", workers=2).start()
    try:
        client = get_sync_client(url=srv.base_url)
        stop = threading.Event()
        acknowledged: dict[str, list[str]] = {}

        def user(index: int) -> None:
            tid = f"user-{index}"
            acknowledged[tid] = []
            n = 0
            while not stop.is_set():
                text = f"message {n} from {index}"
                if turn(srv.base_url, tid, text).status_code == 200:
                    acknowledged[tid].append(text)
                n += 1

        users = [threading.Thread(target=user, args=(i,)) for i in range(4)]
        for u in users:
            u.start()
        time.sleep(2)
        env = {**os.environ, "CHECKPOINTS_DB_PATH": str(srv.db_path)}
        backup_dir = tmp_path / "backups"
        result = subprocess.run(
            [sys.executable, "-m", "service", "backup", "--output-dir", str(backup_dir)],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        time.sleep(1)
        stop.set()
        for u in users:
            u.join(60)
        assert result.returncode == 0, result.stderr
        backup_file = next(backup_dir.glob("*.db"))

        # Restore is refused while the service runs.
        refused = subprocess.run(
            [sys.executable, "-m", "service", "restore", str(backup_file)],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert refused.returncode == 1 and "running" in refused.stderr
        final = {tid: humans(client.threads.get_state(tid)["values"]) for tid in acknowledged}
    finally:
        srv.stop()

    for tid, texts in acknowledged.items():
        assert final[tid] == texts  # every acknowledged turn is in the live database

    restored = subprocess.run(
        [sys.executable, "-m", "service", "restore", str(backup_file)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert restored.returncode == 0, restored.stderr
    assert list(srv.db_path.parent.glob("checkpoints.db.before-restore-*"))
    again = ServerProcess(tmp_path / "live", workers=2, port=srv.port).start()
    try:
        client = get_sync_client(url=again.base_url)
        total = 0
        for tid, texts in acknowledged.items():
            backed_up = humans(client.threads.get_state(tid)["values"])
            # Complete up to the backup: a prefix of what was acknowledged, no gaps.
            assert backed_up == texts[: len(backed_up)]
            total += len(backed_up)
        assert total > 0
    finally:
        again.stop()
    assert stats(backup_file, Settings(_env_file=None)).threads == len(acknowledged)


def test_a_threads_own_ttl_overrides_thread_ttl_days(tmp_path: Path) -> None:
    path = tmp_path / "checkpoints.db"
    settings = Settings(_env_file=None, checkpoints_db_path=path, thread_ttl_days=7)
    _seed(path, settings, threads=4, turns=1)
    conn = sqlite3.connect(str(path), isolation_level=None)
    now = dt.datetime.now(dt.UTC)

    def set_thread(thread_id: str, age: dt.timedelta, ttl: float | None) -> None:
        conn.execute(
            "UPDATE threads SET updated_at = ?, ttl_minutes = ? WHERE thread_id = ?",
            (iso_utc(now - age), ttl, thread_id),
        )

    set_thread("t0", dt.timedelta(hours=2), 60)  # its own hour has passed
    set_thread("t1", dt.timedelta(days=30), 60 * 24 * 60)  # 30 days idle, but 60 of its own
    set_thread("t2", dt.timedelta(days=30), None)  # THREAD_TTL_DAYS=7 applies
    set_thread("t3", dt.timedelta(minutes=5), 60)  # still within its hour
    report = sweep(path, settings)
    assert report.expired_deleted == 2
    left = {r[0] for r in conn.execute("SELECT thread_id FROM threads")}
    assert left == {"t1", "t3"}
    # With THREAD_TTL_DAYS off, a thread's own TTL still runs out.
    set_thread("t3", dt.timedelta(hours=3), 60)
    report = sweep(path, settings.model_copy(update={"thread_ttl_days": 0}))
    assert report.expired_deleted == 1
    assert {r[0] for r in conn.execute("SELECT thread_id FROM threads")} == {"t1"}
