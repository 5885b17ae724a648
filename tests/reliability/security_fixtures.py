"""The real services for the security tests: all four gRPC services in this process over loopback, on a real
redis-server, with bearer tokens, small limits and the tiny random-weight generation model.

The model is `shared.models.tiny` (the `tiny_model_folder` fixture of this folder's conftest): the embedded
SmolLM2's tokenizer and chat template on two narrow layers of random weights, so generation is real (think
block, sampling, budgets) and takes milliseconds, and what it writes is harmless word salad. Every RPC is
enumerated from the generated descriptors, so an RPC added to a proto is fuzzed and access-checked without
touching these tests.
"""

from __future__ import annotations

import importlib
import pkgutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import grpc
from google.protobuf.descriptor import MethodDescriptor
from grpc_health.v1 import health_pb2, health_pb2_grpc

import shared.protos.intervene.v1 as api_package
from services.generation.server import build_spec as build_generation
from services.intervention.server import build_spec as build_intervention
from services.judge.server import build_spec as build_judge
from services.pairstore.server import build_spec as build_pairstore
from shared.config.base import QueueSettings
from shared.config.generation import GenerationSettings
from shared.config.intervention import InterventionSettings
from shared.config.judge import JudgeSettings
from shared.config.pairstore import PairStoreSettings
from shared.rpc.client import connect
from shared.rpc.server import RunningServer, start_server

TOKEN = "security-call-token-7f3a"
READ_TOKEN = "security-read-token-91c2"
MAX_MESSAGE_BYTES = 2 * 1024 * 1024
"""The servers' gRPC message limit: small, so that requests above it stay cheap to build."""
QUEUE = QueueSettings(block_ms=100, claim_idle_ms=2000)

READ_SCOPE = {"PairStoreService": {"GetPair", "ListPairs", "ExportPairs"}}
"""The methods that return stored pair text, by service: they need the read-scope token."""


def api_modules() -> list[ModuleType]:
    """Every generated `*_pb2` module of the API (shared/protos/intervene/v1), found on disk: a new proto is in."""
    names = sorted(info.name for info in pkgutil.iter_modules(api_package.__path__) if info.name.endswith("_pb2"))
    return [importlib.import_module(f"{api_package.__name__}.{name}") for name in names]


def api_methods() -> list[MethodDescriptor]:
    """Every RPC of every service the API protos declare, from the generated descriptors."""
    return [
        method
        for module in api_modules()
        for service in module.DESCRIPTOR.services_by_name.values()
        for method in service.methods
    ]


def method_path(method: MethodDescriptor) -> str:
    """The gRPC path of `method`: /intervene.v1.PairStoreService/GetPair."""
    return f"/{method.containing_service.full_name}/{method.name}"


def needs_read_scope(method: MethodDescriptor) -> bool:
    return method.name in READ_SCOPE.get(method.containing_service.name, set())


def _identity(data: bytes) -> bytes:
    return data


@dataclass
class Reply:
    """What one raw call returned: its status, details and the number of messages (or bytes) that came back."""

    code: grpc.StatusCode
    details: str
    messages: list[bytes] = field(default_factory=list)


def raw_call(channel: grpc.Channel, method: MethodDescriptor, payload: bytes, timeout: float) -> Reply:
    """Sends `payload` as the serialized request of `method`, bytes as they are, and reads the whole reply
    (every message of a stream) within `timeout`."""
    path = method_path(method)
    try:
        if method.server_streaming:
            stream = channel.unary_stream(path, request_serializer=_identity, response_deserializer=_identity)
            return Reply(grpc.StatusCode.OK, "", list(stream(payload, timeout=timeout)))
        unary = channel.unary_unary(path, request_serializer=_identity, response_deserializer=_identity)
        return Reply(grpc.StatusCode.OK, "", [unary(payload, timeout=timeout)])
    except grpc.RpcError as error:
        return Reply(error.code(), error.details() or "")


