"""The console's voting codes (rounds in identity mode ``code``): how many were issued and
redeemed, and a form that makes N new codes through ``POST /admin/api/v1/rounds/{id}/codes``
(the browser fetches the one-time CSV or PDF of cards with the session's CSRF token and saves
it; the codes exist in clear only in that file)."""

from __future__ import annotations

from litestar import get
from litestar.params import FromPath
from litestar.response import Template

from admin.auth import AdminDep
from admin.codes import MAX_CODES
from admin.console.access import page
from admin.console.rounds import STATUS_LABELS
from voting.identity.codes import RoundCodes
from voting.record import queries
from voting.services.container import ServicesDep


@get("/rounds/{round_id:int}/codes", include_in_schema=False)
async def codes_page(services: ServicesDep, admin: AdminDep, round_id: FromPath[int]) -> Template:
    """Counts of a round's codes and the form that makes new ones."""
    async with services.engine.connect() as conn:
        rnd = await queries.get_round(conn, round_id)
        counts = await RoundCodes(services.signers).counts(conn, round_id)
    return page(
        "codes.html",
        admin,
        round=rnd,
        status_label=STATUS_LABELS[rnd.status],
        counts=counts,
        max_codes=MAX_CODES,
    )


ROUTES = [codes_page]
