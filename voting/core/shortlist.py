"""Parse and validate a shortlist CSV (the candidates of one round).

The format is the one of ``shared/data/shortlist-sample.csv`` (brief section 5, ``POST
/rounds/{round_id}/candidates/import``): UTF-8 (a UTF-8 BOM is allowed), comma separated,
RFC 4180 quoting (``"`` around a cell, ``""`` for a quote inside it, line breaks allowed inside
quoted cells), a header line naming the ten :data:`COLUMNS` in any order, then one record per
candidate.

The whole file is rejected if anything in it is bad (brief section 5: "rejects the whole file
with row/column errors if any row is bad"; section 7: "bad input ... changes nothing"). Every
error found is reported, each with the line where its record starts and the column concerned.

The quoting is read by a small tokenizer of our own rather than :mod:`csv`, because
:mod:`csv` silently swallows the rest of the file into one cell when a quote is left open, and
does not say in which cell a quoting error sits.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import NoReturn

from voting.core.rounds import Profile
from voting.core.text import INVISIBLE

#: The ten columns of a shortlist, in the order of the sample file.
COLUMNS: tuple[str, ...] = (
    "code",
    "full_name",
    "gender",
    "birth_year",
    "position",
    "workplace",
    "nominated_by",
    "field",
    "summary",
    "achievements",
)

#: Columns that may be left empty; every other cell is required.
OPTIONAL_COLUMNS: frozenset[str] = frozenset({"achievements"})

#: Accepted values of ``gender`` (as written in the sample file).
GENDERS: tuple[str, ...] = ("Nam", "Nữ")

#: Earliest accepted birth year.
MIN_BIRTH_YEAR = 1900

#: Youngest accepted age in years: ``birth_year <= current_year - MIN_AGE``.
MIN_AGE = 16

#: A candidate code: what voters see next to the name, and what ``candidates.code`` (32 chars)
#: stores.
CODE_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,32}")

#: At most this many errors are reported; a final error says the list was cut.
MAX_ERRORS = 200

_UNQUOTED_CELL = re.compile(r"[^,\n]*")
_BLANKS = re.compile(r"[ \t]*")
_BLANK_LINES = re.compile(r"(?:[ \t,]*\n)*")
_DIGITS = re.compile(r"[0-9]{1,6}")
# C0/C1 control characters other than tab and line feed (carriage returns are already gone),
# invisible or reordering characters (look-alike names: see voting.core.text), and lone
# surrogates (only possible in ``str`` input; Postgres cannot store them).
_INVALID_CHAR = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff" + INVISIBLE + "]")


class CandidateRow(Profile, frozen=True, kw_only=True):
    """One valid candidate of a shortlist.

    Every text cell is stripped of surrounding whitespace and normalised to Unicode NFC; line
    breaks inside a cell are ``"\\n"``. ``gender`` is one of :data:`GENDERS`, ``field`` is one of
    the round's field labels exactly as the round spells it, ``achievements`` may be ``""``.
    """

    achievements: str


@dataclass(frozen=True)
class RowError:
    """One problem found in a shortlist file.

    ``row`` is the 1-based line number in the file where the record concerned starts (the header
    is line 1), or 0 when the problem concerns the whole file (too large, empty, no data rows).
    ``column`` is the column name concerned, or ``None`` for whole-file and whole-row problems.
    ``message`` is a short English sentence without the row and column.
    """

    row: int
    column: str | None
    message: str

    def __str__(self) -> str:
        where = "file" if self.row == 0 else f"line {self.row}"
        if self.column is not None:
            where += f", column {self.column}"
        return f"{where}: {self.message}"


class ShortlistError(ValueError):
    """The shortlist file was rejected; ``errors`` holds every problem found, in file order.

    ``str()`` gives a readable summary: the count, then one line per error.
    """

    def __init__(self, errors: Sequence[RowError]) -> None:
        self.errors: tuple[RowError, ...] = tuple(errors)
        super().__init__(self._summary())

    def _summary(self) -> str:
        count = len(self.errors)
        lines = [f"shortlist rejected: {count} error{'s' if count != 1 else ''}"]
        lines.extend(f"  {error}" for error in self.errors)
        return "\n".join(lines)

    def __str__(self) -> str:
        return self._summary()


class _Errors:
    """Collects errors up to :data:`MAX_ERRORS`."""

    def __init__(self) -> None:
        self.items: list[RowError] = []
        self.truncated = False

    def add(self, row: int, column: str | None, message: str) -> None:
        if len(self.items) < MAX_ERRORS:
            self.items.append(RowError(row, column, message))
        else:
            self.truncated = True

    def reject(self) -> NoReturn:
        """Raise :class:`ShortlistError` with the errors so far, by row."""
        items = sorted(self.items, key=lambda e: e.row)
        if self.truncated:
            items.append(RowError(0, None, f"more than {MAX_ERRORS} errors; the rest not shown"))
        raise ShortlistError(items)

    def raise_if_any(self) -> None:
        if self.items:
            self.reject()


@dataclass(frozen=True)
class _Record:
    line: int
    cells: list[str]


@dataclass(frozen=True)
class _QuoteProblem:
    line: int  # where the record starts
    cell_index: int  # which cell of the record
    message: str


def _tokenize(text: str, limit: int) -> tuple[list[_Record], _QuoteProblem | None]:
    """Split ``text`` (line breaks already ``"\\n"``) into at most ``limit`` records of raw cells.

    Stops at the first quoting error, which is returned with the records read before it: past
    a broken quote there is no telling where records start.
    """
    cursor = [0, 1]  # a position already counted, and its line number

    def line_of(pos: int) -> int:
        if pos < cursor[0]:
            return text.count("\n", 0, pos) + 1
        cursor[1] += text.count("\n", cursor[0], pos)
        cursor[0] = pos
        return cursor[1]

    records: list[_Record] = []
    n = len(text)
    pos = 0
    while len(records) < limit:
        blank = _BLANK_LINES.match(text, pos)
        assert blank is not None
        pos = blank.end()
        if pos >= n:
            break
        start = pos
        cells: list[str] = []
        while True:
            if pos < n and text[pos] == '"':
                opened = pos
                pos += 1
                parts: list[str] = []
                while True:
                    quote = text.find('"', pos)
                    if quote < 0:
                        problem = _QuoteProblem(
                            line_of(start),
                            len(cells),
                            f"quote opened on line {line_of(opened)} is never closed",
                        )
                        return records, problem
                    parts.append(text[pos:quote])
                    if text.startswith('"', quote + 1):
                        parts.append('"')
                        pos = quote + 2
                        continue
                    pos = quote + 1
                    break
                value = "".join(parts)
                blanks = _BLANKS.match(text, pos)
                assert blanks is not None
                pos = blanks.end()
                if pos < n and text[pos] not in ",\n":
                    after = text[pos : pos + 20].split("\n", 1)[0]
                    problem = _QuoteProblem(
                        line_of(start),
                        len(cells),
                        f"unexpected text {after!r} after the closing quote on line "
                        f'{line_of(pos)}; write a quote inside a cell as "" and check for a '
                        "missing closing quote",
                    )
                    return records, problem
            else:
                match = _UNQUOTED_CELL.match(text, pos)
                assert match is not None
                value = match.group()
                pos = match.end()
            cells.append(value)
            if pos >= n:
                break
            separator = text[pos]
            pos += 1
            if separator == "\n":
                break
        if any(cell.strip() for cell in cells):
            records.append(_Record(line_of(start), cells))
    return records, None


def _show(value: str, limit: int = 40) -> str:
    """``value`` cut to ``limit`` characters for an error message."""
    return value if len(value) <= limit else value[: limit - 1] + "…"


def _clean(value: str) -> str:
    return unicodedata.normalize("NFC", value).strip()


def _decode(data: bytes | str, errors: _Errors) -> str | None:
    """The text of ``data`` without a BOM, or ``None`` (and an error) if it is not UTF-8."""
    if isinstance(data, str):
        return data.removeprefix("\ufeff")
    body = data.removeprefix(b"\xef\xbb\xbf")
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = body.count(b"\n", 0, exc.start) + 1
        offset = exc.start + len(data) - len(body)
        errors.add(
            line,
            None,
            f"not valid UTF-8 (byte 0x{body[exc.start]:02x} at offset {offset}); "
            "save the file as CSV UTF-8",
        )
        return None


def _header(record: _Record, errors: _Errors) -> list[str] | None:
    """Column names by cell index, or ``None`` (and errors) if the header is unusable."""
    names = [_clean(cell).lower() for cell in record.cells]
    line = record.line
    ok = True
    seen: set[str] = set()
    for position, name in enumerate(names, start=1):
        if name == "":
            errors.add(line, None, f"header cell {position} is empty")
            ok = False
        elif name not in COLUMNS:
            name = _show(name)
            errors.add(line, name, f"unknown column {name!r}; expected: {', '.join(COLUMNS)}")
            ok = False
        elif name in seen:
            errors.add(line, name, f"column {name!r} appears more than once in the header")
            ok = False
        seen.add(name)
    for name in COLUMNS:
        if name not in seen:
            errors.add(line, name, f"missing column {name!r}")
            ok = False
    return names if ok else None


def _check_row(
    record: _Record,
    header: list[str],
    fields: dict[str, str],
    max_year: int,
    errors: _Errors,
) -> CandidateRow | None:
    """Validate one data record; add all its errors and return ``None`` if it has any."""
    line = record.line
    if len(record.cells) != len(header):
        errors.add(
            line,
            None,
            f"expected {len(header)} cells, got {len(record.cells)}; check for a missing or "
            "extra comma, or a comma in a cell that is not quoted",
        )
        return None
    values = {name: _clean(cell) for name, cell in zip(header, record.cells, strict=True)}
    bad = False

    def fail(column: str, message: str) -> None:
        nonlocal bad
        errors.add(line, column, message)
        bad = True

    for name in COLUMNS:
        value = values[name]
        invalid = _INVALID_CHAR.search(value)
        if value == "" and name not in OPTIONAL_COLUMNS:
            fail(name, "empty; this cell is required")
        elif invalid is not None:
            fail(name, f"invalid character U+{ord(invalid.group()):04X}")

    code = values["code"]
    if code and not CODE_PATTERN.fullmatch(code):
        fail("code", f"invalid code {_show(code)!r}; use 1-32 letters A-Z, digits, '_' or '-'")
    if "\n" in values["full_name"]:
        fail("full_name", "line break in a name")
    gender = values["gender"]
    if gender and gender not in GENDERS:
        fail(
            "gender",
            f"invalid gender {_show(gender)!r}; expected {' or '.join(map(repr, GENDERS))}",
        )
    raw_year = values["birth_year"]
    year = int(raw_year) if _DIGITS.fullmatch(raw_year) else None
    if raw_year and (year is None or not MIN_BIRTH_YEAR <= year <= max_year):
        fail(
            "birth_year",
            f"invalid birth year {_show(raw_year)!r}; expected a whole number from "
            f"{MIN_BIRTH_YEAR} to {max_year}",
        )
    field = fields.get(values["field"])
    if values["field"] and field is None:
        fail(
            "field",
            f"unknown field {_show(values['field'])!r}; "
            f"expected one of: {'; '.join(fields.values())}",
        )
    if bad or year is None or field is None:
        return None
    return CandidateRow(
        code=code,
        full_name=values["full_name"],
        gender=gender,
        birth_year=year,
        position=values["position"],
        workplace=values["workplace"],
        nominated_by=values["nominated_by"],
        field=field,
        summary=values["summary"],
        achievements=values["achievements"],
    )


def _check_codes(rows: list[tuple[int, str]], errors: _Errors) -> None:
    """Report every line of a code used more than once (case-insensitively)."""
    lines_by_code: dict[str, list[int]] = {}
    for line, code in rows:
        lines_by_code.setdefault(code.casefold(), []).append(line)
    for line, code in rows:
        others = [str(other) for other in lines_by_code[code.casefold()] if other != line]
        if others:
            listed = ", ".join(others[:5])
            if len(others) > 5:
                listed += f" and {len(others) - 5} more"
            plural = "s" if len(others) > 1 else ""
            errors.add(line, "code", f"duplicate code {code!r} (also on line{plural} {listed})")


def parse_shortlist(
    data: bytes | str,
    fields: Sequence[str],
    *,
    current_year: int | None = None,
    max_rows: int = 200,
    max_bytes: int = 5_000_000,
) -> list[CandidateRow]:
    """Parse a shortlist CSV into candidates, in file order, or reject the whole file.

    ``data`` is the file: ``bytes`` (decoded as UTF-8, BOM allowed) or an already decoded
    ``str``. ``fields`` are the round's field labels; a row's ``field`` must equal one of them
    exactly after stripping whitespace (both sides compared in NFC), and the label is returned
    as ``fields`` spells it. ``current_year`` (default: this year, local date) bounds
    ``birth_year`` to ``1900 .. current_year - 16``. ``max_rows`` caps data rows, ``max_bytes``
    caps the file size in UTF-8 bytes.

    Rules (brief sections 3, 5 and 7): header names the ten :data:`COLUMNS` once each, in any
    order (case-insensitive); every row has as many cells as the header; every cell except
    ``achievements`` is non-empty; ``code`` matches :data:`CODE_PATTERN` and is unique
    (case-insensitively); ``gender`` is one of :data:`GENDERS`; quotes are balanced. Lines that
    hold nothing but whitespace and commas are skipped. Cells are stripped and NFC-normalised.

    Raises :class:`ShortlistError` listing every error found (at most :data:`MAX_ERRORS`),
    each with the line where its record starts and the column. After a quoting error the rest
    of the file cannot be split into records, so only the errors before it are reported.
    """
    errors = _Errors()
    size = len(data) if isinstance(data, bytes) else len(data.encode("utf-8", "surrogatepass"))
    if size > max_bytes:
        errors.add(0, None, f"file too large: {size} bytes; at most {max_bytes} allowed")
        errors.reject()
    text = _decode(data, errors)
    if text is None:
        errors.reject()
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    # The header, max_rows data rows, and one more to tell that there are too many.
    records, problem = _tokenize(text, max_rows + 2)
    if not records:
        if problem is None:
            errors.add(0, None, "file is empty")
        else:  # a quoting error in the header
            errors.add(problem.line, None, problem.message)
        errors.reject()
    header_record, data_records = records[0], records[1:]
    header = _header(header_record, errors)
    if header is None:
        errors.reject()
    if problem is not None:
        column = header[problem.cell_index] if problem.cell_index < len(header) else None
        errors.add(problem.line, column, problem.message)
    elif not data_records:
        errors.add(0, None, "no data rows after the header")
    if len(data_records) > max_rows:
        errors.add(
            data_records[max_rows].line,
            None,
            f"too many rows: more than {max_rows} candidates",
        )
        data_records = data_records[:max_rows]

    labels = {_clean(label): label for label in fields}
    max_year = (current_year if current_year is not None else date.today().year) - MIN_AGE
    rows: list[CandidateRow] = []
    codes: list[tuple[int, str]] = []
    code_index = header.index("code")
    for record in data_records:
        row = _check_row(record, header, labels, max_year, errors)
        if row is not None:
            rows.append(row)
        if len(record.cells) == len(header):
            code = _clean(record.cells[code_index])
            if CODE_PATTERN.fullmatch(code):
                codes.append((record.line, code))
    _check_codes(codes, errors)
    errors.raise_if_any()
    return rows


def check_candidate(
    values: Mapping[str, str], fields: Sequence[str], *, current_year: int | None = None
) -> CandidateRow:
    """One candidate's :data:`COLUMNS` (text cells, e.g. from an edit form) checked by the
    rules of a shortlist row (see :func:`parse_shortlist`), stripped and NFC-normalised.
    Raises :class:`ShortlistError` whose errors have ``row`` 0 and the column at fault."""
    errors = _Errors()
    labels = {_clean(label): label for label in fields}
    max_year = (current_year if current_year is not None else date.today().year) - MIN_AGE
    record = _Record(0, [str(values.get(name, "")) for name in COLUMNS])
    row = _check_row(record, list(COLUMNS), labels, max_year, errors)
    errors.raise_if_any()
    assert row is not None  # no error means a row
    return row
