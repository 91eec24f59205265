"""The `checkpoint_messages` table: message links (see `storage.message_chain`) in PostgreSQL.

Foreign keys make a link's predecessor and a checkpoint's head exist for as long as
they are referenced, so a writer that builds on a link another worker has just
collected fails cleanly (and writes a snapshot instead) rather than leaving a gap.
"""

from __future__ import annotations

from typing import Any

from langgraph.checkpoint.base import SerializerProtocol
from psycopg import AsyncCursor

from service.storage.message_chain import Chain, Link, LinkCache, assemble

LINKS_DDL = """
CREATE TABLE IF NOT EXISTS checkpoint_messages (
    thread_id TEXT NOT NULL,
    checkpoint_ns TEXT NOT NULL DEFAULT '',
    link_id TEXT NOT NULL,
    prev_id TEXT,
    count INTEGER NOT NULL,
    depth INTEGER NOT NULL,
    since_snapshot BIGINT NOT NULL,
    snapshot_bytes BIGINT NOT NULL,
    type TEXT NOT NULL,
    messages BYTEA NOT NULL,
    PRIMARY KEY (thread_id, checkpoint_ns, link_id),
    CONSTRAINT checkpoint_messages_prev FOREIGN KEY (thread_id, checkpoint_ns, prev_id)
        REFERENCES checkpoint_messages (thread_id, checkpoint_ns, link_id)
);
ALTER TABLE checkpoints ADD COLUMN IF NOT EXISTS messages_head TEXT;
DO $$ BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = 'checkpoints_messages_head') THEN
        ALTER TABLE checkpoints ADD CONSTRAINT checkpoints_messages_head
            FOREIGN KEY (thread_id, checkpoint_ns, messages_head)
            REFERENCES checkpoint_messages (thread_id, checkpoint_ns, link_id);
    END IF;
END $$;
"""
_COLUMNS = "link_id, prev_id, count, depth, since_snapshot, snapshot_bytes, type, messages"
INSERT_LINK_SQL = f"""
INSERT INTO checkpoint_messages (thread_id, checkpoint_ns, {_COLUMNS})
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
ON CONFLICT DO NOTHING
"""
HEAD_OF_SQL = """
SELECT messages_head FROM checkpoints
WHERE thread_id = %s AND checkpoint_ns = %s AND checkpoint_id = %s
"""
# The ids of a checkpoint's chain, snapshot first: a column of the checkpoint SELECT.
CHAIN_IDS_COLUMN = """
    (
        WITH RECURSIVE chain(link_id, prev_id, hop) AS (
            SELECT m.link_id, m.prev_id, 0 FROM checkpoint_messages m
            WHERE m.thread_id = checkpoints.thread_id
                AND m.checkpoint_ns = checkpoints.checkpoint_ns
                AND m.link_id = checkpoints.messages_head
            UNION ALL
            SELECT m.link_id, m.prev_id, chain.hop + 1
            FROM checkpoint_messages m JOIN chain ON m.link_id = chain.prev_id
            WHERE m.thread_id = checkpoints.thread_id
                AND m.checkpoint_ns = checkpoints.checkpoint_ns
        )
        SELECT array_agg(link_id ORDER BY hop DESC) FROM chain
    ) AS message_links,
"""
# The heads' counters, and the messages of the links not already decoded.
LINKS_SQL = """
SELECT link_id, prev_id, count, depth, since_snapshot, snapshot_bytes, type,
    CASE WHEN link_id = ANY(%(missing)s) THEN messages END AS messages
FROM checkpoint_messages
WHERE thread_id = %(thread_id)s AND checkpoint_ns = %(checkpoint_ns)s
    AND (link_id = ANY(%(missing)s) OR link_id = ANY(%(heads)s))
"""
# Links no checkpoint of the thread reaches any more (after a prune or a rollback).
COLLECT_SQL = """
WITH RECURSIVE live(ns, link_id) AS (
    SELECT checkpoint_ns, messages_head FROM checkpoints
    WHERE thread_id = %(thread_id)s AND messages_head IS NOT NULL
    UNION
    SELECT m.checkpoint_ns, m.prev_id FROM checkpoint_messages m
    JOIN live ON m.checkpoint_ns = live.ns AND m.link_id = live.link_id
    WHERE m.thread_id = %(thread_id)s AND m.prev_id IS NOT NULL
)
DELETE FROM checkpoint_messages m
WHERE m.thread_id = %(thread_id)s AND NOT EXISTS (
    SELECT 1 FROM live WHERE live.ns = m.checkpoint_ns AND live.link_id = m.link_id
)
"""
COPY_LINKS_SQL = f"""
INSERT INTO checkpoint_messages (thread_id, checkpoint_ns, {_COLUMNS})
SELECT %(target)s, checkpoint_ns, {_COLUMNS} FROM checkpoint_messages
WHERE thread_id = %(source)s
ON CONFLICT DO NOTHING
"""
DELETE_LINKS_SQL = "DELETE FROM checkpoint_messages WHERE thread_id = %s"


def link_params(thread_id: str, checkpoint_ns: str, link: Link) -> tuple[Any, ...]:
    return (thread_id, checkpoint_ns, *link.row())


async def attach_messages(
    cur: AsyncCursor[Any],
    rows: list[dict[str, Any]],
    serde: SerializerProtocol,
    cache: LinkCache,
) -> dict[str, Chain]:
    """Each row's messages from its links (rows of one thread and namespace at a time);
    returns the chains by checkpoint id."""
    chains: dict[str, Chain] = {}
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for row in rows:
        if row.get("messages_head"):
            groups.setdefault((row["thread_id"], row["checkpoint_ns"]), []).append(row)
    for (thread_id, checkpoint_ns), group in groups.items():
        parts: dict[str, list[Any] | None] = {}
        for row in group:
            for link_id in row["message_links"] or ():
                parts.setdefault(link_id, cache.get(link_id))
        missing = [link_id for link_id, part in parts.items() if part is None]
        heads = [row["messages_head"] for row in group]
        await cur.execute(
            LINKS_SQL,
            {
                "thread_id": thread_id,
                "checkpoint_ns": checkpoint_ns,
                "missing": missing,
                "heads": heads,
            },
        )
        found: dict[str, Link] = {}
        for link in await cur.fetchall():
            found[link["link_id"]] = Link(
                link["link_id"],
                link["prev_id"],
                link["count"],
                link["depth"],
                link["since_snapshot"],
                link["snapshot_bytes"],
                link["type"],
                b"",
            )
            if link["messages"] is not None:
                blob = bytes(link["messages"])
                parts[link["link_id"]] = cache.decode(link["link_id"], link["type"], blob, serde)
        for row in group:
            head = found.get(row["messages_head"]) or Link(
                row["messages_head"], None, -1, 0, 0, 0, "", b""
            )
            chains[row["checkpoint_id"]] = assemble(
                row["checkpoint_id"], row["message_links"] or [], head, parts
            )
    return chains
