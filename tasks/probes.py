"""DNS probes: how the Azure Monitor names resolve where the agent runs.

The runbook's test of the private path is ``kubectl exec deploy/ama-metrics -- nslookup <name>``:
only an answer from inside the cluster's VNet counts, since the privatelink zones answer only
there. :func:`resolve_in_pod` runs exactly that (busybox ``nslookup`` in ama-metrics'
``prometheus-collector`` container) and :func:`parse_nslookup` reads its output. When the
environment names a resolver that answers as the VNet does (``network.dns_resolver``, for a worker
inside the VNet or a DNS forwarder), :func:`resolve_with_resolver` asks it directly with dnspython,
which needs no pod.

:func:`names_to_probe` lists the names worth probing for an environment: the global configuration
name ``global.handler.control.monitor.azure.com`` and, for each data collection endpoint, its
configuration and metrics-ingestion names, read from the endpoint itself.

A probe never raises for an answer it does not like: a name that does not exist, a public address or
a failed exec are all observations (:class:`Resolution`) for the caller to judge.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

from aksmetrics.diagnosis import Evidence, Symptom
from aksmetrics.environment import Environment
from tasks.ama_metrics import exec_in_pod

# The agent (mdsd) asks this name first for its configuration; over private link it is answered by
# the private endpoint's "dce-global" member.
GLOBAL_CONFIGURATION_NAME = "global.handler.control.monitor.azure.com"

# What a data collection endpoint serves, by the property that holds the URL (ARM wire JSON).
ENDPOINT_PROPERTIES = {
    "configurationAccess": "configuration",
    "metricsIngestion": "metrics ingestion",
    "logsIngestion": "logs ingestion",
}


@dataclass(frozen=True)
class Resolution:
    """How one name resolved from one vantage point (a pod, or a resolver)."""

    name: str
    vantage: str
    addresses: tuple[str, ...] = ()
    cnames: tuple[str, ...] = ()
    nxdomain: bool = False
    error: str | None = None

    @property
    def private(self) -> bool:
        """True when the name resolved, and only to private addresses."""
        return bool(self.addresses) and all(is_private_address(a) for a in self.addresses)

    def describe(self) -> str:
        """What was seen, e.g. ``10.2.0.14 (private) via global.handler.control.privatelink…``."""
        if self.error:
            return f"lookup failed: {self.error}"
        if self.nxdomain:
            return "no such name (NXDOMAIN)"
        if not self.addresses:
            return "no address in the answer"
        kinds = ", ".join(
            f"{address} ({'private' if is_private_address(address) else 'public'})"
            for address in self.addresses
        )
        return f"{kinds} via {self.cnames[-1]}" if self.cnames else kinds

    def evidence(self) -> Evidence:
        """This resolution as check evidence, with the symptom it shows, if any."""
        symptom: Symptom | None = None
        if self.error:
            symptom = Symptom.CHECK_ERROR
        elif self.nxdomain or not self.addresses:
            symptom = Symptom.NAME_NOT_FOUND
        elif not self.private:
            symptom = Symptom.NAME_RESOLVES_PUBLIC
        return Evidence(
            subject=f"{self.name} (from {self.vantage})", observed=self.describe(), symptom=symptom
        )


def is_private_address(address: str) -> bool:
    """True for addresses a private endpoint can have: RFC 1918 / RFC 4193, not loopback."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return ip.is_private and not (ip.is_loopback or ip.is_link_local or ip.is_unspecified)


_ADDRESS = re.compile(r"^Address(?:\s+\d+)?:\s*(\S+)")
_CANONICAL = re.compile(r"canonical name\s*=\s*(\S+?)\.?$")


