"""The pair store's queue handler: stores `pair.created` pairs, acking an entry only after its pair is in Redis."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from shared.observability import domain
from shared.pairs.store import PairRepository
from shared.pairs.validation import InvalidPair, validate_pair
from shared.protos.intervene.v1 import queue_pb2
from shared.queues import BatchHandler, Delivery

GROUP = "pairstore"


def store_batch(repository: PairRepository, max_field_chars: int) -> BatchHandler:
    """A batch handler: one atomic write for the valid pairs of a batch; invalid entries (a field over
    `max_field_chars`, ...) fail (and, after `max_deliveries`, land in the dead-letter stream with the reason),
    counted as refused on their first delivery."""

    def handle(deliveries: Sequence[Delivery[queue_pb2.PairCreated]]) -> Mapping[str, str]:
        failures: dict[str, str] = {}
        valid = []
        for delivery in deliveries:
            try:
                validate_pair(delivery.message.pair, "pair", max_field_chars)
            except InvalidPair as error:
                failures[delivery.entry_id] = str(error)
                if delivery.deliveries == 1:
                    domain.PAIRS_REFUSED.labels(path="queue").inc()
            else:
                valid.append(delivery.message.pair)
        if valid:
            repository.put(valid)
        return failures

    return handle
