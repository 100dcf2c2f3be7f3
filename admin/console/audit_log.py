"""The console's audit log: every action with its actor, time, round and details, filtered
by round, actor and action, and exported as CSV (UTF-8 with BOM, for Excel)."""

from __future__ import annotations

import csv
import io
import json
import re
from typing import Any

from litestar import Response, get
from litestar.params import FromQuery
from litestar.response import Template

from admin.auth import AdminDep
from admin.console.access import page
from admin.console.forms import vietnam_time
from voting.core.errors import valid_id
from voting.core.text import USERNAME_PATTERN
from voting.record import queries
from voting.services.container import Services, ServicesDep

_NAME = re.compile(USERNAME_PATTERN)  # actors are usernames; actions are snake_case words
LIMIT = 500  # events shown (the CSV has up to EXPORT_LIMIT)
EXPORT_LIMIT = 100_000
ACTIONS = {
    "login": "Đăng nhập",
    "logout": "Đăng xuất",
    "round_create": "Tạo vòng",
    "round_update": "Sửa quy định",
    "candidates_import": "Nhập danh sách đề cử",
    "round_open": "Mở vòng",
    "round_pause": "Tạm dừng",
    "round_resume": "Tiếp tục",
    "round_close": "Đóng vòng",
    "round_final": "Kiểm đếm xong",
    "tally_view": "Xem kết quả tạm thời",
    "tie_decision": "Ghi quyết định về đồng hạng",
    "results_official": "Công bố kết quả chính thức",
    "user_create": "Tạo tài khoản",
    "user_role": "Đổi vai trò",
    "user_disable": "Khóa tài khoản",
    "user_enable": "Mở khóa tài khoản",
    "user_delete": "Xóa tài khoản",
    "user_password": "Đặt lại mật khẩu",
    "codes_create": "Tạo mã bình chọn",
}


async def _events(
    services: Services, round_id: str | None, actor: str | None, action: str | None, limit: int
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    rid = int(round_id) if round_id and round_id.isdigit() and valid_id(int(round_id)) else None
    filters: dict[str, Any] = {"round_id": rid, "actor": actor or None, "action": action or None}
    if (actor and not _NAME.fullmatch(actor)) or (action and not _NAME.fullmatch(action)):
        return [], filters  # no event has such a name
    async with services.engine.connect() as conn:
        events = await queries.audit_log(
            conn, limit=limit, round_id=rid, actor=filters["actor"], action=filters["action"]
        )
    return events, filters


@get("/audit", include_in_schema=False)
async def audit_page(
    services: ServicesDep,
    admin: AdminDep,
    round_id: FromQuery[str | None] = None,
    actor: FromQuery[str | None] = None,
    action: FromQuery[str | None] = None,
) -> Template:
    """The newest :data:`LIMIT` events matching the filters."""
    events, filters = await _events(services, round_id, actor, action, LIMIT)
    async with services.engine.connect() as conn:
        actors, actions = await queries.audit_facets(conn)
        rounds = await queries.list_rounds(conn, published_only=False)
    rows = [
        {
            **e,
            "when": vietnam_time(e["created_at"]),
            "label": ACTIONS.get(e["action"], e["action"]),
            "details_text": json.dumps(e["details"], ensure_ascii=False) if e["details"] else "",
        }
        for e in events
    ]
    query = "&".join(f"{k}={v}" for k, v in filters.items() if v is not None)
    return page(
        "audit.html",
        admin,
        section="audit",
        rows=rows,
        filters=filters,
        actors=actors,
        actions=[(a, ACTIONS.get(a, a)) for a in actions],
        rounds=rounds,
        query=query,
        limit=LIMIT,
    )


@get("/audit.csv", include_in_schema=False, media_type="text/csv")
async def audit_csv(
    services: ServicesDep,
    round_id: FromQuery[str | None] = None,
    actor: FromQuery[str | None] = None,
    action: FromQuery[str | None] = None,
) -> Response[bytes]:
    """The matching events as CSV: Thời điểm (Vietnam time), Người thực hiện, Thao tác, Mã
    thao tác, Vòng, Chi tiết (JSON)."""
    events, _ = await _events(services, round_id, actor, action, EXPORT_LIMIT)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["Thời điểm", "Người thực hiện", "Thao tác", "Mã thao tác", "Vòng", "Chi tiết"])
    for e in events:
        writer.writerow([
            vietnam_time(e["created_at"]), e["actor"], ACTIONS.get(e["action"], e["action"]),
            e["action"], e["round_id"] or "", json.dumps(e["details"], ensure_ascii=False),
        ])  # fmt: skip
    return Response(
        ("\ufeff" + out.getvalue()).encode("utf-8"),
        media_type="text/csv",
        headers={"Content-Disposition": 'attachment; filename="nhat-ky-thao-tac.csv"'},
    )


ROUTES = [audit_page, audit_csv]
