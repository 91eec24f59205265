"""The `checkpoint_messages` table: message links (see `storage.message_chain`) in SQLite.

Functions take a cursor, so they run inside whatever transaction the caller holds.
"""

from __future__ import annotations

from typing import Any

from langgraph.checkpoint.base import SerializerProtocol

from service.storage.message_chain import BrokenChainError, Chain, Link, LinkCache, assemble

_LINK_COLUMNS = "link_id, prev_id, count, depth, since_snapshot, snapshot_bytes, type, messages"
INSERT_LINK_SQL = f"""
INSERT OR IGNORE INTO checkpoint_messages (thread_id, checkpoint_ns, {_LINK_COLUMNS})
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
"""
LINK_EXISTS_SQL = """
SELECT 1 FROM checkpoint_messages WHERE thread_id = ? AND checkpoint_ns = ? AND link_id = ?
"""
HEAD_OF_SQL = """
SELECT messages_head FROM checkpoints
WHERE thread_id = ? AND checkpoint_ns = ? AND checkpoint_id = ?
"""
# One chain's links, oldest (the snapshot) first, without their messages.
CHAIN_SQL = """
WITH RECURSIVE chain(link_id, prev_id, count, depth, since_snapshot, snapshot_bytes, hop) AS (
    SELECT link_id, prev_id, count, depth, since_snapshot, snapshot_bytes, 0
    FROM checkpoint_messages WHERE thread_id = ?1 AND checkpoint_ns = ?2 AND link_id = ?3
    UNION ALL
    SELECT m.link_id, m.prev_id, m.count, m.depth, m.since_snapshot, m.snapshot_bytes,
        chain.hop + 1
    FROM checkpoint_messages m JOIN chain ON m.link_id = chain.prev_id
    WHERE m.thread_id = ?1 AND m.checkpoint_ns = ?2
)
SELECT link_id, prev_id, count, depth, since_snapshot, snapshot_bytes FROM chain
ORDER BY hop DESC
"""
LINK_MESSAGES_SQL = """
SELECT link_id, type, messages FROM checkpoint_messages
WHERE thread_id = ? AND checkpoint_ns = ? AND link_id IN ({marks})
"""
# Links no checkpoint of the thread reaches any more (after a prune or a rollback).
COLLECT_SQL = """
WITH RECURSIVE live(ns, link_id) AS (
    SELECT checkpoint_ns, messages_head FROM checkpoints
    WHERE thread_id = ?1 AND messages_head IS NOT NULL
    UNION
    SELECT m.checkpoint_ns, m.prev_id FROM checkpoint_messages m
    JOIN live ON m.checkpoint_ns = live.ns AND m.link_id = live.link_id
    WHERE m.thread_id = ?1 AND m.prev_id IS NOT NULL
)
DELETE FROM checkpoint_messages WHERE thread_id = ?1
    AND (checkpoint_ns, link_id) NOT IN (SELECT ns, link_id FROM live)
"""
COPY_LINKS_SQL = f"""
INSERT OR IGNORE INTO checkpoint_messages (thread_id, checkpoint_ns, {_LINK_COLUMNS})
SELECT ?, checkpoint_ns, {_LINK_COLUMNS} FROM checkpoint_messages WHERE thread_id = ?
"""
# SQLite's default limit on host parameters is 32766; stay far below it.
_FETCH_BATCH = 500


def insert_link(cur: Any, thread_id: str, checkpoint_ns: str, link: Link) -> None:
    cur.execute(INSERT_LINK_SQL, (thread_id, checkpoint_ns, *link.row()))


def link_exists(cur: Any, thread_id: str, checkpoint_ns: str, link_id: str) -> bool:
    return cur.execute(LINK_EXISTS_SQL, (thread_id, checkpoint_ns, link_id)).fetchone() is not None


def read_chain(
    cur: Any,
    thread_id: str,
    checkpoint_ns: str,
    checkpoint_id: str,
    head_id: str,
    serde: SerializerProtocol,
    cache: LinkCache,
) -> Chain:
    """The messages a head link stands for; only links not in `cache` are fetched and
    decoded."""
    rows = cur.execute(CHAIN_SQL, (thread_id, checkpoint_ns, head_id)).fetchall()
    if not rows or rows[0][1] is not None:
        raise BrokenChainError(f"messages of checkpoint {checkpoint_id} are missing links")
    parts = {row[0]: cache.get(row[0]) for row in rows}
    missing = [link_id for link_id, part in parts.items() if part is None]
    for start in range(0, len(missing), _FETCH_BATCH):
        batch = missing[start : start + _FETCH_BATCH]
        sql = LINK_MESSAGES_SQL.format(marks=",".join("?" * len(batch)))
        for link_id, type_, blob in cur.execute(sql, (thread_id, checkpoint_ns, *batch)):
            parts[link_id] = cache.decode(link_id, type_, blob, serde)
    head = Link(*rows[-1], type="", blob=b"")
    return assemble(checkpoint_id, [row[0] for row in rows], head, parts)


def collect_links(cur: Any, thread_id: str) -> int:
    """Delete the thread's links that no checkpoint reaches; returns how many."""
    return cur.execute(COLLECT_SQL, (thread_id,)).rowcount
