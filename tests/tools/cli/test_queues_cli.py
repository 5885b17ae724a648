"""`intervene queues` shows lag and dead letters from a real Redis and requeues them."""

from __future__ import annotations

import redis
from click.testing import CliRunner

from shared.config.base import QueueSettings
from shared.protos.intervene.v1 import queue_pb2
from shared.queues import PAIR_CREATED, WorkQueue, dead_letters
from tests.shared.pairs.factories import make_pair
from tools.cli.main import cli


def test_lag_dead_letters_and_requeue(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    queue = WorkQueue(client, PAIR_CREATED, settings=QueueSettings(block_ms=10, max_deliveries=1))
    queue.produce_many([queue_pb2.PairCreated(pair=make_pair(i)) for i in range(3)])
    queue.ensure_group("pairstore")

    def fail(delivery) -> None:
        raise ValueError("cannot store this one")

    for _ in range(3):
        queue.consume("pairstore", "c1", fail, block_ms=10)
    runner = CliRunner()
    shown = runner.invoke(cli, ["queues", "--redis-url", redis_url])
    assert shown.exit_code == 0, shown.output
    line = next(line for line in shown.output.splitlines() if line.startswith(PAIR_CREATED))
    assert line.split()[1:3] == ["0", "3"], line

    listed = runner.invoke(cli, ["queues", "dead", PAIR_CREATED, "--redis-url", redis_url])
    assert listed.output.count("cannot store this one") == 3

    refused = runner.invoke(cli, ["queues", "requeue", PAIR_CREATED, "--redis-url", redis_url])
    assert refused.exit_code != 0 and "--all" in refused.output
    first = dead_letters(client, PAIR_CREATED)[0].dead_id
    one = runner.invoke(cli, ["queues", "requeue", PAIR_CREATED, "--id", first, "--redis-url", redis_url])
    assert "requeued 1" in one.output
    rest = runner.invoke(cli, ["queues", "requeue", PAIR_CREATED, "--all", "--redis-url", redis_url])
    assert "requeued 2" in rest.output and client.xlen(PAIR_CREATED) == 3
