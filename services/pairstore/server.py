"""Wires the pair store: Redis repository, gRPC servicer, `pair.created` consumer, health and scopes."""

from __future__ import annotations

import redis

from services.pairstore.servicer import PairStoreServicer
from shared.config.base import QueueSettings
from shared.config.pairstore import PairStoreSettings
from shared.pairs.store import PairRepository
from shared.pairs.worker import GROUP, store_batch
from shared.protos.intervene.v1 import pairstore_pb2, pairstore_pb2_grpc
from shared.queues import PAIR_CREATED, Worker, WorkQueue, consumer_name
from shared.queues.reporter import LagReporter
from shared.rpc.health import redis_check
from shared.rpc.metrics import ServiceMetrics
from shared.rpc.server import ServiceSpec, run_service

SERVICE_NAME = pairstore_pb2.DESCRIPTOR.services_by_name["PairStoreService"].full_name
# These return pair text (harmful by construction), so they need the read-scope token.
READ_SCOPE_METHODS = {f"/{SERVICE_NAME}/{method}" for method in ("GetPair", "ListPairs", "ExportPairs")}


def build_spec(settings: PairStoreSettings, queue_settings: QueueSettings | None = None) -> ServiceSpec:
    """The pair store's server: its servicer, a Redis health dependency and, if enabled, the queue consumer."""
    queue_settings = queue_settings or QueueSettings()
    url = settings.resolved_redis_url()
    client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=2)
    repository = PairRepository(client, settings.key_prefix)
    servicer = PairStoreServicer(repository, settings)
    metrics = ServiceMetrics()
    background = []
    if settings.consume_queue:
        # The consumer blocks in XREADGROUP, so its client's timeout must outlast a blocking read.
        queue_client = redis.Redis.from_url(url, socket_timeout=queue_settings.block_ms / 1000 + 5)
        queue = WorkQueue(queue_client, PAIR_CREATED, settings=queue_settings)
        handler = store_batch(repository, settings.max_field_chars)
        background.append(Worker(queue, GROUP, consumer_name(), batch_handler=handler))
        background.append(LagReporter(client, [PAIR_CREATED], metrics))
    return ServiceSpec(
        name="pairstore",
        service_names=[SERVICE_NAME],
        register=lambda server: pairstore_pb2_grpc.add_PairStoreServiceServicer_to_server(servicer, server),
        dependencies={"redis": redis_check(client)},
        read_scope_methods=READ_SCOPE_METHODS,
        background=background,
        metrics=metrics,
    )


def main() -> None:
    settings = PairStoreSettings()
    run_service(build_spec(settings), settings)
