"""The committee report: the PDF of a closed round's result for the standing committee
(``GET /admin/api/v1/rounds/{round_id}/report``).

One A4 document in Vietnamese (template ``admin/templates/report.typ``): the round's title
and rules (choices allowed, winners, identity mode, schedule); ballots accepted, persisted,
refused by reason and counted; the ranked table; the winners; the tie across the cut-off and
the committee's decision (:class:`voting.core.results.DecisionOut`, when one exists); the
reconciliation of the Redis tally with the Postgres count; when and by whom it was
generated; a signature block.

A report is made only once the round is closed (409 ``round_not_closed`` before): while
ballots are still arriving there is nothing for the committee to sign. A closed round whose
count is not final (Redis and Postgres differ, or ballots still wait to be persisted) gets
its report all the same, marked "KẾT QUẢ CHƯA CHÍNH THỨC" at the top, with the differences in
section VI.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import msgspec
from litestar import Response, get
from litestar.params import FromPath

from admin import labels
from admin.auth import AdminDep
from admin.documents import BINARY, PDF, documented_media, typeset
from voting.core.errors import Conflict
from voting.core.reconciliation import Reconciliation
from voting.core.results import DecisionOut, RankedCandidate, Results
from voting.core.rounds import Round
from voting.http.answers import answers
from voting.live import counters
from voting.live.keys import RoundKeys
from voting.record import audit, queries
from voting.services.container import ServicesDep
from voting.services.results import round_results

#: Vietnamese names of the refusal reasons of :func:`voting.record.queries.refusal_counts`.
REFUSAL_REASONS = {
    "duplicate_voter": "Trùng người bình chọn (phát hiện khi lưu vào cơ sở dữ liệu)",
}

REFUSALS_NOTE = (
    "Phiếu bị từ chối khi gửi không được tiếp nhận và không tính vào kết quả; số lần từ chối do "
    "từng máy chủ đếm và cộng dồn vài giây một lần (có thể thiếu vài giây cuối nếu máy chủ dừng "
    "đột ngột)."
)


@dataclass(frozen=True)
class ReportInput:
    """Everything one report shows.

    ``round``: the round as recorded; ``results``: its results document (final or live, see
    :func:`voting.services.results.round_results`); ``reconciliation``: Redis against
    Postgres read when the report is made; ``refusals``: reason → ballots refused after Redis
    accepted them (see :func:`voting.record.queries.refusal_counts`); ``refused_at_door``:
    ``(label, n)`` of ballots refused when sent (:func:`admin.labels.refusal_groups`);
    ``events``: the round's audit events ``(action, when)``, oldest first (the actual opening
    and pauses come from them);
    ``generated_at``: aware datetime; ``generated_by``: the admin's username;
    ``audit_head``: the audit log's chain head (:func:`voting.record.audit.head`) when made;
    ``organisation``: the issuer (``VOTING_ORGANISATION``); ``decision``: the committee's
    decision on a tie, if any.
    """

    round: Round
    results: Results
    reconciliation: Reconciliation
    refusals: Mapping[str, int]
    events: Sequence[tuple[str, datetime]]
    generated_at: datetime
    generated_by: str
    organisation: str
    decision: DecisionOut | None = None
    refused_at_door: Sequence[tuple[str, int]] = ()
    audit_head: str = ""


def _choices(low: int, high: int) -> str:
    if low == high:
        return f"đúng {low} gương điển hình"
    return f"từ {low} đến {high} gương điển hình"


def _who(c: RankedCandidate) -> str:
    return f"{c.full_name} ({c.code}, {c.field}): {labels.number(c.votes)} phiếu"


def _rules(inp: ReportInput) -> list[list[str]]:
    rnd = inp.round
    opened = [when for action, when in inp.events if action == "round_open"]
    pauses = sum(1 for action, _ in inp.events if action == "round_pause")
    return [
        ["Tên đợt bình chọn", rnd.title],
        ["Mã đợt", rnd.slug],
        ["Số gương điển hình trong danh sách", labels.number(len(inp.results.candidates))],
        ["Số lựa chọn trên mỗi phiếu", _choices(rnd.min_choices, rnd.max_choices)],
        ["Số gương điển hình được chọn", labels.number(rnd.winners)],
        ["Hình thức xác thực người bình chọn", labels.IDENTITY_MODE[rnd.identity_mode]],
        ["Công bố kết quả", labels.RESULTS_VISIBILITY[rnd.results_visibility]],
        ["Thời gian mở theo kế hoạch", labels.moment(rnd.opens_at, "Không định trước")],
        ["Thời gian kết thúc theo kế hoạch", labels.moment(rnd.closes_at, "Không định trước")],
        ["Thời điểm mở thực tế", labels.moment(opened[0] if opened else None)],
        ["Số lần tạm dừng", labels.number(pauses)],
        ["Thời điểm kết thúc thực tế", labels.moment(rnd.closed_at)],
        ["Thời điểm chốt kết quả chính thức", labels.moment(rnd.final_at, "Chưa chốt")],
        ["Quy tắc khi đồng phiếu ở suất cuối", labels.TIE_BREAK[rnd.tie_break]],
        [
            "Số người trúng chọn tối thiểu mỗi lĩnh vực",
            "Không áp dụng" if rnd.field_minimum is None else labels.number(rnd.field_minimum),
        ],
        ["Mã băm quy định khi mở (SHA-256)", _hash(rnd.rules_hash) or "Chưa có"],
        *(
            [["Mã băm số bốc thăm (công bố khi mở)", _hash(rnd.draw_commitment)]]
            if rnd.draw_commitment
            else []
        ),
        *(
            [["Số bốc thăm (công bố sau khi đóng)", _hash(rnd.draw_seed)]]
            if rnd.draw_seed and rnd.status == "closed"
            else []
        ),
    ]


def _hash(value: str | None) -> str:
    """A hex hash with zero-width spaces every 16 digits, so that a table cell can wrap it
    (copied text keeps only the digits in most readers)."""
    if not value:
        return ""
    return "\u200b".join(value[i : i + 16] for i in range(0, len(value), 16))


def _seat_rules(inp: ReportInput, name: Any) -> list[str]:
    """Paragraphs of section V on what the round's rules settled (tie-break, field minimum)."""
    res, rnd = inp.results, inp.round
    out: list[str] = []
    if res.tie is not None and rnd.tie_break != "committee":
        rule = labels.TIE_BREAK[rnd.tie_break]
        if res.seated_by_rule:
            names = "; ".join(name(cid) for cid in res.seated_by_rule)
            out.append(f"Theo quy tắc đã công bố trước khi mở ({rule}), trúng cử: {names}.")
        elif not res.final:
            out.append(f"Quy tắc đã công bố ({rule}) được áp dụng khi kết quả được chốt.")
        if res.draw is not None and res.draw.seed:
            order = "; ".join(
                f"{i}. {line.code} ({_hash(line.number)})"
                for i, line in enumerate(res.draw.order, start=1)
            )
            out.append(
                f"Bốc thăm: số bốc thăm {_hash(res.draw.seed)} có mã băm SHA-256 "
                f"{_hash(res.draw.commitment)} đã công bố khi mở. Thứ tự theo mã băm SHA-256 "
                f"của “số bốc thăm:mã”, từ nhỏ đến lớn: {order}."
            )
        if res.undecided is not None and res.tie_break != "committee":
            out.append(
                f"Quy tắc không tự xác định được {res.undecided.seats} suất còn lại giữa: "
                + "; ".join(name(cid) for cid in res.undecided.candidate_ids)
                + ". Ban Thường vụ quyết định."
            )
    if rnd.field_minimum is not None:
        text = (
            f"Số người trúng chọn tối thiểu mỗi lĩnh vực: {rnd.field_minimum} (lĩnh vực ít "
            "người đề cử hơn: tất cả những người đó)."
        )
        swaps = list(zip(res.entered_by_rule, res.displaced_by_rule, strict=True))
        if swaps:
            text += " Theo quy định này: " + "; ".join(
                f"{name(x)} vào thay {name(y)}" for x, y in swaps
            )
            text += "."
        elif res.elected is not None:
            text += " Danh sách theo số phiếu đã đáp ứng quy định này."
        if res.fields_short:
            text += " Không đủ suất cho mọi lĩnh vực; còn thiếu: " + "; ".join(res.fields_short)
            text += "."
        out.append(text)
    return out