@dataclass
class Services:
    """The four running services, by the short name of their gRPC service ("PairStoreService")."""

    servers: dict[str, RunningServer]
    _channels: dict[tuple[str, str | None], grpc.Channel] = field(default_factory=dict)

    def channel(self, service: str, token: str | None = READ_TOKEN) -> grpc.Channel:
        """A channel to `service` carrying `token` (the read token by default: it grants every method)."""
        key = (service, token)
        if key not in self._channels:
            self._channels[key] = connect(
                self.servers[service].address, token=token, max_message_bytes=4 * MAX_MESSAGE_BYTES
            )
        return self._channels[key]

    def call(self, method: MethodDescriptor, payload: bytes, timeout: float, token: str | None = READ_TOKEN) -> Reply:
        return raw_call(self.channel(method.containing_service.name, token), method, payload, timeout)

    def not_serving(self) -> list[str]:
        """The services whose gRPC health is not SERVING (asked over the wire)."""
        failing = []
        for name in self.servers:
            stub = health_pb2_grpc.HealthStub(self.channel(name, None))
            try:
                status = stub.Check(health_pb2.HealthCheckRequest(), timeout=5).status
            except grpc.RpcError as error:
                failing.append(f"{name}: {error.code().name}")
                continue
            if status != health_pb2.HealthCheckResponse.SERVING:
                failing.append(f"{name}: {health_pb2.HealthCheckResponse.ServingStatus.Name(status)}")
        return failing

    def stop(self) -> None:
        for channel in self._channels.values():
            channel.close()
        for server in reversed(self.servers.values()):
            server.stop(grace=None)


def wait_until_serving(services: Services, timeout_s: float = 60.0) -> None:
    """Blocks until every service reports SERVING; AssertionError naming the ones that do not."""
    deadline = time.monotonic() + timeout_s
    while (failing := services.not_serving()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not failing, f"not SERVING after {timeout_s}s: {failing}"


def start_services(
    redis_url: str,
    model_dir: Path,
    consume_queue: bool = False,
    common: dict[str, Any] | None = None,
    **per_service: dict[str, Any],
) -> Services:
    """Starts pair store, judge (rules), generation (the tiny model) and intervention wired to them.

    `common` overrides settings of every service (log_text, TLS files, ...); `per_service` those of one service,
    by keyword pairstore=, judge=, generation=, intervention=.
    """
    shared: dict[str, Any] = {
        "port": 0,
        "redis_url": redis_url,
        "auth_token": TOKEN,
        "read_token": READ_TOKEN,
        "max_message_bytes": MAX_MESSAGE_BYTES,
        "dependency_check_seconds": 0.2,
        "consume_queue": consume_queue,
        "max_workers": 8,
        **(common or {}),
    }

    def settings(kind: Callable[..., Any], name: str, **values: Any) -> Any:
        return kind(**{**shared, **values, **per_service.get(name, {})})

    servers: dict[str, RunningServer] = {}
    try:
        pairstore = settings(PairStoreSettings, "pairstore")
        servers["PairStoreService"] = start_server(build_pairstore(pairstore, QUEUE), pairstore)
        judge = settings(JudgeSettings, "judge", judge_backend="rules")
        servers["JudgeService"] = start_server(build_judge(judge, QUEUE), judge)
        generation = settings(
            GenerationSettings,
            "generation",
            generation_backend="transformers",
            model=str(model_dir),
            device="cpu",
            max_context_tokens=512,
            max_reasoning_tokens=12,
            max_response_tokens=6,
            limit_reasoning_tokens=48,
            limit_response_tokens=12,
            limit_n=2,
            limit_prompts=4,
            limit_branches=4,
        )
        servers["GenerationService"] = start_server(build_generation(generation, queue_settings=QUEUE), generation)
        intervention = settings(
            InterventionSettings,
            "intervention",
            generation_address=servers["GenerationService"].address,
            judge_address=servers["JudgeService"].address,
            pairstore_address=servers["PairStoreService"].address,
            triggers_per_rollout=2,
            limit_rounds=2,
            limit_samples_per_prompt=2,
            max_prompts_per_job=8,
            peer_timeout_seconds=60,
            watch_interval_seconds=0.1,
        )
        servers["InterventionService"] = start_server(build_intervention(intervention, QUEUE), intervention)
    except BaseException:
        Services(servers).stop()
        raise
    return Services(servers)
