"""Shortlist CSV parsing: the sample file, and one test per kind of broken file."""

from __future__ import annotations

import csv
import io
import unicodedata
from pathlib import Path

import pytest

from voting.core.rounds import DEFAULT_FIELDS
from voting.core.shortlist import (
    COLUMNS,
    MAX_ERRORS,
    CandidateRow,
    RowError,
    ShortlistError,
    parse_shortlist,
)

ROOT = Path(__file__).resolve().parents[2]
SAMPLE_PLACES = (ROOT / "data" / "shortlist-sample.csv",)
FIELDS = DEFAULT_FIELDS  # the nine fields of the sample, the default of a new round
YEAR = 2026

VALID = {
    "code": "A01",
    "full_name": "Nguyễn Văn An",
    "gender": "Nam",
    "birth_year": "1980",
    "position": "Chuyên viên",
    "workplace": "Sở Y tế",
    "nominated_by": "Chi bộ Sở Y tế",
    "field": "Giáo dục",
    "summary": "Tóm tắt.",
    "achievements": "Thành tích.",
}


@pytest.fixture(scope="module")
def sample_bytes() -> bytes:
    for place in SAMPLE_PLACES:
        if place.is_file():
            return place.read_bytes()
    pytest.fail(f"shortlist-sample.csv not found in any of {[str(p) for p in SAMPLE_PLACES]}")


@pytest.fixture(scope="module")
def sample(sample_bytes: bytes) -> str:
    return sample_bytes.decode("utf-8-sig")


def row(**changes: str) -> dict[str, str]:
    return {**VALID, **changes}


def make_csv(*rows: dict[str, str], header: tuple[str, ...] = COLUMNS) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(header)
    for r in rows:
        writer.writerow([r[name] for name in header])
    return buffer.getvalue()


def parse(data: bytes | str, **kwargs: int) -> list[CandidateRow]:
    return parse_shortlist(data, FIELDS, current_year=YEAR, **kwargs)


def errors_of(data: bytes | str, **kwargs: int) -> tuple[RowError, ...]:
    with pytest.raises(ShortlistError) as info:
        parse(data, **kwargs)
    return info.value.errors


def where(errors: tuple[RowError, ...]) -> list[tuple[int, str | None]]:
    return [(e.row, e.column) for e in errors]


def line_of(text: str, prefix: str) -> int:
    """1-based line of the first physical line of ``text`` starting with ``prefix``."""
    for number, line in enumerate(text.splitlines(), start=1):
        if line.startswith(prefix):
            return number
    raise AssertionError(f"no line starts with {prefix!r}")


# --- the sample file ----------------------------------------------------------------------


def test_sample_parses(sample_bytes: bytes) -> None:
    rows = parse(sample_bytes)
    assert len(rows) == 28
    assert rows[0].code == "DH01"
    assert rows[0].full_name == "Nguyễn Thị Minh Thư"
    assert rows[0].gender == "Nữ"
    assert rows[0].birth_year == 1984
    assert rows[-1].code == "DH28"
    assert len({r.field for r in rows}) == 9
    assert {r.field for r in rows} == set(FIELDS)
    assert len({r.code for r in rows}) == 28


def test_sample_multiline_and_escaped_quotes(sample_bytes: bytes) -> None:
    first = parse(sample_bytes)[0]
    assert first.achievements.count("\n") == 2
    assert "\r" not in first.achievements
    assert '"Chuẩn hóa quy trình thẩm định dự toán' in first.achievements
    assert first.position == "Trưởng phòng Quản lý ngân sách"


def test_sample_same_with_bom_str_and_lf(sample: str) -> None:
    expected = parse(sample)
    assert parse("\ufeff" + sample) == expected
    assert parse(b"\xef\xbb\xbf" + sample.encode()) == expected
    assert parse(sample.replace("\r\n", "\n")) == expected


def test_cells_stripped_and_nfc() -> None:
    nfd = unicodedata.normalize("NFD", "Nguyễn Thị Hà")
    [parsed] = parse(make_csv(row(full_name=f"  {nfd} ", field=" Giáo dục\t", code=" A01 ")))
    assert parsed.full_name == "Nguyễn Thị Hà"
    assert unicodedata.is_normalized("NFC", parsed.full_name)
    assert parsed.field == "Giáo dục"
    assert parsed.code == "A01"


def test_achievements_may_be_empty() -> None:
    [parsed] = parse(make_csv(row(achievements="  ")))
    assert parsed.achievements == ""


def test_header_in_any_order() -> None:
    header = tuple(reversed(COLUMNS))
    [parsed] = parse(make_csv(row(), header=header))
    assert parsed == parse(make_csv(row()))[0]


