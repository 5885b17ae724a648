"""The durable Redis the stack and tests start keeps acknowledged writes across kill -9."""

from __future__ import annotations

import redis

from tools.redis_process import RedisProcess


def test_acknowledged_write_survives_kill_9(own_redis: RedisProcess) -> None:
    client = redis.Redis.from_url(own_redis.url)
    client.xadd("durable", {"body": b"payload"})
    own_redis.kill()
    own_redis.start()
    entries = redis.Redis.from_url(own_redis.url).xrange("durable")
    assert [fields[b"body"] for _, fields in entries] == [b"payload"]
