"""Cost of the per-thread guard on an uncontended thread (acquire + release), in µs.

python -m loadtest.benchmark.guard [iterations]
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

from service.storage.locks import FileLockGuard


async def measure(iterations: int) -> list[float]:
    with tempfile.TemporaryDirectory() as tmp:
        guard = FileLockGuard(Path(tmp) / "threads.locks")
        thread_ids = [str(uuid.uuid4()) for _ in range(iterations)]
        samples = []
        for thread_id in thread_ids:
            started = time.perf_counter_ns()
            async with guard.hold(thread_id, wait=True, timeout_s=5):
                pass
            samples.append((time.perf_counter_ns() - started) / 1000)
        guard.close()
    return samples


def main() -> None:
    iterations = int(sys.argv[1]) if len(sys.argv) > 1 else 20000
    asyncio.run(measure(1000))  # warm-up
    samples = sorted(asyncio.run(measure(iterations)))
    p50 = statistics.median(samples)
    p99 = samples[int(len(samples) * 0.99) - 1]
    print(f"thread guard, uncontended, {iterations} runs: p50 {p50:.1f} µs, p99 {p99:.1f} µs")


if __name__ == "__main__":
    main()
