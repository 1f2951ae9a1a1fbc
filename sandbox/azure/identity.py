"""The sandbox's Microsoft Entra ID: client-credential principals and the bearer tokens ARM accepts.

Only hashes of secrets and tokens are kept (in the persisted state, so tokens survive a sandbox
restart); the plain values exist only in the client's memory and in the runner's 0600 secret file.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sandbox.azure.models import AzureState

TOKEN_LIFETIME = 3599


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


@dataclass(frozen=True)
class IssuedToken:
    access_token: str
    expires_in: int


@dataclass(frozen=True)
class TokenOwner:
    client_id: str
    scope: str


class AuthError(Exception):
    """An OAuth error reply: status, ``error`` and ``error_description`` (with its AADSTS code)."""

    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.error = error
        self.description = description


class Directory:
    """Principals of one tenant and the tokens issued to them."""

    def __init__(self, state: AzureState) -> None:
        self._state = state

    def add_principal(self, client_id: str, client_secret: str) -> None:
        """Register (or re-key) an application that may use the client-credentials grant."""
        with self._state._lock:
            self._state.identity["principals"][client_id] = {
                "secret_sha256": _digest(client_secret)
            }
            self._state.touch()
        self._state.advance()  # saves

    def issue(self, *, tenant: str, form: dict[str, str]) -> IssuedToken:
        """The token endpoint's decision for one form-encoded request."""
        if tenant.lower() not in (self._state.tenant_id.lower(), "organizations"):
            raise AuthError(
                400,
                "invalid_request",
                f"AADSTS90002: Tenant '{tenant}' not found. Check to make sure you have the "
                "correct tenant ID and are signing into the correct cloud.",
            )
        if form.get("grant_type") != "client_credentials":
            raise AuthError(
                400,
                "unsupported_grant_type",
                "AADSTS70003: The app requested an unsupported grant type "
                f"'{form.get('grant_type')}'. The sandbox supports client_credentials only.",
            )
        client_id = form.get("client_id", "")
        principal = self._state.identity["principals"].get(client_id)
        if principal is None:
            raise AuthError(
                400,
                "unauthorized_client",
                f"AADSTS700016: Application with identifier '{client_id}' was not found in the "
                f"directory '{self._state.tenant_id}'.",
            )
        secret = form.get("client_secret", "")
        if not hmac.compare_digest(_digest(secret), principal["secret_sha256"]):
            raise AuthError(
                401,
                "invalid_client",
                "AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in "
                "the "
                f"request is the client secret value, not the client secret ID, for a secret added "
                f"to app '{client_id}'.",
            )
        scope = form.get("scope", "")
        if not scope.endswith("/.default"):
            raise AuthError(
                400,
                "invalid_scope",
                f"AADSTS1002012: The provided value for scope {scope} is not valid. Client "
                "credential flows must have a scope value with /.default suffixed to the resource "
                "identifier (application ID URI).",
            )
        token = secrets.token_urlsafe(48)
        with self._state._lock:
            tokens = self._state.identity["tokens"]
            now = time.time()
            # Forget expired tokens so that the persisted state does not grow for ever.
            for key in [k for k, v in tokens.items() if v["expires"] < now]:
                del tokens[key]
            tokens[_digest(token)] = {
                "client_id": client_id,
                "scope": scope,
                "expires": now + TOKEN_LIFETIME,
            }
            self._state.touch()
        self._state.advance()
        return IssuedToken(token, TOKEN_LIFETIME)

    def check(self, authorization: str | None) -> TokenOwner:
        """Who a bearer token belongs to; raises :class:`AuthError` with ARM's codes."""
        if not authorization:
            raise AuthError(
                401,
                "AuthenticationFailed",
                "Authentication failed. The 'Authorization' header is missing.",
            )
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise AuthError(
                401,
                "AuthenticationFailed",
                "Authentication failed. The 'Authorization' header is provided in an invalid "
                "format.",
            )
        entry = self._state.identity["tokens"].get(_digest(token.strip()))
        if entry is None:
            raise AuthError(401, "InvalidAuthenticationToken", "The access token is invalid.")
        if entry["expires"] < time.time():
            raise AuthError(
                401,
                "ExpiredAuthenticationToken",
                "The access token expiry UTC time is earlier than current UTC time.",
            )
        return TokenOwner(entry["client_id"], entry["scope"])
