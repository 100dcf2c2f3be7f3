"""Results exports for admins: CSV and XLSX (brief section 5, ``GET
/admin/api/v1/rounds/{round_id}/results?format=csv|xlsx``).

Both take the results document as the API serves it (brief section 5, ``GET
/rounds/{round_id}/results``) plus the round ``title``::

    {"round_id": int, "title": str, "status": str, "final": bool, "total_ballots": int,
     "candidates": [{"candidate_id", "code", "full_name", "field", "votes", "rank"}, ...],
     "winners": [candidate_id, ...],
     "tie": None | {"rank": int, "seats": int, "candidate_ids": [candidate_id, ...]}}

and write one line per candidate, in the order of ``candidates`` (votes descending, then
code), with the Vietnamese columns :data:`TABLE_COLUMNS` (rank, code, full name, field, votes,
outcome). The outcome (``Kết quả``) is ``"Trúng cử"`` for an id in ``winners``,
``"Đồng hạng"`` for an id in ``tie.candidate_ids`` and ``""`` otherwise; once the round's
seat rules settled seats (``seated_by_rule``, ``decision``, ``entered_by_rule``,
``displaced_by_rule``), the label says which one (:func:`admin.labels.seat_outcomes`).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from typing import Any

from openpyxl import Workbook
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter

from admin import labels

#: Columns of the results table, in order (the CSV header and the XLSX table header): rank,
#: candidate code, full name, field, votes, outcome.
TABLE_COLUMNS: tuple[str, ...] = ("Hạng", "Mã", "Họ và tên", "Lĩnh vực", "Số phiếu", "Kết quả")

#: Name of the worksheet of :func:`results_xlsx`.
SHEET_TITLE = "Kết quả"

# A spreadsheet treats a cell starting with one of these as a formula (OWASP "CSV injection").
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _table(results: Mapping[str, Any]) -> list[tuple[int, str, str, str, int, str]]:
    """Rows ``(rank, code, full_name, field, votes, outcome)`` in the order of ``candidates``."""
    outcome = labels.seat_outcomes(results)
    return [
        (
            int(c["rank"]),
            str(c["code"]),
            str(c["full_name"]),
            str(c["field"]),
            int(c["votes"]),
            outcome.get(int(c["candidate_id"]), ""),
        )
        for c in results["candidates"]
    ]


def tie_note(results: Mapping[str, Any]) -> str | None:
    """One Vietnamese sentence naming the tied codes, their shared rank and the seats left for
    them (the standing committee decides), or ``None`` without a tie."""
    tie = results.get("tie")
    if not tie:
        return None
    code_of = {int(c["candidate_id"]): str(c["code"]) for c in results["candidates"]}
    codes = ", ".join(code_of.get(int(cid), f"#{cid}") for cid in tie["candidate_ids"])
    return (
        f"Đồng hạng {int(tie['rank'])}: {codes} có số phiếu bằng nhau, cùng xét "
        f"{int(tie['seats'])} suất còn lại; Ban Thường vụ xem xét, quyết định."
    )


def _csv_text(value: str) -> str:
    """``value`` with a leading ``'`` if a spreadsheet would read it as a formula."""
    return "'" + value if value.startswith(_FORMULA_START) else value


def results_csv(results: Mapping[str, Any]) -> bytes:
    """The results table as CSV: UTF-8 with a BOM (so Excel shows Vietnamese correctly).

    ``results`` is the document described in the module docstring (``title`` is not used).
    Header ``Hạng,Mã,Họ và tên,Lĩnh vực,Số phiếu,Kết quả``, then one line per candidate; lines end
    in CRLF (RFC 4180). A text cell starting with ``= + - @``, tab or CR gets a leading ``'`` so
    that a spreadsheet does not run it as a formula.

    Raises ``KeyError``/``TypeError``/``ValueError`` if ``results`` lacks a key or holds a
    value of the wrong type.
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(TABLE_COLUMNS)
    for rank, code, full_name, field, votes, outcome in _table(results):
        writer.writerow(
            [rank, _csv_text(code), _csv_text(full_name), _csv_text(field), votes, outcome]
        )
    return "\ufeff".encode() + buffer.getvalue().encode("utf-8")


def results_xlsx(results: Mapping[str, Any]) -> bytes:
    """The results as an Excel workbook (``.xlsx`` bytes) with one sheet, :data:`SHEET_TITLE`.

    Layout: A1 the round ``title`` (bold); A2 ``Trạng thái: <status in Vietnamese> · Kết quả
    chính thức: có|không · Tổng số phiếu: <n>``; row 4 the header :data:`TABLE_COLUMNS`
    (bold, frozen, with a filter); then one row per candidate (rank and votes as numbers);
    then, if the cut-off is tied, a blank row and a note in Vietnamese naming the tied codes,
    their shared rank and the seats left. Column widths fit the table (at most 60
    characters). Text is always stored as text, never as a formula.

    Raises ``KeyError``/``TypeError``/``ValueError`` if ``results`` lacks a key or holds a
    value of the wrong type.
    """
    table = _table(results)
    workbook = Workbook()
    sheet = workbook.active
    sheet.title = SHEET_TITLE
    workbook.properties.title = ILLEGAL_CHARACTERS_RE.sub("", str(results["title"]))
    bold = Font(bold=True)

    def put(row: int, column: int, value: str | int, font: Font | None = None) -> None:
        if isinstance(value, str):  # XML 1.0 has no control characters: drop them
            value = ILLEGAL_CHARACTERS_RE.sub("", value)
        cell = sheet.cell(row=row, column=column, value=value)
        if isinstance(value, str):
            cell.data_type = "s"  # openpyxl would store "=..." as a formula
        if font is not None:
            cell.font = font

    put(1, 1, str(results["title"]), Font(bold=True, size=14))
    status = labels.STATUS.get(str(results["status"]), str(results["status"]))
    put(
        2,
        1,
        f"Trạng thái: {status} · Kết quả chính thức: {labels.yes_no(bool(results['final']))} · "
        f"Tổng số phiếu: {labels.number(int(results['total_ballots']))}",
    )
    header_row = 4
    for column, name in enumerate(TABLE_COLUMNS, start=1):
        put(header_row, column, name, bold)
    for offset, values in enumerate(table, start=1):
        cells: tuple[str | int, ...] = values
        for column, value in enumerate(cells, start=1):
            put(header_row + offset, column, value)
    last_row = header_row + len(table)
    sheet.freeze_panes = sheet.cell(row=header_row + 1, column=1)
    sheet.auto_filter.ref = f"A{header_row}:{get_column_letter(len(TABLE_COLUMNS))}{last_row}"

    note = tie_note(results)
    if note is not None:
        put(last_row + 2, 1, note, bold)

    for column, name in enumerate(TABLE_COLUMNS, start=1):
        longest = max([len(name)] + [len(str(values[column - 1])) for values in table])
        sheet.column_dimensions[get_column_letter(column)].width = min(60, longest + 2)

    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()
