"""How a virtual network sees a DNS name: Azure DNS with linked private zones, then public DNS.

The rules Azure DNS (168.63.129.16) follows, reduced to what the pipeline meets:

* Public Azure Monitor names are CNAMEs into ``privatelink.monitor.azure.com``
  (``global.handler.control.monitor.azure.com`` →
  ``global.handler.control.privatelink.monitor.azure.com``);
  the same holds for the solution pack store in ``privatelink.blob.core.windows.net``.
* When a private DNS zone of that name is linked to the asking VNet, the zone answers the CNAME's
  target: its A record (the private endpoint's IP), or NXDOMAIN when the zone has no such record
  (unless the link's ``resolutionPolicy`` is ``NxDomainRedirect``, which falls back to public DNS).
* Otherwise public DNS answers with a public address (a stable fake one in 20.0.0.0/8).
* Names nobody publishes do not exist.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

from sandbox.azure.ids import normalize

if TYPE_CHECKING:
    from sandbox.azure.models import AzureState, Resolution

PUBLIC_TTL = 60
PRIVATE_TTL = 10

# Suffixes whose public names are CNAMEs into a privatelink zone.
_PRIVATELINK_SUFFIXES = (
    "monitor.azure.com",
    "blob.core.windows.net",
    "ods.opinsights.azure.com",
    "oms.opinsights.azure.com",
    "agentsvc.azure-automation.net",
)
_GLOBAL_MONITOR_HOSTS = {
    "api",
    "global.in.ai",
    "profiler",
    "live",
    "snapshot",
    "diagservices-query",
    "global.handler.control",
}
# Azure public regions, for the regional ``<region>.handler.control`` and ``<region>.in.ai`` hosts.
REGIONS = (
    "australiacentral",
    "australiaeast",
    "australiasoutheast",
    "brazilsouth",
    "canadacentral",
    "canadaeast",
    "centralindia",
    "centralus",
    "eastasia",
    "eastus",
    "eastus2",
    "francecentral",
    "germanywestcentral",
    "israelcentral",
    "italynorth",
    "japaneast",
    "japanwest",
    "koreacentral",
    "koreasouth",
    "mexicocentral",
    "northcentralus",
    "northeurope",
    "norwayeast",
    "polandcentral",
    "qatarcentral",
    "southafricanorth",
    "southcentralus",
    "southeastasia",
    "southindia",
    "spaincentral",
    "swedencentral",
    "switzerlandnorth",
    "uaenorth",
    "uksouth",
    "ukwest",
    "westcentralus",
    "westeurope",
    "westindia",
    "westus",
    "westus2",
    "westus3",
)
_OTHER_PUBLIC_HOSTS = {
    "scadvisorcontentpl.blob.core.windows.net",
    "management.azure.com",
    "login.microsoftonline.com",
    "mcr.microsoft.com",
    "dc.services.visualstudio.com",
}


def public_address(name: str) -> str:
    """A stable, obviously public IPv4 address for a public name."""
    digest = hashlib.sha256(name.encode()).digest()
    return f"20.{digest[0]}.{digest[1]}.{digest[2] % 254 + 1}"


def _dce_hosts(state: AzureState) -> set[str]:
    from sandbox.azure.resource_types import DATA_COLLECTION_ENDPOINTS, dce_hosts

    hosts: set[str] = set()
    for dce in state.of_type(DATA_COLLECTION_ENDPOINTS.type_key):
        hosts |= set(dce_hosts(state, dce).values())
    return hosts


def is_public_name(state: AzureState, name: str) -> bool:
    """Whether public DNS publishes ``name`` (before any CNAME is followed)."""
    if name in _OTHER_PUBLIC_HOSTS:
        return True
    if name.endswith(".monitor.azure.com"):
        host = name.removesuffix(".monitor.azure.com")
        if host in _GLOBAL_MONITOR_HOSTS:
            return True
        region, _, rest = host.partition(".")
        if rest in ("handler.control", "in.ai") and region in REGIONS:
            return True
        return name in _dce_hosts(state)
    return False


def _privatelink_name(name: str) -> str | None:
    """The ``privatelink`` CNAME target of a public name, when its service has one."""
    for suffix in _PRIVATELINK_SUFFIXES:
        if name.endswith("." + suffix) and not name.endswith(".privatelink." + suffix):
            return f"{name.removesuffix('.' + suffix)}.privatelink.{suffix}"
    return None


def _linked_zones(state: AzureState, vnet_id: str) -> dict[str, tuple[str, str]]:
    """Zone name → (zone id, resolution policy) for every private zone linked to the VNet."""
    from sandbox.azure.resource_types import VIRTUAL_NETWORK_LINKS

    zones: dict[str, tuple[str, str]] = {}
    for link in state.of_type(VIRTUAL_NETWORK_LINKS.type_key):
        properties = link["properties"]
        if properties.get("virtualNetworkLinkState") != "Completed":
            continue
        if normalize(properties["virtualNetwork"]["id"]) != normalize(vnet_id):
            continue
        zone_id = link["id"].rsplit("/virtualNetworkLinks/", 1)[0]
        zones[zone_id.rsplit("/", 1)[1].lower()] = (
            zone_id,
            properties.get("resolutionPolicy", "Default"),
        )
    return zones


def resolve(state: AzureState, name: str, vnet_id: str) -> Resolution:
    """Follow CNAMEs through linked private zones and public DNS, as Azure DNS does for the VNet."""
    from sandbox.azure.models import Resolution

    asked = name.lower().rstrip(".")
    zones = _linked_zones(state, vnet_id)
    chain: list[str] = []
    current = asked
    public_fallback = False
    for _ in range(8):
        zone = next(
            (
                z
                for z in sorted(zones, key=len, reverse=True)
                if current == z or current.endswith("." + z)
            ),
            None,
        )
        if zone is not None and not public_fallback:
            zone_id, policy = zones[zone]
            relative = "@" if current == zone else current.removesuffix("." + zone)
            record = state.stored(f"{zone_id}/A/{relative}")
            if record is not None and record["properties"].get("aRecords"):
                addresses = [r["ipv4Address"] for r in record["properties"]["aRecords"]]
                ttl = int(record["properties"].get("ttl", PRIVATE_TTL))
                return Resolution(asked, chain, addresses, private=True, nxdomain=False, ttl=ttl)
            if policy != "NxDomainRedirect":
                return Resolution(asked, chain, [], private=False, nxdomain=True, ttl=PRIVATE_TTL)
            public_fallback = True
            continue
        target = _privatelink_name(current)
        if target is not None and is_public_name(state, current):
            chain.append(target)
            current = target
            public_fallback = False
            continue
        public_source = current
        for suffix in _PRIVATELINK_SUFFIXES:
            public_source = public_source.replace(f".privatelink.{suffix}", f".{suffix}")
        if is_public_name(state, public_source):
            return Resolution(
                asked,
                chain,
                [public_address(current)],
                private=False,
                nxdomain=False,
                ttl=PUBLIC_TTL,
            )
        return Resolution(asked, chain, [], private=False, nxdomain=True, ttl=PUBLIC_TTL)
    return Resolution(asked, chain, [], private=False, nxdomain=True, ttl=PUBLIC_TTL)
