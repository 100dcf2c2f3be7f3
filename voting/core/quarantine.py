"""Quarantine rules: which ballots are set aside for review, and why (issue 10, section 4).

The rules are pure functions over ballot rows (:class:`BallotRow`: ballot id, cast time,
when the credential used was issued, the client's network prefix, a hash of the User-Agent,
the choices). Each has a reason code, thresholds with defaults, a Vietnamese text for the
public rules page (thresholds filled in) and an English description. They run over Postgres
(never on the hot path; see :mod:`voting.services.quarantine`). A flagged ballot is kept;
it is left out of the final tally unless the committee decides to count its reason group.

Rule order (one reason per ballot: the first rule that flags it), most specific first so
that a reason group holds one kind of ballot and can be counted or voided as a whole:

1. ``credential_farm``: at least ``farm_min_ballots`` ballots from one network within
   ``farm_window_minutes``, from at most ``farm_max_agents`` distinct User-Agents, arriving
   at near-even intervals: the coefficient of variation (population standard deviation
   divided by the mean) of the gaps between consecutive cast times is at most
   ``farm_max_cv``. People arrive at random (Poisson: CV about 1); a script on a timer does
   not (CV near 0). Cast times are used (millisecond resolution) rather than credential
   times (1 s resolution, too coarse for the gaps of a fast farm). A row without an agent
   but with ``credential_at`` had no User-Agent header (the persister stores ``""`` as
   NULL): it counts as the agent ``""``; rows without either (ballots from before these
   columns) are never flagged by this rule.
2. ``fast_redeem``: the ballot was cast less than ``fast_redeem_seconds`` after its
   credential was issued. ``credential_at`` has 1 s resolution (truncated), so the measured
   delay is at least the true one: a ballot whose true delay is ``S`` seconds or more is never
   flagged. Rows without ``credential_at`` are never flagged. Default: 1 s for rounds whose
   voters type a code or a one-time password (then the page still needs two clicks, send
   and confirm, after the credential arrives); **off (0) in device mode**, where the page
   solves the proof of work in the background while the voter reads and sends a ballot
   confirmed meanwhile the moment the credential arrives: honest delays there are near 0.
3. ``identical_lists``: at least ``identical_min_ballots`` ballots with the same choice list
   (as a set) from one network within ``identical_window_minutes``. Lists of fewer than
   ``identical_min_choices`` choices are not compared: many honest voters pick just their
   one or two favourites.
4. ``network_share``: a network casting far above its honest share: at least
   ``share_min_ballots`` ballots from one network within ``share_window_minutes`` AND at
   least ``share_min_percent`` % of all the round's ballots in those minutes.

Windows: for each ballot of a network (of a network and list, for rule 3), the window is the
``W`` minutes from its cast time ``[t, t + W]``; when a window meets the rule, every ballot
of the network in it is flagged. So whether a ballot is flagged depends only on ballots cast
within :func:`radius` of it: a pass over a time range decides exactly as a pass over the
whole round for the ballots at least ``radius`` inside the range (what the periodic pass
relies on). Times are compared as integer microseconds: deterministic.

Networks are the stored ``ip_prefix`` (IPv4 /24, IPv6 /64 by default); rows without one
(purged, or from before) and the shared ``"unknown"`` prefix are never flagged by the network
rules (1, 3, 4).

Why these defaults, for a provincial vote of 10k-100k voters over days, where most voters
are on mobile carriers whose NAT puts thousands of unrelated people behind a few IPv4 /24s:

- ``network_share`` 150 ballots in 10 minutes AND 50 % of the round's ballots then. A
  carrier /24 may honestly carry 20-30 % of a province's ballots all day; at a peak of a
  few thousand ballots an hour it passes 150 in 10 minutes but stays far from half of all
  ballots, so it is not flagged. A script flooding from one network at a quiet hour is. An
  office of a few hundred people voting at once while the province is quiet may be: that
  is what review (count the group) is for.
- ``identical_lists`` 10 identical lists of at least 3 choices from one network in 10
  minutes: with 28 candidates and up to 16 choices, independent voters almost never repeat
  a list of 3 or more; ten in ten minutes behind one network means a copied slate.
- ``credential_farm`` 30 ballots in 30 minutes from at most 2 User-Agents with CV <= 0.25:
  random arrivals of 30 people give a CV below 0.25 with negligible probability (about 4
  standard errors below 1), and 30 random phones share at most 2 User-Agent strings rarely.
- ``fast_redeem`` see rule 2.

A threshold of 0 for ``*_min_ballots`` or ``fast_redeem_seconds`` turns its rule off.
Thresholds are a round's setting (``rounds.detection``, only what differs from the
defaults; ``{}`` = the defaults), checked by :func:`check_detection` and fixed when the round
opens.
"""

