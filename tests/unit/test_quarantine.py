"""The quarantine rules (voting.core.quarantine): each flags what it should and not what it
should not, one reason per ballot, thresholds checked, and a pass over a time range decides
like a pass over the whole round."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from voting.core import quarantine as q
from voting.core.errors import Invalid

T0 = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
CANDIDATES = list(range(1, 29))


def ballot(
    at: float,
    net: str | None = "203.0.113.0/24",
    agent: str | None = "a" * 16,
    choices: list[int] | None = None,
    delay: float | None = 60.0,
) -> q.BallotRow:
    """A ballot cast ``at`` seconds after T0, its credential issued ``delay`` seconds before
    (truncated to the second, as the credential's timestamp is)."""
    cast = T0 + timedelta(seconds=at)
    cred = None
    if delay is not None:
        cred = (cast - timedelta(seconds=delay)).replace(microsecond=0)
    return q.BallotRow(uuid.uuid4(), cast, cred, net, agent, choices or [1, 2, 3])


def honest_crowd(rng: random.Random, minutes: int, per_minute: float) -> list[q.BallotRow]:
    """A province at a busy hour: Poisson arrivals, 30 % behind one carrier NAT /24, the rest
    over 300 other networks; random lists of 1 to 16 of 28; agents from 500 phone models;
    credentials issued 5 s to 10 min before."""
    rows = []
    t = 0.0
    while True:
        t += rng.expovariate(per_minute / 60)
        if t > minutes * 60:
            return rows
        net = "100.64.7.0/24" if rng.random() < 0.3 else f"10.{rng.randrange(300)}.0.0/24"
        choices = rng.sample(CANDIDATES, rng.randint(1, 16))
        agent = f"{rng.randrange(500):016x}"
        rows.append(ballot(t, net, agent, choices, delay=rng.uniform(5, 600)))


DEVICE = q.thresholds({}, "device")
CODE = q.thresholds({}, "code")


def test_many_voters_behind_one_carrier_nat_at_a_normal_pace_are_not_flagged():
    rng = random.Random(7)
    rows = honest_crowd(rng, minutes=120, per_minute=60)  # 7 200 ballots in two hours
    nat = [r for r in rows if r.ip_prefix == "100.64.7.0/24"]
    assert len(nat) > 2000  # the NAT passes 150 ballots in 10 minutes...
    assert q.classify(rows, DEVICE) == {}  # ...but never half of all ballots
    assert q.classify(rows, CODE) == {}


def test_a_flood_from_one_network_at_a_quiet_hour_is_flagged_network_share():
    rng = random.Random(3)
    quiet = honest_crowd(rng, minutes=60, per_minute=5)
    flood = [
        ballot(
            1200 + i * 2.5 + rng.random(),
            "198.51.100.0/24",
            f"{i % 50:016x}",
            rng.sample(CANDIDATES, 5),
        )
        for i in range(200)
    ]
    found = q.classify(quiet + flood, DEVICE)
    assert set(found) == {b.ballot_id for b in flood}
    assert set(found.values()) == {"network_share"}
    # the same flood spread over three hours (fewer than 150 in any 10 minutes) is not
    slow = [ballot(i * 54.0, "198.51.100.0/24", f"{i:016x}") for i in range(200)]
    assert q.network_share(quiet + slow, DEVICE) == set()
    # a busy network that stays under half of all ballots is not
    busy = honest_crowd(random.Random(4), minutes=60, per_minute=80)
    assert q.network_share(busy + flood, DEVICE) & {b.ballot_id for b in flood} == set()


def test_identical_lists_from_one_network_within_minutes():
    slate = [4, 8, 15, 16, 23]
    copied = [ballot(i * 30, "192.0.2.0/24", f"{i:016x}", slate) for i in range(10)]
    assert q.identical_lists(copied, DEVICE) == {b.ballot_id for b in copied}
    assert set(q.classify(copied, DEVICE).values()) == {"identical_lists"}
    # the order of the choices does not matter
    shuffled = [ballot(i * 30, "192.0.2.0/24", choices=slate[::-1]) for i in range(10)]
    assert len(q.identical_lists(shuffled, DEVICE)) == 10
    # nine are not enough; ten from ten networks are not one network; one-choice lists
    # are not compared; ten spread over an hour are not within minutes
    assert q.identical_lists(copied[:9], DEVICE) == set()
    spread_nets = [ballot(i * 30, f"192.0.{i}.0/24", choices=slate) for i in range(10)]
    assert q.identical_lists(spread_nets, DEVICE) == set()
    fans = [ballot(i * 30, "192.0.2.0/24", choices=[7]) for i in range(40)]
    assert q.identical_lists(fans, DEVICE) == set()
    slow = [ballot(i * 400, "192.0.2.0/24", choices=slate) for i in range(10)]
    assert q.identical_lists(slow, DEVICE) == set()
    # a network prefix that is not a network is never flagged
    unknown = [ballot(i * 30, "unknown", choices=slate) for i in range(10)]
    assert q.identical_lists(unknown, DEVICE) == set()


def test_fast_redeem_flags_ballots_cast_faster_than_a_person_can():
    fast = ballot(10.4, delay=0.2)  # measured delay < 1 s (credential time truncated)
    human = ballot(10.0, delay=1.0)  # measured exactly 1 s: not flagged
    slow = ballot(20.0, delay=30.0)
    unknown = ballot(30.0, delay=None)  # ballots without credential_at: never
    rows = [fast, human, slow, unknown]
    assert q.fast_redeem(rows, CODE) == {fast.ballot_id}
    assert q.classify(rows, CODE) == {fast.ballot_id: "fast_redeem"}
    # device mode: off by default (the page sends a ballot confirmed during the proof of
    # work the moment its credential arrives)
    assert DEVICE["fast_redeem_seconds"] == 0
    assert q.fast_redeem(rows, DEVICE) == set()
    # the round can turn it on
    on = q.thresholds({"fast_redeem_seconds": 5}, "device")
    assert q.fast_redeem(rows, on) == {fast.ballot_id, human.ballot_id}


def test_credential_farm_few_agents_and_even_timing():
    rng = random.Random(11)
    farm = [ballot(i * 20 + rng.uniform(-0.5, 0.5), "198.51.100.0/24", "f" * 16) for i in range(40)]
    assert q.credential_farm(farm, DEVICE) == {b.ballot_id for b in farm}
    assert set(q.classify(farm, DEVICE).values()) == {"credential_farm"}
    # the same timing from 40 different phones: not a farm
    phones = [b._replace(agent=f"{i:016x}") for i, b in enumerate(farm)]
    assert q.credential_farm(phones, DEVICE) == set()
    # one agent, random (Poisson) arrivals: not a farm
    t, office = 0.0, []
    for _ in range(40):
        t += rng.expovariate(1 / 20)
        office.append(ballot(t, "198.51.100.0/24", "f" * 16))
    assert q.credential_farm(office, DEVICE) == set()
    # fewer than 30: no; ballots from before agents were kept: never
    assert q.credential_farm(farm[:29], DEVICE) == set()
    old = [b._replace(agent=None, credential_at=None) for b in farm]
    assert q.credential_farm(old, DEVICE) == set()
    # without a User-Agent header (agent stored as NULL, credential time known): one agent
    no_header = [b._replace(agent=None) for b in farm]
    assert q.credential_farm(no_header, DEVICE) == {b.ballot_id for b in farm}
    # a farm is reported as a farm even when its ballots are also fast
    fast_farm = [b._replace(credential_at=b.cast_at.replace(microsecond=0)) for b in farm]
    assert set(q.classify(fast_farm, CODE).values()) == {"credential_farm"}


def test_evenness_is_the_coefficient_of_variation_of_the_gaps():
    assert q.evenness([0, 10, 20, 30]) == 0.0
    assert q.evenness([5, 5, 5]) == 0.0
    assert q.evenness([0, 10, 30]) == pytest.approx(1 / 3)  # gaps 10, 20: sd 5, mean 15
    with pytest.raises(ValueError):
        q.evenness([1])


def test_zero_turns_a_rule_off_and_the_text_says_so():
    th = q.thresholds({"share_min_ballots": 0, "identical_min_ballots": 0}, "code")
    flood = [ballot(i, "198.51.100.0/24", f"{i:016x}", [1, 2, 3]) for i in range(300)]
    assert q.network_share(flood, th) == set() and q.identical_lists(flood, th) == set()
    texts = dict(q.rule_texts(th))
    assert texts["network_share"].endswith("không áp dụng trong đợt này.")
    assert "150" not in texts["network_share"]
    assert "trong 10 phút" in dict(q.rule_texts(CODE))["network_share"]
    assert "0,25" in dict(q.rule_texts(CODE))["credential_farm"]


def test_thresholds_are_checked_with_the_field_named():
    assert q.check_detection({}) == {}
    assert q.check_detection({"share_min_percent": 60.0, "farm_max_cv": 0}) == {
        "share_min_percent": 60,
        "farm_max_cv": 0.0,
    }
    assert isinstance(q.check_detection({"share_min_percent": 60.0})["share_min_percent"], int)
    bad = [
        ({"nope": 1}, "detection.nope"),
        ({"share_min_percent": 0}, "detection.share_min_percent"),
        ({"share_min_percent": 101}, "detection.share_min_percent"),
        ({"share_window_minutes": 1.5}, "detection.share_window_minutes"),
        ({"share_min_ballots": 1}, "detection.share_min_ballots"),
        ({"farm_max_cv": 1.5}, "detection.farm_max_cv"),
        ({"farm_max_agents": True}, "detection.farm_max_agents"),
        ({"fast_redeem_seconds": "5"}, "detection.fast_redeem_seconds"),
        ([1, 2], "detection"),
    ]
    for raw, field in bad:
        with pytest.raises(Invalid) as err:
            q.check_detection(raw)
        assert err.value.code == "invalid_round" and err.value.details["field"] == field, raw
    assert q.thresholds({"share_min_ballots": 400}, "device")["share_min_ballots"] == 400
    assert q.radius(CODE) == timedelta(minutes=30)


def test_the_summary_counts_each_group_by_its_decision():
    s = q.summarise(
        {"network_share": 5, "fast_redeem": 2, "credential_farm": 1},
        {
            "network_share": ("count", "Một cơ quan bỏ phiếu tập trung"),
            "fast_redeem": ("void", "x"),
        },
        CODE,
        excluded=True,
    )
    by = {line.reason: line for line in s.reasons}
    assert [line.reason for line in s.reasons] == list(q.REASONS)
    assert (by["network_share"].counted, by["network_share"].pending) == (5, 0)
    assert (by["fast_redeem"].voided, by["fast_redeem"].counted) == (2, 0)
    assert by["credential_farm"].pending == 1 and by["identical_lists"].flagged == 0
    assert (s.flagged, s.set_aside) == (8, 3)
    assert by["network_share"].note == "Một cơ quan bỏ phiếu tập trung"


@st.composite
def traffic(draw: st.DrawFn) -> list[q.BallotRow]:
    """Ballots over an hour from a few networks with bursts, few agents and few lists, so
    that every rule fires somewhere."""
    rng = random.Random(draw(st.integers(0, 2**32)))
    rows = []
    for _ in range(draw(st.integers(1, 12))):  # bursts
        start = rng.uniform(0, 3600)
        net = rng.choice(["a/24", "b/24", "c/24", "unknown", None])
        gap = rng.choice([0.5, 5.0, 20.0])
        for i in range(rng.randint(5, 60)):
            rows.append(
                ballot(
                    start + i * gap + rng.uniform(0, gap / 10),
                    net,
                    rng.choice(["x" * 16, "y" * 16, None]),
                    rng.choice([[1, 2, 3], [4, 5, 6, 7], [9]]),
                    delay=rng.choice([0.3, 3.0, None]),
                )
            )
    return rows


SMALL = q.thresholds(
    {
        "share_min_ballots": 10,
        "share_min_percent": 40,
        "identical_min_ballots": 5,
        "farm_min_ballots": 8,
        "farm_max_cv": 0.3,
        "fast_redeem_seconds": 2,
    },
    "code",
)


@settings(max_examples=150, deadline=None)
@given(traffic(), st.integers(0, 3600), st.integers(60, 3600))
def test_a_pass_over_a_range_decides_as_the_whole_round_for_its_ballots(rows, start, length):
    """The periodic sweep's premise: for ballots in [since, until), classifying the ballots
    cast within the radius around that range gives the same reasons as classifying all."""
    whole = q.classify(rows, SMALL)
    since = T0 + timedelta(seconds=start)
    until = since + timedelta(seconds=length)
    reach = q.radius(SMALL)
    loaded = [r for r in rows if since - reach <= r.cast_at < until + reach]
    part = q.classify(loaded, SMALL)
    inside = {r.ballot_id for r in rows if since <= r.cast_at < until}
    assert {b: v for b, v in part.items() if b in inside} == {
        b: v for b, v in whole.items() if b in inside
    }


def test_ordered_rows_by_cast_time_then_id_and_classify_is_independent_of_input_order():
    rng = random.Random(11)
    rows = honest_crowd(rng, minutes=20, per_minute=30)
    flood = [ballot(600 + i * 0.5, "198.51.100.0/24", choices=[4, 5, 6]) for i in range(40)]
    tie = [ballot(900.0, "192.0.2.0/24") for _ in range(5)]  # one cast time: the id decides
    rows += flood + tie
    shuffled = rows[:]
    rng.shuffle(shuffled)
    ordered = q.Ordered(shuffled)
    keys = [(r.cast_at, r.ballot_id) for r in ordered]
    assert keys == sorted(keys)
    assert [r for _, r in ordered.timed] == list(ordered)
    epoch, us = datetime(1970, 1, 1, tzinfo=UTC), timedelta(microseconds=1)
    assert ordered.by_network()["198.51.100.0/24"] == [
        ((r.cast_at - epoch) // us, r) for r in flood
    ]
    found = q.classify(shuffled, DEVICE)
    assert found == q.classify(sorted(rows, key=lambda r: (r.cast_at, r.ballot_id)), DEVICE)
    assert {b for b in found} >= {r.ballot_id for r in flood}
