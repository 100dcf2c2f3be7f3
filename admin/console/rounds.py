"""The console's rounds: the list, creating and editing a draft, a round's page (its rules as
voters see them, its lifecycle, its shortlist), and one candidate's edit.

Every change goes through what the JSON API uses (the same body structs, the same
:class:`~voting.services.rounds.RoundService` calls, the same audit events), so the two doors
cannot disagree.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

import msgspec
from litestar import Request, Response, get, post
from litestar.datastructures import UploadFile
from litestar.enums import RequestEncodingType
from litestar.params import Body, FromPath, FromQuery
from litestar.plugins.htmx import ClientRedirect
from litestar.response import Redirect, Template
from redis.exceptions import RedisError

from admin.api import RoundIn, RoundPatch, create_values, patch_values
from admin.auth import AdminDep, writer
from admin.console.access import FormBody, message_of, page
from admin.console.detection import detection_fieldsets, detection_values
from admin.console.forms import (
    FIELD_RULES,
    FormErrors,
    convert,
    domain_errors,
    input_time,
    round_values,
    vietnam_time,
)
from voting.core.errors import DomainError, Invalid
from voting.core.rounds import DEFAULT_FIELDS, TRANSITIONS, Action, Round
from voting.core.shortlist import RowError, ShortlistError, check_candidate, parse_shortlist
from voting.live import state as live
from voting.live.keys import RoundKeys
from voting.record import queries
from voting.services import candidates
from voting.services.closing import close_state
from voting.services.container import Services, ServicesDep

MAX_CSV_BYTES = 5_000_000
UploadBody = Annotated[dict[str, Any], Body(media_type=RequestEncodingType.MULTI_PART)]

STATUS_LABELS = {
    "draft": "Bản nháp",
    "open": "Đang mở",
    "paused": "Tạm dừng",
    "closed": "Đã đóng",
}
MODE_LABELS = {
    "device": "Thiết bị (giải bài toán chống gian lận trên máy)",
    "code": "Mã bình chọn một lần (phát qua chi bộ)",
    "email": "Thư điện tử (mã xác nhận một lần)",
    "phone": "Số điện thoại (mã xác nhận qua tin nhắn)",
}
VISIBILITY_LABELS = {
    "after_close": "Sau khi đóng vòng",
    "live": "Công khai trực tiếp trong khi bình chọn",
}
#: The tie-break rules (voting.core.seats) as an admin chooses them, and as voters read them.
TIE_BREAK_LABELS = {
    "committee": "Ban Thường vụ quyết định",
    "draw": "Bốc thăm công khai (mã băm công bố trước khi mở)",
    "field_balance": "Ưu tiên lĩnh vực còn ít người trúng chọn",
}
TIE_BREAK_HELP = {
    "committee": "Khi nhiều người bằng phiếu tranh các suất cuối, Ban Thường vụ quyết định "
    "người được chọn; quyết định được ghi lại và công bố là quyết định, không phải số phiếu.",
    "draw": "Khi mở vòng, hệ thống tạo một số bí mật ngẫu nhiên và công bố ngay mã băm SHA-256 "
    "của nó; sau khi đóng vòng mới công bố số đó. Người đồng phiếu được xếp theo mã băm "
    "SHA-256 của chuỗi “số bí mật:mã người”; ai đứng trước vào các suất còn lại. Ai cũng tự kiểm "
    "tra lại được, và không ai điều khiển được kết quả.",
    "field_balance": "Các suất còn lại lần lượt dành cho người đồng phiếu thuộc lĩnh vực đang "
    "có ít người trúng chọn nhất; phần quy tắc này không tự quyết được thì Ban Thường vụ quyết "
    "định.",
}
#: What each lifecycle action does, said before it is done.
ACTIONS: dict[str, tuple[str, str]] = {
    "open": ("Mở vòng", "Sau khi mở, cử tri bắt đầu gửi phiếu và không sửa được quy định nữa."),
    "pause": ("Tạm dừng", "Trong khi tạm dừng, hệ thống không nhận phiếu mới."),
    "resume": ("Tiếp tục", "Cử tri lại gửi được phiếu."),
    "close": ("Đóng vòng", "Sau khi đóng, không nhận thêm phiếu. Kết quả được kiểm đếm lần cuối."),
}
COLUMN_LABELS = {
    "code": "Mã",
    "full_name": "Họ và tên",
    "gender": "Giới tính",
    "birth_year": "Năm sinh",
    "position": "Chức vụ",
    "workplace": "Đơn vị công tác",
    "nominated_by": "Đơn vị đề cử",
    "field": "Lĩnh vực",
    "summary": "Tóm tắt",
    "achievements": "Thành tích",
}
#: The shortlist parser's messages (English, :mod:`voting.core.shortlist`) in Vietnamese.
_ROW_MESSAGES = (
    (r"^empty; this cell is required$", "Ô này bắt buộc nhưng đang để trống."),
    (r"^invalid character (U\+[0-9A-F]+)$", r"Có ký tự không hợp lệ (\1)."),
    (r"^invalid code (.*); use .*$", r"Mã \1 không hợp lệ: chỉ dùng chữ A-Z, số, _ hoặc -."),
    (r"^line break in a name$", "Họ tên không được xuống dòng."),
    (r"^invalid gender (.*); expected (.*)$", r"Giới tính \1 không hợp lệ; chỉ nhận \2."),
    (
        r"^invalid birth year (.*); expected a whole number from (\d+) to (\d+)$",
        r"Năm sinh \1 không hợp lệ; phải là số từ \2 đến \3.",
    ),
    (
        r"^unknown field (.*?); expected one of: (.*)$",
        r"Lĩnh vực \1 không có trong vòng này. Các lĩnh vực: \2.",
    ),
    (r"^duplicate code (.*) \(also on lines? (.*)\)$", r"Mã \1 bị trùng (cả ở dòng \2)."),
    (
        r"^expected (\d+) cells, got (\d+);.*$",
        r"Dòng có \2 ô thay vì \1; kiểm tra dấu phẩy thừa hoặc thiếu, "
        r"hoặc ô có dấu phẩy mà không đặt trong ngoặc kép.",
    ),
    (r"^unknown column (.*?); expected: .*$", r"Cột \1 không được nhận."),
    (r"^column (.*) appears more than once in the header$", r"Cột \1 xuất hiện hai lần."),
    (r"^missing column (.*)$", r"Thiếu cột \1."),
    (r"^header cell (\d+) is empty$", r"Ô tiêu đề số \1 đang trống."),
    (
        r"^file too large: (\d+) bytes; at most (\d+) allowed$",
        r"Tệp quá lớn (\1 byte; tối đa \2 byte).",
    ),
    (r"^file is empty$", "Tệp trống."),
    (r"^no data rows after the header$", "Tệp chỉ có dòng tiêu đề, không có người nào."),
    (r"^too many rows: more than (\d+) candidates$", r"Quá nhiều dòng: tối đa \1 người."),
    (r"^not valid UTF-8.*$", "Tệp không phải mã UTF-8; hãy lưu lại dưới dạng CSV UTF-8."),
    (
        r"^quote opened on line (\d+) is never closed$",
        r"Dấu ngoặc kép mở ở dòng \1 không được đóng.",
    ),
    (
        r"^more than (\d+) errors; the rest not shown$",
        r"Có hơn \1 lỗi; các lỗi còn lại không hiển thị.",
    ),
)
ROW_MESSAGES = [(re.compile(pattern), template) for pattern, template in _ROW_MESSAGES]


def row_message(message: str) -> str:
    """A shortlist error in Vietnamese (the English text when no translation fits)."""
    for pattern, template in ROW_MESSAGES:
        if pattern.match(message):
            return pattern.sub(template, message)
    return message


def _row_errors(errors: list[RowError]) -> list[dict[str, Any]]:
    return [
        {
            "row": e.row or "",
            "column": COLUMN_LABELS.get(e.column or "", e.column or ""),
            "message": row_message(e.message),
        }
        for e in errors
    ]


def _view(rnd: Round) -> dict[str, Any]:
    """What the templates show of a round."""
    return {
        "round": rnd,
        "status_label": STATUS_LABELS[rnd.status],
        "mode_label": MODE_LABELS[rnd.identity_mode],
        "visibility_label": VISIBILITY_LABELS[rnd.results_visibility],
        "opens_at": vietnam_time(rnd.opens_at),
        "closes_at": vietnam_time(rnd.closes_at),
        "tie_break_label": TIE_BREAK_LABELS[rnd.tie_break],
        "tie_break_help": TIE_BREAK_HELP[rnd.tie_break],
        "opens_iso": rnd.opens_at.isoformat() if rnd.opens_at else "",
        "closes_iso": rnd.closes_at.isoformat() if rnd.closes_at else "",
    }


def _form_context(
    values: dict[str, Any], errors: dict[str, str], rnd: Round | None = None
) -> dict[str, Any]:
    return {
        "values": values,
        "errors": errors,
        "detection": detection_fieldsets(rnd, values),
        "rules": FIELD_RULES,
        "modes": MODE_LABELS,
        "visibilities": VISIBILITY_LABELS,
        "tie_breaks": TIE_BREAK_LABELS,
        "tie_break_help": TIE_BREAK_HELP,
    }


def _form_values(rnd: Round | None) -> dict[str, Any]:
    """A round's settings as form values (a new round: the defaults)."""
    if rnd is None:
        return {
            "slug": "",
            "title": "",
            "description": "",
            "min_choices": 1,
            "max_choices": 16,
            "winners": 16,
            "identity_mode": "device",
            "results_visibility": "after_close",
            "opens_at": "",
            "closes_at": "",
            "fields": "\n".join(DEFAULT_FIELDS),
            "tie_break": "committee",
            "field_minimum": "",
        }
    return {
        "slug": rnd.slug,
        "title": rnd.title,
        "description": rnd.description,
        "min_choices": rnd.min_choices,
        "max_choices": rnd.max_choices,
        "winners": rnd.winners,
        "identity_mode": rnd.identity_mode,
        "results_visibility": rnd.results_visibility,
        "opens_at": input_time(rnd.opens_at),
        "closes_at": input_time(rnd.closes_at),
        "fields": "\n".join(rnd.fields),
        "tie_break": rnd.tie_break,
        "field_minimum": "" if rnd.field_minimum is None else rnd.field_minimum,
    }


