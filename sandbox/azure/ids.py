"""ARM resource ids and request paths, parsed the way Azure Resource Manager reads them.

An ARM id is a scope (a subscription, a resource group, or another resource for extension
resources such as data collection rule associations) followed by ``/providers/{namespace}`` and
alternating type and name segments. A request path has the same grammar; when it ends on a type
segment it names a collection (a list call).
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote


@dataclass(frozen=True)
class ArmPath:
    """One ARM request path, split into the parts that decide who answers it.

    ``scope`` is the id before the last ``/providers/`` segment: ``/subscriptions/{s}``,
    ``/subscriptions/{s}/resourceGroups/{rg}`` or, for an extension resource, the id of the
    resource it extends. ``types`` and ``names`` alternate after the namespace; ``names`` is one
    shorter than ``types`` for a collection.
    """

    subscription: str | None
    resource_group: str | None
    scope: str
    namespace: str | None
    types: tuple[str, ...]
    names: tuple[str, ...]

    @property
    def is_collection(self) -> bool:
        return len(self.names) < len(self.types)

    @property
    def type_key(self) -> str:
        """The lower-cased full type, e.g. ``microsoft.insights/privatelinkscopes/scopedresources``.

        Empty for subscription and resource group paths, which have no provider namespace.
        """
        if self.namespace is None:
            return ""
        return "/".join((self.namespace, *self.types)).lower()

    @property
    def is_extension(self) -> bool:
        """Whether the scope is itself a resource (the path names an extension resource)."""
        return "/providers/" in self.scope.lower()

    @property
    def name(self) -> str | None:
        return None if self.is_collection or not self.names else self.names[-1]

    def resource_id(self) -> str:
        """The id of the named resource (or of the collection's parent for a list)."""
        parts = [self.scope]
        if self.namespace is not None:
            parts.append(f"providers/{self.namespace}")
        for index, type_segment in enumerate(self.types):
            parts.append(type_segment)
            if index < len(self.names):
                parts.append(self.names[index])
        return "/".join(parts)

    def parent_id(self) -> str | None:
        """For a child resource, the id of its parent; for a top-level one, its scope."""
        if len(self.types) <= 1:
            return self.scope
        parent = ArmPath(
            self.subscription,
            self.resource_group,
            self.scope,
            self.namespace,
            self.types[:-1],
            self.names[: len(self.types) - 1],
        )
        return parent.resource_id()


def parse_path(path: str) -> ArmPath | None:
    """Parse an ARM path (or id); ``None`` when it is not under ``/subscriptions``.

    Subscription and resource group paths without a provider come back with ``namespace=None``;
    ``types`` then holds ``("subscriptions",)`` or ``("resourceGroups",)`` so that callers can
    tell the collection from the item.
    """
    segments = [unquote(segment) for segment in path.strip("/").split("/") if segment != ""]
    if not segments or segments[0].lower() != "subscriptions":
        return None
    if len(segments) == 1:
        return ArmPath(None, None, "", None, ("subscriptions",), ())
    subscription = segments[1]
    scope = f"/subscriptions/{subscription}"
    position = 2
    resource_group: str | None = None
    if len(segments) == 2:
        return ArmPath(subscription, None, "", None, ("subscriptions",), (subscription,))
    if segments[2].lower() == "resourcegroups":
        if len(segments) == 3:
            return ArmPath(subscription, None, scope, None, ("resourceGroups",), ())
        resource_group = segments[3]
        if len(segments) == 4:
            return ArmPath(subscription, None, scope, None, ("resourceGroups",), (resource_group,))
        scope = f"{scope}/resourceGroups/{resource_group}"
        position = 4
        if len(segments) >= 5 and segments[4].lower() != "providers":
            # ``/resourceGroups/{rg}/resources``: the generic listing of a group's resources.
            return ArmPath(subscription, resource_group, scope, None, tuple(segments[4:]), ())
    elif segments[2].lower() != "providers":
        # ``/subscriptions/{s}/resources`` and other subscription-level collections.
        return ArmPath(subscription, None, scope, None, tuple(segments[2:]), ())

    namespace: str | None = None
    types: list[str] = []
    names: list[str] = []
    while position < len(segments):
        segment = segments[position]
        at_type_position = namespace is None or len(types) == len(names)
        if at_type_position and segment.lower() == "providers" and position + 1 < len(segments):
            if namespace is not None:
                # Everything so far is the resource an extension resource hangs off.
                scope = ArmPath(
                    subscription, resource_group, scope, namespace, tuple(types), tuple(names)
                ).resource_id()
            namespace = segments[position + 1]
            types, names = [], []
            position += 2
            continue
        if namespace is None:
            return None
        if len(types) == len(names):
            types.append(segment)
        else:
            names.append(segment)
        position += 1
    return ArmPath(subscription, resource_group, scope, namespace, tuple(types), tuple(names))


def normalize(resource_id: str) -> str:
    """The key under which a resource is stored: lower-cased, no trailing slash."""
    return resource_id.rstrip("/").lower()


def same_id(left: str | None, right: str | None) -> bool:
    """ARM ids compare case-insensitively."""
    if left is None or right is None:
        return left is right
    return normalize(left) == normalize(right)
