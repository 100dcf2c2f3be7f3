"""The request latency histogram: every HTTP request, by route template, status and app.

An ASGI wrapper around the whole app (outside Litestar, like :mod:`voting.http.deadline`), so
that it costs one clock read at each end, one dictionary look-up and one histogram observation
per request: Litestar's own ``PrometheusMiddleware`` (a ``Request`` object, three labelled
metrics and an in-progress gauge per request) measured 30–45 µs a request, about a tenth of a
ballot's whole cost on one core; this measured 4–8 µs (see infra/README.md, "Many workers").

The route template is the one Litestar's router wrote into the scope
(``scope["path_template"]``, e.g. ``/api/v1/rounds/{round_id}/ballots``), never the raw path,
so ids do not multiply the series; a request no route matched is labelled ``unrouted``, an
unusual method ``other``.
Nothing is logged.
"""

from __future__ import annotations

import time
from typing import Any

from litestar.types import ASGIApp, Message, Receive, Scope, Send

from voting import metrics

UNROUTED = "unrouted"
#: methods labelled as themselves; any other is ``other`` (a client chooses the method)
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def observe_requests(app: ASGIApp, app_name: str) -> ASGIApp:
    """``app`` whose every HTTP request is observed in ``voting_request_duration_seconds``
    (:data:`voting.metrics.REQUEST_SECONDS`, seconds from the call to the app's return, i.e.
    to the end of the answer) with labels method, route template, status code and
    ``app_name``. A request that fails before its answer starts counts as status 500."""
    children: dict[tuple[str, str, int], Any] = {}

    async def observed(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await app(scope, receive, send_status)
        finally:
            method = str(scope.get("method", ""))
            key = (
                method if method in METHODS else "other",
                scope.get("path_template") or UNROUTED,
                status,
            )
            child = children.get(key)
            if child is None:
                child = metrics.REQUEST_SECONDS.labels(key[0], key[1], str(status), app_name)
                children[key] = child
            child.observe(time.perf_counter() - started)

    return observed
