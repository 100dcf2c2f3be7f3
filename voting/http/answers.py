"""The answers each operation documents in the OpenAPI schema: its success and every error.

Every error the service sends has one body, :class:`ErrorOut` (``{"error": {"code",
"message", ...}}``, see :mod:`voting.http.errors`); Litestar's default 400 schema
(``{"detail", "status_code"}``) is never sent and is replaced. An operation's errors are the
ones it raises itself, declared at its decorator with ``responses=answers(...)``, and the ones
every operation of its kind can get, added by :func:`document` from what the handler is:

* any operation: 500 ``internal`` (with a ``request_id``) and 503 (a store is down);
* with parameters (path, query, header): 400 ``malformed``; with a path parameter also 404;
* an unsafe method: 403 ``cross_site_request`` (:mod:`voting.http.origin`); with a body
  also 400, 413 ``payload_too_large`` and 415 ``unsupported_media_type``;
* an admin operation behind the session guard: 401 ``unauthorized`` and 403 (``forbidden``,
  ``csrf_failed``).

``Retry-After`` comes with every 429 and 503 (whole seconds). A handler that answers bytes it
encoded itself names the shape of its success body with ``response_model=`` (a handler
option).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import msgspec
from litestar.handlers import HTTPRouteHandler
from litestar.openapi.datastructures import ResponseSpec


class ErrorDetail(msgspec.Struct):
    """``code``: a stable machine-readable name (e.g. ``already_voted``); ``message``: for
    people. Some codes add members: ``ballot_id``, ``retry_after`` (seconds), ``errors``
    (rows of a rejected file), ``attempts_left``, ``request_id`` (of a 500)."""

    code: str
    message: str


class ErrorOut(msgspec.Struct):
    """The body of every error answer."""

    error: ErrorDetail


#: What each error status means, as the schema says it.
MEANING: dict[int, str] = {
    400: "The request is malformed or breaks a rule; nothing changed (`error.code` says which).",
    401: "No valid credential: missing, forged, expired or ended.",
    403: "Not allowed: another site's request, a missing CSRF token, an observer's change, "
    "or results not yet visible.",
    404: "No such resource (or not public).",
    409: "Valid, but the current state refuses it (already voted, not open, not in draft...).",
    413: "The body is too large.",
    415: "The body is not of a media type this operation takes.",
    422: "An `Idempotency-Key` reused for another request.",
    429: "A rate limit; retry after `Retry-After` seconds.",
    500: "An unexpected error; `error.request_id` names it in the server's log.",
    503: "A store is unavailable or unsafe; retry after `Retry-After` seconds "
    "(`outcome_unknown` on a ballot: retry with the same `Idempotency-Key`).",
}

_NOT_PARAMETERS = frozenset({"services", "admin", "request", "data", "body"})


def answers(*statuses: int) -> dict[int, ResponseSpec]:
    """``responses=`` of a route decorator: the error ``statuses`` it raises itself."""
    return {
        s: ResponseSpec(data_container=ErrorOut, description=MEANING[s], generate_examples=False)
        for s in statuses
    }


def _statuses(handler: HTTPRouteHandler, guarded: bool) -> set[int]:
    statuses = {500, 503}
    params = set(handler.parsed_fn_signature.parameters) - _NOT_PARAMETERS
    if any("{" in path for path in handler.paths):
        statuses |= {400, 404}
    elif params:
        statuses.add(400)
    names = set(handler.parsed_fn_signature.parameters)
    if handler.http_methods - {"GET", "HEAD", "OPTIONS"}:
        statuses.add(403)
        if names & {"data", "body"}:
            statuses |= {400, 413, 415}
    if guarded:
        statuses |= {401, 403}
    return statuses


def document(handlers: Iterable[Any], *, guarded: bool = False) -> None:
    """Add to each route handler of ``handlers`` the errors every operation of its kind can
    answer (see the module), keeping those it declares. Idempotent; other objects
    (routers) are skipped."""
    for handler in handlers:
        if not isinstance(handler, HTTPRouteHandler):
            continue
        declared = dict(handler.responses or {})
        model = handler.opt.get("response_model")
        if model is not None:  # a handler that answers pre-encoded bytes names their shape
            declared.setdefault(
                handler.status_code,
                ResponseSpec(data_container=model, description="OK", generate_examples=False),
            )
        for status in _statuses(handler, guarded):
            declared.setdefault(status, answers(status)[status])
        handler.responses = declared
