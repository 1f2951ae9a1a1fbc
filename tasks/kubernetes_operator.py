"""The OpenTelemetry operator, installed from its release manifest without cert-manager.

The runbook's ``kubectl apply -f opentelemetry-operator.yaml`` needs cert-manager (the manifest's
Issuer and Certificate make the webhook serving certificate, and cert-manager's CA injector fills
the ``caBundle`` of the webhooks and of the CRD conversion). A closed network rarely has it, so we
do its two jobs ourselves:

1. :func:`ensure_webhook_certificate` keeps a CA and a serving certificate for the webhook Service
   in the Secret the operator's Deployment mounts, as cert-manager would; a valid one is reused, so
   repeated runs write nothing.
2. The manifest is transformed by :func:`aksmetrics.desired.operator_manifests` (cert-manager kinds
   dropped, the CA injected, images moved to the mirror registry) and applied by server-side apply:
   CRDs first, waited for until Established (:func:`ensure_operator_crds`), then everything else
   (:func:`ensure_operator_objects`).

:func:`wait_for_operator` then waits until the operator's Deployment has rolled out and its webhook
Service has a ready endpoint: the collector's webhooks fail closed, so a collector applied earlier
would be refused.
"""

from __future__ import annotations

import base64
import datetime
import ssl
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from prefect import task

from aksmetrics.changes import Change
from aksmetrics.desired import (
    operator_manifests,
    webhook_certificate_secret,
    webhook_certificate_target,
    webhook_service,
)
from aksmetrics.environment import Environment
from tasks.clients import get_settings
from tasks.kubernetes_objects import (
    crd_established,
    ensure_object,
    read_object,
    wait_for_rollout,
)
from tasks.retries import Observation, StepFailed, poll
from tasks.steps import CHECK, STEP, concurrently, report

# Renew the serving certificate this long before it expires.
RENEW_BEFORE = datetime.timedelta(days=30)
CERTIFICATE_LIFETIME = datetime.timedelta(days=730)
CA_LIFETIME = datetime.timedelta(days=3650)
# What a plan shows as the caBundle when the apply run would generate a new CA.
PLANNED_CA = "(a CA the apply run generates)"


@dataclass(frozen=True)
class WebhookCertificate:
    """What :func:`ensure_webhook_certificate` did, and the CA (public) to inject."""

    changes: list[Change] = field(default_factory=list)
    ca_pem: str = PLANNED_CA


@task(name="load-operator-manifest", **STEP)
def load_operator_manifest(env: Environment) -> list[dict[str, Any]]:
    """Read the operator's release manifest from the path or https URL the environment names."""
    source = env.opentelemetry_operator.manifest
    if source.startswith("https://"):
        # Default TLS verification (system trust store); a proxy comes from HTTPS_PROXY.
        context = ssl.create_default_context()
        with urllib.request.urlopen(source, timeout=60, context=context) as response:
            text = response.read().decode("utf-8")
    elif "://" in source:
        raise StepFailed(source, "the operator manifest must be a file path or an https:// URL")
    else:
        try:
            text = Path(source).read_text(encoding="utf-8")
        except OSError as error:
            raise StepFailed(
                source,
                f"cannot read the operator manifest: {error.strerror}",
                hint="download the release manifest beside the environment file and name its path "
                "in opentelemetry_operator.manifest",
            ) from None
    documents = [document for document in yaml.safe_load_all(text) if document]
    if not any(document.get("kind") == "Deployment" for document in documents):
        raise StepFailed(
            source, "this is not the operator's release manifest: it has no Deployment"
        )
    return documents


# -- the webhook certificate --------------------------------------------------------------------