async def _accepted(services: Services, rnd: Round) -> int | None:
    """Ballots accepted so far (Redis; Postgres's count for a final round whose live state is
    gone), None while a draft or when Redis does not answer."""
    if rnd.status == "draft":
        return None
    try:
        _, accepted = await live.tally(
            services.redis, RoundKeys(services.settings.redis.prefix, rnd.id)
        )
    except RedisError:  # the page still shows, without the live count
        accepted = None
    if rnd.final and not accepted:  # live state removed after its grace period: the record's
        async with services.engine.connect() as conn:
            return await queries.persisted_count(conn, rnd.id)
    return accepted


@get("/", include_in_schema=False)
async def home() -> Redirect:
    """The console starts at the rounds."""
    return Redirect(path="/admin/rounds", status_code=303)


@get("/rounds", include_in_schema=False)
async def rounds_page(services: ServicesDep, admin: AdminDep) -> Template:
    """Every round with its status, schedule, identity mode and ballots so far."""
    async with services.engine.connect() as conn:
        rounds = await queries.list_rounds(conn, published_only=False)
    rows = [{**_view(r), "accepted": await _accepted(services, r)} for r in rounds]
    return page("rounds.html", admin, rows=rows)


@get("/rounds/new", include_in_schema=False, guards=[writer])
async def new_round_page(admin: AdminDep) -> Template:
    """The form of a new round, with the defaults."""
    return page("round_form.html", admin, editing=None, **_form_context(_form_values(None), {}))


