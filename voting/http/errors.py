"""Errors as the API answers them: ``{"error": {"code": "...", "message": "...", ...}}``.

The one place that gives domain errors an HTTP status (:data:`STATUS`, by kind) and turns
Litestar's own errors (unknown route, wrong method, body over the size limit, validation)
into the same shape. A ``retry_after`` becomes a ``Retry-After`` header (whole seconds) as
well as a member of the body. A client's mistake is answered and never logged with a
traceback; only an unexpected exception is. A Redis that cannot be reached, does not answer,
is read-only or full, or a Redis Cluster reconfiguring, and that a route did not handle
itself is ``503 unavailable`` with
``Retry-After`` (fail closed, never a 500): the routes that must tell more (a ballot whose
outcome is unknown) catch it first.
"""

from __future__ import annotations

import logging
import secrets
from typing import Any

from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from redis.exceptions import (
    AskError,
    ClusterError,
    OutOfMemoryError,
    ReadOnlyError,
    RedisClusterException,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from voting.core.errors import (
    Conflict,
    DomainError,
    Forbidden,
    Invalid,
    Limited,
    NotFound,
    Rejected,
    Unauthenticated,
    Unavailable,
)

logger = logging.getLogger("voting")

#: HTTP status of each kind of domain error.
STATUS: dict[type[DomainError], int] = {
    Invalid: 400,
    Unauthenticated: 401,
    Forbidden: 403,
    NotFound: 404,
    Conflict: 409,
    Rejected: 422,
    Limited: 429,
    Unavailable: 503,
}

#: Codes of Litestar's own HTTP errors, by status.
_HTTP_CODES = {
    400: "malformed",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
}


def status_of(exc: DomainError) -> int:
    """The HTTP status of ``exc`` (by the first kind in its class's MRO); 500 for a bare
    :class:`DomainError`, which no code should raise."""
    for kind in type(exc).__mro__:
        if kind in STATUS and issubclass(kind, DomainError):
            return STATUS[kind]
    return 500


def error_response(
    status: int,
    code: str,
    message: str,
    details: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> Response[dict[str, Any]]:
    """The JSON response for one error."""
    body: dict[str, Any] = {"code": code, "message": message}
    if details:
        body.update(details)
    return Response({"error": body}, status_code=status, headers=headers or {})


def _domain_error(_: Request[Any, Any, Any], exc: DomainError) -> Response[dict[str, Any]]:
    status = status_of(exc)
    if status == 500:
        logger.error("domain error without a kind: %s %s", exc.code, exc.message)
    headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after is not None else None
    return error_response(status, exc.code, exc.message, exc.details, headers)


def _http_error(_: Request[Any, Any, Any], exc: HTTPException) -> Response[dict[str, Any]]:
    status = exc.status_code
    if status >= 500:
        logger.error("internal error: %s", exc.detail)
        return error_response(500, "internal", "internal server error")
    code = _HTTP_CODES.get(status, "error")
    message = str(exc.detail) if exc.detail else code
    if status == 413:
        message = "request body is too large"
    elif status == 404:
        message = "no such resource"  # Litestar's own 404 texts may name install paths
    return error_response(status, code, message, headers=dict(exc.headers or {}))


def _validation_error(
    _: Request[Any, Any, Any], exc: ValidationException
) -> Response[dict[str, Any]]:
    details = exc.extra if isinstance(exc.extra, list) else None
    message = str(exc.detail) or "invalid request"
    if details:
        message = (
            "; ".join(
                f"{d.get('key', '')}: {d.get('message', '')}".strip(": ")
                for d in details
                if isinstance(d, dict)
            )
            or message
        )
    return error_response(400, "malformed", message)


def _too_deep(_: Request[Any, Any, Any], exc: RecursionError) -> Response[dict[str, Any]]:
    # msgspec refuses JSON nested deeper than the interpreter's recursion limit this way
    logger.info("refused a request: %s", exc)
    return error_response(400, "malformed", "the JSON body is nested too deeply")


#: Retry-After (seconds) of a Redis failure no route handled
STORE_RETRY_AFTER = 5


def _store_down(_: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, Any]]:
    # no logging: this can be every request while Redis is down
    message = "the live store is unavailable; try again shortly"
    details = {"retry_after": STORE_RETRY_AFTER}
    headers = {"Retry-After": str(STORE_RETRY_AFTER)}
    return error_response(503, "unavailable", message, details, headers)


def _unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, Any]]:
    # once, with an id the client can quote; no request data (headers, body, query)
    request_id = secrets.token_hex(8)
    logger.error(
        "unhandled error %s on %s %s", request_id, request.method, request.url.path, exc_info=exc
    )
    return error_response(500, "internal", "internal server error", {"request_id": request_id})


EXCEPTION_HANDLERS: dict[Any, Any] = {
    DomainError: _domain_error,
    ValidationException: _validation_error,
    HTTPException: _http_error,
    RecursionError: _too_deep,
    RedisConnectionError: _store_down,
    RedisTimeoutError: _store_down,
    ReadOnlyError: _store_down,
    OutOfMemoryError: _store_down,
    # Redis Cluster reconfiguring (CLUSTERDOWN, TRYAGAIN, MOVED/ASK left after the client's
    # retries, a slot no node serves): as unavailable as a Redis that is down
    ClusterError: _store_down,
    TryAgainError: _store_down,
    AskError: _store_down,
    RedisClusterException: _store_down,
    Exception: _unexpected,
}
