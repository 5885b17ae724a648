"""Wires the intervention service: job state, the pipeline workers, peer channels, health and the servicer."""

from __future__ import annotations

import grpc
import redis

from services.intervention.servicer import InterventionServicer
from shared.config.base import QueueSettings
from shared.config.intervention import InterventionSettings
from shared.intervention.checks import PairChecks
from shared.intervention.feeder import JobFeeder
from shared.intervention.interactive import SafeRolloutRunner
from shared.intervention.jobs import JobStore
from shared.intervention.pairsink import PairSink
from shared.intervention.triggers import load_pool
from shared.intervention.worker import Pipeline, PipelineConfig
from shared.periodic import Periodic
from shared.protos.intervene.v1 import intervention_pb2, intervention_pb2_grpc
from shared.queues import (
    CONTINUATION_GENERATED,
    CONTINUATION_JUDGED,
    CONTINUATION_REQUESTED,
    PAIR_CREATED,
    ROLLOUT_GENERATED,
    ROLLOUT_JUDGED,
    ROLLOUT_REQUESTED,
    Worker,
    WorkQueue,
    consumer_name,
)
from shared.queues.reporter import LagReporter
from shared.rpc.client import connect
from shared.rpc.health import redis_check
from shared.rpc.metrics import ServiceMetrics
from shared.rpc.server import ServiceSpec, run_service

SERVICE_NAME = intervention_pb2.DESCRIPTOR.services_by_name["InterventionService"].full_name


def _channel(address: str, settings: InterventionSettings) -> grpc.Channel:
    return connect(
        address,
        token=settings.resolved_token(),
        max_message_bytes=settings.max_message_bytes,
        root_cert_file=settings.peer_ca_file,
        client_cert_file=settings.peer_cert_file,
        client_key_file=settings.peer_key_file,
        tls=settings.peer_tls or None,
    )


def build_spec(settings: InterventionSettings, queue_settings: QueueSettings | None = None) -> ServiceSpec:
    """The intervention server: servicer, pipeline workers (if enabled) and a Redis health dependency."""
    queue_settings = queue_settings or QueueSettings()
    pool = load_pool(settings.trigger_pool)
    triggers = pool.select(limit=settings.triggers_per_rollout or None)
    url = settings.resolved_redis_url()
    client = redis.Redis.from_url(url, socket_timeout=10, socket_connect_timeout=2)
    # Workers block in XREADGROUP, so their client's timeout must outlast a blocking read.
    queue_client = redis.Redis.from_url(url, socket_timeout=queue_settings.block_ms / 1000 + 10)
    jobs = JobStore(client, settings.key_prefix, settings.job_ttl_seconds)
    checks = PairChecks(settings.pair_checks, settings.pair_max_similarity, settings.max_pairs_per_rollout)

    def queue(stream: str, shared_client: redis.Redis = queue_client) -> WorkQueue:
        return WorkQueue(shared_client, stream, settings=queue_settings)

    pair_queue = queue(PAIR_CREATED, client)
    pipeline = Pipeline(
        jobs,
        queue(CONTINUATION_REQUESTED, client),
        pair_queue,
        PipelineConfig(
            tuple(triggers),
            pool.label,
            settings.reasoning_close,
            checks,
            settings.uncued_cut_step,
            settings.over_refusal_contrast,
        ),
    )
    pairstore = _channel(settings.pairstore_address, settings) if settings.pairstore_address else None
    runner = SafeRolloutRunner(
        _channel(settings.generation_address, settings),
        _channel(settings.judge_address, settings),
        pool.label,
        settings.reasoning_close,
        checks,
    )

    progress_queues = [queue(ROLLOUT_GENERATED), queue(CONTINUATION_GENERATED)]

    def before_submit() -> None:
        # The progress group must exist before a job's first rollout is generated, or the judge may consume
        # and delete the entry before the group would have seen it.
        if settings.consume_queue:
            for progress_queue in progress_queues:
                progress_queue.ensure_group(settings.progress_group)

    requests = queue(ROLLOUT_REQUESTED, client)
    servicer = InterventionServicer(
        settings,
        pool,
        jobs,
        requests,
        runner,
        PairSink(pair_queue, pairstore),
        before_submit,
    )
    background: list = []
    metrics = ServiceMetrics()
    if settings.consume_queue:
        name = consumer_name()
        group, progress = settings.queue_group, settings.progress_group
        background = [
            Worker(queue(ROLLOUT_JUDGED), group, name, pipeline.on_rollout_judged),
            Worker(queue(CONTINUATION_JUDGED), group, name, pipeline.on_continuation_judged),
            Worker(queue(ROLLOUT_GENERATED), progress, name, batch_handler=pipeline.on_rollouts_generated),
            Worker(queue(CONTINUATION_GENERATED), progress, name, batch_handler=pipeline.on_continuations_generated),
            # Ends the rollouts whose queue entries were dead-lettered.
            Periodic("intervention-dead-letter-sweep", pipeline.sweep_dead_letters, 2.0),
            Periodic("intervention-job-feeder", JobFeeder(jobs, requests, settings.rollout_window).feed, 0.2),
            LagReporter(client, [ROLLOUT_JUDGED, CONTINUATION_JUDGED], metrics),
        ]
    return ServiceSpec(
        name="intervention",
        service_names=[SERVICE_NAME],
        register=lambda server: intervention_pb2_grpc.add_InterventionServiceServicer_to_server(servicer, server),
        dependencies={"redis": redis_check(client)},
        background=background,
        metrics=metrics,
    )


def main() -> None:
    settings = InterventionSettings()
    run_service(build_spec(settings), settings)
