"""Admin results exports: CSV (UTF-8 with BOM) and XLSX."""

from __future__ import annotations

import csv
import io
from typing import Any

from openpyxl import load_workbook

from admin.export import SHEET_TITLE, TABLE_COLUMNS, results_csv, results_xlsx


def results(tie: bool = True) -> dict[str, Any]:
    """Three seats; C and D tie at rank 3 for the last seat when ``tie``."""
    candidates = [
        (11, "DH01", "Nguyễn Thị Minh Thư", "Quản lý hành chính - nhà nước", 40, 1),
        (12, "DH02", "Trần Quốc Bảo", "Lao động sản xuất", 31, 2),
        (13, "DH03", 'Lê Văn "Cường", Hà', "Văn hóa - văn nghệ, truyền thông", 20, 3),
        (14, "DH04", "Hoàng Thị Thu Trang", "Giáo dục", 20 if tie else 19, 3 if tie else 4),
        (15, "DH05", "Vũ Đức Hiếu", "Kinh doanh", 0, 5),
    ]
    return {
        "round_id": 7,
        "title": "Bình chọn gương điển hình tiêu biểu 2026",
        "status": "closed",
        "final": True,
        "total_ballots": 57,
        "candidates": [
            {
                "candidate_id": cid,
                "code": code,
                "full_name": name,
                "field": field,
                "votes": votes,
                "rank": rank,
            }
            for cid, code, name, field, votes, rank in candidates
        ],
        "winners": [11, 12] if tie else [11, 12, 13],
        "tie": {"rank": 3, "seats": 1, "candidate_ids": [13, 14]} if tie else None,
    }


def read_csv(data: bytes) -> list[list[str]]:
    assert data.startswith(b"\xef\xbb\xbf")
    return list(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline="")))


def test_csv_round_trips_with_outcomes() -> None:
    rows = read_csv(results_csv(results()))
    assert rows == [
        ["Hạng", "Mã", "Họ và tên", "Lĩnh vực", "Số phiếu", "Kết quả"],
        ["1", "DH01", "Nguyễn Thị Minh Thư", "Quản lý hành chính - nhà nước", "40", "Trúng cử"],
        ["2", "DH02", "Trần Quốc Bảo", "Lao động sản xuất", "31", "Trúng cử"],
        ["3", "DH03", 'Lê Văn "Cường", Hà', "Văn hóa - văn nghệ, truyền thông", "20", "Đồng hạng"],
        ["3", "DH04", "Hoàng Thị Thu Trang", "Giáo dục", "20", "Đồng hạng"],
        ["5", "DH05", "Vũ Đức Hiếu", "Kinh doanh", "0", ""],
    ]


def test_csv_without_tie() -> None:
    rows = read_csv(results_csv(results(tie=False)))
    assert [r[-1] for r in rows[1:]] == ["Trúng cử", "Trúng cử", "Trúng cử", "", ""]
    assert [r[0] for r in rows[1:]] == ["1", "2", "3", "4", "5"]


def test_csv_lines_end_in_crlf() -> None:
    data = results_csv(results())
    assert data.count(b"\r\n") == 6
    assert data.endswith(b"\r\n")


def test_csv_neutralises_formulas() -> None:
    doc = results()
    doc["candidates"][0]["full_name"] = '=HYPERLINK("http://x")'
    doc["candidates"][1]["field"] = "+1"
    rows = read_csv(results_csv(doc))
    assert rows[1][2] == '\'=HYPERLINK("http://x")'
    assert rows[2][3] == "'+1"


def test_csv_empty_round() -> None:
    doc = {**results(tie=False), "candidates": [], "winners": []}
    assert read_csv(results_csv(doc)) == [list(TABLE_COLUMNS)]


def load(data: bytes) -> Any:
    workbook = load_workbook(io.BytesIO(data))
    assert workbook.sheetnames == [SHEET_TITLE]
    return workbook[SHEET_TITLE]


def test_xlsx_holds_title_table_and_tie_note() -> None:
    sheet = load(results_xlsx(results()))
    assert sheet["A1"].value == "Bình chọn gương điển hình tiêu biểu 2026"
    assert sheet["A2"].value == (
        "Trạng thái: Đã kết thúc · Kết quả chính thức: có · Tổng số phiếu: 57"
    )
    values = [list(r) for r in sheet.iter_rows(min_row=4, max_row=9, values_only=True)]
    assert values == [
        ["Hạng", "Mã", "Họ và tên", "Lĩnh vực", "Số phiếu", "Kết quả"],
        [1, "DH01", "Nguyễn Thị Minh Thư", "Quản lý hành chính - nhà nước", 40, "Trúng cử"],
        [2, "DH02", "Trần Quốc Bảo", "Lao động sản xuất", 31, "Trúng cử"],
        [3, "DH03", 'Lê Văn "Cường", Hà', "Văn hóa - văn nghệ, truyền thông", 20, "Đồng hạng"],
        [3, "DH04", "Hoàng Thị Thu Trang", "Giáo dục", 20, "Đồng hạng"],
        [5, "DH05", "Vũ Đức Hiếu", "Kinh doanh", 0, None],
    ]
    assert all(sheet.cell(row=4, column=c).font.bold for c in range(1, 7))
    assert not sheet["B5"].font.bold
    note = sheet["A11"].value
    assert note == (
        "Đồng hạng 3: DH03, DH04 có số phiếu bằng nhau, cùng xét 1 suất còn lại; "
        "Ban Thường vụ xem xét, quyết định."
    )
    assert sheet.max_row == 11
    assert sheet.column_dimensions["D"].width == len("Văn hóa - văn nghệ, truyền thông") + 2
    assert sheet.column_dimensions["A"].width == len("Hạng") + 2


def test_xlsx_without_tie_has_no_note() -> None:
    sheet = load(results_xlsx({**results(tie=False), "final": False, "status": "open"}))
    assert sheet["A2"].value == (
        "Trạng thái: Đang mở · Kết quả chính thức: không · Tổng số phiếu: 57"
    )
    assert sheet.max_row == 9
    assert [sheet.cell(row=r, column=6).value for r in range(5, 10)] == [
        "Trúng cử",
        "Trúng cử",
        "Trúng cử",
        None,
        None,
    ]


def test_xlsx_stores_formula_like_text_as_text() -> None:
    doc = results()
    doc["candidates"][0]["full_name"] = "=1+1"
    doc["title"] = "=SUM(A1:A2)"
    sheet = load(results_xlsx(doc))
    assert sheet["C5"].value == "=1+1"
    assert sheet["C5"].data_type == "s"
    assert sheet["A1"].data_type == "s"


def test_xlsx_drops_control_characters_it_cannot_store():
    doc = results()
    doc["title"] = "Vòng\x07 1\x00"
    doc["candidates"][0]["full_name"] = "Nguyễn\x1b Văn A"
    book = load_workbook(io.BytesIO(results_xlsx(doc)))
    sheet = book[SHEET_TITLE]
    assert sheet.cell(row=1, column=1).value == "Vòng 1"
    names = [row[2] for row in sheet.iter_rows(values_only=True)]
    assert "Nguyễn Văn A" in names
