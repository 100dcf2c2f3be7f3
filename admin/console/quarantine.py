"""The console's quarantine: a round's review page (per reason group: the rule, its ballots,
the networks with the most of them per minute, a few examples, and the form to count or void
the group with a written reason), and the detection thresholds of the round form.

Decisions go through :func:`voting.services.quarantine.decide`, as
``POST /admin/api/v1/rounds/{id}/quarantine/{reason}`` does (same rules, same audit).
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Response, get, post
from litestar.params import FromPath
from litestar.plugins.htmx import ClientRedirect
from litestar.response import Template

from admin.auth import AdminDep, writer
from admin.console.access import FormBody, message_of, page
from admin.console.detection import RULE_NAMES
from admin.console.forms import VIETNAM, vietnam_time
from admin.console.rounds import STATUS_LABELS
from admin.quarantine import QuarantineDecisionIn
from voting.core.errors import DomainError
from voting.core.text import nfc
from voting.record import queries
from voting.services import quarantine
from voting.services.container import ServicesDep

DECISION_LABELS = {
    "count": "Tính vào kết quả",
    "void": "Không tính (hủy)",
    None: "Chờ xem xét",
}
NOTE_RULE = "Bắt buộc: ghi rõ căn cứ, lý do của quyết định."
DECISION_RULE = "Chọn tính hoặc không tính nhóm phiếu này."


def _view_group(group: quarantine.GroupOut) -> dict[str, Any]:
    networks = []
    for n in group.networks:
        minutes = n["minutes"]
        busiest = sorted(minutes, key=lambda m: (-m[1], m[0]))[:12]
        networks.append(
            {
                "ip_prefix": n["ip_prefix"] or "(không rõ)",
                "ballots": n["ballots"],
                "first": vietnam_time(n["first"]),
                "last": vietnam_time(n["last"]),
                "peak": max((c for _, c in minutes), default=0),
                "minutes": [(vietnam_time(m)[-5:], c) for m, c in sorted(busiest)],
            }
        )
    examples = [
        {
            "cast_at": ex["cast_at"].astimezone(VIETNAM).strftime("%d/%m/%Y %H:%M:%S"),
            "ip_prefix": ex["ip_prefix"] or "(không rõ)",
            "agent": ex["agent"] or "(không có)",
            "choices": ", ".join(ex["choices"]),
        }
        for ex in group.examples
    ]
    return {
        "group": group,
        "name": RULE_NAMES.get(group.reason, group.reason),
        "decision_label": DECISION_LABELS.get(group.decision, group.decision),
        "decided_at": vietnam_time(group.decided_at),
        "networks": networks,
        "examples": examples,
    }


async def _context(services: Any, round_id: int) -> dict[str, Any]:
    async with services.engine.connect() as conn:
        rnd = await queries.get_round(conn, round_id)
    review = await quarantine.review(services.engine, round_id)
    return {
        "round": rnd,
        "status_label": STATUS_LABELS[rnd.status],
        "review": review,
        "groups": [_view_group(g) for g in review.groups],
        "names": RULE_NAMES,
        "decision_labels": DECISION_LABELS,
    }


@get("/rounds/{round_id:int}/quarantine", include_in_schema=False)
async def quarantine_page(
    services: ServicesDep, admin: AdminDep, round_id: FromPath[int]
) -> Template:
    """The round's quarantined ballots by reason, for review."""
    context = await _context(services, round_id)
    return page("quarantine.html", admin, errors={}, values={}, editing="", **context)


@post(
    "/rounds/{round_id:int}/quarantine/{reason:str}",
    include_in_schema=False,
    guards=[writer],
    status_code=200,
)
async def decide(
    services: ServicesDep,
    admin: AdminDep,
    round_id: FromPath[int],
    reason: FromPath[str],
    data: FormBody,
) -> Response[Any]:
    """Count or void the ``reason`` group (as ``POST .../quarantine/{reason}``); errors in
    place of the group's form."""
    values = {
        "decision": str(data.get("decision", "")),
        "note": str(data.get("note", "")).strip(),
    }
    errors: dict[str, str] = {}
    try:
        body = msgspec.convert(values, QuarantineDecisionIn)
    except msgspec.ValidationError as exc:
        if "$.decision" in str(exc):
            errors["decision"] = DECISION_RULE
        else:
            errors["note"] = NOTE_RULE
    else:
        try:
            await quarantine.decide(
                services.engine, admin.username, round_id, reason, body.decision, nfc(body.note)
            )
        except DomainError as exc:
            errors[""] = QUARANTINE_MESSAGES.get(exc.code) or message_of(exc)
        else:
            services.forget(round_id)
            return ClientRedirect(redirect_to=f"/admin/rounds/{round_id}/quarantine")
    context = await _context(services, round_id)
    group = next((g for g in context["groups"] if g["group"].reason == reason), None)
    if group is None:
        return page("notice.html", admin, kind="error", message=errors.get("", NOTE_RULE))
    return page("quarantine_group.html", admin, errors=errors, values=values, g=group, **context)


#: Vietnamese messages of the decision's own refusals.
QUARANTINE_MESSAGES = {
    "round_not_closed": "Chỉ quyết định được sau khi vòng đã đóng.",
    "already_official": "Kết quả đã được công bố chính thức, không thay đổi được nữa.",
    "nothing_flagged": "Nhóm này không có phiếu nào bị đánh dấu.",
    "reason_not_found": "Không có quy tắc phát hiện này.",
}

ROUTES = [quarantine_page, decide]
