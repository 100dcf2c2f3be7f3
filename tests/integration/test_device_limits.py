"""Device mode's price per network (issue 8, "ballot stuffing in device mode"), over HTTP.

Beyond its share a client network pays more for each further credential of a round, and so
does an aggregate of networks (IPv4 /16, IPv6 /48) beyond its own share; the counts slide
with the window; a challenge priced at old counts is refused when redeemed after the network
got more (also when sent in parallel); and the credential limits fail closed without Redis.

Different client networks need real addresses: those tests run a ``voting serve`` process
behind a trusted proxy (127.0.0.1) and pass the client in ``X-Forwarded-For``. The others use
in-process apps, whose clients all share the network ``unknown``. Every test counts in a
round of its own, so the counts of one cannot change another's.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import pytest_asyncio
from litestar.testing import AsyncTestClient

from tests.support.app import make_settings
from tests.support.servers import VotingProcess, free_port, running, server_env
from tests.support.voters import error_code, solve
from voting.app import create_app
from voting.core.device import SLACK, DevicePricing

#: cheap proof of work; prices visible at once: share 2 per network, 4 per aggregate, and
#: every further credential doubles the work
FAST = {"challenge_required": True, "pow_cost": 50, "pow_difficulty": 20}
SERVER_ENV = {
    "VOTING_CHALLENGE_REQUIRED": "true",
    "VOTING_POW_COST": "50",
    "VOTING_POW_DIFFICULTY": "20",
    "VOTING_DEVICE_SHARE": "2",
    "VOTING_DEVICE_AGGREGATE_SHARE": "4",
    "VOTING_DEVICE_DOUBLING": "1",
    "VOTING_TRUSTED_PROXIES": "127.0.0.1/32",
    "VOTING_RUN_PERSISTER": "false",
}
SERVER_PRICING = DevicePricing(base=20, share=2, aggregate_share=4, doubling=1)


def counter_of(payload: str) -> int:
    return int(json.loads(base64.b64decode(payload))["solution"]["counter"])


async def credential(
    client: Any, round_id: int, client_ip: str | None = None
) -> tuple[int, int, Any]:
    """Ask a challenge for ``round_id`` (from ``client_ip``), solve it and redeem it:
    ``(the challenge's level, the counter found, the answer of POST /voters)``."""
    headers = {"X-Forwarded-For": client_ip} if client_ip else {}
    r = await client.get("/api/v1/challenge", params={"round_id": round_id}, headers=headers)
    assert r.status_code == 200, r.text
    challenge = r.json()
    payload = await asyncio.to_thread(solve, challenge)
    answer = await client.post(
        "/api/v1/voters", json={"altcha": payload, "round_id": round_id}, headers=headers
    )
    client.cookies.clear()
    return int(challenge["parameters"]["data"]["level"]), counter_of(payload), answer


# ---------- networks and aggregates, over a real server ----------


@pytest.fixture(scope="module")
def pricing_server(settings: Any) -> Iterator[str]:
    """``voting serve`` on the test database and prefix with :data:`SERVER_ENV`: its URL."""
    port = free_port()
    proc = VotingProcess(
        "device-limits",
        ["serve"],
        server_env(settings, port, **SERVER_ENV),
        settings.server.data_dir / "device-limits.log",
        port,
    )
    with running(proc, 30.0):
        yield proc.url


@pytest_asyncio.fixture
async def http(pricing_server: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=pricing_server, timeout=30) as c:
        yield c


async def levels(http: httpx.AsyncClient, round_id: int, addresses: list[str]) -> list[int]:
    """The level of each credential asked from ``addresses`` in turn (each must be issued,
    and its counter must lie in the range of its price)."""
    out = []
    for address in addresses:
        level, counter, answer = await credential(http, round_id, address)
        assert answer.status_code == 201, (address, answer.text)
        assert answer.json()["round_id"] == round_id
        assert 0 <= counter < SERVER_PRICING.counter_range(level), (level, counter)
        out.append(level)
    return out


async def test_each_further_credential_of_a_network_costs_more(http, make_round):
    rnd, other = await make_round(), await make_round()
    office = [f"10.1.7.{i}" for i in range(1, 6)]  # one /24
    assert await levels(http, rnd["id"], office) == [0, 0, 1, 2, 3]
    # another network (of another /16) pays the base price, and so does the same network in
    # another round: the counts are per network and round
    assert await levels(http, rnd["id"], ["10.2.7.1"]) == [0]
    assert await levels(http, other["id"], ["10.1.7.9"]) == [0]
    # one IPv6 /64 is one network
    assert await levels(http, rnd["id"], [f"2001:db8:7:1::{i}" for i in range(1, 5)]) == [
        0,
        0,
        1,
        2,
    ]


async def test_an_ipv4_16_is_bounded_however_many_24s_it_uses(http, make_round):
    rnd = await make_round()
    spread = [f"10.3.{i}.9" for i in range(6)]  # six /24s of one /16, one credential each
    assert await levels(http, rnd["id"], spread) == [0, 0, 0, 0, 1, 2]
    assert await levels(http, rnd["id"], ["10.4.0.9"]) == [0]  # another /16


async def test_an_ipv6_48_is_bounded_however_many_64s_it_uses(http, make_round):
    rnd = await make_round()
    spread = [f"2001:db8:5:{i:x}::1" for i in range(6)]  # six /64s of one /48
    assert await levels(http, rnd["id"], spread) == [0, 0, 0, 0, 1, 2]
    assert await levels(http, rnd["id"], ["2001:db8:6::1"]) == [0]  # another /48


# ---------- staleness, parallel redemption and the window, in-process ----------


@pytest_asyncio.fixture
async def flat(backends) -> AsyncIterator[AsyncTestClient[Any]]:
    """An app whose price hardly moves (share 1, doubling 1000): the counts are what tell."""
    settings = make_settings(backends, **FAST, device_share=1, device_doubling=1000)
    async with AsyncTestClient(app=create_app(settings)) as c:
        yield c


async def challenge_of(client: Any, round_id: int) -> dict[str, Any]:
    r = await client.get("/api/v1/challenge", params={"round_id": round_id})
    assert r.status_code == 200, r.text
    return dict(r.json())


async def test_a_challenge_priced_before_more_credentials_is_stale(flat, make_round):
    rid = (await make_round())["id"]
    early = [solve(await challenge_of(flat, rid)) for _ in range(2)]  # both priced at level 0
    for _ in range(SLACK):  # the network gets SLACK credentials meanwhile
        assert (await credential(flat, rid))[2].status_code == 201
    first = await flat.post("/api/v1/voters", json={"altcha": early[0], "round_id": rid})
    assert first.status_code == 201, first.text  # within the slack
    second = await flat.post("/api/v1/voters", json={"altcha": early[1], "round_id": rid})
    assert second.status_code == 409
    assert error_code(second) == "challenge_stale"
    flat.cookies.clear()
    level, _, fresh = await credential(flat, rid)  # a new challenge at the new price passes
    assert (level, fresh.status_code) == (SLACK + 1, 201)


async def test_parallel_redemptions_cannot_all_slip_in_at_one_price(flat, make_round):
    rid = (await make_round())["id"]
    payloads = [solve(await challenge_of(flat, rid)) for _ in range(SLACK + 4)]
    replies = await asyncio.gather(
        *[flat.post("/api/v1/voters", json={"altcha": p, "round_id": rid}) for p in payloads]
    )
    flat.cookies.clear()
    codes = sorted((r.status_code, error_code(r) if r.status_code != 201 else "") for r in replies)
    assert codes == [(201, "")] * (SLACK + 1) + [(409, "challenge_stale")] * 3


async def test_the_counts_slide_with_the_window(backends, make_round):
    rid = (await make_round())["id"]
    settings = make_settings(backends, **FAST, device_share=1, device_doubling=1, device_window=2)
    async with AsyncTestClient(app=create_app(settings)) as c:
        level, _, answer = await credential(c, rid)
        assert (level, answer.status_code) == (0, 201)
        assert (await credential(c, rid))[0] == 1  # beyond the share of 1
        started = time.monotonic()
        level = 2
        while level and time.monotonic() - started < 5:
            await asyncio.sleep(0.25)
            level = int((await challenge_of(c, rid))["parameters"]["data"]["level"])
        assert level == 0  # both credentials left the 2 s window
        assert time.monotonic() - started > 1.5  # ...and not before it passed


# ---------- every credential limit fails closed ----------


async def test_credential_limits_fail_closed_without_redis(backends):
    """Redis unreachable (a closed port): each credential route answers 503 ``unavailable``
    with a Retry-After and issues nothing, instead of skipping its limit."""
    closed = f"redis://127.0.0.1:{free_port()}/0"
    settings = make_settings(backends, redis_url=closed, email_sender="console")
    async with AsyncTestClient(app=create_app(settings)) as c:
        calls = {
            "challenge": c.get("/api/v1/challenge", params={"round_id": 1}),
            "voters": c.post("/api/v1/voters", json={}),
            "otp": c.post(
                "/api/v1/voters/otp", json={"email": "someone@example.org", "consent": True}
            ),
        }
        for name, call in calls.items():
            r = await call
            assert r.status_code == 503, (name, r.text)
            assert error_code(r) == "unavailable", name
            assert "credential limits" in r.json()["error"]["message"], name
            assert int(r.headers["Retry-After"]) >= 1, name
            assert "voter_token" not in r.text and "set-cookie" not in r.headers, name


# ---------- the round's admins see the limits ----------


async def test_admins_see_the_device_limits_of_a_round(
    client, make_round, admin_headers, observer_headers, settings
):
    rnd = await make_round()
    url = f"/admin/api/v1/rounds/{rnd['id']}/device-limits"
    for headers in (admin_headers, observer_headers):
        r = await client.get(url, headers=headers)
        assert r.status_code == 200, r.text
    body = r.json()
    c = settings.challenge
    assert body["round_id"] == rnd["id"] and body["applies"] is True
    assert (body["share"], body["aggregate_share"], body["doubling"]) == (
        c.device_share,
        c.device_aggregate_share,
        c.device_doubling,
    )
    assert (body["base_attempts"], body["pow_cost"], body["window_seconds"]) == (
        c.pow_difficulty,
        c.pow_cost,
        c.device_window,
    )
    assert body["network_prefix"] == {"ipv4": 24, "ipv6": 64}
    assert body["aggregate_prefix"] == {"ipv4": 16, "ipv6": 48}
    assert body["credential_rate"] == settings.limits.credential_rate
    schedule = body["schedule"]
    assert schedule[0] == {"credential": 1, "expected_attempts": c.pow_difficulty + 0.5}
    assert schedule[2]["credential"] == c.device_share + c.device_doubling
    assert schedule[2]["expected_attempts"] == 2 * c.pow_difficulty + 0.5  # one doubling
    code_round = await make_round(identity_mode="code")
    r = await client.get(
        f"/admin/api/v1/rounds/{code_round['id']}/device-limits", headers=admin_headers
    )
    assert r.json()["applies"] is False
    client.cookies.clear()  # the session of the fixtures' login
    assert (await client.get(url)).status_code == 401
    r = await client.get("/admin/api/v1/rounds/2147483000/device-limits", headers=admin_headers)
    assert r.status_code == 404
