"""The console's forms: reading them into the API's own bodies, and saying what is wrong in
Vietnamese next to the field.

A form is read into the same msgspec struct the JSON API takes (:class:`admin.api.RoundIn`,
:class:`admin.api.RoundPatch`), so both doors apply one set of rules. Times are entered and
shown in Vietnam time (``Asia/Ho_Chi_Minh``, UTC+7, no daylight saving) and stored in UTC.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import msgspec

from voting.core.errors import DomainError

VIETNAM = ZoneInfo("Asia/Ho_Chi_Minh")

#: What each round setting must be, said to an admin.
FIELD_RULES: dict[str, str] = {
    "slug": "Chỉ gồm chữ thường không dấu, chữ số và dấu gạch ngang, tối đa 80 ký tự "
    "(ví dụ: guong-mat-tieu-bieu-2026).",
    "title": "Bắt buộc, tối đa 300 ký tự, trên một dòng.",
    "description": "Tối đa 20.000 ký tự; không dùng ký tự điều khiển.",
    "min_choices": "Một số nguyên từ 1 đến 200.",
    "max_choices": "Một số nguyên từ 1 đến 200, không nhỏ hơn số lựa chọn tối thiểu.",
    "winners": "Một số nguyên từ 1 đến 200.",
    "identity_mode": "Chọn một cách xác thực cử tri.",
    "results_visibility": "Chọn khi nào công bố kết quả.",
    "opens_at": "Ngày giờ theo giờ Việt Nam, ví dụ 2026-12-20 08:00.",
    "closes_at": "Ngày giờ theo giờ Việt Nam, sau thời điểm mở.",
    "fields": "Mỗi dòng một lĩnh vực, không để trống, không trùng nhau, tối đa 200 ký tự.",
    "tie_break": "Chọn cách xác định người vào các suất cuối khi đồng phiếu; "
    "không đổi được sau khi mở vòng.",
    "field_minimum": "Để trống nếu không áp dụng. Một số nguyên từ 1 đến 200, không lớn hơn "
    "số người được tôn vinh: mỗi lĩnh vực có người đề cử phải có ít nhất chừng ấy người "
    "trúng chọn (lĩnh vực ít người hơn: tất cả những người đó).",
}

#: Messages of domain error codes, by the field they belong to (``""``: the whole form).
CODE_MESSAGES: dict[str, tuple[str, str]] = {
    "slug_taken": ("slug", "Mã vòng này đã được dùng cho một vòng khác."),
    "round_not_draft": ("", "Vòng đã mở nên không sửa được nữa."),
    "invalid_transition": ("", "Trạng thái hiện tại của vòng không cho phép thao tác này."),
    "no_candidates": ("", "Hãy nhập danh sách đề cử trước khi mở vòng."),
    "round_not_found": ("", "Không tìm thấy vòng bình chọn."),
    "forbidden": ("", "Tài khoản quan sát viên chỉ được xem, không được thay đổi."),
    "csrf_failed": ("", "Phiên làm việc không hợp lệ; hãy tải lại trang rồi thử lại."),
    "cross_site_request": ("", "Yêu cầu không đến từ trang quản trị này nên bị từ chối."),
    "candidate_not_found": ("", "Không tìm thấy người được đề cử."),
    "not_found": ("", "Không tìm thấy trang."),
    "malformed": ("", "Yêu cầu không hợp lệ."),
    "unavailable": ("", "Hệ thống lưu trữ tạm thời không phản hồi; vui lòng thử lại sau ít phút."),
    "rate_limited": ("", "Bạn thao tác quá nhanh; vui lòng thử lại sau ít phút."),
    "round_not_final": ("", "Vòng chưa đóng hoặc chưa kiểm đếm xong."),
    "already_official": ("", "Kết quả đã được công bố chính thức, không thay đổi được nữa."),
    "no_tie": ("", "Kết quả không có trường hợp đồng hạng cần quyết định."),
    "tie_undecided": ("", "Cần ghi quyết định của Ban Thường vụ về trường hợp đồng hạng trước."),
    "rules_infeasible": (
        "",
        "Số người trúng chọn tối thiểu mỗi lĩnh vực cần nhiều suất hơn số người được tôn vinh; "
        "hãy giảm con số này hoặc tăng số người được tôn vinh trước khi mở vòng.",
    ),
}
_AT = re.compile(r"at `\$\.([a-z_]+)")


class FormErrors(Exception):
    """A form that cannot be taken: Vietnamese messages by field (``""``: the form)."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__(errors)
        self.errors = errors


