"""A consumer that dies holding its batch: run by test_reclaim as a child process, then killed with SIGKILL.

    python -m tests.shared.queues.killed_consumer REDIS_URL COUNT

It reads COUNT entries of `rollout.requested` as consumer "doomed", applies the effect of the first
half, prints READY and waits to be killed, never acknowledging anything.
"""

from __future__ import annotations

import sys
import time

from tests.shared.queues.helpers import apply_effect, queue


def main(url: str, count: int) -> None:
    work = queue(url)
    batch = work.read("workers", "doomed", count=count, block_ms=0)
    for delivery in batch[: len(batch) // 2]:
        apply_effect(work.client, delivery.message.rollout_id)
    print(f"READY {len(batch)}", flush=True)
    time.sleep(60)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
