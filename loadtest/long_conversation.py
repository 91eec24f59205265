"""One long conversation: stored size against the messages' own size, latency by turn,
and reading older checkpoints.

    python loadtest/long_conversation.py [--turns 100]

For each configuration (no persistence; the stock saver; ours as shipped, keeping every
checkpoint; ours without the decoded caches; ours keeping the latest checkpoint only) it
starts a fresh 2-worker server, warms it up, and REPEATS times grows a thread to TURNS
turns, timing its last 10 turns interleaved with turns 3 to 12 of a short thread. It
reports the bytes stored for the long thread, the size of its messages serialized on
their own, the ratio, the median turn latency at turn ~5 and at the end, and, where every
checkpoint is kept, the median time to read the state at an older checkpoint
(`GET /threads/{id}/state/{checkpoint_id}`) against reading the latest state, each read
right after the other. Written to reports/bench/long_conversation.md.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from tests.support.server import ServerProcess  # noqa: E402

WARM_UP_TURNS = 20
READS = 20  # older checkpoints read per measured conversation
CONFIGS = {
    "memory (no persistence)": {"CHECKPOINTER": "memory"},
    "stock AsyncSqliteSaver (keeps all)": {"CHECKPOINTER": "sqlite-stock"},
    "ours, keep_latest": {"CHECKPOINTER": "sqlite", "CHECKPOINT_RETENTION": "keep_latest"},
    "ours, keeps all, no decoded caches": {"CHECKPOINTER": "sqlite", "CHECKPOINT_CACHE_MB": "0"},
    "ours, default (keeps all + caches)": {"CHECKPOINTER": "sqlite"},
}


def stored_bytes(db: Path, thread_id: str) -> int:
    from service.storage.sqlite.driver import sqlite3

    conn = sqlite3.connect(str(db))
    try:
        checkpoints = conn.execute(
            "SELECT coalesce(sum(length(checkpoint) + length(metadata)), 0) FROM checkpoints "
            "WHERE thread_id = ?",
            (thread_id,),
        ).fetchone()[0]
        writes = conn.execute(
            "SELECT coalesce(sum(length(value)), 0) FROM writes WHERE thread_id = ?",
            (thread_id,),
        ).fetchone()[0]
        has_links = conn.execute(
            "SELECT 1 FROM sqlite_master WHERE name = 'checkpoint_messages'"
        ).fetchone()
        links = (
            conn.execute(
                "SELECT coalesce(sum(length(messages)), 0) FROM checkpoint_messages "
                "WHERE thread_id = ?",
                (thread_id,),
            ).fetchone()[0]
            if has_links
            else 0
        )
    finally:
        conn.close()
    return checkpoints + writes + links


def message_bytes(values: dict[str, Any]) -> int:
    """The conversation's messages serialized on their own, as the checkpointer would."""
    from langchain_core.messages import messages_from_dict
    from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

    messages = messages_from_dict([{"type": m["type"], "data": m} for m in values["messages"]])
    return len(JsonPlusSerializer().dumps_typed(messages)[1])


def turn(http: httpx.Client, thread_id: str, i: int) -> tuple[float, httpx.Response]:
    """One turn; its latency in ms and the response."""
    started = time.perf_counter()
    response = http.post(
        f"/threads/{thread_id}/runs/wait",
        json={
            "assistant_id": "agent",
            "input": {"messages": [{"role": "user", "content": f"Services? {i}"}]},
            "if_not_exists": "create",
        },
    )
    response.raise_for_status()
    return (time.perf_counter() - started) * 1000, response


def paired(http: httpx.Client, turns: int) -> tuple[str, list[float], list[float], Any]:
    """A long thread's last 10 turns, each right after a short thread's turn 3 to 12.

    Interleaving puts both samples in the same moment of a noisy shared machine, so
    the ratio compares conversation lengths, not whatever else the machine was doing.
    """
    long_id, short_id = str(uuid.uuid4()), str(uuid.uuid4())
    for i in range(turns - 10):
        turn(http, long_id, i)
    for i in range(2):
        turn(http, short_id, i)
    early, late = [], []
    for k in range(10):
        early.append(turn(http, short_id, 2 + k)[0])
        latency, response = turn(http, long_id, turns - 10 + k)
        late.append(latency)
    return long_id, early, late, response.json()


def timed_get(http: httpx.Client, path: str) -> float:
    started = time.perf_counter()
    http.get(path).raise_for_status()
    return (time.perf_counter() - started) * 1000


