"""The PostgreSQL checkpointer: langgraph-checkpoint-postgres on a connection pool.

It keeps `AsyncPostgresSaver`'s tables and queries and changes what the service
needs, as the SQLite checkpointer does:

* No saver-wide lock: each operation takes its own pooled connection, so one slow
  query never queues the worker's other threads behind it.
* A root checkpoint, its channel blobs, its thread's `updated_at` and the inline
  retention (`keep_last`) commit in one transaction: one write transaction per
  turn with `durability="exit"`, and storage that grows linearly.
* Outages and pool timeouts become `StorageUnavailableError` (HTTP 503 +
  Retry-After); the pool replaces broken connections, so the worker recovers on
  its own once the database is back.
* The extended saver capabilities: `delete_for_runs`, `copy_thread`, `prune`.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import replace
from time import perf_counter
from typing import Any, TypeVar

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    WRITES_IDX_MAP,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    DeltaChannelHistory,
    SerializerProtocol,
    get_checkpoint_id,
    get_serializable_checkpoint_metadata,
)
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from langgraph.checkpoint.postgres.base import SELECT_SQL as STOCK_SELECT_SQL
from langgraph.checkpoint.serde.types import _DeltaSnapshot
from psycopg import AsyncCursor
from psycopg.errors import ForeignKeyViolation
from psycopg.rows import DictRow, dict_row
from psycopg_pool import AsyncConnectionPool

from service.observability import metrics
from service.storage import message_chain
from service.storage.errors import StorageUnavailableError
from service.storage.postgres import links
from service.storage.postgres.pool import pooled, storage_error

T = TypeVar("T")
BACKEND = "postgres"

# The stock query, with each checkpoint's head link and the ids of its chain.
SELECT_SQL = STOCK_SELECT_SQL.replace(
    "    metadata,\n", "    metadata,\n    messages_head,\n" + links.CHAIN_IDS_COLUMN, 1
)
assert SELECT_SQL != STOCK_SELECT_SQL, "langgraph-checkpoint-postgres changed its SELECT_SQL"
INSERT_CHECKPOINT_SQL = """
INSERT INTO checkpoints (thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id,
    checkpoint, metadata, messages_head)
VALUES (%s, %s, %s, %s, %s::jsonb, %s::jsonb, %s)
ON CONFLICT (thread_id, checkpoint_ns, checkpoint_id)
DO UPDATE SET checkpoint = EXCLUDED.checkpoint, metadata = EXCLUDED.metadata,
    messages_head = EXCLUDED.messages_head
"""
THREAD_TOUCH_SQL = """
INSERT INTO threads (thread_id) VALUES (%s)
ON CONFLICT (thread_id) DO UPDATE SET updated_at = now(), status = 'idle', error = NULL
"""
# Root checkpoints older than the newest `keep`, their writes, and the channel blobs
# that only they used. One statement, so a turn stays one round trip in the pipeline.
# Data-modifying CTEs share one snapshot, so "still used" looks at the kept rows only.
COMPACT_SQL = """
WITH cutoff AS (
    SELECT checkpoint_id FROM checkpoints
    WHERE thread_id = %(thread_id)s AND checkpoint_ns = ''
    ORDER BY checkpoint_id DESC OFFSET %(skip)s LIMIT 1
), dropped AS (
    DELETE FROM checkpoints c USING cutoff
    WHERE c.thread_id = %(thread_id)s AND c.checkpoint_ns = ''
        AND c.checkpoint_id < cutoff.checkpoint_id
    RETURNING c.checkpoint -> 'channel_versions' AS versions
), dropped_writes AS (
    DELETE FROM checkpoint_writes w USING cutoff
    WHERE w.thread_id = %(thread_id)s AND w.checkpoint_ns = ''
        AND w.checkpoint_id < cutoff.checkpoint_id
)
DELETE FROM checkpoint_blobs b
USING (
    SELECT DISTINCT v.key AS channel, v.value AS version
    FROM dropped CROSS JOIN LATERAL jsonb_each_text(dropped.versions) AS v
) AS freed
WHERE b.thread_id = %(thread_id)s AND b.checkpoint_ns = ''
    AND b.channel = freed.channel AND b.version = freed.version
    AND NOT EXISTS (
        SELECT 1 FROM checkpoints k, cutoff
        WHERE k.thread_id = %(thread_id)s AND k.checkpoint_ns = ''
            AND k.checkpoint_id >= cutoff.checkpoint_id
            AND k.checkpoint -> 'channel_versions' ->> b.channel = b.version
    )
