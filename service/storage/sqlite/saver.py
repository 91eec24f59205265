"""The production SQLite checkpointer: one reader and one writer connection per worker.

It keeps langgraph-checkpoint-sqlite's queries and table layout (reads, `list`,
`DeltaChannel` history) and changes what matters when several processes share one
WAL file:

* Writes take the write lock up front (`BEGIN IMMEDIATE`) and roll back on any
  error, so no transaction is ever left open. A lock held past `busy_timeout`
  becomes `StorageBusyError` (HTTP 503 + Retry-After) and the connection stays
  usable. The stock async saver can keep a stale transaction after such a timeout
  and then fail every later write on that worker.
* Reads run in autocommit on their own connection, so they never wait behind a
  write in this worker and never hold an old snapshot.
* The event loop never waits for a lock. A point read or a one-transaction write runs
  right on the loop when it can start at once (its connection free, the write gate
  free, SQLite's lock had with no busy wait): then it costs its statements and
  nothing else. Anything that would have to wait runs on the connection's dedicated
  thread instead, where waiting is harmless. The thread hop alone cost more CPU than
  a whole uncontended write.
* A root checkpoint and its thread's `updated_at` are written in one transaction,
  so a turn costs one write transaction with `durability="exit"`.
* The extended saver capabilities: `delete_for_runs`, `copy_thread`, `prune`.

The connections, transactions and the choice between the event loop and a thread
live in `executor.SqliteExecutor`; this module holds the checkpoint SQL.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

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
    get_checkpoint_metadata,
)
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.checkpoint.sqlite.utils import (
    load_pending_writes,
    pending_writes_sql,
    search_where,
)

from service.observability import metrics
from service.settings import Settings
from service.storage import message_chain
from service.storage.records import check_prune_strategy, utcnow_iso
from service.storage.sqlite import links
from service.storage.sqlite.decoded_cache import DecodedCheckpointCache
from service.storage.sqlite.driver import connect
from service.storage.sqlite.executor import BACKEND, SqliteExecutor
from service.storage.sqlite.maintenance import delete_thread_rows, prune_rows
from service.storage.sqlite.serde import MessageMemoSerializer

_THREAD_TOUCH = """
INSERT INTO threads (thread_id, created_at, updated_at) VALUES (?, ?, ?)
ON CONFLICT (thread_id) DO UPDATE SET
    updated_at = excluded.updated_at, status = 'idle', error = NULL
