"""One-time voting codes (identity mode ``code``): Crockford base32 with a check character.

A code is 10 symbols of Douglas Crockford's base32 alphabet (``0-9 A-Z`` without ``I L O U``;
50 random bits) plus his check symbol: the value modulo 37 written in the alphabet extended by
``* ~ $ = U`` (https://www.crockford.com/base32.html). Codes are drawn until the check falls in
the plain alphabet, so printed codes never show the odd symbols (their checksum is still
Crockford's; :func:`normalise` accepts all 37). Shown as ``ABCD-EFGH-JKM``. Reading is
forgiving, as Crockford specifies: case is ignored, ``O`` reads as ``0``, ``I`` and ``L`` as
``1``, and hyphens and spaces are skipped; a mistyped symbol is caught by the check.

Only a keyed hash of each code is stored (``voter_codes.code_hash`` =
HMAC(identity key, ``"code-hash:" + code``)); the voter's identity is another keyed hash of the
code, so redeeming a code twice gives the same voter (and ``409 already_voted`` on a second
ballot): one code, one ballot.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from voting.core import crockford
from voting.identity.tokens import Signers
from voting.record import tables

DATA_SYMBOLS = 10


class CodeInvalid(ValueError):
    """Not a well-formed code (wrong length, a symbol outside the alphabet, or a check
    symbol that does not match: usually a typo)."""


def format_code(code: str) -> str:
    """``ABCDEFGHJKM`` → ``ABCD-EFGH-JKM`` (groups of four for reading aloud)."""
    return crockford.group(code)


def generate() -> str:
    """A new random code, normalised (11 symbols, no hyphens), e.g. ``7K3QZ9M2PXC``."""
    return crockford.draw(DATA_SYMBOLS)


def normalise(raw: str) -> str:
    """The canonical form of a typed code (upper case, no separators, aliases resolved).

    Raises :class:`CodeInvalid` when it is not 10 symbols plus a matching check symbol.
    """
    try:
        return crockford.decode(raw, DATA_SYMBOLS)
    except crockford.SymbolsInvalid as exc:
        raise CodeInvalid(f"not a voting code: {exc}") from None


def code_hash(signers: Signers, code: str) -> str:
    """The stored keyed hash of a normalised code (32 hex characters)."""
    return signers.voter_hash(f"code-hash:{code}")


@dataclass(frozen=True)
class CodeCounts:
    """How many codes a round has and how many were redeemed at least once."""

    issued: int
    redeemed: int


class RoundCodes:
    """Postgres access to ``voter_codes`` (the caller owns the transaction)."""

    def __init__(self, signers: Signers) -> None:
        self.signers = signers

    async def create(self, conn: AsyncConnection, round_id: int, count: int) -> list[str]:
        """Make ``count`` new codes for ``round_id``; store their hashes; return the codes
        (normalised). Collisions with existing codes (about 2**-50 each) are redrawn."""
        codes: dict[str, str] = {}
        while len(codes) < count:
            batch: dict[str, str] = {}
            while len(batch) < count - len(codes):
                code = generate()
                batch[code_hash(self.signers, code)] = code
            stmt = (
                pg_insert(tables.voter_codes)
                .values([{"code_hash": h, "round_id": round_id} for h in batch])
                .on_conflict_do_nothing()
                .returning(tables.voter_codes.c.code_hash)
            )
            for (h,) in await conn.execute(stmt):
                codes[h] = batch[h]
        return list(codes.values())

    async def find(self, conn: AsyncConnection, code: str) -> int | None:
        """The round of a normalised code, or None when no such code was issued."""
        vc = tables.voter_codes
        found = await conn.scalar(
            select(vc.c.round_id).where(vc.c.code_hash == code_hash(self.signers, code))
        )
        return None if found is None else int(found)

    async def mark_redeemed(self, conn: AsyncConnection, code: str) -> None:
        """Record the first redemption time of a code (later ones change nothing)."""
        vc = tables.voter_codes
        await conn.execute(
            update(vc)
            .where(vc.c.code_hash == code_hash(self.signers, code), vc.c.redeemed_at.is_(None))
            .values(redeemed_at=func.now())
        )

    async def counts(self, conn: AsyncConnection, round_id: int) -> CodeCounts:
        """Issued and redeemed codes of a round."""
        vc = tables.voter_codes
        row = (
            await conn.execute(
                select(func.count(), func.count(vc.c.redeemed_at)).where(vc.c.round_id == round_id)
            )
        ).one()
        return CodeCounts(issued=int(row[0]), redeemed=int(row[1]))


def csv_of(codes: Sequence[str], round_id: int, slug: str) -> bytes:
    """The codes as a UTF-8 CSV ``round_id,round_slug,code`` (codes formatted)."""
    lines = ["round_id,round_slug,code"]
    lines += [f"{round_id},{slug},{format_code(c)}" for c in codes]
    return ("\r\n".join(lines) + "\r\n").encode()
