"""Builds and runs a service's gRPC server: auth, error mapping, metrics, health, reflection, TLS, drain.

A service describes itself with a `ServiceSpec` and calls `run_service(spec, settings)` from its
`__main__` (blocking; SIGTERM drains it and returns, so the process exits 0). Tests call
`start_server(spec, settings)` and get a `RunningServer` on a free port (settings.port=0).

Interceptor order, outermost first: metrics (sees the final status of every call, auth refusals included),
tracing (a server span per call, only while tracing is on: `shared.observability.tracing`), bearer auth
(skipped when settings.auth_disabled), payload logging (only with settings.log_text), error mapping (turns
servicer exceptions into statuses), request decoding (requests that do not parse become INVALID_ARGUMENT after
auth, not INTERNAL before it).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent import futures
from dataclasses import dataclass, field
from typing import Protocol
from wsgiref.simple_server import WSGIServer

import grpc
from grpc_health.v1 import health, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from prometheus_client import start_http_server

from shared.config.base import ServiceSettings
from shared.observability import tracing
from shared.rpc.auth import BearerAuthInterceptor
from shared.rpc.client import KEEPALIVE_TIME_MS
from shared.rpc.decoding import RequestDecodingInterceptor
from shared.rpc.health import DependencyCheck, HealthMonitor
from shared.rpc.interceptors import ErrorInterceptor
from shared.rpc.logs import configure_logging
from shared.rpc.metrics import MetricsInterceptor, ServiceMetrics
from shared.rpc.payloads import PayloadLogInterceptor
from shared.rpc.shutdown import StopSignal
from shared.rpc.tls import server_credentials
from shared.rpc.tracing import ServerTracingInterceptor

KEEPALIVE_SERVER_OPTIONS: list[tuple[str, int]] = [
    # Accept the clients' keepalive pings (shared/rpc/client.py) instead of answering GOAWAY too_many_pings
    # (core's GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS; an unknown name would be ignored silently).
    ("grpc.http2.min_ping_interval_without_data_ms", KEEPALIVE_TIME_MS // 3),
    ("grpc.keepalive_permit_without_calls", 1),
    # Clients reconnect, and so re-resolve a headless Service's name, at least this often: replicas added by
    # a scale-up get calls. The calls in flight on an aged connection finish on it (no grace limit).
    ("grpc.max_connection_age_ms", 300_000),
]

log = logging.getLogger("intervene.rpc.server")


class BackgroundTask(Protocol):
    """Work that runs beside the server (a queue consumer, a batching engine): started after the server,
    stopped after it has drained, in reverse order."""

    def start(self) -> None: ...

    def stop(self) -> None: ...


@dataclass
class ServiceSpec:
    """What a service contributes to its server."""

    name: str
    """Short name for logs and thread names ("judge")."""
    service_names: list[str]
    """Full gRPC service names served ("intervene.v1.JudgeService"): health and reflection list them."""
    register: Callable[[grpc.Server], None]
    """Adds the servicers to the server (`add_XServicer_to_server`)."""
    dependencies: dict[str, DependencyCheck] = field(default_factory=dict)
    """name -> check; health is SERVING only while every check returns True."""
    read_scope_methods: set[str] = field(default_factory=set)
    """Full method names ("/intervene.v1.PairStoreService/ExportPairs") that need the read-scope token."""
    background: list[BackgroundTask] = field(default_factory=list)
    """Started after the server starts, stopped on drain."""
    metrics: ServiceMetrics = field(default_factory=ServiceMetrics)
    """The server's metrics; create it first when background tasks report queue lag into it."""

    def __post_init__(self) -> None:
        for method in self.read_scope_methods:
            service, _, name = method.strip("/").partition("/")
            if not method.startswith("/") or not name or service not in self.service_names:
                raise ValueError(
                    f"read_scope_methods entry {method!r} is not '/<service>/<method>' of a service in service_names"
                )


class RunningServer:
    """A started server. `port` is the bound port; `health` shows (and in tests sets) the serving status."""

    def __init__(
        self,
        spec: ServiceSpec,
        settings: ServiceSettings,
        server: grpc.Server,
        port: int,
        health: HealthMonitor,
    ) -> None:
        self.spec = spec
        self.settings = settings
        self.server = server
        self.port = port
        self.health = health
        self.metrics = spec.metrics
        self.background: list[BackgroundTask] = []
        """The background tasks started so far; `stop` stops them in reverse order."""
        self.metrics_port: int | None = None
        """Port of the /metrics endpoint, None when settings.metrics_port is 0."""
        self._metrics_httpd: WSGIServer | None = None
        self._lock = threading.Lock()
        self._stopped = False

    @property
    def address(self) -> str:
        """host:port to dial from this machine (loopback when bound to every interface)."""
        host = self.settings.host
        if host in ("0.0.0.0", "", "::", "[::]"):
            host = "127.0.0.1"
        elif ":" in host and not host.startswith("["):
            host = f"[{host}]"
        return f"{host}:{self.port}"

    def start_metrics_endpoint(self) -> None:
        """Serves /metrics on settings.metrics_port."""
        port = self.settings.metrics_port
        try:
            self._metrics_httpd, _ = start_http_server(port, addr=self.settings.host, registry=self.metrics.registry)
        except OSError as error:
            raise RuntimeError(
                f"{self.spec.name}: cannot serve metrics on port {port} (INTERVENE_METRICS_PORT): {error}"
            ) from error
        self.metrics_port = port

    def drain(self) -> None:
        """Graceful stop: NOT_SERVING, then `settings.drain_seconds` for in-flight calls, then background tasks."""
        self.stop(grace=self.settings.drain_seconds)

    def stop(self, grace: float | None = None) -> None:
        """Stops accepting calls, gives in-flight ones `grace` seconds (None: cancels them), then stops
        background tasks, health checks and the metrics endpoint. Safe to call again (a smaller grace ends
        a drain sooner)."""
        self.health.drain()
        stopped = self.server.stop(grace)
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
        stopped.wait()
        # Background tasks stop only after in-flight calls are done: a call may be waiting on one (an engine).
        for task in reversed(self.background):
            try:
                task.stop()
            except Exception:
                log.exception("background task %s failed to stop", type(task).__name__)
        self.health.stop()
        if self._metrics_httpd is not None:
            self._metrics_httpd.shutdown()
            self._metrics_httpd.server_close()
        log.info("%s stopped", self.spec.name)

    def wait_for_termination(self, timeout: float | None = None) -> bool:
        """Blocks until the server stops; True once it has, False if `timeout` passed first."""
        timed_out = self.server.wait_for_termination(timeout)
        return not timed_out


