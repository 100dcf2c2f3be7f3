"""Douglas Crockford's base32 with his check symbol (https://www.crockford.com/base32.html).

Shared by voting codes (:mod:`voting.identity.codes`) and ballot trackers
(:mod:`voting.core.tracker`). Symbols are ``0-9 A-Z`` without ``I L O U``; the check symbol is
the value modulo 37 written in the alphabet extended by ``* ~ $ = U``. :func:`draw` redraws
until the check falls in the plain alphabet, so what is printed never shows the odd symbols
(:func:`decode` still accepts all 37). Reading is forgiving, as Crockford specifies: case is
ignored, ``O`` reads as ``0``, ``I`` and ``L`` as ``1``, hyphens and white space are skipped; a
mistyped symbol is caught by the check.
"""

from __future__ import annotations

import secrets

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
CHECK_ALPHABET = ALPHABET + "*~$=U"
_VALUES = {c: i for i, c in enumerate(CHECK_ALPHABET)}
_ALIASES = str.maketrans({"O": "0", "I": "1", "L": "1"})


class SymbolsInvalid(ValueError):
    """Not ``data_symbols`` symbols of the alphabet followed by a matching check symbol."""


def encode(value: int, length: int) -> str:
    """``value`` (0 <= value < 32**length) as exactly ``length`` symbols, most significant
    first."""
    out = []
    for _ in range(length):
        value, digit = divmod(value, 32)
        out.append(ALPHABET[digit])
    return "".join(reversed(out))


def draw(data_symbols: int) -> str:
    """A random value of ``5 * data_symbols`` bits (``secrets``) as its symbols plus the check
    symbol, drawn again until the check is a plain symbol; ``data_symbols + 1`` characters."""
    while True:
        value = secrets.randbits(5 * data_symbols)
        check = value % 37
        if check < 32:
            return encode(value, data_symbols) + CHECK_ALPHABET[check]


def group(text: str, size: int = 4) -> str:
    """``ABCDEFGHJKM`` → ``ABCD-EFGH-JKM``: groups of ``size`` for reading aloud."""
    return "-".join(text[i : i + size] for i in range(0, len(text), size))


def decode(raw: str, data_symbols: int) -> str:
    """The canonical form of typed symbols: upper case, separators dropped, aliases resolved.

    Raises :class:`SymbolsInvalid` (its message says which of length, symbol or check is
    wrong) unless it is ``data_symbols`` symbols plus the matching check symbol.
    """
    text = "".join(raw.split()).replace("-", "").upper().translate(_ALIASES)
    if len(text) != data_symbols + 1:
        raise SymbolsInvalid(f"expected {data_symbols + 1} characters, got {len(text)}")
    value = 0
    for c in text[:-1]:
        digit = _VALUES.get(c)
        if digit is None or digit >= 32:
            raise SymbolsInvalid(f"{c!r} is not a symbol of the alphabet")
        value = value * 32 + digit
    if _VALUES.get(text[-1]) != value % 37:
        raise SymbolsInvalid("the check symbol does not match (a typo?)")
    return text
