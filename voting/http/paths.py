"""One spelling per resource: ``/rounds/01`` does not name round 1.

Litestar reads ``01`` as the integer 1; an id with a leading zero (or a sign) is answered 404
instead, so that caches, logs and audit trails see each resource under one path.
"""

from __future__ import annotations

import re
from typing import Any

from litestar import Request
from litestar.exceptions import NotFoundException

_NOT_CANONICAL = re.compile(r"/(?:0\d+|[+-]\d+)(?=/|$)")


def canonical_ids(request: Request[Any, Any, Any]) -> None:
    """``before_request`` hook: raise NotFoundException (404 ``not_found``) for a path whose
    numeric segment is not written canonically."""
    if _NOT_CANONICAL.search(request.url.path):
        raise NotFoundException(detail="no such resource")