@post("/rounds/new", include_in_schema=False, guards=[writer], status_code=200)
async def create_round(services: ServicesDep, admin: AdminDep, data: FormBody) -> Response[Any]:
    """Create the round as ``POST /admin/api/v1/rounds``; errors next to their fields."""
    try:
        values = round_values(data, partial=False)
        detection = detection_values(data)
        if detection:
            values["detection"] = detection
        body = convert(RoundIn, values)
        rnd = await services.rounds.create(admin.username, create_values(body))
    except FormErrors as exc:
        return page("round_form_body.html", admin, editing=None, **_form_context(data, exc.errors))
    except DomainError as exc:
        errors = domain_errors(exc).errors
        return page("round_form_body.html", admin, editing=None, **_form_context(data, errors))
    return ClientRedirect(redirect_to=f"/admin/rounds/{rnd.id}")


async def _round(services: Services, round_id: int) -> Round:
    async with services.engine.connect() as conn:
        return await queries.get_round(conn, round_id)


@get("/rounds/{round_id:int}", include_in_schema=False)
async def round_page(
    services: ServicesDep,
    admin: AdminDep,
    round_id: FromPath[int],
    imported: FromQuery[int | None] = None,
    photos: FromQuery[int | None] = None,
) -> Template:
    """A round: its rules as voters see them, its lifecycle and its shortlist."""
    async with services.engine.connect() as conn:
        rnd = await queries.get_round(conn, round_id)
        candidates = await queries.list_candidates(conn, round_id)
    actions = [
        {"action": a, "label": ACTIONS[a][0], "warning": ACTIONS[a][1]}
        for a in ("open", "pause", "resume", "close")
        if rnd.status in _allowed(a)
    ]
    return page(
        "round.html",
        admin,
        **_view(rnd),
        candidates=candidates,
        actions=actions,
        accepted=await _accepted(services, rnd),
        closing=await _close_view(services, round_id) if rnd.status == "closed" else None,
        columns=COLUMN_LABELS,
        imported=imported,
        photos=photos,
    )


