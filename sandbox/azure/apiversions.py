"""Which api-version values each emulated resource type accepts, as the real providers do.

Callers are never pinned to one version: every value the real service publishes for the type is
accepted. For the providers with a long history (Microsoft.Network, Microsoft.ContainerService,
Microsoft.Resources) any dated version inside the published range is accepted instead of a full
list; the sandbox's behaviour does not change between versions.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_DATED = re.compile(r"^(\d{4}-\d{2}-\d{2})(-preview|-beta|-alpha|-privatepreview)?$")


@dataclass(frozen=True)
class ApiVersions:
    """A set of accepted versions: an explicit list, or a dated range (both ends included)."""

    listed: tuple[str, ...] = ()
    earliest: str | None = None
    latest: str | None = None

    def accepts(self, value: str) -> bool:
        if value in self.listed:
            return True
        if self.earliest is None or self.latest is None:
            return False
        match = _DATED.match(value)
        return bool(match) and self.earliest <= match.group(1) <= self.latest

    def describe(self) -> str:
        if self.earliest is not None:
            return f"any dated version from {self.earliest} to {self.latest}"
        return ", ".join(self.listed)

    def newest(self) -> str:
        return self.latest or sorted(self.listed)[-1]

    def as_list(self) -> list[str]:
        """For the provider metadata endpoint: listed values, or the ends of the range."""
        if self.listed:
            return sorted(self.listed, reverse=True)
        return [v for v in (self.latest, self.earliest) if v]


# Microsoft.Insights data collection (spec: stable/2021-04-01 … 2024-03-11, previews between).
DATA_COLLECTION = ApiVersions(
    listed=(
        "2019-11-01-preview",
        "2021-04-01",
        "2021-09-01-preview",
        "2022-06-01",
        "2023-03-11",
        "2024-03-11",
    )
)
# Microsoft.Insights/privateLinkScopes (spec: 2019-10-17-preview, 2021-07-01-preview,
# stable 2021-09-01, 2023-06-01-preview).
PRIVATE_LINK_SCOPES = ApiVersions(
    listed=("2019-10-17-preview", "2021-07-01-preview", "2021-09-01", "2023-06-01-preview")
)
# Microsoft.Network/privateDnsZones (spec: 2018-09-01, 2020-01-01, 2020-06-01, 2024-06-01).
PRIVATE_DNS = ApiVersions(listed=("2018-09-01", "2020-01-01", "2020-06-01", "2024-06-01"))
# Microsoft.Network: azure-mgmt-network 33.x sends 2026-03-01.
NETWORK = ApiVersions(earliest="2015-06-15", latest="2026-03-01")
# Microsoft.ContainerService/managedClusters.
CONTAINER_SERVICE = ApiVersions(earliest="2017-08-31", latest="2026-03-01")
# Microsoft.Monitor/accounts (azure-mgmt-monitor 7 sends 2023-04-03).
MONITOR_ACCOUNTS = ApiVersions(
    listed=("2021-06-03-preview", "2023-04-03", "2023-10-01-preview", "2025-05-03-preview")
)
# Microsoft.Dashboard/grafana.
GRAFANA = ApiVersions(
    listed=(
        "2021-09-01-preview",
        "2022-05-01-preview",
        "2022-08-01",
        "2022-10-01-preview",
        "2023-09-01",
        "2023-10-01-preview",
        "2024-10-01",
        "2024-11-01-preview",
        "2025-08-01",
    )
)
# Microsoft.Resources: subscriptions, resource groups, generic resources, providers
# (azure-mgmt-resource 26 sends 2025-04-01).
RESOURCES = ApiVersions(earliest="2014-04-01", latest="2025-04-01")
