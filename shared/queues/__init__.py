"""Work queues over Redis Streams: protobuf messages, consumer groups, at-least-once delivery.

    from shared.queues import ROLLOUT_REQUESTED, WorkQueue, Worker, consumer_name

    queue = WorkQueue(redis.Redis.from_url(url), ROLLOUT_REQUESTED, settings=QueueSettings())
    queue.produce(message)                         # BackPressureError when the stream is at its cap
    Worker(queue, "generation", consumer_name(), handler).start()

Delivery is at least once, so handlers must be idempotent (key effects by the message's own id). See
`stream` for the counting and acking rules, `deadletter` for poison entries, `lag` for monitoring.
"""

from shared.queues.codec import Delivery
from shared.queues.consumer import Worker, consumer_name
from shared.queues.deadletter import DeadLetter, dead_letters, requeue_dead
from shared.queues.errors import BackPressureError, QueueError
from shared.queues.handling import BatchHandler, ConsumeResult, Handler
from shared.queues.lag import GroupLag, StreamLag, queue_lag, stream_lag
from shared.queues.names import (
    ALL_STREAMS,
    CONTINUATION_GENERATED,
    CONTINUATION_JUDGED,
    CONTINUATION_REQUESTED,
    MESSAGE_TYPES,
    PAIR_CREATED,
    ROLLOUT_GENERATED,
    ROLLOUT_JUDGED,
    ROLLOUT_REQUESTED,
    dead_letter_stream,
)
from shared.queues.stream import WorkQueue

__all__ = [
    "ALL_STREAMS",
    "CONTINUATION_GENERATED",
    "CONTINUATION_JUDGED",
    "CONTINUATION_REQUESTED",
    "MESSAGE_TYPES",
    "PAIR_CREATED",
    "ROLLOUT_GENERATED",
    "ROLLOUT_JUDGED",
    "ROLLOUT_REQUESTED",
    "BackPressureError",
    "BatchHandler",
    "ConsumeResult",
    "DeadLetter",
    "Delivery",
    "GroupLag",
    "Handler",
    "QueueError",
    "StreamLag",
    "WorkQueue",
    "Worker",
    "consumer_name",
    "dead_letter_stream",
    "dead_letters",
    "queue_lag",
    "requeue_dead",
    "stream_lag",
]