"""
# A thread's rows, its record last (`DELETE_THREAD_ROWS_SQL`: all but the record).
DELETE_THREAD_SQL = tuple(
    f"DELETE FROM {table} WHERE thread_id = %s"
    for table in (
        "checkpoints",
        "checkpoint_blobs",
        "checkpoint_writes",
        "checkpoint_messages",
        "runs",
        "run_events",
        "crons",
        "threads",
    )
)
DELETE_THREAD_ROWS_SQL = DELETE_THREAD_SQL[:-1]
RUN_THREADS_SQL = "SELECT DISTINCT thread_id FROM checkpoints WHERE metadata ->> 'run_id' = ANY(%s)"
_RUN_IDS = "metadata ->> 'run_id' = ANY(%s)"
DELETE_FOR_RUNS_SQL = (
    "DELETE FROM checkpoint_writes w USING checkpoints c "
    "WHERE c.thread_id = w.thread_id AND c.checkpoint_ns = w.checkpoint_ns "
    f"AND c.checkpoint_id = w.checkpoint_id AND c.{_RUN_IDS}",
    f"DELETE FROM checkpoints WHERE {_RUN_IDS}",
)
COPY_THREAD_SQL = (
    links.COPY_LINKS_SQL,
    """
    INSERT INTO checkpoints (thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id,
        type, checkpoint, metadata, messages_head)
    SELECT %(target)s, checkpoint_ns, checkpoint_id, parent_checkpoint_id, type, checkpoint,
        metadata, messages_head
    FROM checkpoints WHERE thread_id = %(source)s
    ON CONFLICT DO NOTHING
    """,
    """
    INSERT INTO checkpoint_blobs (thread_id, checkpoint_ns, channel, version, type, blob)
    SELECT %(target)s, checkpoint_ns, channel, version, type, blob
    FROM checkpoint_blobs WHERE thread_id = %(source)s
    ON CONFLICT DO NOTHING
    """,
    """
    INSERT INTO checkpoint_writes (thread_id, checkpoint_ns, checkpoint_id, task_id, task_path,
        idx, channel, type, blob)
    SELECT %(target)s, checkpoint_ns, checkpoint_id, task_id, task_path, idx, channel, type, blob
    FROM checkpoint_writes WHERE thread_id = %(source)s
    ON CONFLICT DO NOTHING
    """,
    """
    INSERT INTO threads (thread_id, metadata)
    SELECT %(target)s, metadata FROM threads WHERE thread_id = %(source)s
    ON CONFLICT DO NOTHING
    """,
)


def split_checkpoint(checkpoint: Checkpoint) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the checkpoint to store as JSON, the channel values that go to blobs).

    Primitive values stay inline in the checkpoint row, as `AsyncPostgresSaver` does.
    """
    inline = checkpoint.copy()
    inline["channel_values"] = dict(checkpoint["channel_values"])
    blobs: dict[str, Any] = {}
    for key, value in checkpoint["channel_values"].items():
        if isinstance(value, _DeltaSnapshot):
            blobs[key] = inline["channel_values"].pop(key)
            inline["channel_values"][key] = True
        elif value is None or isinstance(value, str | int | float | bool):
            continue
        else:
            blobs[key] = inline["channel_values"].pop(key)
    return inline, blobs


