"""One long conversation: stored size against the messages' own size, and latency by turn.

    python loadtest/long_conversation.py [--turns 100]

For each configuration (the stock saver; ours keeping every checkpoint; ours with the
default retention) it starts a fresh 2-worker server, sends TURNS turns to one thread,
and reports the bytes stored for the thread, the size of its messages serialized on
their own, the ratio, and the median turn latency around turn 5 and at the end.
Written to reports/bench/long_conversation.md.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from tests.support.server import ServerProcess  # noqa: E402

CONFIGS = {
    "stock AsyncSqliteSaver (keeps all)": {"CHECKPOINTER": "sqlite-stock"},
    "ours, retention all": {"CHECKPOINTER": "sqlite", "CHECKPOINT_RETENTION": "all"},
    "ours, default (keep_latest)": {"CHECKPOINTER": "sqlite"},
}


def stored_bytes(db: Path, thread_id: str) -> int:
    from service.persistence.sqlite_driver import sqlite3

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
    finally:
        conn.close()
    return checkpoints + writes


def message_bytes(base_url: str, thread_id: str) -> int:
    """The conversation's messages serialized on their own, as the checkpointer would."""
    from langchain_core.messages import messages_from_dict
    from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

    values = httpx.get(f"{base_url}/threads/{thread_id}/state", timeout=30).json()["values"]
    messages = messages_from_dict([{"type": m["type"], "data": m} for m in values["messages"]])
    return len(JsonPlusSerializer().dumps_typed(messages)[1])


def run(name: str, env: dict[str, str], turns: int) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp, ServerProcess(Path(tmp), env=env) as srv:
        thread_id = str(uuid.uuid4())
        latencies = []
        with httpx.Client(base_url=srv.base_url, timeout=60) as http:
            for i in range(turns):
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
                latencies.append((time.perf_counter() - started) * 1000)
        stored = stored_bytes(srv.db_path, thread_id)
        messages = message_bytes(srv.base_url, thread_id)
    early = statistics.median(latencies[2:12])
    late = statistics.median(latencies[-10:])
    return {
        "configuration": name,
        "stored": stored,
        "messages": messages,
        "ratio": stored / messages,
        "early_ms": early,
        "late_ms": late,
        "late_x": late / early,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--turns", type=int, default=100)
    parser.add_argument("--out", type=Path, default=ROOT / "reports" / "bench")
    args = parser.parse_args()
    rows = []
    for name, env in CONFIGS.items():
        row = run(name, env, args.turns)
        rows.append(row)
        print(
            f"{name:38s} stored {row['stored'] / 1e6:7.2f} MB  messages "
            f"{row['messages'] / 1e6:5.2f} MB  ratio {row['ratio']:6.1f}x  "
            f"turn ~5 {row['early_ms']:6.1f} ms  last turns {row['late_ms']:6.1f} ms "
            f"({row['late_x']:.2f}x)",
            flush=True,
        )
    lines = [
        f"One {args.turns}-turn conversation, 2 workers, offline model at 0 ms.",
        "",
        "| configuration | stored | messages alone | stored / messages | turn ~5 ms "
        "| last turns ms | last / ~5 |",
        "| --- | --: | --: | --: | --: | --: | --: |",
    ]
    for row in rows:
        lines.append(
            f"| {row['configuration']} | {row['stored'] / 1e6:.2f} MB | "
            f"{row['messages'] / 1e6:.3f} MB | {row['ratio']:.1f}x | {row['early_ms']:.1f} | "
            f"{row['late_ms']:.1f} | {row['late_x']:.2f}x |"
        )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "long_conversation.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
