"""How a protobuf message is laid out in a stream entry, and what a consumer's handler receives.

An entry has two fields (the Lua scripts in `scripts` name them): `body`, the message's serialized
bytes (never pickle: a queue must not be a way to run code in a consumer), and `type`, the message's
full protobuf name (e.g. `intervene.v1.RolloutRequested`), which lets a consumer reject an entry of
the wrong type instead of misreading it as its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from google.protobuf.message import DecodeError, Message

M = TypeVar("M", bound=Message)


@dataclass(frozen=True, slots=True)
class Delivery(Generic[M]):
    """One stream entry handed to a handler: the decoded message, its entry id, and how often it was delivered."""

    entry_id: str
    message: M
    # 1 on the first delivery; more when an earlier consumer failed, died or timed out on it.
    deliveries: int
    # The CONSUMER span of this delivery while tracing is on (`shared.queues.tracing`), else None.
    trace: Any = field(default=None, compare=False, repr=False)


class UndecodableEntry(ValueError):
    """An entry's fields are not a message of the stream's type; it goes to the dead-letter stream."""


def type_name(message_type: type[Message]) -> bytes:
    """The `type` field value for messages of `message_type`."""
    return message_type.DESCRIPTOR.full_name.encode()


def decode(kind: bytes | None, body: bytes | None, message_type: type[M], expected_type: bytes) -> M:
    """The message in an entry with this `type` and `body` (None: field missing); UndecodableEntry otherwise."""
    if body is None:
        raise UndecodableEntry("entry has no body field")
    if kind != expected_type:
        shown = kind.decode(errors="replace") if kind is not None else "none"
        raise UndecodableEntry(f"entry type is {shown}, the stream carries {expected_type.decode()}")
    try:
        return message_type.FromString(body)
    except DecodeError as error:
        raise UndecodableEntry(f"body is not a valid {expected_type.decode()}: {error}") from None
