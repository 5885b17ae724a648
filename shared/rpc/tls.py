"""TLS and mutual-TLS credentials for servers (from settings) and clients (from file paths).

Unset TLS settings mean plaintext, the usual choice behind a service mesh that terminates mTLS itself.
Setting `tls_client_ca_file` makes the server demand a client certificate signed by that CA.
"""

from __future__ import annotations

from pathlib import Path

import grpc

from shared.config.base import ServiceSettings


def _read(path: Path | str, setting: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as error:
        raise ValueError(f"cannot read {setting} {path}: {error}") from error


def server_credentials(settings: ServiceSettings) -> grpc.ServerCredentials | None:
    """Credentials for `settings.tls_*`, or None when the server should listen in plaintext."""
    if settings.tls_cert_file is None or settings.tls_key_file is None:
        return None
    key = _read(settings.tls_key_file, "INTERVENE_TLS_KEY_FILE")
    chain = _read(settings.tls_cert_file, "INTERVENE_TLS_CERT_FILE")
    client_ca = (
        _read(settings.tls_client_ca_file, "INTERVENE_TLS_CLIENT_CA_FILE") if settings.tls_client_ca_file else None
    )
    return grpc.ssl_server_credentials(
        [(key, chain)], root_certificates=client_ca, require_client_auth=client_ca is not None
    )


def channel_credentials(
    root_cert_file: Path | str | None = None,
    client_cert_file: Path | str | None = None,
    client_key_file: Path | str | None = None,
) -> grpc.ChannelCredentials:
    """Client TLS credentials: trust `root_cert_file` (None: the system roots), present a client cert if given."""
    if (client_cert_file is None) != (client_key_file is None):
        raise ValueError("give both client_cert_file and client_key_file for mTLS, or neither")
    return grpc.ssl_channel_credentials(
        root_certificates=_read(root_cert_file, "root_cert_file") if root_cert_file else None,
        private_key=_read(client_key_file, "client_key_file") if client_key_file else None,
        certificate_chain=_read(client_cert_file, "client_cert_file") if client_cert_file else None,
    )