@task(name="ensure-webhook-certificate", **STEP)
def ensure_webhook_certificate(
    env: Environment, manifests: list[dict[str, Any]], *, plan: bool, allow_adopt: bool
) -> WebhookCertificate:
    """Ensure the operator's namespace and the webhook serving certificate in its Secret.

    A Secret whose certificate covers the webhook Service's names, is signed by its ``ca.crt``,
    matches its key and is not about to expire is kept as it is; otherwise a new CA and
    certificate are generated and written. The private keys never leave this task.
    """
    namespace, secret_name, dns_names = webhook_certificate_target(manifests)
    changes = [
        ensure_object(env, manifest, plan=plan, allow_adopt=allow_adopt)
        for manifest in operator_manifests(manifests, env, ca_pem="")
        if manifest.get("kind") == "Namespace"
    ]

    actual = read_object(env, "v1", "Secret", namespace, secret_name)
    ca_pem = _usable_ca(actual, dns_names)
    if ca_pem is not None:
        secret_change = ensure_object(
            env,
            webhook_certificate_secret(
                env,
                namespace=namespace,
                name=secret_name,
                certificate_pem=_decoded(actual, "tls.crt"),
                key_pem=_decoded(actual, "tls.key"),
                ca_pem=ca_pem,
            ),
            plan=plan,
            allow_adopt=allow_adopt,
            redact=("data",),
        )
        return WebhookCertificate(changes=report(*changes, secret_change), ca_pem=ca_pem)

    if plan:
        ca_pem, certificate_pem, key_pem = PLANNED_CA, "(generated)", "(generated)"
    else:
        ca_pem, certificate_pem, key_pem = generate_webhook_certificate(dns_names, owner=env.name)
    secret = webhook_certificate_secret(
        env,
        namespace=namespace,
        name=secret_name,
        certificate_pem=certificate_pem,
        key_pem=key_pem,
        ca_pem=ca_pem,
    )
    secret_change = ensure_object(env, secret, plan=plan, allow_adopt=allow_adopt, redact=("data",))
    if actual is not None and secret_change.action in ("updated", "would update"):
        secret_change = secret_change.model_copy(
            update={"note": "the certificate was missing, invalid or about to expire: renewed"}
        )
    return WebhookCertificate(changes=report(*changes, secret_change), ca_pem=ca_pem)


def generate_webhook_certificate(dns_names: list[str], *, owner: str) -> tuple[str, str, str]:
    """A new CA and a serving certificate for ``dns_names`` signed by it: (CA, cert, key) as PEM."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name(
        [x509.NameAttribute(NameOID.COMMON_NAME, f"aks-metrics-pipeline webhook CA ({owner})")]
    )
    ca_certificate = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + CA_LIFETIME)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
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
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )

    key = ec.generate_private_key(ec.SECP256R1())
    certificate = (
        x509.CertificateBuilder()
        # A common name holds at most 64 characters; clients check the names in the SAN anyway.
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, dns_names[0][:64])]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + CERTIFICATE_LIFETIME)
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName(name) for name in dns_names]), critical=False
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    return (
        ca_certificate.public_bytes(serialization.Encoding.PEM).decode(),
        certificate.public_bytes(serialization.Encoding.PEM).decode(),
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode(),
    )


def _decoded(secret: dict[str, Any] | None, key: str) -> str:
    value = ((secret or {}).get("data") or {}).get(key)
    return base64.b64decode(value).decode() if value else ""


def _usable_ca(secret: dict[str, Any] | None, dns_names: list[str]) -> str | None:
    """The Secret's CA when its certificate is still good for the webhook, else None."""
    ca_pem, certificate_pem, key_pem = (
        _decoded(secret, "ca.crt"),
        _decoded(secret, "tls.crt"),
        _decoded(secret, "tls.key"),
    )
    if not (ca_pem and certificate_pem and key_pem):
        return None
    try:
        ca = x509.load_pem_x509_certificate(ca_pem.encode())
        certificate = x509.load_pem_x509_certificate(certificate_pem.encode())
        key = serialization.load_pem_private_key(key_pem.encode(), password=None)
        certificate.verify_directly_issued_by(ca)
        names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        covered = set(names.value.get_values_for_type(x509.DNSName))
    except Exception:
        # Anything unreadable, not signed by the CA or without names is replaced, not debugged.
        return None
    if _public_key_bytes(key.public_key()) != _public_key_bytes(certificate.public_key()):
        return None
    if not set(dns_names) <= covered:
        return None
    if certificate.not_valid_after_utc - datetime.datetime.now(datetime.UTC) < RENEW_BEFORE:
        return None
    return ca_pem