def test_blank_lines_skipped_and_lines_still_counted() -> None:
    # line 1 header, 2 A01, 3 empty, 4 only commas and blanks, 5 A02
    body = make_csv(row(code="A02", gender="X")).split("\r\n", 1)[1]
    text = make_csv(row()) + "\r\n , ,,\r\n" + body
    assert where(errors_of(text)) == [(5, "gender")]


# --- broken files ----------------------------------------------------------------------------


def test_not_utf8(sample: str) -> None:
    # "Bảo" as a legacy (TCVN3-like) encoding would write it: one byte for "ả".
    data = sample.encode().replace("Trần Quốc Bảo".encode(), "Trần Quốc B".encode() + b"\xb6o")
    [error] = errors_of(data)
    assert (error.row, error.column) == (line_of(sample, "DH02,"), None)
    assert "UTF-8" in error.message


@pytest.mark.parametrize("data", [b"", "", b"\xef\xbb\xbf", b"\r\n  \r\n", ",,,\n"])
def test_empty_file(data: bytes | str) -> None:
    [error] = errors_of(data)
    assert (error.row, error.column) == (0, None)
    assert error.message == "file is empty"


def test_no_data_rows() -> None:
    [error] = errors_of(",".join(COLUMNS) + "\r\n")
    assert (error.row, error.column) == (0, None)
    assert "no data rows" in error.message


def test_missing_header_column(sample: str) -> None:
    header = ",".join(c for c in COLUMNS if c != "gender")
    text = header + sample[sample.index("\r\n") :]
    [error] = errors_of(text)
    assert (error.row, error.column) == (1, "gender")
    assert error.message == "missing column 'gender'"


def test_unknown_header_column() -> None:
    header = tuple("sex" if c == "gender" else c for c in COLUMNS)
    text = make_csv(header=header).replace("\r\n", "") + "\r\n" + "x," * 9 + "x\r\n"
    errors = errors_of(text)
    assert where(errors) == [(1, "sex"), (1, "gender")]
    assert errors[0].message.startswith("unknown column 'sex'; expected: code, full_name")


def test_duplicated_header_column() -> None:
    text = ",".join((*COLUMNS, "field")) + "\r\n" + "x," * 10 + "x\r\n"
    [error] = errors_of(text)
    assert (error.row, error.column) == (1, "field")
    assert "more than once" in error.message


def test_empty_header_cell() -> None:
    [error] = errors_of(",".join(COLUMNS) + ",\r\n" + "x," * 10 + "\r\n")
    assert (error.row, error.column) == (1, None)
    assert error.message == "header cell 11 is empty"


def test_wrong_number_of_cells() -> None:
    lines = make_csv(row(), row(code="A02"), row(code="A03")).split("\r\n")
    lines[2] += ",extra"  # A02 gets 11 cells
    lines[3] = lines[3].rsplit(",", 1)[0]  # A03 gets 9 cells
    errors = errors_of("\r\n".join(lines))
    assert where(errors) == [(3, None), (4, None)]
    assert errors[0].message.startswith("expected 10 cells, got 11")
    assert errors[1].message.startswith("expected 10 cells, got 9")


def test_unterminated_quote_at_end(sample: str) -> None:
    assert sample.endswith('2023."\r\n')
    text = sample[: -len('"\r\n')] + "\r\n"
    errors = errors_of(text)
    assert where(errors) == [(line_of(sample, "DH28,"), "achievements")]
    assert "never closed" in errors[0].message


def test_unterminated_quote_mid_file_is_not_swallowed(sample: str) -> None:
    # The position of DH05 loses its closing quote; csv.reader would read on silently.
    good = '"Bí thư Đảng ủy, Tổng Giám đốc",'
    assert sample.count(good) == 1
    text = sample.replace(good, '"Bí thư Đảng ủy, Tổng Giám đốc,')
    errors = errors_of(text)
    assert where(errors) == [(line_of(sample, "DH05,"), "position")]
    assert "after the closing quote" in errors[0].message


def test_unescaped_quote_inside_quoted_cell() -> None:
    text = make_csv(row()) + 'A02,"Lê ""Văn" Bình",Nam,1980,a,b,c,Giáo dục,d,e\r\n'
    [error] = errors_of(text)
    assert (error.row, error.column) == (3, "full_name")
    assert error.message.startswith("unexpected text 'Bình\",Nam")


def test_errors_before_a_quoting_error_are_kept() -> None:
    text = make_csv(row(gender="?")) + 'A02,"Lê Bình,Nam,1980,a,b,c,Giáo dục,d,e\r\n'
    assert where(errors_of(text)) == [(2, "gender"), (3, "full_name")]


@pytest.mark.parametrize("column", [c for c in COLUMNS if c != "achievements"])
def test_empty_required_cell(column: str) -> None:
    [error] = errors_of(make_csv(row(), row(**{"code": "A02", column: " "})))
    assert (error.row, error.column) == (3, column)
    assert error.message == "empty; this cell is required"