"""
_RUN_ID = "json_extract(CAST(metadata AS TEXT), '$.run_id')"


def _config(thread_id: str, checkpoint_ns: str, checkpoint_id: str) -> RunnableConfig:
    return {
        "configurable": {
            "thread_id": thread_id,
            "checkpoint_ns": checkpoint_ns,
            "checkpoint_id": checkpoint_id,
        }
    }


class SqliteCheckpointer(SqliteExecutor, SqliteSaver):
    """Async-first SqliteSaver tuned for many processes on one WAL database."""

    backend = BACKEND

    def __init__(
        self,
        path: Path | str,
        settings: Settings,
        *,
        serde: SerializerProtocol | None = None,
        keep_last: int | None = None,
    ) -> None:
        SqliteSaver.__init__(self, connect(path, settings), serde=serde or MessageMemoSerializer())
        SqliteExecutor.__init__(self, path, settings)
        self.keep_last = keep_last
        self.is_setup = True  # the schema belongs to sqlite_schema.init_database
        self._bytes_total = metrics.CHECKPOINT_WRITE_BYTES.labels(backend=BACKEND)
        self._payload_bytes = metrics.CHECKPOINT_PAYLOAD_BYTES.labels(backend=BACKEND)
        self.decoded = DecodedCheckpointCache(settings.checkpoint_cache_mb * 1024 * 1024, BACKEND)
        self.chains = message_chain.ChainMemo()
        self.links = message_chain.LinkCache(settings.checkpoint_cache_mb * 1024 * 1024)

    def setup(self) -> None:
        """No-op: `init_database` owns the schema (see sqlite_schema)."""

    # --- sync writes --------------------------------------------------------------
    def put(
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
        parent = link = None
        forked = False
        if messages is not None:
            parent = self._parent_chain(thread_id, checkpoint_ns, parent_id)
            link = message_chain.link_for(messages, parent, self.serde)
        type_, blob = self.serde.dumps_typed(stored)
        meta = json.dumps(get_checkpoint_metadata(config, metadata), ensure_ascii=False).encode(
            "utf-8", "ignore"
        )
        with self.write_transaction() as cur:
            if link is not None:
                link = self._store_link(cur, thread_id, checkpoint_ns, link, messages, parent)
            if self.keep_last and checkpoint_ns == "":
                forked = parent_id != self._latest_id(cur, thread_id)
            cur.execute(
                "INSERT OR REPLACE INTO checkpoints (thread_id, checkpoint_ns, checkpoint_id, "
                "parent_checkpoint_id, type, checkpoint, metadata, messages_head) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    thread_id,
                    checkpoint_ns,
                    checkpoint["id"],
                    parent_id,
                    type_,
                    blob,
                    meta,
                    link.link_id if link is not None else None,
                ),
            )
            if checkpoint_ns == "":
                now = utcnow_iso()
                cur.execute(_THREAD_TOUCH, (thread_id, now, now))
                if self.keep_last:
                    snapshot = link is not None and link.prev_id is None
                    self._compact(cur, thread_id, self.keep_last, collect=forked or snapshot)
        weight = len(blob)
        if link is not None and messages is not None:
            weight += link.snapshot_bytes + link.since_snapshot
            chain = message_chain.Chain(checkpoint["id"], link, list(messages))
            self.chains.put(thread_id, checkpoint_ns, chain)
        self._bytes_total.inc(len(blob) + len(meta))
        self._payload_bytes.observe(len(blob))
        self.decoded.put(thread_id, checkpoint_ns, checkpoint, len(blob), weight)
        return {
            "configurable": {
                "thread_id": thread_id,
                "checkpoint_ns": checkpoint_ns,
                "checkpoint_id": checkpoint["id"],
            }
        }

    def _parent_chain(
        self, thread_id: str, checkpoint_ns: str, parent_id: str | None
    ) -> message_chain.Chain | None:
        """The parent's messages and head link: remembered, or read (before the write)."""
        if parent_id is None:
            return None
        chain = self.chains.get(thread_id, checkpoint_ns, parent_id)
        if chain is not None:
            return chain
        with self.cursor(transaction=False) as cur:
            row = cur.execute(links.HEAD_OF_SQL, (thread_id, checkpoint_ns, parent_id)).fetchone()
            if row is None or row[0] is None:
                return None  # written before message links: the child is a snapshot
            return links.read_chain(
                cur, thread_id, checkpoint_ns, parent_id, row[0], self.serde, self.links
            )

    def _store_link(
        self,
        cur: Any,
        thread_id: str,
        checkpoint_ns: str,
        link: message_chain.Link,
        messages: list[Any],
        parent: message_chain.Chain | None,
    ) -> message_chain.Link:
        """Write a new link; one that builds on a link pruned meanwhile (by another
        worker's sweep) becomes a snapshot instead."""
        reused = parent is not None and link is parent.head
        base = link.link_id if reused else link.prev_id
        if base is not None and not links.link_exists(cur, thread_id, checkpoint_ns, base):
            link = message_chain.link_for(messages, None, self.serde)
        elif reused:
            return link
        links.insert_link(cur, thread_id, checkpoint_ns, link)
        start = 0 if link.prev_id is None or parent is None else parent.head.count
        self.links.put(link.link_id, len(link.blob), list(messages[start:]))
        return link

    @staticmethod
    def _latest_id(cur: Any, thread_id: str) -> str | None:
        row = cur.execute(
            "SELECT checkpoint_id FROM checkpoints WHERE thread_id = ? AND checkpoint_ns = '' "
            "ORDER BY checkpoint_id DESC LIMIT 1",
            (thread_id,),
        ).fetchone()
        return row[0] if row else None

    @staticmethod
    def _compact(cur: Any, thread_id: str, keep: int, *, collect: bool) -> None:
        """Drop root checkpoints older than the newest `keep`, with their writes.

        Their message links stay while a kept checkpoint reaches them, as they do in a
        conversation that only grows. `collect`: the new checkpoint does not build on
        the latest one's links (a fork, or a snapshot), so some may be left unreached.
        """
        row = cur.execute(
            "SELECT checkpoint_id FROM checkpoints WHERE thread_id = ? AND checkpoint_ns = '' "
            "ORDER BY checkpoint_id DESC LIMIT 1 OFFSET ?",
            (thread_id, keep - 1),
        ).fetchone()
        if row is None:
            return
        removed = 0
        for table in ("checkpoints", "writes"):
            removed += cur.execute(
                f"DELETE FROM {table} WHERE thread_id = ? AND checkpoint_ns = '' "
                "AND checkpoint_id < ?",
                (thread_id, row[0]),
            ).rowcount
        if collect and removed:
            links.collect_links(cur, thread_id)

    # --- reads --------------------------------------------------------------------
    def get_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        """The stock query, but the latest checkpoint decodes from this worker's copy.

        The row is always read (so another worker's newer checkpoint is seen); its blob
        is left out when its id is the one this worker already holds decoded.
        """
        configurable = config["configurable"]
        thread_id = str(configurable["thread_id"])
        checkpoint_ns = configurable.get("checkpoint_ns", "")
        checkpoint_id = get_checkpoint_id(config)
        known = self.decoded.known_id(thread_id, checkpoint_ns) if self.decoded.enabled else None
        columns = (
            "checkpoint_id, parent_checkpoint_id, type, metadata, length(checkpoint), "
            "CASE WHEN checkpoint_id = ? THEN NULL ELSE checkpoint END, messages_head"
        )
        with self.cursor(transaction=False) as cur:
            if checkpoint_id:
                cur.execute(
                    f"SELECT {columns} FROM checkpoints WHERE thread_id = ? "
                    "AND checkpoint_ns = ? AND checkpoint_id = ?",
                    (known, thread_id, checkpoint_ns, checkpoint_id),
                )
            else:
                cur.execute(
                    f"SELECT {columns} FROM checkpoints WHERE thread_id = ? "
                    "AND checkpoint_ns = ? ORDER BY checkpoint_id DESC LIMIT 1",
                    (known, thread_id, checkpoint_ns),
                )
            row = cur.fetchone()
            if row is None:
                return None
            found_id, parent_id, type_, metadata, size, blob, head_id = row
            checkpoint = None
            if blob is None:
                checkpoint = self.decoded.get(thread_id, checkpoint_ns, found_id, size)
            if self.decoded.enabled:
                self.decoded.count(hit=checkpoint is not None)
            if checkpoint is None:
                if blob is None:  # evicted since `known` was read
                    fetched = cur.execute(
                        "SELECT checkpoint FROM checkpoints WHERE thread_id = ? "
                        "AND checkpoint_ns = ? AND checkpoint_id = ?",
                        (thread_id, checkpoint_ns, found_id),
                    ).fetchone()
                    if fetched is None:  # deleted by another worker in between
                        return None
                    blob = fetched[0]
                checkpoint = self.serde.loads_typed((type_, blob))
                weight = len(blob)
                if head_id is not None:
                    chain = links.read_chain(
                        cur, thread_id, checkpoint_ns, found_id, head_id, self.serde, self.links
                    )
                    message_chain.restore(checkpoint, chain.messages)
                    self.chains.put(
                        thread_id,
                        checkpoint_ns,
                        replace(chain, messages=list(chain.messages), latest=not checkpoint_id),
                    )
                    weight += chain.head.snapshot_bytes + chain.head.since_snapshot
                if not checkpoint_id:
                    self.decoded.put(thread_id, checkpoint_ns, checkpoint, len(blob), weight)
            cur.execute(
                pending_writes_sql(self._has_task_path), (thread_id, checkpoint_ns, found_id)
            )
            pending = load_pending_writes(cur, self.serde)
        parent = (
            {
                "configurable": {
                    "thread_id": thread_id,
                    "checkpoint_ns": checkpoint_ns,
                    "checkpoint_id": parent_id,
                }
            }
            if parent_id
            else None
        )
        if not checkpoint_id:
            config = {
                "configurable": {
                    "thread_id": thread_id,
                    "checkpoint_ns": checkpoint_ns,
                    "checkpoint_id": found_id,
                }
            }
        return CheckpointTuple(
            config,
            checkpoint,
            json.loads(metadata) if metadata is not None else {},
            parent,
            pending,
        )

    def list(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> Iterator[CheckpointTuple]:
        """The stock listing (newest first), with each checkpoint's messages from its
        links; a link shared by several checkpoints is decoded once."""
        where, params = search_where(config, filter, before)
        query = (
            "SELECT thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id, type, "
            f"checkpoint, metadata, messages_head FROM checkpoints {where} "
            "ORDER BY checkpoint_id DESC"
        )
        if limit is not None:
            query += " LIMIT ?"
            params = (*params, limit)
        found: list[CheckpointTuple] = []
        # Without a shared cache, one for this listing still decodes each link once.
        cache = self.links if self.links.max_bytes else message_chain.LinkCache(1 << 62)
        with self.cursor(transaction=False) as cur:
            rows = cur.execute(query, params).fetchall()
            for thread_id, ns, checkpoint_id, parent_id, type_, blob, metadata, head in rows:
                checkpoint = self.serde.loads_typed((type_, blob))
                if head is not None:
                    chain = links.read_chain(
                        cur, thread_id, ns, checkpoint_id, head, self.serde, cache
                    )
                    message_chain.restore(checkpoint, chain.messages)
                cur.execute(pending_writes_sql(self._has_task_path), (thread_id, ns, checkpoint_id))
                found.append(
                    CheckpointTuple(
                        _config(thread_id, ns, checkpoint_id),
                        checkpoint,
                        json.loads(metadata) if metadata is not None else {},
                        _config(thread_id, ns, parent_id) if parent_id else None,
                        load_pending_writes(cur, self.serde),
                    )
                )
        yield from found

    # --- writes ---------------------------------------------------------------------
    def put_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        configurable = config["configurable"]
        verb = "REPLACE" if all(w[0] in WRITES_IDX_MAP for w in writes) else "IGNORE"
        rows = []
        size = 0
        for idx, (channel, value) in enumerate(writes):
            type_, blob = self.serde.dumps_typed(value)
            size += len(blob) if blob else 0
            rows.append(
                (
                    str(configurable["thread_id"]),
                    str(configurable.get("checkpoint_ns", "")),
                    str(configurable["checkpoint_id"]),
                    task_id,
                    task_path,
                    WRITES_IDX_MAP.get(channel, idx),
                    channel,
                    type_,
                    blob,
                )
            )
        with self.write_transaction() as cur:
            cur.executemany(
                f"INSERT OR {verb} INTO writes (thread_id, checkpoint_ns, checkpoint_id, task_id, "
                "task_path, idx, channel, type, value) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
        self._bytes_total.inc(size)

    def delete_thread(self, thread_id: str) -> bool:
        """Remove every checkpoint, write and the thread record, in one transaction.

        Returns whether the thread had a record.
        """
        with self.write_transaction() as cur:
            existed = delete_thread_rows(cur, str(thread_id))
        self.decoded.discard_thread(str(thread_id))
        self.chains.discard_thread(str(thread_id))
        return existed

    def delete_for_runs(self, run_ids: Sequence[str]) -> None:
        if not run_ids:
            return
        marks = ",".join("?" * len(run_ids))
        params = [str(run_id) for run_id in run_ids]
        with self.write_transaction() as cur:
            threads = [
                row[0]
                for row in cur.execute(
                    f"SELECT DISTINCT thread_id FROM checkpoints WHERE {_RUN_ID} IN ({marks})",
                    params,
                ).fetchall()
            ]
            cur.execute(
                "DELETE FROM writes WHERE (thread_id, checkpoint_ns, checkpoint_id) IN ("
                "SELECT thread_id, checkpoint_ns, checkpoint_id FROM checkpoints "
                f"WHERE {_RUN_ID} IN ({marks}))",
                params,
            )
            cur.execute(f"DELETE FROM checkpoints WHERE {_RUN_ID} IN ({marks})", params)
            for thread_id in threads:
                links.collect_links(cur, thread_id)
        for thread_id in threads:
            self.decoded.discard_thread(thread_id)
            self.chains.discard_thread(thread_id)

    def copy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        source, target = str(source_thread_id), str(target_thread_id)
        with self.write_transaction() as cur:
            cur.execute(
                "INSERT OR REPLACE INTO checkpoints (thread_id, checkpoint_ns, checkpoint_id, "
                "parent_checkpoint_id, type, checkpoint, metadata, messages_head) SELECT ?, "
                "checkpoint_ns, checkpoint_id, parent_checkpoint_id, type, checkpoint, metadata, "
                "messages_head FROM checkpoints WHERE thread_id = ?",
                (target, source),
            )
            cur.execute(links.COPY_LINKS_SQL, (target, source))
            cur.execute(
                "INSERT OR REPLACE INTO writes (thread_id, checkpoint_ns, checkpoint_id, task_id, "
                "task_path, idx, channel, type, value) SELECT ?, checkpoint_ns, checkpoint_id, "
                "task_id, task_path, idx, channel, type, value FROM writes WHERE thread_id = ?",
                (target, source),
            )
            now = utcnow_iso()
            cur.execute(
                "INSERT OR IGNORE INTO threads (thread_id, created_at, updated_at, metadata) "
                "SELECT ?, ?, ?, metadata FROM threads WHERE thread_id = ?",
                (target, now, now, source),
            )

    def prune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        """`keep_latest`: keep the newest checkpoint per namespace; `delete`: keep none.

        One short transaction per thread, so a large prune never holds the write lock
        for long.
        """
        check_prune_strategy(strategy)
        for thread_id in thread_ids:
            self.prune_thread(str(thread_id), keep=1 if strategy == "keep_latest" else 0)

    def prune_thread(self, thread_id: str, *, keep: int) -> int:
        """Keep the newest `keep` checkpoints per namespace (0: none). Returns rows removed."""
        with self.write_transaction() as cur:
            return prune_rows(cur, thread_id, keep)

    # --- async API (what the graph and the HTTP layer use) ------------------------------
    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        return await self.run_read("get", self.get_tuple, config, point=True)

    async def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        def collect() -> list[CheckpointTuple]:
            return list(self.list(config, filter=filter, before=before, limit=limit))

        for item in await self.run_read("list", collect):
            yield item

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        return await self.run_write(
            "put", self.put, config, checkpoint, metadata, new_versions, single=True
        )

    async def aput_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        await self.run_write(
            "put_writes", self.put_writes, config, writes, task_id, task_path, single=True
        )

    async def adelete_thread(self, thread_id: str) -> None:
        await self.run_write("delete", self.delete_thread, thread_id)

    async def adelete_for_runs(self, run_ids: Sequence[str]) -> None:
        await self.run_write("delete_for_runs", self.delete_for_runs, list(run_ids))

    async def acopy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        await self.run_write("copy_thread", self.copy_thread, source_thread_id, target_thread_id)

    async def aprune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        check_prune_strategy(strategy)
        for thread_id in thread_ids:
            await self.run_write(
                "prune",
                lambda tid: self.prune_thread(tid, keep=1 if strategy == "keep_latest" else 0),
                str(thread_id),
            )

    async def aget_delta_channel_history(
        self, *, config: RunnableConfig, channels: Sequence[str]
    ) -> Mapping[str, DeltaChannelHistory]:
        return await self.run_read(
            "get",
            lambda: self.get_delta_channel_history(config=config, channels=channels),
        )