from __future__ import annotations

import bisect
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple
from uuid import UUID

import msgspec

from voting.core.errors import Invalid

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)
_MINUTE_US = 60_000_000
#: prefixes that are not a network (see voting.http.client_ip.ip_prefix)
_NOT_A_NETWORK = frozenset({"", "unknown"})


class BallotRow(NamedTuple):
    """What the rules read of one ballot. ``cast_at``/``credential_at``: aware datetimes;
    ``ip_prefix``: e.g. ``203.0.113.0/24``; ``agent``: 16 hex of SHA-256(User-Agent), ``""``
    without one; ``choices``: candidate ids."""

    ballot_id: UUID
    cast_at: datetime
    credential_at: datetime | None
    ip_prefix: str | None
    agent: str | None
    choices: Sequence[int]


@dataclass(frozen=True)
class Threshold:
    """One setting of the rules: its name (key in ``rounds.detection``), the rule it
    belongs to, its type and bounds, and its Vietnamese label (console form)."""

    name: str
    rule: str
    kind: type
    low: float
    high: float
    label: str
    #: 0 is allowed (turns the rule off) although below ``low``
    zero_off: bool = False


THRESHOLDS: tuple[Threshold, ...] = (
    Threshold("farm_min_ballots", "credential_farm", int, 2, 1_000_000, "Số phiếu tối thiểu", True),
    Threshold("farm_window_minutes", "credential_farm", int, 1, 1440, "Trong khoảng (phút)"),
    Threshold(
        "farm_max_agents", "credential_farm", int, 1, 1000, "Số trình duyệt khác nhau tối đa"
    ),
    Threshold(
        "farm_max_cv", "credential_farm", float, 0, 1, "Độ đều tối đa (hệ số biến thiên, 0-1)"
    ),
    Threshold("fast_redeem_seconds", "fast_redeem", int, 1, 600, "Gửi phiếu sớm hơn (giây)", True),
    Threshold(
        "identical_min_ballots", "identical_lists", int, 2, 1_000_000, "Số phiếu tối thiểu", True
    ),
    Threshold("identical_window_minutes", "identical_lists", int, 1, 1440, "Trong khoảng (phút)"),
    Threshold(
        "identical_min_choices", "identical_lists", int, 1, 200, "Chỉ xét danh sách có từ (người)"
    ),
    Threshold("share_min_ballots", "network_share", int, 2, 1_000_000, "Số phiếu tối thiểu", True),
    Threshold("share_window_minutes", "network_share", int, 1, 1440, "Trong khoảng (phút)"),
    Threshold("share_min_percent", "network_share", int, 1, 100, "Tỷ lệ tối thiểu (%)"),
)
_BY_NAME = {t.name: t for t in THRESHOLDS}

#: The defaults (see the module for why); ``fast_redeem_seconds`` depends on the identity
#: mode (:func:`defaults`).
DEFAULTS: dict[str, int | float] = {
    "farm_min_ballots": 30,
    "farm_window_minutes": 30,
    "farm_max_agents": 2,
    "farm_max_cv": 0.25,
    "fast_redeem_seconds": 1,
    "identical_min_ballots": 10,
    "identical_window_minutes": 10,
    "identical_min_choices": 3,
    "share_min_ballots": 150,
    "share_window_minutes": 10,
    "share_min_percent": 50,
}


def defaults(identity_mode: str) -> dict[str, int | float]:
    """The default thresholds for a round of ``identity_mode``: :data:`DEFAULTS`, with
    ``fast_redeem`` off (0) in ``device`` mode (see the module)."""
    out = dict(DEFAULTS)
    if identity_mode == "device":
        out["fast_redeem_seconds"] = 0
    return out


def _invalid(name: str, message: str) -> Invalid:
    return Invalid("invalid_round", message, details={"field": f"detection.{name}"})