def older_reads(http: httpx.Client, thread_id: str) -> tuple[list[float], list[float]]:
    """READS older checkpoints read, each right after a read of the latest state."""
    history = http.post(f"/threads/{thread_id}/history", json={"limit": 1000})
    history.raise_for_status()
    ids = [item["checkpoint"]["checkpoint_id"] for item in history.json()[1:]]
    if not ids:
        return [], []
    latest, older = [], []
    for checkpoint_id in random.Random(7).sample(ids, min(READS, len(ids))):
        latest.append(timed_get(http, f"/threads/{thread_id}/state"))
        older.append(timed_get(http, f"/threads/{thread_id}/state/{checkpoint_id}"))
    return latest, older


def run(name: str, env: dict[str, str], turns: int, repeats: int) -> dict[str, object]:
    """A warm-up conversation, then `repeats` paired measurements; medians of all samples."""
    early: list[float] = []
    late: list[float] = []
    latest_reads: list[float] = []
    older: list[float] = []
    each = []
    with tempfile.TemporaryDirectory() as tmp, ServerProcess(Path(tmp), env=env) as srv:
        with httpx.Client(base_url=srv.base_url, timeout=60) as http:
            warm_up = str(uuid.uuid4())
            for i in range(WARM_UP_TURNS):
                turn(http, warm_up, i)
            for _ in range(repeats):
                thread_id, short, long, values = paired(http, turns)
                early += short
                late += long
                each.append(statistics.median(long) / statistics.median(short))
                if env.get("CHECKPOINT_RETENTION", "all") == "all" and env["CHECKPOINTER"] in (
                    "sqlite",
                    "postgres",
                ):
                    at_latest, at_older = older_reads(http, thread_id)
                    latest_reads += at_latest
                    older += at_older
        persisted = env.get("CHECKPOINTER") != "memory"
        stored = stored_bytes(srv.db_path, thread_id) if persisted else None
        messages = message_bytes(values)
    early_ms, late_ms = statistics.median(early), statistics.median(late)
    return {
        "configuration": name,
        "stored": stored,
        "messages": messages,
        "ratio": stored / messages if stored is not None else None,
        "early_ms": early_ms,
        "late_ms": late_ms,
        "late_x": late_ms / early_ms,
        "late_x_each": each,
        "latest_read_ms": statistics.median(latest_reads) if latest_reads else None,
        "older_read_ms": statistics.median(older) if older else None,
    }


def _ms(value: object) -> str:
    return f"{value:.1f}" if isinstance(value, float) else "n/a"


def _mb(value: object) -> str:
    return f"{value / 1e6:.2f} MB" if isinstance(value, int) else "n/a"


def _ratio(value: object) -> str:
    return f"{value:.1f}x" if isinstance(value, float) else "n/a"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--turns", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3, help="measured conversations each")
    parser.add_argument("--out", type=Path, default=ROOT / "reports" / "bench")
    args = parser.parse_args()
    rows = []
    for name, env in CONFIGS.items():
        row = run(name, env, args.turns, args.repeats)
        rows.append(row)
        each = ", ".join(f"{x:.2f}" for x in row["late_x_each"])
        print(
            f"{name:38s} stored {_mb(row['stored'])}  ratio {_ratio(row['ratio'])}  "
            f"turn ~5 {row['early_ms']:6.1f} ms  last turns {row['late_ms']:6.1f} ms "
            f"({row['late_x']:.2f}x; each {each}); state read latest "
            f"{_ms(row['latest_read_ms'])} ms, older {_ms(row['older_read_ms'])} ms",
            flush=True,
        )
    lines = [
        f"{args.turns}-turn conversations, 2 workers, offline model at 0 ms, after a "
        f"{WARM_UP_TURNS}-turn warm-up. {args.repeats} times: a long thread's last 10 turns, "
        "each right after a short thread's turn 3 to 12 (turn ~5); medians of all samples. "
        f"State reads: {READS} older checkpoints a conversation, each after a read of the "
        "latest state.",
        "",
        "| configuration | stored | messages alone | stored / messages | turn ~5 ms "
        "| last turns ms | last / ~5 | latest state ms | older checkpoint ms |",
        "| --- | --: | --: | --: | --: | --: | --: | --: | --: |",
    ]
    for row in rows:
        lines.append(
            f"| {row['configuration']} | {_mb(row['stored'])} | "
            f"{row['messages'] / 1e6:.3f} MB | {_ratio(row['ratio'])} | {row['early_ms']:.1f} | "
            f"{row['late_ms']:.1f} | {row['late_x']:.2f}x | {_ms(row['latest_read_ms'])} | "
            f"{_ms(row['older_read_ms'])} |"
        )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "long_conversation.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