def _reconciliation(inp: ReportInput) -> dict[str, Any]:
    rec = inp.reconciliation
    differing = len(rec.differences().get("candidates", {}))
    rows = [
        ["Số phiếu theo bộ đếm trực tiếp (Redis)", labels.number(rec.redis_ballots)],
        ["Số phiếu lưu trong cơ sở dữ liệu (PostgreSQL)", labels.number(rec.postgres_ballots)],
        ["Số phiếu còn chờ lưu", labels.number(rec.backlog_ballots)],
        ["Số gương điển hình có số phiếu chênh lệch", labels.number(differing)],
    ]
    at = labels.moment(inp.generated_at)
    if rec.ok:
        verdict = (
            f"KHỚP (đối soát lúc {at}): tổng số phiếu và số phiếu của từng gương điển hình "
            "theo bộ đếm trực tiếp (Redis) bằng đúng số đếm trong cơ sở dữ liệu (PostgreSQL)."
        )
    elif rec.consistent:
        verdict = (
            f"KHỚP NHƯNG CHƯA ĐỦ (đối soát lúc {at}): còn "
            f"{labels.number(rec.backlog_ballots)} phiếu chờ lưu vào cơ sở dữ liệu; "
            "kết quả chưa thể chốt."
        )
    else:
        verdict = (
            f"KHÔNG KHỚP (đối soát lúc {at}): số liệu Redis và PostgreSQL chênh lệch; kết quả "
            "chưa được chốt. Cần kiểm tra theo quy trình đối soát trước khi công bố."
        )
    return {"rows": rows, "verdict": verdict, "ok": rec.ok}


