"""Wires the judge service: the configured judge, the gRPC servicer, the queue workers and health."""

from __future__ import annotations

import threading

import redis

from services.judge.servicer import SERVICE_NAME, JudgeServicer, register
from shared.config.base import QueueSettings
from shared.config.judge import JudgeSettings
from shared.judging.base import Judge
from shared.judging.registry import JudgeOptions, make_judge
from shared.judging.worker import GROUP, judge_continuations, judge_rollouts
from shared.queues import (
    CONTINUATION_GENERATED,
    CONTINUATION_JUDGED,
    ROLLOUT_GENERATED,
    ROLLOUT_JUDGED,
    Worker,
    WorkQueue,
    consumer_name,
)
from shared.queues.reporter import LagReporter
from shared.rpc.health import redis_check
from shared.rpc.metrics import ServiceMetrics
from shared.rpc.server import ServiceSpec, run_service


def build_judge(settings: JudgeSettings) -> Judge:
    """The judge back end the settings name."""
    return make_judge(settings.judge_backend, JudgeOptions.from_settings(settings))


def build_spec(
    settings: JudgeSettings, queue_settings: QueueSettings | None = None, judge: Judge | None = None
) -> ServiceSpec:
    """The judge's server: servicer, and when `consume_queue` is set, the two queue workers (Redis then
    becomes a health dependency)."""
    judge = judge or build_judge(settings)
    # The rules and llm judges are thread-safe; the classifier's encoder (also inside the cascade) is not
    # guaranteed to be.
    lock = threading.Lock() if judge.name in ("classifier", "cascade") else None
    servicer = JudgeServicer(judge, settings, lock)
    metrics = ServiceMetrics()
    background: list = []
    dependencies = {}
    if settings.consume_queue:
        queue_settings = queue_settings or QueueSettings()
        url = settings.resolved_redis_url()
        client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=2)
        # Consumers block in XREADGROUP, so their client's timeout must outlast a blocking read.
        queue_client = redis.Redis.from_url(url, socket_timeout=queue_settings.block_ms / 1000 + 5)
        for source, target, make_handler in (
            (ROLLOUT_GENERATED, ROLLOUT_JUDGED, judge_rollouts),
            (CONTINUATION_GENERATED, CONTINUATION_JUDGED, judge_continuations),
        ):
            output = WorkQueue(client, target, settings=queue_settings)
            handler = make_handler(judge, output, settings.max_trace_chars, lock)
            queue = WorkQueue(queue_client, source, settings=queue_settings)
            background.append(Worker(queue, GROUP, consumer_name(), batch_handler=handler))
        background.append(LagReporter(client, [ROLLOUT_GENERATED, CONTINUATION_GENERATED], metrics))
        dependencies["redis"] = redis_check(client)
    return ServiceSpec(
        name="judge",
        service_names=[SERVICE_NAME],
        register=lambda server: register(servicer, server),
        dependencies=dependencies,
        background=background,
        metrics=metrics,
    )


def main() -> None:
    settings = JudgeSettings()
    run_service(build_spec(settings), settings)
