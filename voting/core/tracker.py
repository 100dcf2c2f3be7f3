"""Ballot trackers: what a voter keeps to check that their ballot was counted.

A tracker is 13 symbols of Crockford base32 (:mod:`voting.core.crockford`): 12 random symbols
(60 bits from ``secrets``) and a check symbol. It is drawn for each ballot on the hot path and
says nothing about the choices or the voter; it is short enough to read aloud or copy
(``ABCD-EFGH-JKMN-P`` on pages; the canonical form has no hyphens). The tracker is in the
ballot's record (``ballots.tracker``) and in the commitment of its epoch (the trackers'
Merkle root), so a voter can find it in the audit package; its choices are listed apart,
sorted, and cannot be linked back to it.

Not unique by construction: two ballots of a million share a tracker with probability about
4·10⁻⁷; both are then found by a check, and both are in the commitments.
"""

from __future__ import annotations

from voting.core import crockford

DATA_SYMBOLS = 12
LENGTH = DATA_SYMBOLS + 1  # characters of the canonical form


class TrackerInvalid(ValueError):
    """Not a tracker: wrong length, a symbol outside the alphabet, or a wrong check symbol."""


def new_tracker() -> str:
    """A fresh random tracker in canonical form (13 symbols), e.g. ``7K3QZ9M2PXC4N``."""
    return crockford.draw(DATA_SYMBOLS)


def normalise(raw: str) -> str:
    """The canonical form of a typed tracker (forgiving: case, ``O``/``I``/``L``, hyphens and
    spaces). Raises :class:`TrackerInvalid`."""
    try:
        return crockford.decode(raw, DATA_SYMBOLS)
    except crockford.SymbolsInvalid as exc:
        raise TrackerInvalid(f"not a tracker: {exc}") from None


def display(tracker: str) -> str:
    """``7K3QZ9M2PXC4N`` → ``7K3Q-Z9M2-PXC4-N`` (for pages and printed receipts)."""
    return crockford.group(tracker)
