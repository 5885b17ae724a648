"""Settings every service shares (listening, Redis, auth, limits, drain) and queue behaviour.

Every field carries its documentation, which the README's settings table repeats. Secrets can come
from a mounted file (`*_FILE` fields), as Kubernetes Secrets are usually mounted.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class ServiceSettings(BaseSettings):
    """Settings every gRPC service shares: where it listens, Redis, auth, limits, drain."""

    model_config = SettingsConfigDict(env_prefix="INTERVENE_", extra="ignore")

    host: str = Field("127.0.0.1", description="Address the gRPC server binds to (0.0.0.0 in containers).")
    port: int = Field(50050, ge=0, le=65535, description="gRPC port (0 picks a free one).")
    metrics_port: int = Field(0, ge=0, le=65535, description="Port of the Prometheus /metrics endpoint; 0 disables it.")
    redis_url: str = Field("redis://127.0.0.1:6379/0", description="Redis URL (redis:// or rediss://).")
    redis_password_file: Path | None = Field(
        None, description="File holding the Redis password; overrides a password in the URL."
    )
    auth_token: SecretStr | None = Field(None, description="Bearer token every RPC must carry.")
    auth_token_file: Path | None = Field(None, description="File holding the bearer token (a mounted Secret).")
    read_token: SecretStr | None = Field(
        None, description="Bearer token of the read scope (ExportPairs, ListPairs, GetPair return harmful text)."
    )
    read_token_file: Path | None = Field(None, description="File holding the read-scope token.")
    auth_disabled: bool = Field(
        False, description="Serve without authentication (local development only; logs a warning)."
    )
    max_message_bytes: int = Field(
        16 * 1024 * 1024, ge=1024, description="Largest gRPC message accepted or sent, in bytes."
    )
    drain_seconds: float = Field(
        10.0, ge=0, description="On SIGTERM: seconds to keep serving in-flight calls while health is NOT_SERVING."
    )
    dependency_check_seconds: float = Field(
        1.0, gt=0, description="How often health re-checks the service's dependencies (Redis, peers)."
    )
    max_workers: int = Field(
        16, ge=1, description="Threads serving RPCs; each open server-streaming call holds one until it ends."
    )
    tls_cert_file: Path | None = Field(
        None, description="PEM certificate chain the gRPC server presents; unset serves plaintext (in-cluster mesh)."
    )
    tls_key_file: Path | None = Field(None, description="PEM private key of `tls_cert_file`.")
    tls_client_ca_file: Path | None = Field(
        None, description="PEM CA bundle; when set, clients must present a certificate it signed (mTLS)."
    )
    log_level: str = Field("INFO", description="Python log level.")
    log_format: Literal["json", "text"] = Field(
        "json", description="Log lines as JSON objects (for log collectors) or plain text."
    )
    log_text: bool = Field(
        False, description="Debug only: allow prompts, reasoning and pair text in logs (they hold harmful text)."
    )

    @model_validator(mode="after")
    def _auth_configured(self) -> ServiceSettings:
        if not self.auth_disabled and self.resolved_token() is None:
            raise ValueError(
                "no bearer token configured: set INTERVENE_AUTH_TOKEN or INTERVENE_AUTH_TOKEN_FILE, "
                "or INTERVENE_AUTH_DISABLED=true for local development"
            )
        return self

    @model_validator(mode="after")
    def _tls_complete(self) -> ServiceSettings:
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("set both INTERVENE_TLS_CERT_FILE and INTERVENE_TLS_KEY_FILE, or neither")
        if self.tls_client_ca_file is not None and self.tls_cert_file is None:
            raise ValueError(
                "INTERVENE_TLS_CLIENT_CA_FILE (mTLS) needs INTERVENE_TLS_CERT_FILE and INTERVENE_TLS_KEY_FILE"
            )
        return self

    def resolved_token(self) -> str | None:
        """The call-scope token, from the file when one is named."""
        return _secret(self.auth_token, self.auth_token_file)

    def resolved_read_token(self) -> str | None:
        """The read-scope token, from the file when one is named."""
        return _secret(self.read_token, self.read_token_file)

    def resolved_redis_url(self) -> str:
        """The Redis URL with the password from `redis_password_file` spliced in."""
        if self.redis_password_file is None:
            return self.redis_url
        from urllib.parse import quote, urlsplit, urlunsplit

        parts = urlsplit(self.redis_url)
        password = quote(self.redis_password_file.read_text().strip(), safe="")
        user = parts.username or ""
        host = parts.hostname or "127.0.0.1"
        netloc = f"{user}:{password}@{host}" + (f":{parts.port}" if parts.port else "")
        return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def _secret(value: SecretStr | None, file: Path | None) -> str | None:
    if file is not None:
        try:
            return file.read_text().strip() or None
        except OSError as error:
            raise ValueError(f"cannot read secret file {file}: {error}") from error
    return value.get_secret_value() if value is not None else None


class QueueSettings(BaseSettings):
    """Redis Streams work-queue behaviour, shared by every producer and consumer."""

    model_config = SettingsConfigDict(env_prefix="INTERVENE_QUEUE_", extra="ignore")

    max_length: int = Field(
        100_000, ge=1, description="Entries a stream may hold before producers get a back-pressure error."
    )
    batch_size: int = Field(32, ge=1, description="Entries a consumer reads per call.")
    block_ms: int = Field(1000, ge=1, description="How long a consumer's read blocks waiting for entries.")
    claim_idle_ms: int = Field(
        30_000, ge=1, description="An entry unacknowledged this long is reclaimed by another consumer."
    )
    max_deliveries: int = Field(5, ge=1, description="Deliveries after which an entry moves to the dead-letter stream.")
