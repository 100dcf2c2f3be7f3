"""Serving candidate photos over HTTP: cache headers, a strong ETag, 304 on ``If-None-Match``.

A photo URL the API gives carries the photo's version (``?v=<version>``): that URL's bytes
never change, so its answer may be kept a year without asking again (``immutable``,
RFC 8246). Without the version, or with an old one, the answer may be kept 5 minutes, then
revalidated with its ETag (the hex SHA-256 of the bytes, first 32 digits, quoted). The
admin API answers the same way but ``private, no-cache``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from litestar import Response
from litestar.openapi.spec import (
    OpenAPIFormat,
    OpenAPIHeader,
    OpenAPIMediaType,
    OpenAPIResponse,
    OpenAPIType,
    Operation,
    Reference,
    Schema,
)

from voting.core.photos import MEDIA_TYPE
from voting.record.photos import StoredPhoto

#: ``Cache-Control`` of a versioned public URL whose version is current: one year.
IMMUTABLE = "public, max-age=31536000, immutable"
#: ``Cache-Control`` of any other public photo answer: 5 minutes, then revalidate.
SHORT = "public, max-age=300"
#: ``Cache-Control`` of the admin API's photos: always revalidated, never in shared caches.
PRIVATE = "private, no-cache"


def etag_of(photo: StoredPhoto) -> str:
    """The strong ETag of ``photo``: ``"<first 32 hex digits of its SHA-256>"``."""
    return f'"{photo.sha256[:32]}"'


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """Whether an ``If-None-Match`` header value names ``etag`` (RFC 9110 §13.1.2: ``*`` or a
    list of entity tags, compared weakly, so ``W/"x"`` matches ``"x"``)."""
    if not if_none_match:
        return False
    for tag in if_none_match.split(","):
        tag = tag.strip()
        if tag == "*" or tag.removeprefix("W/") == etag:
            return True
    return False


def photo_response(
    photo: StoredPhoto, cache_control: str, if_none_match: str | None
) -> Response[bytes]:
    """``photo``'s bytes (200) with ``ETag`` and ``Cache-Control``, or 304 with the same headers
    and no body when ``if_none_match`` names its ETag."""
    headers = {"ETag": etag_of(photo), "Cache-Control": cache_control}
    if etag_matches(if_none_match, headers["ETag"]):
        return Response(b"", status_code=304, headers=headers, media_type=photo.media_type)
    return Response(photo.data, media_type=photo.media_type, headers=headers)


@dataclass
class BinaryOperation(Operation):
    """The OpenAPI operation of a route answering bytes of :attr:`media_type` with a strong
    ETag: 200 with the bytes, 304 without a body. Subclasses name the media type and one more
    header (:attr:`header`: name and description)."""

    media_type: ClassVar[str] = "application/octet-stream"
    header: ClassVar[tuple[str, str]] = ("Cache-Control", "see the description")

    def __post_init__(self) -> None:
        text = Schema(type=OpenAPIType.STRING)
        name, description = self.header
        headers: dict[str, OpenAPIHeader | Reference] = {
            "ETag": OpenAPIHeader(schema=text, description="strong: the bytes' SHA-256"),
            name: OpenAPIHeader(schema=text, description=description),
        }
        ok = self.responses.get("200") if self.responses else None
        if isinstance(ok, OpenAPIResponse):
            binary = Schema(type=OpenAPIType.STRING, format=OpenAPIFormat.BINARY)
            ok.content = {self.media_type: OpenAPIMediaType(schema=binary)}
            ok.headers = headers
        if self.responses is not None:
            self.responses["304"] = OpenAPIResponse(
                description="Not modified: `If-None-Match` names the current ETag; no body.",
                headers=headers,
            )


@dataclass
class PhotoOperation(BinaryOperation):
    """The OpenAPI operation of a photo: 200 with WebP bytes, 304 without a body."""

    media_type: ClassVar[str] = MEDIA_TYPE
