"""One spelling per resource: ``/rounds/01`` does not name round 1.

Litestar reads ``01`` as the integer 1; an id with a leading zero (or a sign) is answered 404
instead, so that caches, logs and audit trails see each resource under one path. The page's
deep links (``/r/<slug>/<candidate-code>``) are names, not ids: a code such as ``007`` passes.
"""

from __future__ import annotations

import re

from litestar.exceptions import NotFoundException
from litestar.types import ASGIApp, Receive, Scope, Send

_NOT_CANONICAL = re.compile(r"/(?:0\d+|[+-]\d+)(?=/|$)")


def canonical_ids(app: ASGIApp) -> ASGIApp:
    """Middleware: raise NotFoundException (404 ``not_found``) for a path whose numeric
    segment is not written canonically; anything else passes untouched."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        path = scope["path"]
        if not path.startswith("/r/") and _NOT_CANONICAL.search(path):
            raise NotFoundException(detail="no such resource")
        await app(scope, receive, send)

    return middleware