def _allowed(action: str) -> tuple[str, ...]:
    return TRANSITIONS[action][0]


@get("/rounds/{round_id:int}/edit", include_in_schema=False, guards=[writer])
async def edit_round_page(
    services: ServicesDep, admin: AdminDep, round_id: FromPath[int]
) -> Response[Any]:
    """The form of a draft round's settings (an opened round goes back to its page)."""
    rnd = await _round(services, round_id)
    if rnd.status != "draft":
        return Redirect(path=f"/admin/rounds/{round_id}", status_code=303)
    return page("round_form.html", admin, editing=rnd, **_form_context(_form_values(rnd), {}, rnd))


@post("/rounds/{round_id:int}/edit", include_in_schema=False, guards=[writer], status_code=200)
async def update_round(
    services: ServicesDep, admin: AdminDep, round_id: FromPath[int], data: FormBody
) -> Response[Any]:
    """Change the draft as ``PATCH /admin/api/v1/rounds/{id}``."""
    rnd = await _round(services, round_id)
    try:
        body = convert(
            RoundPatch, {**round_values(data, partial=True), "detection": detection_values(data)}
        )
        values = patch_values(body)
        if values:
            await services.rounds.update(admin.username, round_id, values)
    except FormErrors as exc:
        return page(
            "round_form_body.html", admin, editing=rnd, **_form_context(data, exc.errors, rnd)
        )
    except DomainError as exc:
        errors = domain_errors(exc).errors
        return page("round_form_body.html", admin, editing=rnd, **_form_context(data, errors, rnd))
    return ClientRedirect(redirect_to=f"/admin/rounds/{round_id}")


@post(
    "/rounds/{round_id:int}/status/{action:str}",
    include_in_schema=False,
    guards=[writer],
    status_code=200,
)
async def change_status(
    services: ServicesDep, admin: AdminDep, round_id: FromPath[int], action: FromPath[str]
) -> Response[Any]:
    """Open, pause, resume or close (as ``POST /admin/api/v1/rounds/{id}/<action>``); a
    refusal is said in place of the buttons."""
    if action not in ACTIONS:
        raise Invalid("malformed", "unknown action")
    try:
        rnd = await services.rounds.transition(
            admin.username, round_id, _action(action), finalise=False
        )
    except DomainError as exc:
        return page("notice.html", admin, kind="error", message=message_of(exc))
    finally:
        services.forget(round_id)
    if action == "close" and not rnd.final:  # counted in the background; the page follows it
        services.finaliser.start(admin.username, round_id)
    return ClientRedirect(redirect_to=f"/admin/rounds/{round_id}")


#: What each step of a close is called on the round's page (:mod:`voting.services.closing`).
CLOSE_STEPS = {
    "closing": "Đã đóng vòng, đang chuẩn bị kiểm đếm",
    "draining": "Đang lưu các phiếu còn chờ vào cơ sở dữ liệu",
    "counting": "Đang kiểm đếm và đối chiếu",
    "final": "Đã kiểm đếm xong: kết quả chính thức",
    "mismatch": "Số liệu Redis và Postgres không khớp: kết quả chưa chính thức",
}
CLOSE_REFRESH = 2  # seconds between looks at a close in progress


@get("/rounds/{round_id:int}/close-state", include_in_schema=False)
async def close_state_fragment(
    services: ServicesDep, admin: AdminDep, round_id: FromPath[int]
) -> Template:
    """Where the round's close is (``GET /admin/api/v1/rounds/{id}/close``), refreshed by
    htmx every :data:`CLOSE_REFRESH` seconds until final or mismatched."""
    return page("close_state.html", admin, **await _close_view(services, round_id))


async def _close_view(services: Services, round_id: int) -> dict[str, Any]:
    try:
        state = await close_state(
            services.redis, services.settings.redis.prefix, round_id, services.engine
        )
    except RedisError:
        return {"round_id": round_id, "close": None, "label": "", "refresh": CLOSE_REFRESH}
    return {
        "round_id": round_id,
        "close": state,
        "label": CLOSE_STEPS.get(state.state, ""),
        "refresh": CLOSE_REFRESH,
    }


def _action(name: str) -> Action:
    return msgspec.convert(name, Action)


