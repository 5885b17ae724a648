"""`WorkQueue`: one Redis stream of protobuf messages with consumer groups (DESIGN §2 "Queues").

Delivery is at least once: an entry is acknowledged only after its handler returned, so a consumer
that dies, times out or loses Redis mid-batch leaves its entries pending, and another consumer
reclaims them (XAUTOCLAIM after `claim_idle_ms`) and handles them again. Every handler must therefore
be idempotent: key its writes by the message's own id (rollout id, pair id), never by "first time seen".

Counting for the cap: acknowledging an entry deletes it once no consumer group still needs it (same
Lua step as the XACK), so a stream's length is its outstanding work — entries not yet delivered plus
entries delivered and not yet acknowledged. A producer is refused with BackPressureError when adding
would take the length past `max_length`; nothing is ever trimmed, so no unconsumed work is lost.
A consequence: a group created after entries were acknowledged by every existing group never sees
those entries, so a service creates its groups (`ensure_group`) when it starts, before work flows.

Hot path: a consumer's read is one Lua call that acks the previous batch and reads the next one, and
a produce is one Lua call per batch (cap check and XADDs), so each batch costs one round trip and,
under `appendfsync always`, one fsync on each side.

    queue = WorkQueue(redis.Redis.from_url(url), ROLLOUT_REQUESTED)
    queue.produce(queue_pb2.RolloutRequested(rollout_id="r1", ...))
    queue.consume("generation", "pod-a", handler)   # one round; Worker loops it in the background

Consumers need a client without `decode_responses` (bodies are bytes) whose socket timeout, if any,
exceeds `block_ms`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Generic, Literal

import redis

from shared.config.base import QueueSettings
from shared.observability import domain
from shared.queues import scripts
from shared.queues.codec import Delivery, M, UndecodableEntry, decode, type_name
from shared.queues.deadletter import move_to_dead_letters, requeue_dead
from shared.queues.errors import BackPressureError
from shared.queues.handling import BatchHandler, ConsumeResult, Handler, Outcome, run_batch_handler, run_handler
from shared.queues.names import dead_letter_stream, errors_key, message_type_for
from shared.queues.tracing import run_observed, stamp

log = logging.getLogger(__name__)

# Entries per produce or ack script call: bounds how long one call holds the server.
CHUNK = 1000


class WorkQueue(Generic[M]):
    """Produce to and consume from one stream; each entry carries one message of `message_type`."""

    def __init__(
        self,
        client: redis.Redis,
        stream: str,
        message_type: type[M] | None = None,
        settings: QueueSettings | None = None,
    ) -> None:
        kwargs = client.get_connection_kwargs()
        if kwargs.get("decode_responses"):
            raise ValueError("WorkQueue needs a Redis client with decode_responses=False: message bodies are bytes")
        self.settings = settings or QueueSettings()
        timeout = kwargs.get("socket_timeout")
        if timeout is not None and timeout * 1000 <= self.settings.block_ms:
            raise ValueError(
                f"the Redis client's socket_timeout ({timeout}s) must exceed the queue's block_ms "
                f"({self.settings.block_ms} ms, INTERVENE_QUEUE_BLOCK_MS): a blocking read would time out"
            )
        self.client = client
        self.stream = stream
        self.message_type: type[M] = message_type or message_type_for(stream)  # type: ignore[assignment]
        self.dead_stream = dead_letter_stream(stream)
        self._type = type_name(self.message_type)
        self._errors = errors_key(stream)
        self._groups_ready: set[str] = set()
        self._reclaim_cursor: dict[str, str] = {}
        # Entries this object moved to the dead-letter stream, for logs and metrics.
        self.dead_lettered = 0

    # Producing.

    def produce(self, message: M) -> str:
        """Appends one message; returns its entry id. BackPressureError when the stream is at its cap."""
        return self.produce_many([message])[0]

    def produce_many(self, messages: Iterable[M]) -> list[str]:
        """Appends messages in order, one round trip per chunk of 1000; returns their entry ids.

        Each chunk is all-or-nothing: BackPressureError when it would take the stream past its cap
        (the error's `written` lists the ids of earlier chunks, which stay written).
        """
        bodies = [self._encode(message) for message in messages]
        ids: list[str] = []
        cap = self.settings.max_length
        for start in range(0, len(bodies), CHUNK):
            chunk = bodies[start : start + CHUNK]
            result = self.client.eval(scripts.PRODUCE, 1, self.stream, cap, self._type, *chunk)
            if isinstance(result, int):
                raise BackPressureError(self.stream, result, cap, len(chunk), written=ids)
            ids += [entry_id.decode() for entry_id in result]
        return ids

    def produce_guarded(
        self, messages: Sequence[M], guard: str, field: str, expected: str, new: str
    ) -> list[str] | None:
        """Appends messages (at most 1000) only if hash `guard`'s `field` still reads `expected` (a missing field
        reads ""), and sets it to `new` in the same atomic step; returns their entry ids.

        The field is a producer's cursor that moves exactly when its entries are written: a producer that died
        mid-call, or a second one racing it, can never write the same entries twice. None when the field held
        something else (another producer moved first: read it again); BackPressureError when the stream lacks
        room for all of them (nothing written, the cursor unmoved).
        """
        if len(messages) > CHUNK:
            raise ValueError(f"produce_guarded takes at most {CHUNK} messages per call, not {len(messages)}")
        bodies = [self._encode(message) for message in messages]
        cap = self.settings.max_length
        result = self.client.eval(
            scripts.PRODUCE_GUARDED, 2, self.stream, guard, cap, self._type, field, expected, new, *bodies
        )
        if result is None:
            return None
        if isinstance(result, int):
            raise BackPressureError(self.stream, result, cap, len(bodies))
        return [entry_id.decode() for entry_id in result]

    def _encode(self, message: M) -> bytes:
        if not isinstance(message, self.message_type):
            raise TypeError(
                f"stream {self.stream!r} carries {self.message_type.DESCRIPTOR.full_name}, not {type(message).__name__}"
            )
        stamp(self.stream, message)
        return message.SerializeToString()

    # Consuming, one round.

    def consume(self, group: str, consumer: str, handler: Handler, *, block_ms: int | None = None) -> ConsumeResult:
        """One round: reclaim idle entries, else read new ones; call `handler` per entry; ack successes.

        For tests and scripts; services use Worker, which also keeps a slow handler's entries from
        being reclaimed while it works (see `touch`).
        """
        return self._consume(group, consumer, block_ms, lambda batch: run_handler(batch, handler))

    def consume_batch(
        self, group: str, consumer: str, handler: BatchHandler, *, block_ms: int | None = None
    ) -> ConsumeResult:
        """One round like `consume`, but `handler` gets the whole batch and returns failures by entry id."""
        return self._consume(group, consumer, block_ms, lambda batch: run_batch_handler(batch, handler))

    def _consume(
        self,
        group: str,
        consumer: str,
        block_ms: int | None,
        run: Callable[[Sequence[Delivery[M]]], Outcome],
    ) -> ConsumeResult:
        dead_before = self.dead_lettered
        reclaimed = self.reclaim(group, consumer)
        batch = reclaimed or self.read(group, consumer, block_ms=block_ms)
        succeeded, failed, blocked = run_observed(self.stream, group, batch, run)
        self.ack(group, succeeded)
        self.fail(group, failed)
        return ConsumeResult(
            acked=len(succeeded),
            failed=len(failed),
            dead_lettered=self.dead_lettered - dead_before,
            reclaimed=len(reclaimed),
            blocked=len(blocked),
        )

    # Consuming, the steps (Worker uses them directly).

    def ensure_group(self, group: str) -> None:
        """Creates the consumer group (and the stream) if missing; the group starts at the stream's first entry."""
        if group in self._groups_ready:
            return
        try:
            self.client.xgroup_create(self.stream, group, id="0", mkstream=True)
        except redis.exceptions.ResponseError as error:
            if "BUSYGROUP" not in str(error):
                raise
        self._groups_ready.add(group)

    def read(
        self,
        group: str,
        consumer: str,
        *,
        count: int | None = None,
        block_ms: int | None = None,
        acknowledge: Sequence[str] = (),
    ) -> list[Delivery[M]]:
        """Reads up to `count` new entries, waiting up to `block_ms` (0: not at all) for the first.

        `acknowledge` ids are acked in the same call, before the read: the cheapest time to ack the
        previous batch. Undecodable entries go straight to the dead-letter stream.
        """
        self.ensure_group(group)
        count = count or self.settings.batch_size
        block = self.settings.block_ms if block_ms is None else block_ms
        acks = list(acknowledge)
        if len(acks) > CHUNK:
            self.ack(group, acks)
            acks = []
        reply = self._read_script(group, consumer, count, acks)
        if len(reply) == 1 and block:
            # Nothing new: wait for an entry after the stream's last one, then read it through the group.
            if not self.client.xread({self.stream: reply[0]}, count=1, block=block):
                return []
            reply = self._read_script(group, consumer, count, [])
        if len(reply) == 1:
            return []
        return self._deliveries(group, [(reply[i], 1, reply[i + 1], reply[i + 2]) for i in range(0, len(reply), 3)])

    def _read_script(self, group: str, consumer: str, count: int, acks: list[str]) -> list[Any]:
        try:
            return self.client.eval(scripts.READ, 2, self.stream, self._errors, group, consumer, count, *acks)
        except redis.exceptions.ResponseError as error:
            if "NOGROUP" not in str(error):
                raise
        # The group vanished (the stream was deleted, or Redis lost its data): recreate it and read again.
        log.warning("consumer group %s of stream %s is gone; recreating it", group, self.stream)
        self._groups_ready.discard(group)
        self.ensure_group(group)
        return self.client.eval(scripts.READ, 2, self.stream, self._errors, group, consumer, count, *acks)

    def reclaim(self, group: str, consumer: str, *, count: int | None = None) -> list[Delivery[M]]:
        """Takes over up to `count` entries other consumers left unacknowledged for `claim_idle_ms`.

        Entries already delivered `max_deliveries` times go to the dead-letter stream instead of
        being returned. Successive calls walk the pending list and start over at its end.
        """
        self.ensure_group(group)
        cursor = self._reclaim_cursor.get(group, "0-0")
        idle, count = self.settings.claim_idle_ms, count or self.settings.batch_size
        reply = self.client.eval(scripts.RECLAIM, 1, self.stream, group, consumer, idle, cursor, count)
        self._reclaim_cursor[group] = reply[0].decode()
        rows = [(reply[i], reply[i + 1], reply[i + 2], reply[i + 3]) for i in range(1, len(reply), 4)]
        return self._deliveries(group, rows)

    def _deliveries(
        self, group: str, entries: list[tuple[bytes, int, bytes | None, bytes | None]]
    ) -> list[Delivery[M]]:
        """Decodes (id, deliveries, type, body) rows; dead-letters those over the limit or undecodable."""
        deliveries: list[Delivery[M]] = []
        dead: list[tuple[str, int, str]] = []
        vanished: list[str] = []
        limit, message_type, expected = self.settings.max_deliveries, self.message_type, self._type
        for raw_id, times, kind, body in entries:
            entry_id = raw_id.decode()
            if kind is None and body is None:
                # Redis 6.2 reclaims entries deleted while pending as empty ones: nothing left to handle.
                vanished.append(entry_id)
            elif times > limit:
                dead.append((entry_id, times, f"delivered {times} times without being acknowledged (max {limit})"))
            else:
                try:
                    deliveries.append(Delivery(entry_id, decode(kind, body, message_type, expected), times))
                except UndecodableEntry as error:
                    dead.append((entry_id, times, str(error)))
        self.ack(group, vanished)
        self.dead_letter(group, dead)
        return deliveries

    def ack(self, group: str, entry_ids: Sequence[str]) -> None:
        """Acknowledges handled entries and deletes those no group still needs."""
        if not entry_ids:
            return
        pipe = self.client.pipeline(transaction=False)
        for start in range(0, len(entry_ids), CHUNK):
            self._queue_ack(pipe, group, entry_ids[start : start + CHUNK])
        pipe.execute()

    def _queue_ack(self, pipe: redis.client.Pipeline, group: str, entry_ids: Sequence[str]) -> None:
        pipe.eval(scripts.ACK, 2, self.stream, self._errors, group, *entry_ids)

    def touch(self, group: str, consumer: str, entry_ids: Sequence[str]) -> None:
        """Marks entries this consumer is still handling as fresh, so no other consumer reclaims them.

        XCLAIM with JUSTID resets an entry's idle time without counting a delivery. A handler slower
        than `claim_idle_ms` needs this (Worker does it); without it its entries would be handled
        again elsewhere and eventually dead-lettered while still in progress.
        """
        if entry_ids:
            self.client.xclaim(self.stream, group, consumer, 0, list(entry_ids), justid=True)

    def fail(self, group: str, failures: Sequence[tuple[Delivery[Any], str]]) -> int:
        """Records failed deliveries: dead-letters those at `max_deliveries`, leaves the rest pending for a retry.

        Returns how many were dead-lettered. A retried entry comes back after `claim_idle_ms`.
        """
        if not failures:
            return 0
        limit = self.settings.max_deliveries
        final = [(d.entry_id, d.deliveries, error) for d, error in failures if d.deliveries >= limit]
        retry = {f"{group}/{d.entry_id}": error for d, error in failures if d.deliveries < limit}
        if retry:
            self.client.hset(self._errors, mapping=retry)
        return self.dead_letter(group, final)

    def dead_letter(self, group: str, entries: Sequence[tuple[str, int, str]]) -> int:
        """Moves (entry id, deliveries, error) entries to the dead-letter stream and acks them; returns how many."""
        if not entries:
            return 0
        moved = move_to_dead_letters(self.client, self.stream, group, entries)
        self.dead_lettered += moved
        domain.DEAD_LETTERED.labels(stream=self.stream).inc(moved)
        log.warning("moved %d entries of %s to %s", moved, self.stream, self.dead_stream)
        return moved

    def requeue_dead(self, ids: Sequence[str] | Literal["all"] = "all") -> int:
        """Moves dead letters (by dead-letter entry id, or all) back onto this stream; see `deadletter.requeue_dead`."""
        return requeue_dead(self.client, self.stream, ids, self.settings)
