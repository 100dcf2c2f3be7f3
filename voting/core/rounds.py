"""Rounds and candidates as the domain sees them, and the rules a round's settings obey.

Status moves ``draft → open ⇄ paused → closed`` (BRIEF §3); :data:`TRANSITIONS` is that
machine. A round identifies its voters in one :data:`IdentityMode` and publishes results
``live`` or ``after_close``. :class:`Round` and :class:`Candidate` are what the record
(:mod:`voting.record.queries`) hands to the layers above: typed, frozen, no rows.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal, get_args

import msgspec

from voting.core.errors import Invalid

RoundStatus = Literal["draft", "open", "paused", "closed"]
#: How a round identifies its voters (see :mod:`voting.services.voters`).
IdentityMode = Literal["device", "code", "email", "phone"]
ResultsVisibility = Literal["live", "after_close"]
Action = Literal["open", "pause", "resume", "close"]
#: Who decides a tie across the cut-off (see :mod:`voting.core.ranking`), fixed at opening.
TieBreak = Literal["committee", "draw", "field_balance"]

ROUND_STATUSES: tuple[str, ...] = get_args(RoundStatus)
IDENTITY_MODES: tuple[str, ...] = get_args(IdentityMode)
RESULTS_VISIBILITIES: tuple[str, ...] = get_args(ResultsVisibility)
TIE_BREAKS: tuple[str, ...] = get_args(TieBreak)

#: action → (statuses it applies to, status it leads to)
TRANSITIONS: dict[str, tuple[tuple[str, ...], RoundStatus]] = {
    "open": (("draft",), "open"),
    "pause": (("open",), "paused"),
    "resume": (("paused",), "open"),
    "close": (("open", "paused"), "closed"),
}

#: The nine fields of the sample shortlist: the default ``fields`` of a new round.
DEFAULT_FIELDS: tuple[str, ...] = (
    "Xây dựng Đảng, đoàn thể",
    "Quản lý hành chính - nhà nước",
    "Văn hóa - văn nghệ, truyền thông",
    "Thể dục - thể thao",
    "Kinh doanh",
    "Lao động sản xuất",
    "Giáo dục",
    "Nghiên cứu khoa học",
    "Hoạt động xã hội",
)

#: Defaults of BRIEF §3.
DEFAULT_MIN_CHOICES = 1
DEFAULT_MAX_CHOICES = 16
DEFAULT_WINNERS = 16


class FinalTally(msgspec.Struct, frozen=True):
    """The count stored when a round became final: votes per candidate id, and ballots."""

    tally: dict[int, int]
    ballots: int


class RoundRecord(msgspec.Struct, frozen=True, kw_only=True):
    """A round's settings and history as recorded (what admins see of it). Times are aware
    datetimes (UTC); ``winners`` is the number of seats (N = 16 by default)."""

    id: int
    slug: str
    title: str
    description: str
    status: RoundStatus
    min_choices: int
    max_choices: int
    winners: int
    results_visibility: ResultsVisibility
    identity_mode: IdentityMode
    fields: list[str]
    opens_at: datetime | None
    closes_at: datetime | None
    created_at: datetime
    closed_at: datetime | None
    final_at: datetime | None
    #: when an admin made the final results official (after the committee's decision on a tie)
    official_at: datetime | None = None
    #: rules chosen in draft, frozen when the round opens (see voting.core.rules):
    #: who breaks a tie across the cut-off; at least this many winners per field (None: off);
    #: the quarantine rules' thresholds ({}: the defaults, see voting.core.quarantine)
    tie_break: TieBreak = "committee"
    field_minimum: int | None = None
    detection: dict[str, Any] = msgspec.field(default_factory=dict)
    #: SHA-256 (hex) of the frozen rules, set at opening; the draw's seed (secret until the
    #: round closes) and its published SHA-256
    rules_hash: str | None = None
    draw_seed: str | None = None
    draw_commitment: str | None = None


class Round(RoundRecord, frozen=True, kw_only=True):
    """One round of the record, with the count stored when it became final."""

    final_tally: FinalTally | None = None

    @property
    def published(self) -> bool:
        """Out of draft: public, and live in Redis."""
        return self.status != "draft"

    @property
    def final(self) -> bool:
        """Closed, every ballot persisted and the Postgres count equal to Redis's."""
        return self.final_at is not None and self.final_tally is not None

    def results_visible(self) -> bool:
        """Results are public when the visibility is ``live`` or the round is closed."""
        return self.results_visibility == "live" or self.status == "closed"


class Profile(msgspec.Struct, frozen=True, kw_only=True):
    """What a shortlist says of one person (the columns of the sample CSV but
    ``achievements``): ``code`` as voters see it, ``field`` one of the round's fields."""

    code: str
    full_name: str
    gender: str
    birth_year: int
    position: str
    workplace: str
    nominated_by: str
    field: str
    summary: str


class Candidate(Profile, frozen=True, kw_only=True):
    """One shortlisted profile of a round. ``has_photo``: a photo is stored, ``photo_version``
    names it (16 hex digits, None without one; see :mod:`voting.core.photos`);
    ``achievements`` is long text, shown in the single-candidate view."""

    id: int
    round_id: int
    achievements: str = ""
    has_photo: bool = False
    photo_version: str | None = None


def check_settings(values: dict[str, Any]) -> None:
    """Raise :class:`Invalid` ``invalid_round`` unless ``min_choices <= max_choices``,
    ``closes_at`` is after ``opens_at``, ``fields`` is a non-empty list of distinct
    labels and ``field_minimum`` (when set) is at most ``winners``; the error's ``field``
    names the setting to correct. ``values``: a round's
    settings (missing keys take the defaults)."""
    low = values.get("min_choices", DEFAULT_MIN_CHOICES)
    high = values.get("max_choices", DEFAULT_MAX_CHOICES)
    if low > high:
        raise Invalid(
            "invalid_round",
            "min_choices must not exceed max_choices",
            details={"field": "max_choices"},
        )
    o, c = values.get("opens_at"), values.get("closes_at")
    if o is not None and c is not None and c <= o:
        raise Invalid(
            "invalid_round", "closes_at must be after opens_at", details={"field": "closes_at"}
        )
    minimum = values.get("field_minimum")
    if minimum is not None and minimum > values.get("winners", DEFAULT_WINNERS):
        raise Invalid(
            "invalid_round",
            "field_minimum must not exceed winners",
            details={"field": "field_minimum"},
        )
    fields = values.get("fields")
    if fields is not None and (not fields or len(set(fields)) != len(fields)):
        raise Invalid(
            "invalid_round",
            "fields must be a non-empty list of distinct labels",
            details={"field": "fields"},
        )