def check_detection(raw: Any) -> dict[str, int | float]:
    """``raw`` (a round's ``detection``: threshold name → number, only the ones that differ
    from the defaults) checked and normalised (ints as int, ``farm_max_cv`` as float).

    Raises :class:`Invalid` ``invalid_round`` whose ``field`` is ``detection.<name>`` for an
    unknown name or a value of the wrong type or out of its bounds (``detection`` when
    ``raw`` is not an object)."""
    if not isinstance(raw, Mapping):
        raise Invalid(
            "invalid_round", "detection must be an object", details={"field": "detection"}
        )
    out: dict[str, int | float] = {}
    for name, value in raw.items():
        t = _BY_NAME.get(name)
        if t is None:
            raise _invalid(str(name), f"unknown detection threshold {name!r}")
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _invalid(name, f"{name} must be a number")
        if t.kind is int:
            if isinstance(value, float) and not value.is_integer():
                raise _invalid(name, f"{name} must be a whole number")
            value = int(value)
        else:
            value = float(value)
        if not (t.low <= value <= t.high or (t.zero_off and value == 0)):
            bounds = f"{t.low:g} to {t.high:g}" + (" (or 0: rule off)" if t.zero_off else "")
            raise _invalid(name, f"{name} must be from {bounds}")
        out[name] = value
    return out


def thresholds(detection: Mapping[str, Any], identity_mode: str) -> dict[str, int | float]:
    """Every threshold of a round: its ``detection`` (checked) over the :func:`defaults` of
    its ``identity_mode``. This is what the rules use and what the frozen rules hash."""
    return {**defaults(identity_mode), **check_detection(detection)}


def radius(th: Mapping[str, int | float]) -> timedelta:
    """How far in time the rules look around a ballot: the longest window."""
    return timedelta(
        minutes=max(
            int(th["farm_window_minutes"]),
            int(th["identical_window_minutes"]),
            int(th["share_window_minutes"]),
        )
    )


def _network(row: BallotRow) -> str | None:
    prefix = row.ip_prefix
    return None if prefix is None or prefix in _NOT_A_NETWORK else prefix