def test_unknown_field() -> None:
    [error] = errors_of(make_csv(row(field="Y tế")))
    assert (error.row, error.column) == (2, "field")
    assert error.message == "unknown field 'Y tế'; expected one of: " + "; ".join(FIELDS)


def test_field_must_match_exactly() -> None:
    assert where(errors_of(make_csv(row(field="giáo dục")))) == [(2, "field")]


@pytest.mark.parametrize("gender", ["nam", "Nu", "Khác", "M"])
def test_bad_gender(gender: str) -> None:
    [error] = errors_of(make_csv(row(gender=gender)))
    assert (error.row, error.column) == (2, "gender")
    assert error.message == f"invalid gender {gender!r}; expected 'Nam' or 'Nữ'"


@pytest.mark.parametrize("year", ["abc", "1980.0", "1899", "2011", "１９８０", "1_980", "-1980"])
def test_bad_birth_year(year: str) -> None:
    [error] = errors_of(make_csv(row(birth_year=year)))
    assert (error.row, error.column) == (2, "birth_year")
    assert error.message.endswith("expected a whole number from 1900 to 2010")


def test_birth_year_bounds_accepted() -> None:
    rows = parse(make_csv(row(birth_year="1900"), row(code="A02", birth_year="2010")))
    assert [r.birth_year for r in rows] == [1900, 2010]


def test_duplicate_code_reports_both_rows() -> None:
    errors = errors_of(make_csv(row(code="A01"), row(code="B02"), row(code="a01")))
    assert where(errors) == [(2, "code"), (4, "code")]
    assert errors[0].message == "duplicate code 'A01' (also on line 4)"
    assert errors[1].message == "duplicate code 'a01' (also on line 2)"


def test_duplicate_code_found_in_rows_with_other_errors() -> None:
    errors = errors_of(make_csv(row(), row(gender="?")))
    assert where(errors) == [(2, "code"), (3, "gender"), (3, "code")]


@pytest.mark.parametrize("code", ["DH 01", "ĐH01", "A" * 33, "A.1", "A/1"])
def test_bad_code(code: str) -> None:
    [error] = errors_of(make_csv(row(code=code)))
    assert (error.row, error.column) == (2, "code")
    assert error.message.startswith("invalid code")


def test_line_break_in_name() -> None:
    [error] = errors_of(make_csv(row(full_name="Nguyễn\nAn")))
    assert (error.row, error.column) == (2, "full_name")


def test_control_character() -> None:
    [error] = errors_of(make_csv(row(summary="a\x00b")))
    assert (error.row, error.column) == (2, "summary")
    assert error.message == "invalid character U+0000"


@pytest.mark.parametrize("char", ["\u200b", "\u202e", "\ufeff", "\u2028", "\u2066"])
def test_invisible_character_in_a_name(char: str) -> None:
    # "Nguyễn An" and "Nguyễn\u200bAn" look alike: two candidates must not
    [error] = errors_of(make_csv(row(full_name=f"Nguyễn{char} An")))
    assert (error.row, error.column) == (2, "full_name")
    assert error.message == f"invalid character U+{ord(char):04X}"


def test_too_many_rows(sample: str) -> None:
    errors = errors_of(sample, max_rows=5)
    assert where(errors) == [(line_of(sample, "DH06,"), None)]
    assert errors[0].message == "too many rows: more than 5 candidates"
    assert len(parse(sample, max_rows=28)) == 28


def test_too_many_bytes(sample_bytes: bytes) -> None:
    [error] = errors_of(sample_bytes, max_bytes=len(sample_bytes) - 1)
    assert (error.row, error.column) == (0, None)
    assert error.message.startswith(f"file too large: {len(sample_bytes)} bytes")
    assert len(parse(sample_bytes, max_bytes=len(sample_bytes))) == 28


def test_all_errors_reported_in_file_order() -> None:
    text = make_csv(
        row(code="A01", gender="X"),
        row(code="A02"),
        row(code="A03", birth_year="1800", field="?", full_name=""),
    )
    errors = errors_of(text)
    assert where(errors) == [(2, "gender"), (4, "full_name"), (4, "birth_year"), (4, "field")]


def test_error_list_is_capped() -> None:
    text = make_csv(*(row(code=f"A{i}", gender="X") for i in range(MAX_ERRORS + 10)))
    errors = errors_of(text, max_rows=1000)
    assert len(errors) == MAX_ERRORS + 1
    assert errors[-1] == RowError(0, None, f"more than {MAX_ERRORS} errors; the rest not shown")


def test_error_is_readable_value_error() -> None:
    with pytest.raises(ValueError) as info:
        parse(make_csv(row(gender="X")))
    assert str(info.value) == (
        "shortlist rejected: 1 error\n"
        "  line 2, column gender: invalid gender 'X'; expected 'Nam' or 'Nữ'"
    )