def report_document(inp: ReportInput) -> dict[str, Any]:
    """The strings the template lays out (see ``admin/templates/report.typ``), every number
    and date already formatted in Vietnamese."""
    res, rnd = inp.results, inp.round
    by_id = {c.candidate_id: c for c in res.candidates}
    seat = labels.seat_outcomes(msgspec.to_builtins(res))

    def outcome(cid: int) -> str:
        label = seat.get(cid, "")
        if label.startswith(labels.WINNER):
            return "winner"
        return "tie" if label else ""

    def name(cid: int) -> str:
        c = by_id.get(cid)
        return _who(c) if c is not None else f"Gương điển hình #{cid}"

    rows = [
        {
            "cells": [
                str(c.rank),
                c.code,
                c.full_name,
                c.field,
                labels.number(c.votes),
                labels.percent(c.votes, res.total_ballots),
                seat.get(c.candidate_id, ""),
            ],
            "outcome": outcome(c.candidate_id),
        }
        for c in res.candidates
    ]
    refused = sum(inp.refusals.values())
    counts = [
        ["Phiếu hệ thống đã tiếp nhận", labels.number(inp.reconciliation.redis_ballots)],
        ["Phiếu đã lưu vào cơ sở dữ liệu", labels.number(inp.reconciliation.postgres_ballots)],
        ["Phiếu bị loại sau khi tiếp nhận", labels.number(refused)],
        ["Phiếu được kiểm (tính vào kết quả)", labels.number(res.total_ballots)],
    ]
    seats_known = len(res.winners)
    elected = res.elected if res.elected is not None and res.elected != res.winners else None
    if elected is not None:
        winners_intro = (
            f"Căn cứ kết quả kiểm phiếu và các quy định đã công bố trước khi mở, {len(elected)} "
            "gương điển hình sau trúng cử:"
        )
    elif res.tie is None:
        winners_intro = (
            f"Căn cứ kết quả kiểm phiếu, {seats_known} gương điển hình sau trúng cử "
            f"(theo số phiếu từ cao xuống thấp):"
        )
    else:
        winners_intro = (
            f"Căn cứ kết quả kiểm phiếu, {seats_known}/{rnd.winners} suất đã xác định; "
            f"{res.tie.seats} suất còn lại xét ở mục V. Các gương điển hình trúng cử:"
        )
    tie = None
    no_tie = None
    if res.tie is not None:
        votes = by_id[res.tie.candidate_ids[0]].votes if res.tie.candidate_ids else 0
        tie = {
            "text": (
                f"Có {len(res.tie.candidate_ids)} gương điển hình cùng đạt "
                f"{labels.number(votes)} phiếu, đồng hạng {res.tie.rank}, trong khi chỉ còn "
                f"{res.tie.seats} suất:"
            ),
            "names": [name(cid) for cid in res.tie.candidate_ids],
        }
    else:
        no_tie = (
            "Không có trường hợp đồng hạng ở suất cuối cùng; danh sách trúng cử đã đủ "
            f"{rnd.winners} suất theo số phiếu."
        )
    decision = None
    no_decision = None
    if inp.decision is not None:
        d = inp.decision
        decision = {
            "chosen": [name(cid) for cid in d.chosen],
            "rows": [
                ["Người (cơ quan) quyết định", d.decided_by],
                ["Lý do", d.reason],
                ["Ngày quyết định", d.decided_on.strftime("%d/%m/%Y")],
                ["Người ghi nhận", d.recorded_by],
            ],
        }
    elif res.tie is not None and (res.undecided is not None or not res.final):
        no_decision = (
            f"Đề nghị Ban Thường vụ xem xét, quyết định {res.tie.seats} suất còn lại theo quy "
            "tắc xử lý đồng hạng đã công bố trước khi mở đợt bình chọn."
        )
    provisional = None
    if not rnd.final:
        provisional = (
            "KẾT QUẢ CHƯA CHÍNH THỨC: số liệu chưa được chốt (xem mục VI. Đối soát số liệu)."
        )
    return {
        "organisation": inp.organisation,
        "dateline": labels.dateline(inp.generated_at),
        "title": rnd.title,
        "provisional": provisional,
        "rules": _rules(inp),
        "counts": counts,
        "refusals": [
            [REFUSAL_REASONS.get(reason, reason), labels.number(n)]
            for reason, n in inp.refusals.items()
        ]
        + [[f"Bị từ chối khi gửi: {label}", labels.number(n)] for label, n in inp.refused_at_door],
        "refusals_note": REFUSALS_NOTE,
        "table": {
            "header": ["Hạng", "Mã", "Họ và tên", "Lĩnh vực", "Số phiếu", "Tỷ lệ", "Kết quả"],
            "rows": rows,
        },
        "rate_note": "Tỷ lệ: số phiếu chọn gương điển hình trên tổng số phiếu được kiểm.",
        "winners_intro": winners_intro,
        "winners": [name(cid) for cid in res.winners]
        if elected is None
        else [f"{name(cid)} — {seat.get(cid, labels.WINNER)}" for cid in elected],
        "seat_rules": _seat_rules(inp, name),
        "tie": tie,
        "no_tie": no_tie,
        "decision": decision,
        "no_decision": no_decision,
        "reconciliation": _reconciliation(inp),
        "generated": (
            f"Báo cáo được lập tự động từ hệ thống bình chọn lúc "
            f"{labels.moment(inp.generated_at)} (giờ Việt Nam), tài khoản lập: "
            f"{inp.generated_by}."
            + (
                f" Mã kiểm tra nhật ký thao tác (đầu chuỗi băm SHA-256): {inp.audit_head}."
                if inp.audit_head
                else ""
            )
        ),
    }


