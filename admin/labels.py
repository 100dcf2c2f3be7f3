"""Vietnamese words and number and date formats of the admin documents (exports, the committee
report, voting-code cards): one place, so every document says the same thing the same way."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

#: Vietnam's time (UTC+7, no daylight saving): documents show times in it.
VIETNAM = timezone(timedelta(hours=7), "ICT")

#: A candidate's outcome in a results table: certainly elected, or tied across the cut-off.
WINNER = "Trúng cử"
TIED = "Đồng hạng"
#: ... and the seats the round's rules settled (voting.core.seats): who decided each.
BY_RULE = {
    "draw": "Trúng cử (bốc thăm)",
    "field_balance": "Trúng cử (ưu tiên lĩnh vực)",
}
BY_COMMITTEE = "Trúng cử (theo quyết định của Ban Thường vụ)"
NOT_CHOSEN = "Đồng hạng, không được chọn"
BY_FIELD_MINIMUM = "Trúng cử (theo số tối thiểu mỗi lĩnh vực)"
DISPLACED = "Nhường suất (theo số tối thiểu mỗi lĩnh vực)"
TIE_BREAK = {
    "committee": "Ban Thường vụ quyết định",
    "draw": "Bốc thăm công khai",
    "field_balance": "Ưu tiên lĩnh vực còn ít người trúng chọn",
}


def seat_outcomes(results: Mapping[str, Any]) -> dict[int, str]:
    """Each candidate's outcome (candidate id → label; absent: not elected) in a results
    document as the API serves it (:class:`voting.core.results.Results` as builtins): elected
    by votes, by the tie-break rule, by the committee or by the field minimum; tied and not
    (yet) decided; tied and not chosen; giving up a seat to the field minimum."""
    out = {int(cid): WINNER for cid in results.get("winners") or []}
    tie = results.get("tie") or {}
    tied = [int(cid) for cid in tie.get("candidate_ids") or []]
    seated = {int(cid) for cid in results.get("seated_by_rule") or []}
    left = results.get("undecided")
    pool = {int(cid) for cid in left["candidate_ids"]} if left else None
    decision = results.get("decision")
    chosen = {int(cid) for cid in decision["chosen"]} if decision else set()
    elected = results.get("elected")
    rule = BY_RULE.get(str(results.get("tie_break")), WINNER)
    for cid in tied:
        if cid in seated:
            out[cid] = rule
        elif cid in chosen:
            out[cid] = BY_COMMITTEE
        elif elected is not None or (pool is not None and cid not in pool):
            out[cid] = NOT_CHOSEN
        else:
            out[cid] = TIED
    for cid in results.get("entered_by_rule") or []:
        out[int(cid)] = BY_FIELD_MINIMUM
    for cid in results.get("displaced_by_rule") or []:
        out[int(cid)] = DISPLACED
    return out


STATUS = {
    "draft": "Nháp",
    "open": "Đang mở",
    "paused": "Tạm dừng",
    "closed": "Đã kết thúc",
}

IDENTITY_MODE = {
    "device": "Theo thiết bị (trình duyệt giải bài kiểm tra chống máy tự động)",
    "code": "Mã bình chọn dùng một lần do Ban Tổ chức phát",
    "email": "Thư điện tử (mã xác thực gửi qua thư)",
    "phone": "Số điện thoại di động (mã xác thực gửi qua SMS)",
}

RESULTS_VISIBILITY = {
    "live": "Công khai trực tiếp trong khi bình chọn",
    "after_close": "Công khai sau khi kết thúc",
}


def yes_no(value: bool) -> str:
    """``True`` → ``"có"``, ``False`` → ``"không"``."""
    return "có" if value else "không"


def number(n: int) -> str:
    """An integer with Vietnamese digit grouping: ``12345`` → ``"12.345"``."""
    return f"{n:,}".replace(",", ".")


def percent(part: int, whole: int) -> str:
    """``part`` of ``whole`` as a Vietnamese percentage with one decimal: ``(1, 3)`` →
    ``"33,3%"``; ``"–"`` when ``whole`` is 0."""
    if whole <= 0:
        return "–"
    return f"{100 * part / whole:.1f}".replace(".", ",") + "%"


def moment(when: datetime | None, missing: str = "–") -> str:
    """An aware datetime in Vietnam's time, ``"14:05 ngày 05/12/2026"``; ``missing`` for
    ``None``. A naive datetime is taken as UTC."""
    if when is None:
        return missing
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    local = when.astimezone(VIETNAM)
    return f"{local:%H:%M} ngày {local:%d/%m/%Y}"


def dateline(when: datetime) -> str:
    """The date line of a document: ``"ngày 05 tháng 12 năm 2026"`` (Vietnam's date)."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    local = when.astimezone(VIETNAM)
    return f"ngày {local:%d} tháng {local:%m} năm {local:%Y}"


#: Refusals of ballots as admins read them: a label and the error codes it groups (the codes
#: counted by :mod:`voting.live.counters`).
REFUSAL_GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Vượt giới hạn tần suất", ("rate_limited",)),
    ("Đã bình chọn rồi", ("already_voted",)),
    (
        "Phiếu không hợp lệ",
        (
            "malformed",
            "too_many_choices",
            "too_few_choices",
            "duplicate_choice",
            "unknown_candidate",
            "idempotency_key_reused",
        ),
    ),
    ("Thông tin cử tri không hợp lệ", ("voter_token_required", "voter_token_invalid")),
    ("Vòng chưa mở hoặc đã đóng", ("round_not_open",)),
    ("Hệ thống chưa sẵn sàng", ("unavailable", "outcome_unknown")),
)


def refusal_groups(counts: dict[str, int]) -> list[tuple[str, int]]:
    """``counts`` (error code → refusals) as ``[(label, n)]`` by :data:`REFUSAL_GROUPS`, then
    any other code as ``Khác (code)``."""
    rest = dict(counts)
    grouped = [(label, sum(rest.pop(c, 0) for c in codes)) for label, codes in REFUSAL_GROUPS]
    return grouped + [(f"Khác ({code})", n) for code, n in sorted(rest.items())]
