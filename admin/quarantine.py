"""Admin API of the quarantine (see :mod:`voting.services.quarantine`): a round's flagged
ballots for review, and the decision to count or void a reason group."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from litestar import get, post
from litestar.params import FromPath, JSONBody

from admin.auth import AdminDep, writer
from voting.core.text import TEXT_PATTERN, nfc
from voting.http.answers import answers
from voting.services import quarantine
from voting.services.container import ServicesDep


class QuarantineDecisionIn(msgspec.Struct, forbid_unknown_fields=True):
    """``POST .../quarantine/{reason}`` body: ``count`` the group's ballots in the tally or
    ``void`` them, and why (required, shown with the results)."""

    decision: Literal["count", "void"]
    note: Annotated[str, msgspec.Meta(pattern=TEXT_PATTERN, min_length=1, max_length=5000)]


@get("/rounds/{round_id:int}/quarantine", summary="The round's quarantined ballots for review")
async def quarantine_review(services: ServicesDep, round_id: FromPath[int]) -> quarantine.ReviewOut:
    """Per reason: the rule's text, ballots flagged, the decision; per group with ballots,
    the networks with the most of them (ballots per minute) and a few examples (network
    prefix, time, choices as candidate codes, User-Agent hash). 404 ``round_not_found``."""
    return await quarantine.review(services.engine, round_id)


@post(
    "/rounds/{round_id:int}/quarantine/{reason:str}",
    summary="Count or void a reason group of quarantined ballots",
    status_code=200,
    guards=[writer],
    responses=answers(409),
)
async def quarantine_decide(
    services: ServicesDep,
    admin: AdminDep,
    round_id: FromPath[int],
    reason: FromPath[str],
    data: JSONBody[QuarantineDecisionIn],
) -> quarantine.QuarantineDecisionOut:
    """Decide the ``reason`` group as a whole (audited ``quarantine_decision``; may be
    replaced until the results are official); on a final round the stored final tally is
    recounted. 400 ``malformed`` (decision not ``count``/``void``, empty note); 404
    ``round_not_found``, ``reason_not_found``; 409 ``round_not_closed``, ``already_official``,
    ``nothing_flagged``."""
    out = await quarantine.decide(
        services.engine, admin.username, round_id, reason, data.decision, nfc(data.note)
    )
    services.forget(round_id)
    return out


ROUTES = [quarantine_review, quarantine_decide]
