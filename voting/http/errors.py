"""API errors in the contract's shape: ``{"error": {"code": "...", "message": "..."}}``.

Handlers in :data:`EXCEPTION_HANDLERS` turn :class:`ApiError` and Litestar's own HTTP errors
(unknown route, wrong method, body over the size limit, validation) into that shape.
"""

from __future__ import annotations

import logging
from typing import Any

from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException

logger = logging.getLogger("voting")


class ApiError(Exception):
    """An error answered to the client.

    ``status``: HTTP status; ``code``: the contract's machine code (e.g. ``already_voted``);
    ``message``: human text; ``extra``: more members of the ``error`` object (e.g.
    ``ballot_id``); ``headers``: e.g. ``Retry-After`` (seconds).
    """

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        extra: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.extra = extra or {}
        self.headers = headers or {}


def error_response(
    status: int,
    code: str,
    message: str,
    extra: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> Response[dict[str, Any]]:
    """The JSON response for one error."""
    body: dict[str, Any] = {"code": code, "message": message}
    if extra:
        body.update(extra)
    return Response({"error": body}, status_code=status, headers=headers or {})


def _api_error(_: Request[Any, Any, Any], exc: ApiError) -> Response[dict[str, Any]]:
    return error_response(exc.status, exc.code, exc.message, exc.extra, exc.headers)


def unavailable(message: str, retry_after: int = 5) -> ApiError:
    """503 ``unavailable`` with ``Retry-After`` (seconds): a store the request needs is down
    or unsafe; the request changed nothing and may be retried."""
    return ApiError(503, "unavailable", message, headers={"Retry-After": str(retry_after)})


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


def _http_error(_: Request[Any, Any, Any], exc: HTTPException) -> Response[dict[str, Any]]:
    status = exc.status_code
    if status >= 500:
        logger.error("internal error: %s", exc.detail)
        return error_response(500, "internal", "internal server error")
    code = _HTTP_CODES.get(status, "error")
    message = str(exc.detail) if exc.detail else code
    if status == 413:
        message = "request body is too large"
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


def _unexpected(_: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, Any]]:
    logger.exception("unhandled error", exc_info=exc)
    return error_response(500, "internal", "internal server error")


EXCEPTION_HANDLERS: dict[Any, Any] = {
    ApiError: _api_error,
    ValidationException: _validation_error,
    HTTPException: _http_error,
    Exception: _unexpected,
}