def vietnam_time(value: datetime | None) -> str:
    """``value`` (aware) as ``dd/mm/yyyy HH:MM`` in Vietnam time; ``""`` for None."""
    if value is None:
        return ""
    return value.astimezone(VIETNAM).strftime("%d/%m/%Y %H:%M")


def input_time(value: datetime | None) -> str:
    """``value`` as a ``datetime-local`` input value in Vietnam time (``YYYY-MM-DDTHH:MM``)."""
    if value is None:
        return ""
    return value.astimezone(VIETNAM).strftime("%Y-%m-%dT%H:%M")


def parse_time(text: str) -> datetime | None:
    """A ``datetime-local`` value (``YYYY-MM-DDTHH:MM``, or with a space) in Vietnam time, as
    an aware UTC datetime; None for an empty field. ValueError otherwise."""
    text = text.strip()
    if not text:
        return None
    naive = datetime.fromisoformat(text.replace(" ", "T"))
    if naive.tzinfo is not None:
        raise ValueError("a local time has no offset")
    return naive.replace(tzinfo=VIETNAM).astimezone(UTC)


def round_values(form: dict[str, Any], *, partial: bool) -> dict[str, Any]:
    """The round settings of a console form, as the JSON API's body would give them.

    Empty optional fields are left out (``partial``: an edit, where an empty date clears it).
    Raises :class:`FormErrors` for a value that is not even of the right kind."""
    errors: dict[str, str] = {}
    values: dict[str, Any] = {}
    for name in (
        "slug",
        "title",
        "description",
        "identity_mode",
        "results_visibility",
        "tie_break",
    ):
        if name in form and (form[name] != "" or name in ("title", "description")):
            values[name] = str(form[name])
    if partial:
        values.pop("slug", None)
    for name in ("min_choices", "max_choices", "winners"):
        raw = str(form.get(name, "")).strip()
        if raw:
            if not raw.isdigit():
                errors[name] = FIELD_RULES[name]
            else:
                values[name] = int(raw)
    if "field_minimum" in form:
        raw = str(form["field_minimum"]).strip()
        if not raw:
            if partial:
                values["field_minimum"] = None  # an empty field turns the rule off
        elif not raw.isdigit():
            errors["field_minimum"] = FIELD_RULES["field_minimum"]
        else:
            values["field_minimum"] = int(raw)
    for name in ("opens_at", "closes_at"):
        if name not in form:
            continue
        try:
            when = parse_time(str(form[name]))
        except ValueError:
            errors[name] = FIELD_RULES[name]
            continue
        if when is not None or partial:
            values[name] = when
    if "fields" in form:
        lines = [line.strip() for line in str(form["fields"]).splitlines() if line.strip()]
        values["fields"] = lines
    if errors:
        raise FormErrors(errors)
    return values


def convert(struct: type[Any], values: dict[str, Any]) -> Any:
    """``values`` as ``struct`` (the API's body type); :class:`FormErrors` naming the field
    msgspec refused, with its rule in Vietnamese."""
    try:
        return msgspec.convert(values, struct)
    except msgspec.ValidationError as exc:
        match = _AT.search(str(exc))
        field = match.group(1) if match else ""
        raise FormErrors({field: FIELD_RULES.get(field, "Giá trị không hợp lệ.")}) from None


def domain_errors(exc: DomainError) -> FormErrors:
    """The Vietnamese form errors of a domain error (by its ``field`` detail or code)."""
    field = str((exc.details or {}).get("field", ""))
    if exc.code == "invalid_round" and field:
        return FormErrors({field: FIELD_RULES.get(field, "Giá trị không hợp lệ.")})
    where, message = CODE_MESSAGES.get(exc.code, ("", f"Không thực hiện được ({exc.code})."))
    return FormErrors({where: message})
