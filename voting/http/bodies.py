"""JSON bodies read strictly: the media type a route takes, and no duplicate keys.

* :func:`json_only`: a route whose handler takes a JSON ``data`` body (a form body declares
  its media type with ``Body(media_type=...)``) answers 415
  ``unsupported_media_type`` to a non-empty body of any other media type
  (``text/plain`` and form posts are what a cross-site page can send without a CORS
  preflight, so refusing them also narrows what such a page can do).
* :class:`StrictRequest`: Litestar decodes JSON with msgspec, where a repeated key silently
  wins over the first one (``{"role": "observer", "role": "admin"}``); this request class
  refuses such a body with 400 ``malformed``, as RFC 8259 §4 allows ("names within an object
  SHOULD be unique"), and refuses ``NaN`` and ``Infinity``, which are not JSON.

The ballot route reads its body itself (:func:`voting.core.ballot.parse_ballot`, stricter
still) and is not affected.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from litestar import Request
from litestar.enums import RequestEncodingType
from litestar.exceptions import HTTPException
from litestar.types import ASGIApp, Empty, Receive, Scope, Send

from voting.core.errors import Invalid

JSON_TYPES = ("application/json",)
_takes_json: dict[int, bool] = {}


def _handler_takes_json(handler: Any) -> bool:
    known = _takes_json.get(id(handler))
    if known is None:
        signature = getattr(handler, "parsed_fn_signature", None)
        data = signature.parameters.get("data") if signature is not None else None
        body = getattr(data, "kwarg_definition", None)
        media = getattr(body, "media_type", RequestEncodingType.JSON)
        known = data is not None and media == RequestEncodingType.JSON
        _takes_json[id(handler)] = known
    return known


def has_body(headers: Iterable[tuple[bytes, bytes]]) -> bool:
    """Whether a request with these raw ASGI headers sends a body (a non-zero
    ``Content-Length`` or any ``Transfer-Encoding``)."""
    for name, value in headers:
        if name == b"content-length":
            return value.strip() not in (b"0", b"")
        if name == b"transfer-encoding":
            return True
    return False


def _media_type(headers: Iterable[tuple[bytes, bytes]]) -> str | None:
    """The request's media type (lower case, no parameters), or None."""
    for name, value in headers:
        if name == b"content-type":
            return value.decode("latin-1").split(";", 1)[0].strip().lower()
    return None


def json_only(app: ASGIApp) -> ASGIApp:
    """Middleware: 415 for a body that is not ``application/json`` (or ``…+json``) sent to a
    route that takes a JSON ``data`` body; anything else passes untouched."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and _handler_takes_json(scope.get("route_handler")):
            media = _media_type(scope["headers"])
            if has_body(scope["headers"]) and not (
                media in JSON_TYPES or (media or "").endswith("+json")
            ):
                raise HTTPException(status_code=415, detail="send the body as application/json")
        await app(scope, receive, send)

    return middleware


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            raise Invalid("malformed", f"the key {key!r} appears more than once")
        obj[key] = value
    return obj


def _not_json(name: str) -> Any:
    raise Invalid("malformed", f"{name} is not JSON")


def strict_json(body: bytes) -> Any:
    """``body`` decoded as JSON (empty: None); :class:`Invalid` ``malformed`` for a duplicate
    key, ``NaN``/``Infinity`` or text that is not JSON. RecursionError propagates (the error
    handlers answer it with 400)."""
    if not body:
        return None
    try:
        return json.loads(body, object_pairs_hook=_no_duplicates, parse_constant=_not_json)
    except (ValueError, UnicodeDecodeError) as exc:
        raise Invalid("malformed", f"the body is not JSON: {exc}") from None


class StrictRequest(Request[Any, Any, Any]):
    """Litestar's request whose :meth:`json` is :func:`strict_json` (see the module)."""

    async def json(self) -> Any:
        """The body as JSON, decoded once per request."""
        state = self._connection_state
        if state.json is Empty:
            state.json = strict_json(await self.body())
        return state.json
