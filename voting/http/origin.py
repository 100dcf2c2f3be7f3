"""Refusing cross-site changes: an Origin / ``Sec-Fetch-Site`` check on every unsafe request.

A browser sends a cookie with a cross-site form or ``fetch`` POST (``SameSite=Lax`` and even
``Strict`` cookies go with a *same-site* one, e.g. from a sibling subdomain), so a page
elsewhere could make a visitor's browser cast a ballot or change a round. Browsers say where
a request comes from, and that cannot be forged by the page (Fetch Metadata, W3C; the OWASP
CSRF Prevention Cheat Sheet's "verifying origin with standard headers"):

* ``Sec-Fetch-Site``, when present, must be ``same-origin`` or ``none`` (typed by the user);
  ``same-site`` and ``cross-site`` are refused;
* otherwise an ``Origin`` header, when present, must name this host (its ``host[:port]``
  equals the ``Host`` header; the scheme is not compared, since TLS may end at a proxy);
  ``Origin: null`` (sandboxed frames, some redirects) is refused.

A request with neither header is not from a browser that could be misused this way (curl,
load generators, server-side clients) and passes. Refusals are 403 ``cross_site_request``;
safe methods (GET, HEAD, OPTIONS) are never checked. The public page embedded in another
site's frame is still our own origin, so its requests are ``same-origin``.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit

from litestar.types import ASGIApp, Receive, Scope, Send

from voting.core.errors import Forbidden

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_ALLOWED_SITES = frozenset({b"same-origin", b"none"})


def cross_site(headers: Iterable[tuple[bytes, bytes]]) -> str | None:
    """Why a request with these raw ASGI headers comes from another site, or None."""
    fetch_site = origin = host = None
    for name, value in headers:
        if name == b"sec-fetch-site":
            fetch_site = value
        elif name == b"origin":
            origin = value
        elif name == b"host":
            host = value
    if fetch_site is not None:
        if fetch_site.lower() in _ALLOWED_SITES:
            return None
        return f"Sec-Fetch-Site is {fetch_site.decode('latin-1')}"
    if origin is None:
        return None
    text = origin.decode("latin-1").strip()
    if text == "null":
        return "Origin is null"
    try:
        netloc = urlsplit(text).netloc.lower()
    except ValueError:
        return "Origin is malformed"
    if host is None or netloc != host.decode("latin-1").strip().lower():
        return "Origin is another site"
    return None


def same_origin_only(app: ASGIApp) -> ASGIApp:
    """Middleware: raise :class:`~voting.core.errors.Forbidden` ``cross_site_request`` for an
    unsafe HTTP request that a browser sent from another site (see the module)."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope.get("method", "GET") not in SAFE_METHODS:
            reason = cross_site(scope["headers"])
            if reason is not None:
                raise Forbidden(
                    "cross_site_request",
                    f"changes are accepted from this site's own pages only ({reason})",
                )
        await app(scope, receive, send)

    return middleware