def _listen_address(host: str, port: int) -> str:
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"{host}:{port}"


def _interceptors(spec: ServiceSpec, settings: ServiceSettings) -> list[grpc.ServerInterceptor]:
    chain: list[grpc.ServerInterceptor] = [MetricsInterceptor(spec.metrics), ServerTracingInterceptor()]
    if settings.auth_disabled:
        log.warning("%s: authentication is DISABLED (INTERVENE_AUTH_DISABLED); local development only", spec.name)
    else:
        token = settings.resolved_token()
        if token is None:
            raise ValueError("no bearer token configured: set INTERVENE_AUTH_TOKEN or INTERVENE_AUTH_TOKEN_FILE")
        read_token = settings.resolved_read_token()
        if read_token is None and spec.read_scope_methods:
            log.warning(
                "%s: no read token configured (INTERVENE_READ_TOKEN[_FILE]); these methods will be refused: %s",
                spec.name,
                ", ".join(sorted(spec.read_scope_methods)),
            )
        chain.append(BearerAuthInterceptor(token, read_token, spec.read_scope_methods))
    if settings.log_text:
        log.warning("%s: INTERVENE_LOG_TEXT is on: logs may hold prompts, reasoning and pairs (debug only)", spec.name)
        chain.append(PayloadLogInterceptor())
    chain.append(ErrorInterceptor(log_text=settings.log_text))
    chain.append(RequestDecodingInterceptor())
    return chain


def start_server(spec: ServiceSpec, settings: ServiceSettings) -> RunningServer:
    """Builds, binds and starts the server, its health checks, metrics endpoint and background tasks."""
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=settings.max_workers, thread_name_prefix=f"{spec.name}-rpc"),
        interceptors=_interceptors(spec, settings),
        options=[
            ("grpc.max_receive_message_length", settings.max_message_bytes),
            ("grpc.max_send_message_length", settings.max_message_bytes),
            # Without this, a second server on a busy port binds silently and steals half the connections.
            ("grpc.so_reuseport", 0),
            *KEEPALIVE_SERVER_OPTIONS,
        ],
    )
    spec.register(server)
    monitor = HealthMonitor(spec.service_names, spec.dependencies, settings.dependency_check_seconds)
    health_pb2_grpc.add_HealthServicer_to_server(monitor.servicer, server)
    reflection.enable_server_reflection([*spec.service_names, health.SERVICE_NAME, reflection.SERVICE_NAME], server)

    address = _listen_address(settings.host, settings.port)
    credentials = server_credentials(settings)
    try:
        if credentials is None:
            port = server.add_insecure_port(address)
        else:
            port = server.add_secure_port(address, credentials)
    except RuntimeError as error:
        raise RuntimeError(
            f"{spec.name}: cannot listen on {address} (INTERVENE_HOST / INTERVENE_PORT): is the port in use? {error}"
        ) from error
    server.start()
    monitor.start()
    running = RunningServer(spec, settings, server, port, monitor)
    try:
        if settings.metrics_port:
            running.start_metrics_endpoint()
        for task in spec.background:
            task.start()
            running.background.append(task)
    except Exception:
        running.stop(grace=None)
        raise
    log.info(
        "%s serving %s on port %d (%s)",
        spec.name,
        ", ".join(spec.service_names),
        port,
        "TLS" if credentials is not None else "plaintext",
    )
    return running


def run_service(spec: ServiceSpec, settings: ServiceSettings) -> None:
    """Serves until SIGTERM or SIGINT, then drains (health NOT_SERVING, `drain_seconds` of grace for
    in-flight calls, background tasks stopped), exports the spans still buffered and returns. Call it from the
    main thread. Tracing is set up here from the OTEL_* variables (off unless they ask for it)."""
    configure_logging(settings)
    tracing.configure(spec.name)
    running = start_server(spec, settings)
    stop_signal = StopSignal(on_second=lambda: running.server.stop(None)).install()
    try:
        stop_signal.wait()
        running.drain()
    finally:
        running.stop(grace=None)
        stop_signal.restore()
        tracing.shutdown()
