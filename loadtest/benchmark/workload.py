"""The benchmark's closed-loop workload: N users, T turns each, no think time.

Each user holds one keep-alive connection (so one worker) and one thread, and sends
its next turn as soon as the previous reply arrives. Turns follow a five-step
booking cycle, so every configuration runs the same dialogue and the same tools:

    booking request → name and email (book) → cancel CODE → availability → thanks

A turn counts as lost when the reply's state does not hold exactly the human
messages sent so far on that thread.
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context
from typing import Any

import orjson

from loadtest.benchmark.httpclient import Connection, HttpError
from loadtest.common import dialogue as d
from service.settings import load_settings

CYCLE = 5

# How each turn is sent: `runs/wait`; a background run then its join; a stream of
# `values` events (plain or resumable), whose last event is the thread's state.
MODES = ("wait", "background", "stream", "resumable")


@dataclass
class WorkloadResult:
    latencies_ms: list[float] = field(default_factory=list)
    errors: int = 0
    lost: int = 0
    reconnects: int = 0
    started: float = 0.0
    finished: float = 0.0
    samples: list[str] = field(default_factory=list)  # the first few error messages

    @property
    def turns(self) -> int:
        return len(self.latencies_ms)

    @property
    def seconds(self) -> float:
        return max(self.finished - self.started, 1e-9)

    def merge(self, other: WorkloadResult) -> None:
        self.latencies_ms += other.latencies_ms
        self.errors += other.errors
        self.lost += other.lost
        self.reconnects += other.reconnects
        self.samples = (self.samples + other.samples)[:5]
        self.started = min(self.started, other.started) if self.started else other.started
        self.finished = max(self.finished, other.finished)


def message(turn: int, customer: d.Customer, code: str | None) -> str:
    step = turn % CYCLE
    if step == 0:
        return d.booking_request(customer)
    if step == 1:
        return d.customer_message(customer)
    if step == 2:
        return d.cancel_message(customer, code) if code else d.thanks(customer)
    if step == 3:
        return d.availability_question(customer)
    return d.thanks(customer)


def last_values(stream: Any) -> Any:
    """The data of the last `values` event of an SSE body (None if there is none)."""
    if not isinstance(stream, str):
        return None
    found = None
    for block in stream.replace("\r\n", "\n").split("\n\n"):
        lines = block.split("\n")
        if "event: values" in lines:
            data = "\n".join(line[6:] for line in lines if line.startswith("data: "))
            found = orjson.loads(data)
    return found


async def send_turn(
    conn: Connection, thread_id: str, body: dict[str, Any], mode: str
) -> tuple[int, Any]:
    """One turn as `mode` sends it; (status, the thread's values after it)."""
    runs = f"/threads/{thread_id}/runs"
    if mode == "wait":
        return await conn.request("POST", f"{runs}/wait", body)
    if mode == "background":
        status, run = await conn.request("POST", runs, body)
        if status != 200:
            return status, run
        return await conn.request("GET", f"{runs}/{run['run_id']}/join")
    streamed = {**body, "stream_mode": ["values"], "stream_resumable": mode == "resumable"}
    status, events = await conn.request("POST", f"{runs}/stream", streamed)
    return status, last_values(events) if status == 200 else events


async def run_user(
    conn: Connection,
    uid: int,
    turns: int,
    allocator: d.SlotAllocator,
    slot_base: int,
    mode: str = "wait",
) -> WorkloadResult:
    result = WorkloadResult()
    thread_id = f"bench-{slot_base}-{uid}"
    cycles = -(-turns // CYCLE)
    sent, trusted, code = 0, True, None
    customer = d.make_customer(uid, allocator.slot(slot_base + uid * cycles))
    try:
        for turn in range(turns):
            if turn and turn % CYCLE == 0:
                slot = allocator.slot(slot_base + uid * cycles + turn // CYCLE)
                customer, code = d.make_customer(uid, slot), None
            body = {
                "assistant_id": "agent",
                "input": {"messages": [{"role": "user", "content": message(turn, customer, code)}]},
                "if_not_exists": "create",
                "multitask_strategy": "reject",
            }
            start = time.perf_counter()
            try:
                status, values = await send_turn(conn, thread_id, body, mode)
            except HttpError as exc:
                result.errors += 1
                result.samples.append(str(exc)[:200])
                trusted = False
                continue
            elapsed = (time.perf_counter() - start) * 1000
            reply = d.last_ai_text(values) if status == 200 else None
            if reply is None:
                result.errors += 1
                result.samples.append(f"HTTP {status}: {str(values)[:200]}")
                trusted = trusted and status in (409, 503)  # those write nothing
                continue
            sent += 1
            result.latencies_ms.append(elapsed)
            if trusted and d.human_count(values) != sent:
                result.lost += 1
                trusted = False
            code = d.confirmation_code(reply) or code
    finally:
        result.reconnects = conn.connects
        await conn.close()
    return result


async def balanced_connections(base_url: str, count: int, workers: int) -> list[Connection]:
    """`count` open connections spread evenly over the server's workers.

    The kernel hands a new connection to whichever worker accepts first, which can
    leave one worker with most users for a whole run; throughput would then measure
    luck. Each connection asks GET /info which worker it reached; surplus ones are
    replaced (a bounded number of times, then accepted as they are). A server whose
    /info names no pid (a peer runtime: loadtest/peers.py) counts as one worker.
    """
    quota = -(-count // max(workers, 1))
    kept: dict[int, list[Connection]] = {}
    for _ in range(50):
        missing = count - sum(len(group) for group in kept.values())
        if missing <= 0:
            break
        fresh = [Connection(base_url) for _ in range(missing)]
        answers = await asyncio.gather(*(c.request("GET", "/info") for c in fresh))
        for conn, (_, info) in zip(fresh, answers, strict=True):
            pid = info.get("pid", 0) if isinstance(info, dict) else 0
            group = kept.setdefault(int(pid), [])
            if len(group) < quota:
                group.append(conn)
            else:
                await conn.close()
    chosen = [conn for group in kept.values() for conn in group]
    # Could not balance: the rest connect on first use, wherever they land.
    return chosen + [Connection(base_url) for _ in range(count - len(chosen))]


async def run_users(
    base_url: str,
    uids: list[int],
    turns: int,
    slot_base: int,
    start_at: float,
    workers: int,
    mode: str = "wait",
) -> WorkloadResult:
    """All `uids` at once, starting at `start_at` (time.monotonic(), shared by processes)."""
    allocator = d.SlotAllocator(load_settings())
    conns = await balanced_connections(base_url, len(uids), workers)
    for conn in conns:
        conn.connects = 0  # only reconnects during the run count
    await asyncio.sleep(max(0.0, start_at - time.monotonic()))
    started = time.monotonic()
    parts = await asyncio.gather(
        *(
            run_user(conn, uid, turns, allocator, slot_base, mode)
            for conn, uid in zip(conns, uids, strict=True)
        )
    )
    total = WorkloadResult()
    for part in parts:
        total.merge(part)
    total.started, total.finished = started, time.monotonic()
    return total


def _in_process(
    base_url: str,
    uids: list[int],
    turns: int,
    slot_base: int,
    start_at: float,
    workers: int,
    mode: str,
) -> WorkloadResult:
    return asyncio.run(run_users(base_url, uids, turns, slot_base, start_at, workers, mode))


def start_time(users: int) -> float:
    """A start far enough ahead for `users` connections to open and balance."""
    return time.monotonic() + 1.0 + users / 200


def run_workload(
    base_url: str,
    users: int,
    turns: int,
    *,
    workers: int,
    slot_base: int = 0,
    client_procs: int = 1,
    start_at: float | None = None,
    mode: str = "wait",
) -> WorkloadResult:
    """N users x T turns, spread evenly over `workers`, from `client_procs` processes,
    each turn sent as `mode` (one of MODES) sends it.

    Connections are opened and balanced before the shared start time `start_at`
    (time.monotonic(); by default a margin from now that grows with `users`).
    """
    uids = list(range(users))
    if start_at is None:
        start_at = start_time(users)
    if client_procs <= 1:
        return _in_process(base_url, uids, turns, slot_base, start_at, workers, mode)
    groups = [uids[i::client_procs] for i in range(client_procs)]
    with ProcessPoolExecutor(len(groups), mp_context=get_context("fork")) as pool:
        futures = [
            pool.submit(_in_process, base_url, group, turns, slot_base, start_at, workers, mode)
            for group in groups
        ]
        results = [future.result() for future in futures]
    total = results[0]
    for part in results[1:]:
        total.merge(part)
    return total
