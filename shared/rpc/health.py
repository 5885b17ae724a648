"""grpc.health.v1 status driven by the service's dependency checks.

The status (for "" and for each served service name) is NOT_SERVING until every dependency check returns
True, SERVING while they all do, NOT_SERVING again while any fails (Redis down), and NOT_SERVING for good
once the server drains. Kubernetes readiness probes (`grpc:` probes) read it, so a replica that lost Redis
stops receiving traffic instead of failing calls.

Liveness is a separate name, `LIVENESS` ("liveness"), SERVING for as long as the server answers, whatever the
dependencies say and through the drain: a liveness probe must not restart every replica while Redis is down (a
restart cures nothing there, and the restarted pods would only queue up on the same outage), nor kill a
draining server before its in-flight calls end. The chart's livenessProbe names it, its readinessProbe "".

Checks run in one background thread every `settings.dependency_check_seconds`; a check must return quickly
(give Redis clients a socket timeout) and an exception counts as a failure.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence

import redis
from grpc_health.v1 import health, health_pb2

log = logging.getLogger("intervene.rpc.health")

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
# The health service name a liveness probe asks for: SERVING while the process answers gRPC at all.
LIVENESS = "liveness"

DependencyCheck = Callable[[], bool]


class DependencyFailure(Exception):
    """A failed dependency check with a reason fit for the log: what is wrong and which setting to fix, never a
    secret or request text. Other exceptions a check raises are logged by their type alone."""


def redis_check(client: redis.Redis, timeout_s: float = 1.0) -> DependencyCheck:
    """A dependency check that PINGs the Redis `client` talks to, on a connection of its own that gives up after
    `timeout_s`: a Redis that hangs (paused, partitioned) turns health NOT_SERVING within about that time, whatever
    timeouts the service's own clients need for their blocking reads."""
    pool = client.connection_pool
    kwargs = {**pool.connection_kwargs, "socket_timeout": timeout_s, "socket_connect_timeout": timeout_s}
    probe = redis.Redis(connection_pool=redis.ConnectionPool(connection_class=pool.connection_class, **kwargs))

    def check() -> bool:
        try:
            return bool(probe.ping())
        except redis.exceptions.AuthenticationError:
            # Unlike an outage, refused credentials do not heal by themselves: the log says what to fix.
            raise DependencyFailure(
                "Redis refused the credentials: check the user and password in INTERVENE_REDIS_URL "
                "or INTERVENE_REDIS_PASSWORD_FILE"
            ) from None
        except redis.exceptions.NoPermissionError:
            raise DependencyFailure("the Redis user may not run PING: give its ACL +@connection") from None
        except redis.exceptions.RedisError:
            return False

    return check


class HealthMonitor:
    """Owns the health servicer and the thread that keeps its status in line with the dependencies."""

    def __init__(
        self, service_names: Sequence[str], dependencies: Mapping[str, DependencyCheck], interval_s: float
    ) -> None:
        self.servicer = health.HealthServicer(experimental_non_blocking=True)
        self.names = ["", *service_names]
        self._dependencies = dict(dependencies)
        self._interval_s = interval_s
        self._stopped = threading.Event()
        self._draining = False
        self._failing: set[str] = set()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._check_lock = threading.Lock()
        self._status = NOT_SERVING
        self.set(NOT_SERVING)
        self.servicer.set(LIVENESS, SERVING)

    def set(self, status: int) -> None:
        """Sets the status of every name but LIVENESS; the next dependency check may change it again. Ignored once
        draining."""
        with self._lock:
            if self._draining:
                return
            self._status = status
            for name in self.names:
                self.servicer.set(name, status)

    def status(self) -> int:
        """The current status (a `HealthCheckResponse.ServingStatus` value; the same for every name)."""
        return self._status

    def check_dependencies(self) -> bool:
        """Runs every check once, logs the ones that changed, and updates the status; True when all pass."""
        with self._check_lock:
            return self._check_dependencies()

    def _check_dependencies(self) -> bool:
        failing = set()
        for name, check in self._dependencies.items():
            try:
                ok = bool(check())
            except Exception as error:
                ok = False
                if name not in self._failing:
                    reason = str(error) if isinstance(error, DependencyFailure) else type(error).__name__
                    log.warning("dependency check %r failed: %s", name, reason)
            if not ok:
                failing.add(name)
        for name in sorted(failing - self._failing):
            log.warning("dependency %r is failing: health is NOT_SERVING", name)
        for name in sorted(self._failing - failing):
            log.info("dependency %r is back", name)
        self._failing = failing
        self.set(NOT_SERVING if failing else SERVING)
        return not failing

    def start(self) -> None:
        """Starts the checking thread (the first check runs at once)."""
        self._thread = threading.Thread(target=self._run, name="health-checks", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stopped.is_set():
            self.check_dependencies()
            self._stopped.wait(self._interval_s)

    def drain(self) -> None:
        """NOT_SERVING from now on, whatever the dependencies say (liveness stays SERVING until the server stops)."""
        with self._lock:
            self._draining = True
            self._status = NOT_SERVING
            for name in self.names:
                self.servicer.set(name, NOT_SERVING)

    def stop(self) -> None:
        """Stops the checking thread."""
        self._stopped.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=max(self._interval_s, 5.0))
