"""Security headers on every answer: Content-Security-Policy, X-Content-Type-Options,
Referrer-Policy, the frame policy and, behind HTTPS, Strict-Transport-Security.

:class:`SecurityHeaders` is a Litestar ``before_send`` hook: it sees the start of every HTTP
answer of the app (handlers, static files, the API docs, errors and unknown routes alike) and
adds the headers a handler did not set itself. The public page sets its own policy, with the
nonce of the ALTCHA widget's stylesheet (:func:`page_policy`).

The policy allows what the pages really do, and nothing else: scripts, styles, images, fonts
and API calls from our own origin only (every asset is vendored); ``data:`` images (the page's
empty favicon, Swagger UI's icons); workers from ``blob:`` URLs (the ALTCHA widget solves the
proof of work in Web Workers made from a Blob of its inlined code; PBKDF2 runs in WebCrypto, no
WebAssembly) and the page's service worker from our origin (``/sw.js``); no plugins, no
``<base>``, forms post to our origin. Who may frame the page:
``VOTING_FRAME_ANCESTORS`` (``'self'`` by default) for the public side, nobody for ``/admin``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from litestar.types import Message, Scope

from voting.settings import ServerSettings

#: Directives of every answer but ``frame-ancestors`` (and the page's style nonce).
BASE_POLICY = (
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    "font-src 'self'",
    "connect-src 'self'",
    "worker-src 'self' blob:",
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'self'",
)
#: One year: a browser that saw HTTPS keeps to it. No ``includeSubDomains``: the bloc's other
#: hosts are not ours to commit.
HSTS = "max-age=31536000"
ADMIN_PREFIX = "/admin"


def policy(
    frame_ancestors: str, style_nonce: str | None = None, script_hashes: tuple[str, ...] = ()
) -> str:
    """The Content-Security-Policy with ``frame-ancestors`` and, when given, a nonce that
    allows the one ``<style>`` element carrying it, and the hashes (``sha256-<base64>``) of
    the inline scripts allowed (the pages' import map, see :mod:`voting.http.page`)."""
    directives = list(BASE_POLICY)
    if style_nonce is not None:
        directives[2] = f"style-src 'self' 'nonce-{style_nonce}'"
    if script_hashes:
        directives[1] = " ".join(["script-src 'self'", *(f"'{h}'" for h in script_hashes)])
    return "; ".join([*directives, f"frame-ancestors {frame_ancestors}"])


def _frame_options(frame_ancestors: str) -> str | None:
    """The legacy ``X-Frame-Options`` equivalent of ``frame-ancestors``, when there is one."""
    return {"'none'": "DENY", "'self'": "SAMEORIGIN"}.get(frame_ancestors)


@dataclass(frozen=True)
class SecurityHeaders:
    """The ``before_send`` hook that adds the security headers (see the module).

    The headers of the public side and of ``/admin`` are encoded once; each answer gets those
    its handler did not set (a case-insensitive look at the names it set).
    """

    frame_ancestors: str
    hsts: bool
    _public: tuple[tuple[bytes, bytes], ...] = field(init=False, repr=False)
    _admin: tuple[tuple[bytes, bytes], ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_public", self._encoded(self.frame_ancestors))
        object.__setattr__(self, "_admin", self._encoded("'none'"))

    def _encoded(self, ancestors: str) -> tuple[tuple[bytes, bytes], ...]:
        pairs = [
            ("content-security-policy", policy(ancestors)),
            ("x-content-type-options", "nosniff"),
            ("referrer-policy", "no-referrer"),
        ]
        frame_options = _frame_options(ancestors)
        if frame_options is not None:
            pairs.append(("x-frame-options", frame_options))
        if self.hsts:
            pairs.append(("strict-transport-security", HSTS))
        return tuple((k.encode(), v.encode()) for k, v in pairs)

    @classmethod
    def from_settings(cls, server: ServerSettings) -> SecurityHeaders:
        """Frame policy from ``VOTING_FRAME_ANCESTORS``; HSTS when the service is behind
        HTTPS (:attr:`ServerSettings.secure`: the same switch as ``Secure`` cookies)."""
        return cls(frame_ancestors=server.frame_ancestors, hsts=server.secure)

    async def __call__(self, message: Message, scope: Scope) -> None:
        """Add the headers to an ``http.response.start`` message (other messages pass)."""
        if message["type"] != "http.response.start":
            return
        path = scope["path"]
        # the admin side is never framed
        admin = path == ADMIN_PREFIX or path.startswith(ADMIN_PREFIX + "/")
        extra = self._admin if admin else self._public
        headers = list(message.get("headers") or ())
        present = {name.lower() for name, _ in headers}
        headers.extend(pair for pair in extra if pair[0] not in present)
        message["headers"] = headers
