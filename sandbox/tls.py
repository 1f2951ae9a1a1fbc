"""A throw-away certificate authority and server certificate for the sandbox's HTTPS servers.

The real clients keep TLS verification on; they trust the sandbox because they are handed the CA
file written here (``connection_verify=<ca.pem>``, a kubeconfig's ``certificate-authority``).
"""

from __future__ import annotations

import datetime
import ipaddress
import ssl
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

# Long enough for any sandbox session, short enough that a stale bundle is noticed some day.
_VALIDITY = datetime.timedelta(days=365)


@dataclass(frozen=True)
class TlsBundle:
    """Where the CA certificate, the server certificate and the server's private key live."""

    ca_pem: Path
    cert_pem: Path
    key_pem: Path


def make_tls_bundle(
    directory: Path,
    hostnames: Iterable[str] = ("localhost",),
    ips: Iterable[str] = ("127.0.0.1",),
) -> TlsBundle:
    """Write (or reuse) a CA and a server certificate for ``hostnames`` and ``ips``.

    Files already there are reused when they still form a valid chain that covers every requested
    name and address, so that a restarted sandbox keeps the CA its clients already trust.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    bundle = TlsBundle(
        ca_pem=directory / "ca.pem",
        cert_pem=directory / "server.pem",
        key_pem=directory / "server-key.pem",
    )
    hostnames = tuple(hostnames)
    ips = tuple(ips)
    if _is_reusable(bundle, hostnames, ips):
        return bundle

    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "aks-metrics sandbox CA")])
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + _VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ca_ski, critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    # Python 3.13 and OpenSSL 3 check leaf certificates strictly: SAN, EKU, AKI, KeyUsage.
    server_key = ec.generate_private_key(ec.SECP256R1())
    alt_names: list[x509.GeneralName] = [x509.DNSName(name) for name in hostnames]
    alt_names += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
    server_cert = (
        x509.CertificateBuilder()
        .subject_name(
            x509.Name(
                [x509.NameAttribute(NameOID.COMMON_NAME, hostnames[0] if hostnames else "sandbox")]
            )
        )
        .issuer_name(ca_name)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + _VALIDITY)
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=True,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )

    bundle.ca_pem.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    bundle.cert_pem.write_bytes(server_cert.public_bytes(serialization.Encoding.PEM))
    key_bytes = server_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    # The key is written with owner-only permissions from the start, never readable by others.
    bundle.key_pem.touch(mode=0o600, exist_ok=True)
    bundle.key_pem.chmod(0o600)
    bundle.key_pem.write_bytes(key_bytes)
    return bundle


def server_ssl_context(bundle: TlsBundle) -> ssl.SSLContext:
    """A server-side TLS context that presents the bundle's certificate (TLS 1.2 or newer)."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(str(bundle.cert_pem), str(bundle.key_pem))
    return context


def client_ssl_context(bundle: TlsBundle) -> ssl.SSLContext:
    """A client-side context that trusts only the sandbox CA, with hostname checks on."""
    return ssl.create_default_context(cafile=str(bundle.ca_pem))


def _is_reusable(bundle: TlsBundle, hostnames: tuple[str, ...], ips: tuple[str, ...]) -> bool:
    """Whether the files on disk form a valid, unexpired chain that covers every name asked for."""
    if not (bundle.ca_pem.is_file() and bundle.cert_pem.is_file() and bundle.key_pem.is_file()):
        return False
    try:
        ca_cert = x509.load_pem_x509_certificate(bundle.ca_pem.read_bytes())
        server_cert = x509.load_pem_x509_certificate(bundle.cert_pem.read_bytes())
        server_key = serialization.load_pem_private_key(bundle.key_pem.read_bytes(), password=None)
        server_cert.verify_directly_issued_by(ca_cert)
    except (ValueError, TypeError, InvalidSignature):
        return False
    if server_key.public_key() != server_cert.public_key():
        return False
    # Renew a day early so that a long session never meets an expired certificate.
    soon = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=1)
    if server_cert.not_valid_after_utc < soon or ca_cert.not_valid_after_utc < soon:
        return False
    san = server_cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    names = set(san.get_values_for_type(x509.DNSName))
    addresses = {str(ip) for ip in san.get_values_for_type(x509.IPAddress)}
    return set(hostnames) <= names and set(ips) <= addresses
