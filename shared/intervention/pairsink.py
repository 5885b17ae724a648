"""Where the pairs of interactive safe rollouts go: the pair store's `PutPairs`, else `pair.created`.

The intervention service calls the pair store directly so that a client's pairs are stored before its call
returns. Without a pair store address, or when the call fails, the pairs go the queued way instead: the client
still gets its safe trace, and the pair store takes the pairs from `pair.created` later (pair ids are content
hashes, so a pair that arrives both ways is stored once).
"""

from __future__ import annotations

import logging

import grpc

from shared.protos.intervene.v1 import common_pb2, pairstore_pb2, pairstore_pb2_grpc, queue_pb2
from shared.queues import WorkQueue

log = logging.getLogger("intervene.intervention")

PUT_PAIRS_TIMEOUT_S = 30


class PairSink:
    """Stores pairs through `pairstore` (a channel to the pair store, or None) or, failing that, `pair_queue`."""

    def __init__(self, pair_queue: WorkQueue[queue_pb2.PairCreated], pairstore: grpc.Channel | None) -> None:
        self.pair_queue = pair_queue
        self.pairstore = pairstore

    def __call__(self, pairs: list[common_pb2.Pair]) -> None:
        if self.pairstore is None:
            self._queue(pairs)
            return
        try:
            pairstore_pb2_grpc.PairStoreServiceStub(self.pairstore).PutPairs(
                pairstore_pb2.PutPairsRequest(pairs=pairs), timeout=PUT_PAIRS_TIMEOUT_S
            )
        except grpc.RpcError as error:
            log.warning("PutPairs failed (%s); sending %d pairs to pair.created", error.code(), len(pairs))
            self._queue(pairs)

    def _queue(self, pairs: list[common_pb2.Pair]) -> None:
        self.pair_queue.produce_many([queue_pb2.PairCreated(pair=pair) for pair in pairs])