def report_pdf(inp: ReportInput) -> bytes:
    """The committee report as PDF bytes (A4; about 3 pages for 28 candidates; some
    milliseconds of CPU: call it in a thread from a handler)."""
    return typeset("report.typ", report_document(inp), created=inp.generated_at)


@get(
    "/rounds/{round_id:int}/report",
    summary="The committee report of a closed round (PDF)",
    media_type=PDF,
    responses=answers(409),
    operation_class=documented_media(200, {PDF: BINARY}),
)
async def committee_report(
    services: ServicesDep, admin: AdminDep, round_id: FromPath[int]
) -> Response[bytes]:
    """``application/pdf``: the report for the standing committee (see :mod:`admin.report`),
    for admins and observers. Errors: 404 ``round_not_found``; 409 ``round_not_closed``
    before the round is closed (no interim report); 503 when Redis or Postgres is down (the
    reconciliation needs both)."""
    async with services.engine.connect() as conn:
        rnd = await queries.get_round(conn, round_id)
        if rnd.status != "closed":
            raise Conflict(
                "round_not_closed",
                f"round {round_id} is {rnd.status}: the report is made once it is closed",
            )
        refusals = await queries.refusal_counts(conn, round_id)
        events = await queries.round_events(conn, round_id)
        audit_head = await audit.head(conn)
    keys = RoundKeys(services.settings.redis.prefix, round_id)
    refused_at_door = labels.refusal_groups(await counters.read(services.redis, keys))
    results = await round_results(
        services.engine, services.redis, services.settings.redis.prefix, rnd
    )
    rec = await services.rounds.reconcile(round_id)
    now = datetime.now(UTC)
    inp = ReportInput(
        round=rnd,
        results=results,
        reconciliation=rec,
        refusals=refusals,
        refused_at_door=refused_at_door,
        audit_head=audit_head,
        events=events,
        generated_at=now,
        generated_by=admin.username,
        organisation=services.settings.documents.organisation,
        decision=results.decision,
    )
    document = await asyncio.to_thread(report_pdf, inp)
    slug = re.sub(r"[^a-z0-9-]", "", rnd.slug) or f"round-{round_id}"
    return Response(
        document,
        media_type=PDF,
        headers={
            "Content-Disposition": f'attachment; filename="{slug}-bao-cao-{now:%Y%m%d}.pdf"',
            "Cache-Control": "no-store",
        },
    )


ROUTES = [committee_report]
