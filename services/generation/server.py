"""Wires the generation service: the configured back end, its gRPC servicer and the queue workers.

INTERVENE_AUTH_DISABLED=true python -m services.generation      # embedded SmolLM2 on the CPU
INTERVENE_GENERATION_BACKEND=vllm INTERVENE_MODEL=... python -m services.generation
"""

from __future__ import annotations

import redis

from services.generation.servicer import GenerationServicer
from shared.config.base import QueueSettings
from shared.config.generation import GenerationSettings
from shared.generation.backends.base import GenerationBackend, create_backend
from shared.generation.worker import continuation_handler, rollout_handler
from shared.protos.intervene.v1 import generation_pb2, generation_pb2_grpc
from shared.queues import (
    CONTINUATION_GENERATED,
    CONTINUATION_REQUESTED,
    ROLLOUT_GENERATED,
    ROLLOUT_REQUESTED,
    Worker,
    WorkQueue,
    consumer_name,
)
from shared.queues.reporter import LagReporter
from shared.rpc.health import redis_check
from shared.rpc.metrics import ServiceMetrics
from shared.rpc.server import ServiceSpec, run_service

SERVICE_NAME = generation_pb2.DESCRIPTOR.services_by_name["GenerationService"].full_name


def build_spec(
    settings: GenerationSettings, backend: GenerationBackend | None = None, queue_settings: QueueSettings | None = None
) -> ServiceSpec:
    """The generation server; with `consume_queue`, workers on rollout.requested and continuation.requested."""
    backend = backend or create_backend(settings)
    queue_settings = queue_settings or QueueSettings()
    servicer = GenerationServicer(backend)
    metrics = ServiceMetrics()
    dependencies = {}
    background = []
    if settings.consume_queue:
        url = settings.resolved_redis_url()
        client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=2)
        # Workers block in XREADGROUP, so their client's timeout must outlast a blocking read.
        queue_client = redis.Redis.from_url(url, socket_timeout=queue_settings.block_ms / 1000 + 5)

        def queue(stream: str) -> WorkQueue:
            return WorkQueue(queue_client, stream, settings=queue_settings)

        consumer = consumer_name()
        background = [
            Worker(
                queue(ROLLOUT_REQUESTED),
                settings.queue_group,
                consumer,
                batch_handler=rollout_handler(backend, queue(ROLLOUT_GENERATED)),
            ),
            Worker(
                queue(CONTINUATION_REQUESTED),
                settings.queue_group,
                consumer,
                batch_handler=continuation_handler(backend, queue(CONTINUATION_GENERATED)),
            ),
            LagReporter(client, [ROLLOUT_REQUESTED, CONTINUATION_REQUESTED], metrics),
        ]
        dependencies["redis"] = redis_check(client)
    return ServiceSpec(
        name="generation",
        service_names=[SERVICE_NAME],
        register=lambda server: generation_pb2_grpc.add_GenerationServiceServicer_to_server(servicer, server),
        dependencies=dependencies,
        background=background,
        metrics=metrics,
    )


def main() -> None:
    settings = GenerationSettings()
    run_service(build_spec(settings), settings)
