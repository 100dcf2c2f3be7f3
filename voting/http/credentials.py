"""Reading the credential a request presents: ``Authorization: Bearer <token>`` or a cookie.

Voters and admins present their tokens the same way; what a missing or malformed one means
is the caller's to say.
"""

from __future__ import annotations

from typing import Any

from litestar.connection import ASGIConnection


class MalformedAuthorization(ValueError):
    """An ``Authorization`` header that is not ``Bearer <token>``."""


def presented_token(request: ASGIConnection[Any, Any, Any, Any], cookie: str) -> str | None:
    """The bearer token of the ``Authorization`` header, else the cookie named ``cookie``,
    else None. Raises :class:`MalformedAuthorization` when the header is present but not
    ``Bearer <token>`` (the cookie is then not looked at)."""
    auth = request.headers.get("authorization")
    if auth is not None:
        scheme, _, token = auth.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise MalformedAuthorization("Authorization must be 'Bearer <token>'")
        return token.strip()
    return request.cookies.get(cookie) or None
