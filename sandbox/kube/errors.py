"""The API server's errors, each carrying the `v1 Status` a real server would answer with.

The messages follow kube-apiserver's own wording (`deployments.apps "x" not found`, `Operation
cannot be fulfilled on ...`), because clients and people match on them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class Cause:
    """One `details.causes[]` entry of a Status: which field, why, and the message."""

    reason: str | None
    message: str
    field: str | None = None

    def to_json(self) -> dict[str, str]:
        cause = {"message": self.message}
        if self.reason:
            cause["reason"] = self.reason
        if self.field is not None:
            cause["field"] = self.field
        return cause


class ApiError(Exception):
    """A request the server refuses; `status()` is the body it answers with."""

    def __init__(
        self,
        code: int,
        reason: str,
        message: str,
        *,
        name: str | None = None,
        group: str | None = None,
        kind: str | None = None,
        causes: list[Cause] | None = None,
        retry_after: int | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details: dict[str, Any] = {}
        if name is not None:
            self.details["name"] = name
        if group:
            self.details["group"] = group
        if kind is not None:
            self.details["kind"] = kind
        if causes:
            self.details["causes"] = [cause.to_json() for cause in causes]
        if retry_after is not None:
            self.details["retryAfterSeconds"] = retry_after
        self.retry_after = retry_after

    def status(self) -> dict[str, Any]:
        """The `v1 Status` body of this error."""
        body: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details:
            body["details"] = self.details
        return body


def qualified(group: str, plural: str) -> str:
    """How messages name a resource: `pods`, `deployments.apps`."""
    return f"{plural}.{group}" if group else plural


def not_found(group: str, plural: str, name: str) -> ApiError:
    return ApiError(
        404,
        "NotFound",
        f'{qualified(group, plural)} "{name}" not found',
        name=name,
        group=group,
        kind=plural,
    )


def no_route() -> ApiError:
    return ApiError(404, "NotFound", "the server could not find the requested resource")


def already_exists(group: str, plural: str, name: str) -> ApiError:
    return ApiError(
        409,
        "AlreadyExists",
        f'{qualified(group, plural)} "{name}" already exists',
        name=name,
        group=group,
        kind=plural,
    )


def stale(group: str, plural: str, name: str) -> ApiError:
    """The write named a resourceVersion that is no longer current."""
    return ApiError(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on {qualified(group, plural)} "{name}": the object has '
        "been modified; please apply your changes to the latest version and try again",
        name=name,
        group=group,
        kind=plural,
    )


def invalid(kind: str, group: str, name: str, causes: list[Cause]) -> ApiError:
    """422: the object breaks a validation rule; each cause names the field."""
    title = f"{kind}.{group}" if group else kind
    summary = ", ".join(
        f"{cause.field}: {cause.message}" if cause.field else cause.message for cause in causes
    )
    if len(causes) > 1:
        summary = f"[{summary}]"
    return ApiError(
        422,
        "Invalid",
        f'{title} "{name}" is invalid: {summary}',
        name=name,
        group=group,
        kind=kind,
        causes=causes,
    )


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def forbidden(message: str, *, group: str = "", plural: str = "", name: str = "") -> ApiError:
    return ApiError(403, "Forbidden", message, name=name or None, group=group, kind=plural or None)


def method_not_allowed() -> ApiError:
    return ApiError(
        405, "MethodNotAllowed", "the server does not allow this method on the requested resource"
    )


def unsupported_media_type(content_type: str, accepted: list[str]) -> ApiError:
    return ApiError(
        415,
        "UnsupportedMediaType",
        f"the body of the request was in an unknown format - accepted media types include: "
        f"{', '.join(accepted)}",
    )


def internal(message: str) -> ApiError:
    return ApiError(
        500,
        "InternalError",
        f"Internal error occurred: {message}",
        causes=[Cause(None, message)],
    )


def expired(message: str) -> ApiError:
    return ApiError(410, "Expired", message)
