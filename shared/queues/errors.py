"""Errors the work queues raise, so callers can tell "slow down" from "broken"."""

from __future__ import annotations


class QueueError(Exception):
    """Base of every work-queue error."""


class BackPressureError(QueueError):
    """A stream is at its cap: its consumers are behind, so the producer must wait and retry (or shed load)."""

    def __init__(self, stream: str, length: int, cap: int, adding: int, written: list[str] | None = None) -> None:
        self.stream = stream
        self.length = length
        self.cap = cap
        self.adding = adding
        # Ids of entries an earlier chunk of the same produce_many call did write.
        self.written = written or []
        super().__init__(
            f"stream {stream!r} holds {length} unprocessed entries and its cap is {cap} "
            f"(INTERVENE_QUEUE_MAX_LENGTH); cannot add {adding} more: its consumers are behind. "
            "Retry later, or add consumers."
        )