def _public_key_bytes(key: Any) -> bytes:
    return key.public_bytes(  # type: ignore[no-any-return]
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


# -- the manifest -------------------------------------------------------------------------------


@task(name="ensure-operator-crds", **STEP)
def ensure_operator_crds(
    env: Environment,
    manifests: list[dict[str, Any]],
    certificate: WebhookCertificate,
    *,
    plan: bool,
    allow_adopt: bool,
) -> list[Change]:
    """Apply the operator's CRDs (with the conversion webhook's CA) and wait until Established."""
    crds = [
        manifest
        for manifest in operator_manifests(manifests, env, ca_pem=certificate.ca_pem)
        if manifest.get("kind") == "CustomResourceDefinition"
    ]
    changes = [ensure_object(env, crd, plan=plan, allow_adopt=allow_adopt) for crd in crds]
    if not plan:
        settings = get_settings()
        for crd in crds:
            name = crd["metadata"]["name"]
            poll(
                lambda name=name: crd_established(
                    read_object(
                        env, "apiextensions.k8s.io/v1", "CustomResourceDefinition", None, name
                    )
                ),
                what=f"CRD {name} to be Established",
                timeout=settings.crd_timeout,
                initial_delay=0.1,
                max_delay=settings.wait_max_delay,
            )
    return report(*changes)


@task(name="ensure-operator", **STEP)
def ensure_operator_objects(
    env: Environment,
    manifests: list[dict[str, Any]],
    certificate: WebhookCertificate,
    *,
    plan: bool,
    allow_adopt: bool,
) -> list[Change]:
    """Apply the rest of the operator's manifest (RBAC, Services, the Deployment, the webhook
    configurations with our CA), in the manifest's order."""
    objects = [
        manifest
        for manifest in operator_manifests(manifests, env, ca_pem=certificate.ca_pem)
        if manifest.get("kind") not in ("CustomResourceDefinition", "Namespace")
    ]

    def ensure(item: dict[str, Any]) -> Change:
        return ensure_object(env, item, plan=plan, allow_adopt=allow_adopt)

    # Applying follows the manifest's order (RBAC before the Deployment that uses it); a plan
    # only reads, so it reads everything at once.
    changes = concurrently(ensure, objects) if plan else [ensure(item) for item in objects]
    return report(*changes)


@task(name="wait-for-operator", **CHECK)
def wait_for_operator(env: Environment, manifests: list[dict[str, Any]]) -> str:
    """Wait until the operator's Deployment has rolled out and its webhook Service has a ready
    endpoint; returns what was observed."""
    settings = get_settings()
    observed = []
    for manifest in manifests:
        if manifest.get("kind") == "Deployment":
            metadata = manifest["metadata"]
            detail = wait_for_rollout(
                env,
                "Deployment",
                metadata["namespace"],
                metadata["name"],
                timeout=settings.operator_timeout,
            )
            observed.append(f"{metadata['name']}: {detail}")

    service = webhook_service(manifests)
    if service is not None:
        namespace, name = service
        poll(
            lambda: _has_ready_endpoint(read_object(env, "v1", "Endpoints", namespace, name)),
            what=f"webhook Service {namespace}/{name} to have a ready endpoint",
            timeout=settings.operator_timeout,
            initial_delay=0.2,
            max_delay=settings.wait_max_delay,
        )
        observed.append(f"webhook Service {name}: ready")
    return "; ".join(observed)


def _has_ready_endpoint(endpoints: dict[str, Any] | None) -> Observation[None]:
    if endpoints is None:
        return Observation(False, "no Endpoints object yet")
    ready = [
        address.get("ip")
        for subset in endpoints.get("subsets") or []
        for address in subset.get("addresses") or []
    ]
    return Observation(bool(ready), f"ready addresses: {', '.join(map(str, ready)) or 'none'}")
