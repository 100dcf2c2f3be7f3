"""Admin routes for one-time voting codes (identity mode ``code``; see :mod:`voting.codes`).

``POST /rounds/{round_id}/codes {"count": N}`` makes N new codes and answers them once, as a
CSV download or (``?format=pdf``) as printable cards to cut out (:mod:`admin.cards`); only
their keyed hashes are kept, so they cannot be shown again. ``GET /rounds/{round_id}/codes``
counts issued and redeemed codes.
"""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import msgspec
from litestar import Request, Response, get, post
from litestar.params import FromPath, JSONBody, QueryParameter

from admin.auth import AdminDep, writer
from admin.cards import code_cards_pdf, round_address
from admin.documents import BINARY, PDF, TEXT, documented_media
from voting.core.errors import Conflict
from voting.http.answers import answers
from voting.identity.codes import RoundCodes, csv_of
from voting.record.audit import audit
from voting.record.queries import get_round
from voting.services.container import ServicesDep

MAX_CODES = 10_000  # per request; a round may have any number


class CodesIn(msgspec.Struct, forbid_unknown_fields=True):
    """``POST /rounds/{round_id}/codes`` body: how many new codes to make (1-10000)."""

    count: Annotated[int, msgspec.Meta(ge=1, le=MAX_CODES)]


class CodeCountsOut(msgspec.Struct):
    """A round's codes: how many were issued and how many yielded a credential."""

    round_id: int
    issued: int
    redeemed: int


@post(
    "/rounds/{round_id:int}/codes",
    summary="Generate one-time voting codes (CSV or printable cards, shown once)",
    status_code=201,
    media_type="text/csv",
    guards=[writer],
    responses=answers(409),
    operation_class=documented_media(201, {"text/csv": TEXT, PDF: BINARY}),
)
async def create_codes(
    request: Request[Any, Any, Any],
    services: ServicesDep,
    admin: AdminDep,
    round_id: FromPath[int],
    data: JSONBody[CodesIn],
    format: Annotated[Literal["csv", "pdf"], QueryParameter(name="format")] = "csv",
) -> Response[bytes]:
    """``count`` new codes of a round whose identity mode is ``code``, in one download: with
    ``format=csv`` (default) ``text/csv`` ``round_id,round_slug,code``; with ``format=pdf``
    ``application/pdf`` cards to cut out, 10 per A4 page, each with the round's title, the code
    in large type, how to vote and the round's address (``VOTING_PUBLIC_URL``, else the origin
    of this request, plus ``?round=<id>``) as text and QR code. The codes are not stored in
    clear: save the file.

    Errors: 400 ``malformed`` (count outside 1-10000, unknown format); 403 ``forbidden``
    (observers); 404 ``round_not_found``; 409 ``mode_mismatch`` (the round is not in code
    mode), ``round_closed``.
    """
    codes = RoundCodes(services.signers)
    now = datetime.now(UTC)
    async with services.engine.begin() as conn:
        rnd = await get_round(conn, round_id)
        if rnd.identity_mode != "code":
            raise Conflict(
                "mode_mismatch",
                f"round {round_id} identifies voters by {rnd.identity_mode}; set "
                "identity_mode to code while it is in draft",
            )
        if rnd.status == "closed":
            raise Conflict("round_closed", "the round is closed")
        made = await codes.create(conn, round_id, data.count)
        if format == "pdf":  # typeset before the commit: no codes are kept that nobody saw
            base = services.settings.server.public_url or str(request.base_url).rstrip("/") + "/"
            document = await asyncio.to_thread(
                code_cards_pdf,
                made,
                rnd,
                organisation=services.settings.documents.organisation,
                address=round_address(base, round_id),
                created=now,
            )
        await audit(
            conn, admin.username, "codes_create", round_id, {"count": len(made), "format": format}
        )
    slug = re.sub(r"[^a-z0-9-]", "", rnd.slug) or f"round-{round_id}"
    stamp = now.strftime("%Y%m%dT%H%M%SZ")
    headers = {
        "Content-Disposition": f'attachment; filename="{slug}-codes-{stamp}.{format}"',
        "Cache-Control": "no-store",
    }
    if format == "pdf":
        return Response(document, status_code=201, media_type=PDF, headers=headers)
    return Response(
        csv_of(made, round_id, slug),
        status_code=201,
        media_type="text/csv; charset=utf-8",
        headers=headers,
    )


@get("/rounds/{round_id:int}/codes", summary="Count a round's voting codes")
async def code_counts(services: ServicesDep, round_id: FromPath[int]) -> CodeCountsOut:
    """Issued and redeemed codes; 404 ``round_not_found``."""
    async with services.engine.connect() as conn:
        await get_round(conn, round_id)
        counts = await RoundCodes(services.signers).counts(conn, round_id)
    return CodeCountsOut(round_id=round_id, issued=counts.issued, redeemed=counts.redeemed)


ROUTES = [create_codes, code_counts]
