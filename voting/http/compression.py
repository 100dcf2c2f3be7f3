"""Compression of text answers: Litestar's :class:`~litestar.config.compression.CompressionConfig`
with brotli (the ``brotli`` package, ``litestar[brotli]``), gzip for clients without it.

Litestar's middleware compresses every answer of at least ``minimum_size`` bytes whatever its
type. :class:`TextCompression` leaves alone what is already compressed or not text: photos
(WebP), the audit package (ZIP), PDFs, XLSX (a ZIP), and any answer that already carries a
``Content-Encoding``; so nothing is compressed twice. Casting a ballot
(``POST /api/v1/rounds/{id}/ballots``, the hot path, answers of about 300 bytes) bypasses the
middleware altogether (:data:`EXCLUDE`), as do the health probes.
"""

from __future__ import annotations

from typing import Literal

from litestar.config.compression import CompressionConfig
from litestar.datastructures import Headers
from litestar.enums import CompressionEncoding
from litestar.middleware.compression import CompressionMiddleware
from litestar.types import Message, Scope, Send

#: Bytes below which an answer is sent as it is (Litestar's default): a smaller one gains less
#: than the header costs.
MINIMUM_SIZE = 500
#: Brotli quality 0-11: 5 compresses the page's modules to within a few percent of 11 in a
#: fraction of the time, per answer.
BROTLI_QUALITY = 5
#: Paths never compressed: the hot path (tiny answers, every microsecond counts) and the
#: probes.
EXCLUDE = [r"^/api/v1/rounds/[0-9]+/ballots$", r"^/healthz$", r"^/readyz$"]
#: Media types (without parameters) worth compressing, besides ``text/*`` and ``*+json`` /
#: ``*+xml``. ``text/event-stream`` is left out: compressing it would hold back its events.
COMPRESSIBLE = frozenset(
    {
        "application/json",
        "application/javascript",
        "application/xml",
        "application/x-ndjson",
        "image/svg+xml",
        "text/javascript",
    }
)


def compressible(content_type: str | None) -> bool:
    """Whether an answer of ``content_type`` is worth compressing (see :data:`COMPRESSIBLE`)."""
    if not content_type:
        return False
    media = content_type.split(";", 1)[0].strip().lower()
    if media == "text/event-stream":
        return False
    return media in COMPRESSIBLE or media.startswith("text/") or media.endswith(("+json", "+xml"))


class TextCompression(CompressionMiddleware):
    """Litestar's compression middleware for text answers only (see the module)."""

    def create_compression_send_wrapper(
        self,
        send: Send,
        compression_encoding: Literal[CompressionEncoding.BROTLI, CompressionEncoding.GZIP] | str,
        scope: Scope,
    ) -> Send:
        """Decide on the answer's start: text without a ``Content-Encoding`` goes through
        Litestar's compressing ``send``, anything else straight to ``send``."""
        compressing = super().create_compression_send_wrapper(send, compression_encoding, scope)
        target: Send | None = None

        async def wrapper(message: Message) -> None:
            nonlocal target
            if message["type"] == "http.response.start":
                headers = Headers(list(message.get("headers") or ()))
                plain = "content-encoding" in headers or not compressible(
                    headers.get("content-type")
                )
                target = send if plain else compressing
            await (target or compressing)(message)

        return wrapper


def compression_config() -> CompressionConfig:
    """The app's compression: brotli (quality :data:`BROTLI_QUALITY`) or gzip, text answers
    of at least :data:`MINIMUM_SIZE` bytes, not on :data:`EXCLUDE`."""
    return CompressionConfig(
        backend="brotli",
        brotli_quality=BROTLI_QUALITY,
        brotli_gzip_fallback=True,
        minimum_size=MINIMUM_SIZE,
        middleware_class=TextCompression,
        exclude=EXCLUDE,
    )
