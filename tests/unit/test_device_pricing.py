"""The price schedule of device credentials (voting.core.device), and the defaults against
the targets of issue 8: an office of 300 pays the base price; 8 cores for 24 hours on one
network buy fewer than 1,500 credentials."""

from __future__ import annotations

import math

import pytest

from voting.core.device import MAX_RANGE, SLACK, DevicePricing, solver_figure
from voting.settings import Settings, SettingsError

P = DevicePricing(base=1000, share=300, aggregate_share=3000, doubling=64)


def test_within_both_shares_the_price_is_the_base():
    assert P.excess(0, 0) == 0
    assert P.excess(299, 2999) == 0  # the 300th credential of a network
    assert P.counter_range(0) == 2000  # the counter is uniform in [0, 2D)
    assert P.mean_attempts(0) == pytest.approx(1000.5)


def test_beyond_a_share_the_price_doubles_every_step():
    assert P.excess(300, 0) == 1  # the 301st credential
    assert P.excess(0, 3000) == 1  # the aggregate's 3001st, from a fresh network
    assert P.excess(310, 3100) == 101  # whichever is further over its share
    assert P.counter_range(64) == 4000
    assert P.counter_range(128) == 8000
    assert P.counter_range(32) == round(2000 * math.sqrt(2))
    ranges = [P.counter_range(e) for e in range(0, 2000, 7)]
    assert ranges == sorted(ranges)  # never cheaper for more credentials
    assert P.counter_range(10**9) == MAX_RANGE  # capped at the uint32 counter
    assert DevicePricing(1, 1, 1, 1).counter_range(0) == 2  # never a free challenge


def test_a_challenge_allows_its_own_counts_plus_the_slack():
    net, agg = P.allowed_counts(0)
    assert (net, agg) == (299 + SLACK, 2999 + SLACK)
    assert P.excess(net, agg) == SLACK  # at most SLACK further credentials at this price
    assert P.allowed_counts(5) == (304 + SLACK, 3004 + SLACK)


def test_work_and_credentials_for_are_inverse():
    assert P.work(300) == pytest.approx(300 * 1000.5)
    for n in (1, 300, 301, 700, 1200):
        assert P.credentials_for(P.work(n)) == n
        assert P.credentials_for(P.work(n) - 1) == n - 1
    # the geometric series: m credentials beyond the share cost about D H / ln 2 * 2^(m / H)
    m = 640
    approx = 1000 * 64 / math.log(2) * 2 ** (m / 64)
    assert P.work(300 + m) - P.work(300) == pytest.approx(approx, rel=0.02)


def test_the_defaults_meet_the_targets():
    """Analytic figures at the defaults (the measured ones: loadtest/stuffing.py). One
    attempt (PBKDF2-SHA-256, 5000 iterations) takes about 1.1 ms on one core of the
    development machine; the targets must hold for a solver several times faster."""
    c = Settings().challenge
    pricing = DevicePricing(
        c.pow_difficulty, c.device_share, c.device_aggregate_share, c.device_doubling
    )
    attempt_s = 0.0011
    # the office: 300 voters behind one NAT pay the base price, at most 2D attempts each
    assert pricing.excess(299, 299) == 0
    assert pricing.counter_range(0) * attempt_s <= 10
    # the attacker: 8 cores for 24 hours on one network
    assert solver_figure(pricing, 8, 86400, attempt_s) < 1200
    assert solver_figure(pricing, 8, 86400, attempt_s / 16) < 1500  # 16 times faster code
    with pytest.raises(ValueError):
        solver_figure(pricing, 8, 86400, 0)


def test_an_aggregate_is_no_narrower_than_a_network(tmp_path):
    env = {"VOTING_DATA_DIR": str(tmp_path)}
    s = Settings.from_env({**env, "VOTING_IPV4_AGGREGATE": "20", "VOTING_IPV6_AGGREGATE": "56"})
    assert (s.challenge.ipv4_aggregate, s.challenge.ipv6_aggregate) == (20, 56)
    with pytest.raises(SettingsError, match="VOTING_IPV4_AGGREGATE must be <= VOTING_IPV4_PREFIX"):
        Settings.from_env({**env, "VOTING_IPV4_AGGREGATE": "25"})
    with pytest.raises(SettingsError, match="VOTING_IPV6_AGGREGATE must be <= VOTING_IPV6_PREFIX"):
        Settings.from_env({**env, "VOTING_IPV6_PREFIX": "56", "VOTING_IPV6_AGGREGATE": "60"})
    with pytest.raises(SettingsError, match="VOTING_DEVICE_DOUBLING must be >= 1"):
        Settings.from_env({**env, "VOTING_DEVICE_DOUBLING": "0"})