class Ordered(list[BallotRow]):
    """Ballot rows by cast time then ballot id (the one order of every pass), prepared once
    for all the rules of :func:`classify`: ``timed`` pairs each row with its cast time in
    µs, :meth:`by_network` groups those pairs by network (built on first use). Rows that come
    already in that order (``ORDER BY cast_at, ballot_id``) are only checked, not sorted."""

    def __init__(self, rows: Iterable[BallotRow]) -> None:
        timed = [((r.cast_at - _EPOCH) // _US, r) for r in rows]
        # sorting compares (µs, ballot id) pairs; an ordered input costs one linear check
        if any(
            a[0] > b[0] or (a[0] == b[0] and a[1].ballot_id > b[1].ballot_id)
            for a, b in zip(timed, timed[1:], strict=False)
        ):
            timed.sort(key=lambda x: (x[0], x[1].ballot_id))
        super().__init__(r for _, r in timed)
        self.timed = timed
        self._by_network: dict[str, list[tuple[int, BallotRow]]] | None = None

    def by_network(self) -> dict[str, list[tuple[int, BallotRow]]]:
        """``{network: [(µs, row), ...]}`` in order; rows with no network left out."""
        if self._by_network is None:
            self._by_network = _groups(self.timed, _network)
        return self._by_network


def _prepared(rows: Iterable[BallotRow]) -> Ordered:
    return rows if isinstance(rows, Ordered) else Ordered(rows)


def _groups(
    timed: Sequence[tuple[int, BallotRow]], key: Callable[[BallotRow], Any]
) -> dict[Any, list[tuple[int, BallotRow]]]:
    out: dict[Any, list[tuple[int, BallotRow]]] = defaultdict(list)
    for t, row in timed:
        k = key(row)
        if k is not None:
            out[k].append((t, row))
    return out


def _flag_windows(
    seq: Sequence[tuple[int, BallotRow]],
    window_us: int,
    meets: Callable[[int, int], bool],
    flagged: set[UUID],
) -> None:
    """For each ``i``, the window ``seq[i..k]`` of times in ``[t_i, t_i + window]``; when
    ``meets(i, k)``, add every ballot of it to ``flagged``."""
    times = [t for t, _ in seq]
    reach = -1
    for i, t in enumerate(times):
        k = bisect.bisect_right(times, t + window_us) - 1
        if meets(i, k):
            for j in range(max(i, reach + 1), k + 1):
                flagged.add(seq[j][1].ballot_id)
            reach = max(reach, k)


def network_share(rows: Iterable[BallotRow], th: Mapping[str, int | float]) -> set[UUID]:
    """Ballots of a network that cast at least ``share_min_ballots`` ballots and at least
    ``share_min_percent`` % of all ballots within ``share_window_minutes`` (see the module)."""
    need = int(th["share_min_ballots"])
    if need == 0:
        return set()
    percent = int(th["share_min_percent"])
    window = int(th["share_window_minutes"]) * _MINUTE_US
    prepared = _prepared(rows)
    every = [t for t, _ in prepared.timed]
    flagged: set[UUID] = set()
    for seq in prepared.by_network().values():
        if len(seq) < need:
            continue

        def meets(i: int, k: int, seq: Sequence[tuple[int, BallotRow]] = seq) -> bool:
            n = k - i + 1
            if n < need:
                return False
            start = seq[i][0]
            total = bisect.bisect_right(every, start + window) - bisect.bisect_left(every, start)
            return n * 100 >= percent * total

        _flag_windows(seq, window, meets, flagged)
    return flagged


def _list_key(min_choices: int) -> Callable[[BallotRow], tuple[int, ...] | None]:
    def key(row: BallotRow) -> tuple[int, ...] | None:
        choices = tuple(sorted(set(row.choices)))
        return None if len(choices) < min_choices else choices

    return key


def identical_lists(rows: Iterable[BallotRow], th: Mapping[str, int | float]) -> set[UUID]:
    """Ballots with one choice list (as a set, at least ``identical_min_choices`` long) cast
    at least ``identical_min_ballots`` times from one network within
    ``identical_window_minutes``."""
    need = int(th["identical_min_ballots"])
    if need == 0:
        return set()
    window = int(th["identical_window_minutes"]) * _MINUTE_US
    flagged: set[UUID] = set()
    key = _list_key(int(th["identical_min_choices"]))
    for network in _prepared(rows).by_network().values():
        if len(network) < need:
            continue
        for seq in _groups(network, key).values():
            if len(seq) >= need:
                _flag_windows(seq, window, lambda i, k: k - i + 1 >= need, flagged)
    return flagged


def fast_redeem(rows: Iterable[BallotRow], th: Mapping[str, int | float]) -> set[UUID]:
    """Ballots cast less than ``fast_redeem_seconds`` after their credential was issued
    (``cast_at - credential_at``; rows without ``credential_at`` never)."""
    seconds = int(th["fast_redeem_seconds"])
    if seconds == 0:
        return set()
    limit = timedelta(seconds=seconds)
    return {
        r.ballot_id
        for r in rows
        if r.credential_at is not None and r.cast_at - r.credential_at < limit
    }


def evenness(times_us: Sequence[int]) -> float:
    """The coefficient of variation of the gaps between consecutive ``times_us`` (sorted):
    population standard deviation / mean; 0 when all gaps are 0; needs 2 times at least."""
    gaps = [b - a for a, b in zip(times_us, times_us[1:], strict=False)]
    if not gaps:
        raise ValueError("evenness needs two times at least")
    total = sum(gaps)
    if total == 0:
        return 0.0
    squares = sum(g * g for g in gaps)
    n = len(gaps)
    return float(max(0, n * squares - total * total) ** 0.5 / total)


def credential_farm(rows: Iterable[BallotRow], th: Mapping[str, int | float]) -> set[UUID]:
    """Ballots of a network that cast at least ``farm_min_ballots`` within
    ``farm_window_minutes`` from at most ``farm_max_agents`` User-Agents with the gaps'
    coefficient of variation at most ``farm_max_cv`` (see the module; rows without an
    agent never)."""
    need = int(th["farm_min_ballots"])
    if need == 0:
        return set()
    window = int(th["farm_window_minutes"]) * _MINUTE_US
    max_agents = int(th["farm_max_agents"])
    max_cv = float(th["farm_max_cv"])
    flagged: set[UUID] = set()
    for network in _prepared(rows).by_network().values():
        if len(network) < need:
            continue
        seq = [(t, r) for t, r in network if r.agent is not None or r.credential_at is not None]
        if len(seq) < need:
            continue
        times = [t for t, _ in seq]
        agents = [r.agent or "" for _, r in seq]
        # sliding sums over the window seq[i..k] (exact integers: deterministic)
        count: Counter[str | None] = Counter()
        gap_sum = gap_squares = 0
        k = -1
        reach = -1
        for i, start in enumerate(times):
            while k + 1 < len(times) and times[k + 1] <= start + window:
                k += 1
                count[agents[k]] += 1
                if k > i:
                    g = times[k] - times[k - 1]
                    gap_sum += g
                    gap_squares += g * g
            n = k - i + 1
            if n >= need and len(count) <= max_agents:
                gaps = n - 1
                spread = max(0, gaps * gap_squares - gap_sum * gap_sum)
                if gap_sum == 0 or spread <= (max_cv * gap_sum) ** 2:
                    for j in range(max(i, reach + 1), k + 1):
                        flagged.add(seq[j][1].ballot_id)
                    reach = max(reach, k)
            # seq[i] leaves the window
            count[agents[i]] -= 1
            if count[agents[i]] == 0:
                del count[agents[i]]
            if k > i:  # else the window is now empty, its sums already 0
                g = times[i + 1] - times[i]
                gap_sum -= g
                gap_squares -= g * g
    return flagged


@dataclass(frozen=True)
class Rule:
    """A detection rule: ``code`` (the reason stored with a ballot), the function that
    flags, the Vietnamese public text (a template over the thresholds), its short
    Vietnamese name and an English description."""

    code: str
    flag: Callable[[Iterable[BallotRow], Mapping[str, int | float]], set[UUID]]
    name: str
    text: str
    description: str
    switch: str

    def rule_text(self, th: Mapping[str, int | float]) -> str:
        """The public Vietnamese text with the thresholds filled in (or "off")."""
        if int(th[self.switch]) == 0:
            return f"{self.name}: không áp dụng trong đợt này."
        values = {k: _vi_number(v) for k, v in th.items()}
        return f"{self.name}: " + self.text.format(**values)


def _vi_number(value: int | float) -> str:
    if isinstance(value, float) and not value.is_integer():
        return f"{value:g}".replace(".", ",")
    return f"{int(value):,}".replace(",", ".")


RULES: tuple[Rule, ...] = (
    Rule(
        "credential_farm",
        credential_farm,
        "Phiếu gửi tự động hàng loạt",
        "từ {farm_min_ballots} phiếu trở lên gửi từ cùng một mạng trong {farm_window_minutes} "
        "phút, qua không quá {farm_max_agents} loại trình duyệt, cách nhau đều đặn bất "
        "thường (hệ số biến thiên của khoảng cách giữa các phiếu không quá {farm_max_cv}; "
        "người thật gửi phiếu vào những lúc ngẫu nhiên, hệ số này khoảng 1).",
        "At least farm_min_ballots ballots from one network within farm_window_minutes, from "
        "at most farm_max_agents User-Agents, with the coefficient of variation of the gaps "
        "between cast times at most farm_max_cv.",
        "farm_min_ballots",
    ),
    Rule(
        "fast_redeem",
        fast_redeem,
        "Gửi phiếu quá nhanh",
        "phiếu được gửi chưa đầy {fast_redeem_seconds} giây sau khi cấp mã xác thực, nhanh "
        "hơn thời gian một người cần để bấm gửi và xác nhận phiếu.",
        "Cast less than fast_redeem_seconds after its credential was issued (credential time "
        "at 1 s resolution, truncated: never flags a true delay of that or more).",
        "fast_redeem_seconds",
    ),
    Rule(
        "identical_lists",
        identical_lists,
        "Nhiều phiếu giống hệt nhau",
        "từ {identical_min_ballots} phiếu trở lên có cùng một danh sách lựa chọn (danh sách "
        "từ {identical_min_choices} người trở lên) gửi từ cùng một mạng trong "
        "{identical_window_minutes} phút.",
        "At least identical_min_ballots ballots with the same choice list (as a set, at least "
        "identical_min_choices long) from one network within identical_window_minutes.",
        "identical_min_ballots",
    ),
    Rule(
        "network_share",
        network_share,
        "Một mạng gửi phiếu vượt xa mức bình thường",
        "trong {share_window_minutes} phút, một mạng gửi từ {share_min_ballots} phiếu trở lên "
        "và chiếm từ {share_min_percent}% tổng số phiếu của cả đợt trong khoảng thời gian đó.",
        "At least share_min_ballots ballots from one network within share_window_minutes AND "
        "at least share_min_percent % of the round's ballots in those minutes.",
        "share_min_ballots",
    ),
)
REASONS: tuple[str, ...] = tuple(r.code for r in RULES)
RULE_BY_CODE = {r.code: r for r in RULES}

#: What the public rules page says of quarantine in general (before the rules).
PREAMBLE = (
    "Các phiếu có dấu hiệu bất thường theo những quy tắc dưới đây (định sẵn trước khi mở "
    "đợt bình chọn) được đánh dấu và để riêng, không bị xóa và không tính vào kết quả cho "
    "đến khi Ban Thường vụ xem xét từng nhóm và quyết định tính hay loại, có ghi rõ lý do. "
    'Số phiếu của từng nhóm được công bố cùng kết quả. "Cùng một mạng" là cùng một dải '
    "địa chỉ IP."
)


def rule_texts(th: Mapping[str, int | float]) -> list[tuple[str, str]]:
    """``(code, Vietnamese text)`` of every rule in rule order, for the thresholds ``th``."""
    return [(r.code, r.rule_text(th)) for r in RULES]


def classify(rows: Iterable[BallotRow], th: Mapping[str, int | float]) -> dict[UUID, str]:
    """Ballot id → reason of every ballot some rule flags: the first rule in rule order
    (:data:`RULES`). ``th``: every threshold (:func:`thresholds`). Deterministic."""
    prepared = _prepared(rows)
    out: dict[UUID, str] = {}
    for rule in RULES:
        for ballot_id in rule.flag(prepared, th):
            out.setdefault(ballot_id, rule.code)
    return out


class QuarantineLine(msgspec.Struct):
    """One reason group of a round's results: the rule's public ``text``, ballots
    ``flagged``, and of them ``counted`` after review, ``voided`` or ``pending`` review (a
    group is decided as a whole); ``decision`` (``count``, ``void`` or None) and the
    committee's written ``note``."""

    reason: str
    text: str
    flagged: int
    counted: int
    voided: int
    pending: int
    decision: str | None = None
    note: str | None = None


class QuarantineSummary(msgspec.Struct):
    """The quarantine of a round as results show it: one line per rule in rule order (those
    that flagged nothing too), ballots ``flagged`` in all and ``set_aside`` (pending or
    voided: outside the official tally). ``excluded``: the tally of these results already
    leaves the set-aside ballots out (final results); live results come from the live tally,
    which counts every ballot. ``preamble``: what quarantine means, in Vietnamese."""

    reasons: list[QuarantineLine]
    flagged: int
    set_aside: int
    excluded: bool
    preamble: str = PREAMBLE


def summarise(
    flagged: Mapping[str, int],
    decided: Mapping[str, tuple[str, str]],
    th: Mapping[str, int | float],
    *,
    excluded: bool,
) -> QuarantineSummary:
    """The :class:`QuarantineSummary` of ``flagged`` (reason → ballots) and ``decided``
    (reason → ``(decision, note)``) under the thresholds ``th``. Reasons that are not rules
    (none are written) would be listed after the rules with their code as text."""
    lines = []
    codes = [*REASONS, *sorted(set(flagged) - set(REASONS))]
    for code in codes:
        n = int(flagged.get(code, 0))
        decision, note = decided.get(code, (None, None))
        rule = RULE_BY_CODE.get(code)
        lines.append(
            QuarantineLine(
                reason=code,
                text=rule.rule_text(th) if rule is not None else code,
                flagged=n,
                counted=n if decision == "count" else 0,
                voided=n if decision == "void" else 0,
                pending=n if decision is None else 0,
                decision=decision,
                note=note,
            )
        )
    total = sum(line.flagged for line in lines)
    return QuarantineSummary(
        reasons=lines,
        flagged=total,
        set_aside=sum(line.voided + line.pending for line in lines),
        excluded=excluded,
    )


class RuleOut(msgspec.Struct):
    """One detection rule as the public rules page shows it: its reason code, Vietnamese
    name, the text with the round's thresholds, and whether it applies in this round."""

    reason: str
    name: str
    text: str
    active: bool


class DetectionOut(msgspec.Struct):
    """A round's detection rules for its public rules page: what quarantine means
    (``preamble``) and the rules in rule order."""

    preamble: str
    rules: list[RuleOut]


def public_rules(th: Mapping[str, int | float]) -> DetectionOut:
    """The :class:`DetectionOut` of the thresholds ``th`` (:func:`thresholds`)."""
    return DetectionOut(
        preamble=PREAMBLE,
        rules=[RuleOut(r.code, r.name, r.rule_text(th), int(th[r.switch]) != 0) for r in RULES],
    )