class PostgresCheckpointer(AsyncPostgresSaver):
    """AsyncPostgresSaver on a pool, with thread touch, inline retention and metrics."""

    backend = BACKEND
    SELECT_SQL = SELECT_SQL

    def __init__(
        self,
        pool: AsyncConnectionPool,
        *,
        keep_last: int | None = None,
        retry_after_s: int = 1,
        serde: SerializerProtocol | None = None,
        link_cache_bytes: int = 4 * 1024 * 1024,
    ) -> None:
        super().__init__(pool, serde=serde)
        self.pool = pool
        self.keep_last = keep_last
        self.chains = message_chain.ChainMemo()
        self.links = message_chain.LinkCache(link_cache_bytes)
        self.retry_after_s = retry_after_s
        self._op_seconds = {
            op: metrics.CHECKPOINT_OP_SECONDS.labels(operation=op, backend=BACKEND)
            for op in metrics.CHECKPOINT_OPERATIONS
        }
        self._tx_total = metrics.WRITE_TRANSACTIONS.labels(backend=BACKEND)
        self._bytes_total = metrics.CHECKPOINT_WRITE_BYTES.labels(backend=BACKEND)
        self._payload_bytes = metrics.CHECKPOINT_PAYLOAD_BYTES.labels(backend=BACKEND)

    # --- connections, errors, timing --------------------------------------------------
    @asynccontextmanager
    async def _cursor(self, *, pipeline: bool = False) -> AsyncIterator[AsyncCursor[DictRow]]:
        """A cursor on a connection of its own; `pipeline=True` also makes it one transaction."""
        async with pooled(self.pool, self.retry_after_s) as conn:
            if pipeline:
                async with (
                    conn.pipeline(),
                    conn.transaction(),
                    conn.cursor(binary=True, row_factory=dict_row) as cur,
                ):
                    yield cur
            else:
                async with conn.cursor(binary=True, row_factory=dict_row) as cur:
                    yield cur

    def _failed(self, operation: str, exc: BaseException) -> BaseException | None:
        mapped = storage_error(exc, self.retry_after_s)
        if isinstance(mapped, StorageUnavailableError):
            metrics.STORAGE_BUSY_ERRORS.labels(backend=BACKEND, operation=operation).inc()
        return mapped

    async def timed(self, operation: str, work: Awaitable[T]) -> T:
        """Await `work`, recording its latency; database failures become 503 errors."""
        start = perf_counter()
        try:
            return await work
        except Exception as exc:
            mapped = self._failed(operation, exc)
            if mapped is None or mapped is exc:
                raise
            raise mapped from exc
        finally:
            self._op_seconds[operation].observe(perf_counter() - start)

    def committed(self, transactions: int = 1) -> None:
        self._tx_total.inc(transactions)

    # --- reads --------------------------------------------------------------------------
    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        return await self.timed("get", self._get_tuple(config))

    async def _get_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        """The stock read, with the checkpoint's messages from its links."""
        thread_id = str(config["configurable"]["thread_id"])
        checkpoint_ns = config["configurable"].get("checkpoint_ns", "")
        checkpoint_id = get_checkpoint_id(config)
        if checkpoint_id:
            args: tuple[Any, ...] = (thread_id, checkpoint_ns, checkpoint_id)
            where = "WHERE thread_id = %s AND checkpoint_ns = %s AND checkpoint_id = %s"
        else:
            args = (thread_id, checkpoint_ns)
            where = (
                "WHERE thread_id = %s AND checkpoint_ns = %s ORDER BY checkpoint_id DESC LIMIT 1"
            )
        async with self._cursor() as cur:
            await cur.execute(self.SELECT_SQL + where, args, binary=True)
            value = await cur.fetchone()
            if value is None:
                return None
            await self._migrate_old_sends(cur, [value])
            chains = await links.attach_messages(cur, [value], self.serde, self.links)
        found = await self._load_checkpoint_tuple(value)
        chain = chains.get(value["checkpoint_id"])
        if chain is not None:
            message_chain.restore(found.checkpoint, chain.messages)
            remembered = replace(chain, messages=list(chain.messages), latest=not checkpoint_id)
            self.chains.put(thread_id, checkpoint_ns, remembered)
        return found

    async def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        for item in await self.timed("list", self._list(config, filter, before, limit)):
            yield item

    async def _list(
        self,
        config: RunnableConfig | None,
        filter: dict[str, Any] | None,
        before: RunnableConfig | None,
        limit: int | None,
    ) -> list[CheckpointTuple]:
        """The stock listing (newest first), each checkpoint with its messages; a link
        shared by several checkpoints is decoded once."""
        where, args = self._search_where(config, filter, before)
        query = self.SELECT_SQL + where + " ORDER BY checkpoint_id DESC"
        params = list(args)
        if limit is not None:
            query += " LIMIT %s"
            params.append(int(limit))
        cache = self.links if self.links.max_bytes else message_chain.LinkCache(1 << 62)
        async with self._cursor() as cur:
            await cur.execute(query, params, binary=True)
            values = await cur.fetchall()
            if not values:
                return []
            await self._migrate_old_sends(cur, values)
            chains = await links.attach_messages(cur, values, self.serde, cache)
        found = []
        for value in values:
            item = await self._load_checkpoint_tuple(value)
            chain = chains.get(value["checkpoint_id"])
            if chain is not None:
                message_chain.restore(item.checkpoint, chain.messages)
            found.append(item)
        return found

    async def _migrate_old_sends(self, cur: AsyncCursor[DictRow], values: list[DictRow]) -> None:
        """Checkpoints of format < 4 keep pending sends in their parent's writes (stock)."""
        to_migrate = [v for v in values if v["checkpoint"]["v"] < 4 and v["parent_checkpoint_id"]]
        if not to_migrate:
            return
        await cur.execute(
            self.SELECT_PENDING_SENDS_SQL,
            (values[0]["thread_id"], [v["parent_checkpoint_id"] for v in to_migrate]),
        )
        by_parent: dict[str, list[DictRow]] = {}
        for value in to_migrate:
            by_parent.setdefault(value["parent_checkpoint_id"], []).append(value)
        async for sends in cur:
            for value in by_parent.get(sends["checkpoint_id"], []):
                if value["channel_values"] is None:
                    value["channel_values"] = []
                self._migrate_pending_sends(
                    sends["sends"], value["checkpoint"], value["channel_values"]
                )

    async def aget_delta_channel_history(
        self, *, config: RunnableConfig, channels: Sequence[str]
    ) -> Mapping[str, DeltaChannelHistory]:
        return await self.timed(
            "get", super().aget_delta_channel_history(config=config, channels=channels)
        )

    # --- writes -------------------------------------------------------------------------
    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        return await self.timed("put", self._put(config, checkpoint, metadata, new_versions))

    async def _put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        configurable = config["configurable"]
        thread_id = str(configurable["thread_id"])
        checkpoint_ns = configurable.get("checkpoint_ns", "")
        parent_id = configurable.get("checkpoint_id")
        stored, messages = message_chain.split(checkpoint)
        parent = None
        if messages is not None:
            parent = self.chains.get(thread_id, checkpoint_ns, parent_id)
            if parent is None and parent_id:
                parent = await self._parent_chain(thread_id, checkpoint_ns, parent_id)
        inline, blob_values = split_checkpoint(stored)
        blob_versions = {k: v for k, v in new_versions.items() if k in blob_values}

        def encode() -> tuple[list[Any], message_chain.Link | None]:
            blobs = self._dump_blobs(thread_id, checkpoint_ns, blob_values, blob_versions)
            if messages is None:
                return blobs, None
            return blobs, message_chain.link_for(messages, parent, self.serde)

        blobs, link = await asyncio.to_thread(encode)
        body = json.dumps(inline)
        meta = json.dumps(get_serializable_checkpoint_metadata(config, metadata))
        try:
            await self._write(
                thread_id,
                checkpoint_ns,
                checkpoint["id"],
                parent,
                link,
                blobs,
                body,
                meta,
                configurable,
            )
        except ForeignKeyViolation:
            # The link built on was collected meanwhile (another worker pruned the
            # thread): store the whole list instead.
            assert messages is not None
            parent = None
            link = await asyncio.to_thread(message_chain.link_for, messages, None, self.serde)
            await self._write(
                thread_id,
                checkpoint_ns,
                checkpoint["id"],
                None,
                link,
                blobs,
                body,
                meta,
                configurable,
            )
        if link is not None and messages is not None:
            if parent is None or link is not parent.head:
                start = 0 if parent is None or link.prev_id is None else parent.head.count
                self.links.put(link.link_id, len(link.blob), list(messages[start:]))
            chain = message_chain.Chain(checkpoint["id"], link, list(messages))
            self.chains.put(thread_id, checkpoint_ns, chain)
        self.committed()
        blob_bytes = sum(len(row[5] or b"") for row in blobs)
        self._bytes_total.inc(blob_bytes + len(body) + len(meta))
        self._payload_bytes.observe(blob_bytes + len(body))
        return {
            "configurable": {
                "thread_id": thread_id,
                "checkpoint_ns": checkpoint_ns,
                "checkpoint_id": checkpoint["id"],
            }
        }

    async def _write(
        self,
        thread_id: str,
        checkpoint_ns: str,
        checkpoint_id: str,
        parent: message_chain.Chain | None,
        link: message_chain.Link | None,
        blobs: list[Any],
        body: str,
        meta: str,
        configurable: dict[str, Any],
    ) -> None:
        """The checkpoint, its new link, blobs, thread touch and retention: one transaction."""
        new_link = link is not None and (parent is None or link is not parent.head)
        async with self._cursor(pipeline=True) as cur:
            if new_link:
                assert link is not None
                await cur.execute(
                    links.INSERT_LINK_SQL, links.link_params(thread_id, checkpoint_ns, link)
                )
            if blobs:
                await cur.executemany(self.UPSERT_CHECKPOINT_BLOBS_SQL, blobs)
            await cur.execute(
                INSERT_CHECKPOINT_SQL,
                (
                    thread_id,
                    checkpoint_ns,
                    checkpoint_id,
                    configurable.get("checkpoint_id"),
                    body,
                    meta,
                    link.link_id if link is not None else None,
                ),
            )
            if checkpoint_ns == "":
                await cur.execute(THREAD_TOUCH_SQL, (thread_id,))
                if self.keep_last:
                    await cur.execute(
                        COMPACT_SQL, {"thread_id": thread_id, "skip": self.keep_last - 1}
                    )
                    snapshot = link is not None and link.prev_id is None
                    if snapshot or (parent is not None and not parent.latest):
                        await cur.execute(links.COLLECT_SQL, {"thread_id": thread_id})

    async def _parent_chain(
        self, thread_id: str, checkpoint_ns: str, parent_id: str
    ) -> message_chain.Chain | None:
        """The parent's messages and head link, read (this worker has not seen it)."""
        found = await self._get_tuple(
            {
                "configurable": {
                    "thread_id": thread_id,
                    "checkpoint_ns": checkpoint_ns,
                    "checkpoint_id": parent_id,
                }
            }
        )
        if found is None:
            return None
        return self.chains.get(thread_id, checkpoint_ns, parent_id)

    async def aput_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        await self.timed("put_writes", self._put_writes(config, writes, task_id, task_path))

    async def _put_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str,
    ) -> None:
        configurable = config["configurable"]
        query = (
            self.UPSERT_CHECKPOINT_WRITES_SQL
            if all(w[0] in WRITES_IDX_MAP for w in writes)
            else self.INSERT_CHECKPOINT_WRITES_SQL
        )
        params = await asyncio.to_thread(
            self._dump_writes,
            str(configurable["thread_id"]),
            configurable.get("checkpoint_ns", ""),
            str(configurable["checkpoint_id"]),
            task_id,
            task_path,
            writes,
        )
        async with self._cursor(pipeline=True) as cur:
            await cur.executemany(query, params)
        self.committed()
        self._bytes_total.inc(sum(len(row[8] or b"") for row in params))

    async def _statements(self, operation: str, statements: Sequence[str], params: Any) -> None:
        async def run() -> None:
            async with self._cursor(pipeline=True) as cur:
                for sql in statements:
                    await cur.execute(sql, params)
            self.committed()

        await self.timed(operation, run())

    async def adelete_thread(self, thread_id: str) -> None:
        """Every checkpoint, blob, write, message link and the thread record, in one
        transaction."""
        await self._statements("delete", DELETE_THREAD_SQL, (str(thread_id),))
        self.chains.discard_thread(str(thread_id))

    async def adelete_for_runs(self, run_ids: Sequence[str]) -> None:
        """The runs' checkpoints and writes, and the message links nothing reaches after."""
        if not run_ids:
            return
        ids = [str(r) for r in run_ids]

        async def run() -> None:
            async with self._cursor() as cur, cur.connection.transaction():
                await cur.execute(RUN_THREADS_SQL, (ids,))
                threads = [row["thread_id"] for row in await cur.fetchall()]
                for sql in DELETE_FOR_RUNS_SQL:
                    await cur.execute(sql, (ids,))
                for thread_id in threads:
                    await cur.execute(links.COLLECT_SQL, {"thread_id": thread_id})
            self.committed()
            for thread_id in threads:
                self.chains.discard_thread(thread_id)

        await self.timed("delete_for_runs", run())

    async def acopy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        params = {"source": str(source_thread_id), "target": str(target_thread_id)}
        await self._statements("copy_thread", COPY_THREAD_SQL, params)

    async def aprune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        async def run() -> None:
            await super(PostgresCheckpointer, self).aprune(thread_ids, strategy=strategy)
            async with self._cursor(pipeline=True) as cur:
                for thread_id in thread_ids:
                    await cur.execute(links.COLLECT_SQL, {"thread_id": str(thread_id)})
            self.committed()

        await self.timed("prune", run())

    async def compact(self, thread_id: str, keep: int) -> None:
        """Apply retention to one thread now (the sweeper's and the CLI's path)."""
        params = {"thread_id": str(thread_id), "skip": max(keep, 1) - 1}
        await self._statements("prune", (COMPACT_SQL, links.COLLECT_SQL), params)


__all__ = ["PostgresCheckpointer", "split_checkpoint"]
