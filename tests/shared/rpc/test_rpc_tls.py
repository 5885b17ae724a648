"""TLS and mutual TLS with certificates made in the test (a throwaway CA, a server and client certificate)."""

from __future__ import annotations

import datetime
import ipaddress
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from pydantic import ValidationError

from shared.protos.intervene.v1 import pairstore_pb2, pairstore_pb2_grpc
from shared.rpc.client import connect
from tests.shared.rpc.rpc_probe import TOKEN, make_settings


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write(directory: Path, stem: str, key: ec.EllipticCurvePrivateKey, cert: x509.Certificate) -> None:
    (directory / f"{stem}.key").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    (directory / f"{stem}.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _ca(directory: Path, stem: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(stem))
        .issuer_name(_name(stem))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    _write(directory, stem, key, cert)
    return key, cert


def _leaf(
    directory: Path, stem: str, ca: tuple[ec.EllipticCurvePrivateKey, x509.Certificate], usage: x509.ObjectIdentifier
) -> None:
    ca_key, ca_cert = ca
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(stem))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    _write(directory, stem, key, cert)


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """ca.crt signs server.* and client.*; other-ca.crt signs stranger.* (a client the server must refuse)."""
    directory = tmp_path_factory.mktemp("certs")
    ca = _ca(directory, "ca")
    _leaf(directory, "server", ca, ExtendedKeyUsageOID.SERVER_AUTH)
    _leaf(directory, "client", ca, ExtendedKeyUsageOID.CLIENT_AUTH)
    _leaf(directory, "stranger", _ca(directory, "other-ca"), ExtendedKeyUsageOID.CLIENT_AUTH)
    return directory


def _call(address: str, **tls: object) -> grpc.StatusCode:
    channel = connect(address, token=TOKEN, **tls)
    try:
        pairstore_pb2_grpc.PairStoreServiceStub(channel).GetPair(pairstore_pb2.GetPairRequest(id="ok"), timeout=10)
    except grpc.RpcError as error:
        return error.code()
    finally:
        channel.close()
    return grpc.StatusCode.OK


def test_tls(serve, certs: Path) -> None:
    running = serve(tls_cert_file=certs / "server.crt", tls_key_file=certs / "server.key")
    address = f"localhost:{running.port}"
    assert _call(address, root_cert_file=certs / "ca.crt") == grpc.StatusCode.OK
    assert _call(f"127.0.0.1:{running.port}", root_cert_file=certs / "ca.crt") == grpc.StatusCode.OK
    assert _call(address) == grpc.StatusCode.UNAVAILABLE  # plaintext client
    assert _call(address, root_cert_file=certs / "other-ca.crt") == grpc.StatusCode.UNAVAILABLE


def test_mutual_tls(serve, certs: Path) -> None:
    running = serve(
        tls_cert_file=certs / "server.crt", tls_key_file=certs / "server.key", tls_client_ca_file=certs / "ca.crt"
    )
    address = f"localhost:{running.port}"
    client = {"client_cert_file": certs / "client.crt", "client_key_file": certs / "client.key"}
    stranger = {"client_cert_file": certs / "stranger.crt", "client_key_file": certs / "stranger.key"}
    assert _call(address, root_cert_file=certs / "ca.crt", **client) == grpc.StatusCode.OK
    assert _call(address, root_cert_file=certs / "ca.crt") == grpc.StatusCode.UNAVAILABLE
    assert _call(address, root_cert_file=certs / "ca.crt", **stranger) == grpc.StatusCode.UNAVAILABLE


def test_incomplete_tls_settings_are_refused(certs: Path) -> None:
    with pytest.raises(ValidationError, match="INTERVENE_TLS_KEY_FILE"):
        make_settings(tls_cert_file=certs / "server.crt")
    with pytest.raises(ValidationError, match="mTLS"):
        make_settings(tls_client_ca_file=certs / "ca.crt")
