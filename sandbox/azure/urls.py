"""Which handler answers which request: the routes of the sandbox's ARM server.

Fixed routes (identity, sandbox control) are matched by pattern; everything under
``/subscriptions`` is parsed as an ARM path and classified by its shape and resource type.
"""

from __future__ import annotations

import re
from enum import Enum

from sandbox.azure.ids import ArmPath

# (method, pattern, handler name on ArmResponses). Patterns are matched against the whole path.
FIXED_ROUTES: tuple[tuple[str, re.Pattern[str], str], ...] = (
    (
        "GET",
        re.compile(r"^/(?P<tenant>[^/]+)/v2\.0/\.well-known/openid-configuration$"),
        "openid_configuration",
    ),
    ("POST", re.compile(r"^/(?P<tenant>[^/]+)/oauth2/v2\.0/token$"), "token"),
    ("GET", re.compile(r"^/_sandbox/requests$"), "control_requests"),
    ("DELETE", re.compile(r"^/_sandbox/requests$"), "control_clear_requests"),
    ("GET", re.compile(r"^/_sandbox/faults$"), "control_faults"),
    ("POST", re.compile(r"^/_sandbox/faults$"), "control_add_fault"),
    ("DELETE", re.compile(r"^/_sandbox/faults$"), "control_clear_faults"),
    ("GET", re.compile(r"^/_sandbox/state$"), "control_state"),
    ("GET", re.compile(r"^/_sandbox/health$"), "control_health"),
)


class ArmRoute(Enum):
    """The kinds of ARM request the server distinguishes."""

    SUBSCRIPTIONS = "subscriptions"
    RESOURCE_GROUPS = "resource_groups"
    GENERIC_RESOURCES = "generic_resources"
    PROVIDER = "provider"
    OPERATION_STATUS = "operation_status"
    OPERATION_RESULT = "operation_result"
    RESOURCE = "resource"


# Long-running operation monitors, by lower-cased type (see models.Operation.style).
OPERATION_STATUS_TYPES = {
    "microsoft.network/locations/operations": "network",
    "microsoft.network/privatednsoperationstatuses": "privatedns",
    "microsoft.insights/privatelinkscopeoperationstatuses": "insights",
}
OPERATION_RESULT_TYPES = {
    "microsoft.network/locations/operationresults": "network",
    "microsoft.network/privatednsoperationresults": "privatedns",
}


def classify(path: ArmPath) -> ArmRoute:
    """Decide which family of handlers answers an ARM path."""
    if path.namespace is None:
        if path.types == ("subscriptions",):
            return ArmRoute.SUBSCRIPTIONS
        if path.types == ("resourceGroups",):
            return ArmRoute.RESOURCE_GROUPS
        return ArmRoute.GENERIC_RESOURCES
    if not path.types:
        return ArmRoute.PROVIDER
    if path.type_key in OPERATION_STATUS_TYPES:
        return ArmRoute.OPERATION_STATUS
    if path.type_key in OPERATION_RESULT_TYPES:
        return ArmRoute.OPERATION_RESULT
    return ArmRoute.RESOURCE


def operation_paths(
    *,
    style: str,
    subscription: str,
    resource_group: str | None,
    location: str,
    operation_id: str,
) -> tuple[str, str | None]:
    """The ``Azure-AsyncOperation`` and ``Location`` paths ARM gives an operation of a style.

    Shapes from the spec examples: Microsoft.Network's
    ``/subscriptions/{s}/providers/Microsoft.Network/locations/{loc}/operations/{id}`` (and
    ``operationResults``), Private DNS's ``.../resourceGroups/{rg}/providers/Microsoft.Network/
    privateDnsOperationStatuses/{id}`` (and ``privateDnsOperationResults``), and the AMPLS's
    ``.../resourceGroups/{rg}/providers/Microsoft.Insights/privateLinkScopeOperationStatuses/{id}``.
    """
    if style == "network":
        base = f"/subscriptions/{subscription}/providers/Microsoft.Network/locations/{location}"
        return f"{base}/operations/{operation_id}", f"{base}/operationResults/{operation_id}"
    group = f"/subscriptions/{subscription}/resourceGroups/{resource_group}"
    if style == "privatedns":
        base = f"{group}/providers/Microsoft.Network"
        return (
            f"{base}/privateDnsOperationStatuses/{operation_id}",
            f"{base}/privateDnsOperationResults/{operation_id}",
        )
    return (
        f"{group}/providers/Microsoft.Insights/privateLinkScopeOperationStatuses/{operation_id}",
        None,
    )
