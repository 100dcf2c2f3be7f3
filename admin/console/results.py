"""The console's results of a round: the ranked list, the tie across the cut-off and the
standing committee's decision on it, then publication as official (the same service calls as
``POST .../tie-decision`` and ``POST .../official``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec
from litestar import Response, get, post
from litestar.params import FromPath
from litestar.plugins.htmx import ClientRedirect
from litestar.response import Template
from redis.exceptions import RedisError

from admin import labels
from admin.auth import AdminDep, writer
from admin.console.access import FormBody, message_of, page
from admin.console.forms import VIETNAM, vietnam_time
from admin.console.rounds import STATUS_LABELS
from admin.publication import DecisionIn
from voting.core.errors import DomainError
from voting.core.text import nfc
from voting.record import queries
from voting.services import publication
from voting.services.container import Services, ServicesDep
from voting.services.results import round_results

DECISION_RULES = {
    "chosen": "Chọn đúng số người bằng số suất còn lại, trong số những người đồng hạng.",
    "decided_by": "Bắt buộc, trên một dòng (ví dụ: Ban Thường vụ Đảng ủy Khối).",
    "reason": "Bắt buộc: căn cứ, lý do của quyết định.",
    "decided_on": "Ngày ra quyết định.",
}


async def _context(services: Services, round_id: int) -> dict[str, Any]:
    async with services.engine.connect() as conn:
        rnd = await queries.get_round(conn, round_id)
    try:
        results = await round_results(
            services.engine, services.redis, services.settings.redis.prefix, rnd
        )
    except RedisError:
        results = None
    outcome = labels.seat_outcomes(msgspec.to_builtins(results)) if results else {}
    names = {c.candidate_id: c for c in results.candidates} if results else {}
    return {
        "round": rnd,
        "status_label": STATUS_LABELS[rnd.status],
        "results": results,
        "outcome": outcome,
        "names": names,
        "official_at": vietnam_time(rnd.official_at),
        "tie_break_label": labels.TIE_BREAK[rnd.tie_break],
        "swaps": list(zip(results.entered_by_rule, results.displaced_by_rule, strict=True))
        if results
        else [],
        "rules": DECISION_RULES,
        "today": datetime.now(VIETNAM).date().isoformat(),
    }


@get("/rounds/{round_id:int}/results", include_in_schema=False)
async def results_page(services: ServicesDep, admin: AdminDep, round_id: FromPath[int]) -> Template:
    """The results (live while open, final after the close) and what follows the count."""
    context = await _context(services, round_id)
    return page("results.html", admin, errors={}, values={}, **context)


@post(
    "/rounds/{round_id:int}/results/decision",
    include_in_schema=False,
    guards=[writer],
    status_code=200,
)
async def record_decision(
    services: ServicesDep, admin: AdminDep, round_id: FromPath[int], data: FormBody
) -> Response[Any]:
    """Record the committee's decision (as ``POST .../tie-decision``)."""
    chosen = data.get("chosen", [])
    chosen = chosen if isinstance(chosen, list) else [chosen]
    values = {
        "chosen": [int(c) for c in chosen if str(c).isdigit()],
        "decided_by": str(data.get("decided_by", "")).strip(),
        "reason": str(data.get("reason", "")).strip(),
        "decided_on": str(data.get("decided_on", "")).strip(),
    }
    errors: dict[str, str] = {}
    try:
        body = msgspec.convert(values, DecisionIn, strict=False)
    except msgspec.ValidationError as exc:
        field = next((f for f in DECISION_RULES if f"$.{f}" in str(exc)), "")
        errors[field] = DECISION_RULES.get(field, "Giá trị không hợp lệ.")
    else:
        try:
            await publication.record_decision(
                services.engine,
                services.redis,
                services.settings.redis.prefix,
                admin.username,
                round_id,
                body.chosen,
                nfc(body.decided_by),
                nfc(body.reason),
                body.decided_on,
            )
        except DomainError as exc:
            if exc.code == "decision_invalid":
                errors["chosen"] = DECISION_RULES["chosen"]
            else:
                errors[""] = message_of(exc)
        else:
            return ClientRedirect(redirect_to=f"/admin/rounds/{round_id}/results")
    context = await _context(services, round_id)
    return page("results_decision.html", admin, errors=errors, values=values, **context)


@post(
    "/rounds/{round_id:int}/results/official",
    include_in_schema=False,
    guards=[writer],
    status_code=200,
)
async def make_official(
    services: ServicesDep, admin: AdminDep, round_id: FromPath[int]
) -> Response[Any]:
    """Publish the final results as official (as ``POST .../official``)."""
    try:
        await publication.make_official(
            services.engine,
            services.redis,
            services.settings.redis.prefix,
            admin.username,
            round_id,
        )
    except DomainError as exc:
        return page("notice.html", admin, kind="error", message=message_of(exc))
    services.forget(round_id)
    return ClientRedirect(redirect_to=f"/admin/rounds/{round_id}/results")


ROUTES = [results_page, record_decision, make_official]
