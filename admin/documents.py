"""Printable documents of the admin API: PDFs typeset by Typst, QR codes, and how such answers
are documented in the OpenAPI schema.

PDFs are compiled by the ``typst`` wheel (the Typst compiler with its fonts built in) from the
templates in ``admin/templates``; the system's fonts are never looked at, so a document looks
the same on every machine and needs no system package. The templates use Libertinus Serif,
which covers Vietnamese (precomposed letters such as ư ữ ặ ỹ Đ), and DejaVu Sans Mono for
codes and addresses (ASCII only: its Vietnamese marks do not compose). Data reaches a template
as one JSON document (``sys.inputs.data``) of ready-made strings, read there as data, never as
markup, so nothing a candidate's name or a round's title holds can change the layout.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import segno
import typst
from litestar.openapi.spec import (
    OpenAPIFormat,
    OpenAPIMediaType,
    OpenAPIResponse,
    OpenAPIType,
    Operation,
    Schema,
)

TEMPLATES = Path(__file__).resolve().parent / "templates"
PDF = "application/pdf"


def typeset(template: str, data: Mapping[str, Any], *, created: datetime) -> bytes:
    """The PDF (bytes) of ``admin/templates/<template>`` filled with ``data``.

    ``data``: JSON-able (strings, numbers, lists, mappings); the template reads it as
    ``json(bytes(sys.inputs.data))``. ``created``: an aware datetime, the PDF's creation date.
    CPU-bound (about 3 ms a page): call it in a thread from a request handler. Raises
    ``typst.TypstError`` when the template does not compile (a bug, not bad input).
    """
    return bytes(
        typst.compile(
            str(TEMPLATES / template),
            sys_inputs={"data": json.dumps(data, ensure_ascii=False)},
            ignore_system_fonts=True,
            timestamp=created.replace(microsecond=0),
        )
    )


def qr_svg(text: str) -> str:
    """An SVG document of the QR code of ``text`` (error correction M, a 2-module quiet zone
    inside; the template scales it)."""
    out = io.BytesIO()
    segno.make(text, error="m").save(out, kind="svg", border=2, xmldecl=False)
    return out.getvalue().decode()


def documented_media(status: int, media: Mapping[str, Schema]) -> type[Operation]:
    """An ``operation_class=`` for a route whose ``status`` answer comes in several media types:
    the answer's ``content`` becomes ``media`` (media type → schema of the body)."""

    @dataclass
    class MediaOperation(Operation):
        def __post_init__(self) -> None:
            answer = self.responses.get(str(status)) if self.responses else None
            if isinstance(answer, OpenAPIResponse):
                answer.content = {
                    kind: OpenAPIMediaType(schema=schema) for kind, schema in media.items()
                }

    return MediaOperation


#: The schema of a binary body (a PDF, an XLSX).
BINARY = Schema(type=OpenAPIType.STRING, format=OpenAPIFormat.BINARY)
#: The schema of a text body (CSV).
TEXT = Schema(type=OpenAPIType.STRING)
