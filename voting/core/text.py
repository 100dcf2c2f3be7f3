"""What text the service accepts from people: printable, visible, NFC.

Names, titles and labels (one line) may hold no control character (C0, DEL, C1), no
invisible format character that can make two different strings look alike (zero-width
spaces and joiners U+200B-U+200F, bidi embeddings and overrides U+202A-U+202E and
U+2066-U+2069, word joiners U+2060-U+2064, the BOM U+FEFF) and no line or paragraph separator
(U+2028, U+2029). Long text (a description) may also hold tab, line feed and carriage return.
Accepted text is normalised to Unicode NFC (Unicode Standard Annex #15), so one name has one
spelling whatever keyboard typed it. The patterns are for ``msgspec.Meta(pattern=...)``: a
refused string is a ``malformed`` request.
"""

from __future__ import annotations

import unicodedata
from typing import Any

#: Character ranges (for a regex class) that are invisible or reorder text.
INVISIBLE = "\u200b-\u200f\u2028-\u202e\u2060-\u2064\u2066-\u2069\ufeff"
#: A one-line text: no control or invisible format character.
LINE_PATTERN = f"^[^\x00-\x1f\x7f-\x9f{INVISIBLE}]*$"
#: A multi-line text: as a line, but tab, line feed and carriage return are allowed.
TEXT_PATTERN = f"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f{INVISIBLE}]*$"
#: A user name: ASCII letters, digits, ``.``, ``_`` and ``-``.
USERNAME_PATTERN = r"^[A-Za-z0-9._-]+$"


def nfc(value: Any) -> Any:
    """``value`` with every string in it (itself, or in a list or a dict's values) in NFC."""
    if isinstance(value, str):
        return unicodedata.normalize("NFC", value)
    if isinstance(value, list):
        return [nfc(v) for v in value]
    if isinstance(value, dict):
        return {k: nfc(v) for k, v in value.items()}
    return value
