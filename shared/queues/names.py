"""The work-queue streams of DESIGN §2 and the protobuf message each one carries.

A stream carries exactly one message type; `WorkQueue` looks it up here so that a producer cannot put
a `RolloutJudged` on `rollout.requested` and a consumer always knows how to decode what it reads.
"""

from __future__ import annotations

from google.protobuf.message import Message

from shared.protos.intervene.v1 import queue_pb2

ROLLOUT_REQUESTED = "rollout.requested"
ROLLOUT_GENERATED = "rollout.generated"
ROLLOUT_JUDGED = "rollout.judged"
CONTINUATION_REQUESTED = "continuation.requested"
CONTINUATION_GENERATED = "continuation.generated"
CONTINUATION_JUDGED = "continuation.judged"
PAIR_CREATED = "pair.created"

MESSAGE_TYPES: dict[str, type[Message]] = {
    ROLLOUT_REQUESTED: queue_pb2.RolloutRequested,
    ROLLOUT_GENERATED: queue_pb2.RolloutGenerated,
    ROLLOUT_JUDGED: queue_pb2.RolloutJudged,
    CONTINUATION_REQUESTED: queue_pb2.ContinuationRequested,
    CONTINUATION_GENERATED: queue_pb2.ContinuationGenerated,
    CONTINUATION_JUDGED: queue_pb2.ContinuationJudged,
    PAIR_CREATED: queue_pb2.PairCreated,
}

ALL_STREAMS: tuple[str, ...] = tuple(MESSAGE_TYPES)


def dead_letter_stream(stream: str) -> str:
    """The stream that holds `stream`'s entries that could not be processed."""
    return f"{stream}.dead"


def errors_key(stream: str) -> str:
    """Hash of the last error of each entry that failed but may still be retried (field `<group>/<id>`)."""
    return f"{stream}.errors"


def message_type_for(stream: str) -> type[Message]:
    """The message class `stream` carries; ValueError naming the known streams for any other name."""
    try:
        return MESSAGE_TYPES[stream]
    except KeyError:
        raise ValueError(
            f"unknown stream {stream!r}: known streams are {', '.join(ALL_STREAMS)}; "
            "pass message_type= for a stream of your own"
        ) from None