def parse_nslookup(name: str, output: str, *, exit_code: int, vantage: str) -> Resolution:
    """Read busybox ``nslookup`` output (both the 1.28 and the 1.3x formats).

    The first block (up to the first blank line) names the server that answered; its ``Address``
    line is the server's, not the name's, and is skipped.
    """
    if "NXDOMAIN" in output or "can't find" in output:
        return Resolution(name=name, vantage=vantage, nxdomain=True)

    blocks = re.split(r"\n\s*\n", output.strip())
    if blocks and blocks[0].lstrip().startswith("Server"):
        blocks = blocks[1:]

    addresses: list[str] = []
    cnames: list[str] = []
    for line in "\n".join(blocks).splitlines():
        line = line.strip()
        canonical = _CANONICAL.search(line)
        if canonical:
            cnames.append(canonical.group(1))
            continue
        address = _ADDRESS.match(line)
        if address:
            # Busybox 1.28 follows the address with the reverse name; an address has no spaces.
            addresses.append(address.group(1))

    if not addresses and exit_code != 0:
        reason = output.strip().splitlines()[-1] if output.strip() else f"exit code {exit_code}"
        return Resolution(name=name, vantage=vantage, error=reason)
    return Resolution(name=name, vantage=vantage, addresses=tuple(addresses), cnames=tuple(cnames))


def resolve_in_pod(env: Environment, pod: str, name: str) -> Resolution:
    """``nslookup name`` inside ama-metrics' agent container of ``pod`` (the runbook's own test)."""
    ama = env.ama_metrics
    vantage = f"pod {ama.namespace}/{pod}"
    result = exec_in_pod(env, ama.namespace, pod, ama.container, ["nslookup", name])
    if result.exit_code is None:
        return Resolution(name=name, vantage=vantage, error=result.error or "exec failed")
    output = result.stdout + ("\n" + result.stderr if result.stderr else "")
    return parse_nslookup(name, output, exit_code=result.exit_code, vantage=vantage)


def resolve_with_resolver(env: Environment, name: str, *, timeout: float = 5.0) -> Resolution:
    """Ask ``env.network.dns_resolver`` for the A records of ``name``, following CNAMEs."""
    import dns.exception
    import dns.rdatatype
    import dns.resolver

    host, port = split_host_port(env.network.dns_resolver or "")
    vantage = f"resolver {env.network.dns_resolver}"
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = [_address_of(host)]
    resolver.port = port
    try:
        answer = resolver.resolve(name, "A", lifetime=timeout, raise_on_no_answer=False)
    except dns.resolver.NXDOMAIN:
        return Resolution(name=name, vantage=vantage, nxdomain=True)
    except dns.exception.DNSException as error:
        return Resolution(name=name, vantage=vantage, error=f"{type(error).__name__}: {error}")

    cnames: list[str] = []
    addresses: list[str] = []
    for rrset in answer.response.answer:
        for record in rrset:
            if rrset.rdtype == dns.rdatatype.CNAME:
                cnames.append(str(record.target).rstrip("."))
            elif rrset.rdtype == dns.rdatatype.A:
                addresses.append(record.address)
    return Resolution(name=name, vantage=vantage, addresses=tuple(addresses), cnames=tuple(cnames))


def split_host_port(value: str, default_port: int = 53) -> tuple[str, int]:
    """``"127.0.0.1:5353"`` → ``("127.0.0.1", 5353)``; a bare host gets port 53."""
    host, _, port = value.rpartition(":")
    if not host:
        return value, default_port
    return host, int(port)


def _address_of(host: str) -> str:
    try:
        ipaddress.ip_address(host)
        return host
    except ValueError:
        return socket.getaddrinfo(host, 53, proto=socket.IPPROTO_UDP)[0][4][0]


def endpoint_hosts(endpoint: dict[str, Any]) -> dict[str, str]:
    """The host names a data collection endpoint serves (ARM wire JSON), by what they serve."""
    properties = endpoint.get("properties") or {}
    hosts = {}
    for key, role in ENDPOINT_PROPERTIES.items():
        url = (properties.get(key) or {}).get("endpoint")
        if url:
            host = urlparse(url).hostname
            if host:
                hosts[role] = host.lower()
    return hosts


def names_to_probe(endpoints: list[dict[str, Any]]) -> list[str]:
    """The names ama-metrics must reach privately: the global configuration name, then each
    endpoint's configuration and metrics-ingestion names, each once."""
    names = [GLOBAL_CONFIGURATION_NAME]
    for endpoint in endpoints:
        hosts = endpoint_hosts(endpoint)
        for role in ("configuration", "metrics ingestion"):
            host = hosts.get(role)
            if host and host not in names:
                names.append(host)
    return names