@post(
    "/rounds/{round_id:int}/shortlist",
    include_in_schema=False,
    guards=[writer],
    status_code=200,
    request_max_body_size=MAX_CSV_BYTES + 64_000,
)
async def upload_shortlist(
    request: Request[Any, Any, Any],
    services: ServicesDep,
    admin: AdminDep,
    round_id: FromPath[int],
    data: UploadBody,
) -> Response[Any]:
    """Import the shortlist CSV (a file input or a dropped file) as
    ``POST .../candidates/import``; a rejected file lists its errors by row and column and
    nothing is imported."""
    rnd = await _round(services, round_id)
    upload = data.get("file")
    if not isinstance(upload, UploadFile):
        return page(
            "shortlist_result.html",
            admin,
            errors=[{"row": "", "column": "", "message": "Hãy chọn một tệp CSV."}],
            imported=None,
            round=rnd,
        )
    raw = await upload.read()
    try:
        rows = parse_shortlist(raw, rnd.fields, max_bytes=MAX_CSV_BYTES)
    except ShortlistError as exc:
        return page(
            "shortlist_result.html",
            admin,
            errors=_row_errors(list(exc.errors)),
            imported=None,
            round=rnd,
        )
    try:
        cands = await services.rounds.import_candidates(admin.username, round_id, rows)
    except DomainError as exc:
        return page(
            "shortlist_result.html",
            admin,
            errors=[{"row": "", "column": "", "message": message_of(exc)}],
            imported=None,
            round=rnd,
        )
    return ClientRedirect(redirect_to=f"/admin/rounds/{round_id}?imported={len(cands)}")


@get(
    "/rounds/{round_id:int}/candidates/{candidate_id:int}/edit",
    include_in_schema=False,
    guards=[writer],
)
async def edit_candidate_page(
    services: ServicesDep,
    admin: AdminDep,
    round_id: FromPath[int],
    candidate_id: FromPath[int],
    photo: FromQuery[int | None] = None,
) -> Template:
    """One candidate: the profile as a form (draft rounds) and the photo (until closed)."""
    async with services.engine.connect() as conn:
        rnd = await queries.get_round(conn, round_id)
        cand = await queries.get_candidate(conn, round_id, candidate_id)
    values = {name: getattr(cand, name) for name in COLUMN_LABELS}
    return page(
        "candidate_form.html",
        admin,
        round=rnd,
        candidate=cand,
        values=values,
        errors={},
        columns=COLUMN_LABELS,
        photo_saved=bool(photo),
    )


@post(
    "/rounds/{round_id:int}/candidates/{candidate_id:int}/edit",
    include_in_schema=False,
    guards=[writer],
    status_code=200,
)
async def edit_candidate(
    services: ServicesDep,
    admin: AdminDep,
    round_id: FromPath[int],
    candidate_id: FromPath[int],
    data: FormBody,
) -> Response[Any]:
    """Change the profile as ``PUT /admin/api/v1/rounds/{id}/candidates/{candidate_id}``;
    errors next to their fields, by the rules of the shortlist."""
    async with services.engine.connect() as conn:
        rnd = await queries.get_round(conn, round_id)
        cand = await queries.get_candidate(conn, round_id, candidate_id)
    values = {name: str(data.get(name, "")) for name in COLUMN_LABELS}
    errors: dict[str, str] = {}
    try:
        row = check_candidate(values, rnd.fields)
        await candidates.edit_candidate(
            services.engine, admin.username, round_id, candidate_id, row
        )
    except ShortlistError as exc:
        errors = {e.column or "": row_message(e.message) for e in exc.errors}
    except DomainError as exc:
        errors = {
            "code" if exc.code == "code_taken" else "": (
                "Mã này đã dùng cho người khác trong vòng."
                if exc.code == "code_taken"
                else message_of(exc)
            )
        }
    if errors:
        return page(
            "candidate_form_body.html",
            admin,
            round=rnd,
            candidate=cand,
            values=values,
            errors=errors,
            columns=COLUMN_LABELS,
        )
    services.forget(round_id)
    return ClientRedirect(redirect_to=f"/admin/rounds/{round_id}")


def initials(name: str) -> str:
    """The initials of a name as the public page shows them (first and last word)."""
    words = name.split()
    if not words:
        return "?"
    return (words[0][0] + (words[-1][0] if len(words) > 1 else "")).upper()


@get("/rounds/{round_id:int}/preview", include_in_schema=False)
async def preview_page(services: ServicesDep, admin: AdminDep, round_id: FromPath[int]) -> Template:
    """The round's candidates as voters will see them (the public page's cards and style),
    drafts included."""
    async with services.engine.connect() as conn:
        rnd = await queries.get_round(conn, round_id)
        cands = await queries.list_candidates(conn, round_id)
    return page("preview.html", admin, round=rnd, candidates=cands, initials=initials)
