"""Client address behind proxies, and the credential limits: 429 with an honoured Retry-After.

Over HTTP against real ``voting serve`` processes (the socket peer is 127.0.0.1): a spoofed
``X-Forwarded-For`` from an untrusted peer is ignored; behind a trusted proxy the right-most
untrusted address is the client's, for credentials and for ballots (whose stored prefix is
checked in the Redis stream). Apps with tight limits use their own key prefix (under the test
run's prefix, cleaned at the end) so that their limiter state cannot throttle other tests.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import pytest_asyncio
from litestar.testing import AsyncTestClient

from tests.support.app import make_settings, round_factory
from tests.support.servers import Backends
from tests.support.servers import ServeProcess as Server
from tests.support.voters import error_code
from voting.app import create_app
from voting.core.errors import retry_after_seconds
from voting.http.client_ip import parse_networks, resolve_client
from voting.live.keys import RoundKeys
from voting.live.limits import Limiter, Rate
from voting.settings import Settings, SettingsError


def isolated(backends: Backends, **overrides: Any) -> Settings:
    """Test settings under a key prefix of their own (inside the run's prefix)."""
    prefix = f"{backends.prefix}:iso-{secrets.token_hex(3)}"
    return make_settings(backends, redis_prefix=prefix, **overrides)


# ---------- the client address ----------

TRUSTED = parse_networks(("10.0.0.0/8", "::1/128"))


@pytest.mark.parametrize(
    ("peer", "headers", "trusted", "client"),
    [
        ("203.0.113.5", ["198.51.100.7"], TRUSTED, "203.0.113.5"),  # untrusted peer: header ignored
        ("10.0.0.1", ["198.51.100.7"], (), "10.0.0.1"),  # no proxies configured
        ("10.0.0.1", ["6.6.6.6, 198.51.100.7"], TRUSTED, "198.51.100.7"),  # forged left part
        ("10.0.0.1", ["6.6.6.6, 198.51.100.7, 10.0.0.2"], TRUSTED, "198.51.100.7"),  # 2 proxies
        ("10.0.0.1", ["10.0.0.3, 10.0.0.2"], TRUSTED, "10.0.0.3"),  # only proxies
        ("10.0.0.1", [], TRUSTED, "10.0.0.1"),  # no header
        ("10.0.0.1", ["1.1.1.1", "2.2.2.2"], TRUSTED, "2.2.2.2"),  # two header lines
        ("10.0.0.1", ["198.51.100.7:5000"], TRUSTED, "198.51.100.7"),  # with a port
        ("10.0.0.1", ["1.2.3.4, garbage"], TRUSTED, "garbage"),  # vouched-for junk: kept as is
        ("::1", ["2001:db8::1"], TRUSTED, "2001:db8::1"),
        ("::1", ["[2001:db8::2]:443"], TRUSTED, "2001:db8::2"),
        ("::ffff:10.0.0.9", ["198.51.100.7"], TRUSTED, "198.51.100.7"),  # v4-mapped peer
        ("testclient", ["198.51.100.7"], TRUSTED, "testclient"),  # not an address
        (None, ["198.51.100.7"], TRUSTED, None),
    ],
)
def test_resolve_client(peer, headers, trusted, client):
    assert resolve_client(peer, headers, trusted) == client


def test_trusted_proxies_setting(tmp_path):
    env = {"VOTING_DATA_DIR": str(tmp_path)}
    s = Settings.from_env({**env, "VOTING_TRUSTED_PROXIES": "10.1.2.3, 172.16.0.0/12 ,::1"})
    assert s.server.trusted_proxies == ("10.1.2.3/32", "172.16.0.0/12", "::1/128")
    with pytest.raises(SettingsError, match="VOTING_TRUSTED_PROXIES"):
        Settings.from_env({**env, "VOTING_TRUSTED_PROXIES": "10.0.0.0/8,proxy.local"})


# ---------- the GCRA limiter ----------


async def test_gcra_limiter(services):
    limiter = Limiter(services.redis, f"{services.settings.redis.prefix}:iso-gcra")
    rate = Rate(rate=2, period=10, burst=3)  # one every 5 s, three at once
    waits = [await limiter.wait_ms("t", "s", rate) for _ in range(4)]
    assert waits[:3] == [0, 0, 0]
    assert 4000 < waits[3] <= 5000
    assert await limiter.wait_ms("t", "s", rate, peek=True) == pytest.approx(waits[3], abs=50)
    assert await limiter.wait_ms("t", "other", rate) == 0  # subjects are independent
    assert retry_after_seconds(1) == 1 and retry_after_seconds(1000) == 1
    assert retry_after_seconds(1001) == 2 and retry_after_seconds(0) == 1


# ---------- each credential limit answers 429 with a Retry-After that is honoured ----------


async def test_credential_limits_answer_429_and_retry_after_is_honoured(backends, admin_headers):
    settings = isolated(
        backends,
        credential_rate=1,
        credential_period=1,
        credential_burst=1,
        email_sender="console",
    )
    async with AsyncTestClient(app=create_app(settings)) as c:
        rnd = await round_factory(c, admin_headers)()  # its state under the app's own prefix
        calls = {
            "challenge": lambda: c.get(f"/api/v1/challenge?round_id={rnd['id']}"),
            "voters": lambda: c.post("/api/v1/voters", json={}),
            "otp": lambda: c.post(
                "/api/v1/voters/otp",
                json={"email": f"limit-{secrets.token_hex(3)}@example.org", "consent": True},
            ),
        }
        for name, call in calls.items():
            assert (await call()).status_code in (200, 201, 202), name
            limited = await call()
            assert limited.status_code == 429, name
            assert error_code(limited) == "rate_limited"
            retry = int(limited.headers["Retry-After"])
            assert retry == 1 and limited.json()["error"]["retry_after"] == retry
            await asyncio.sleep(retry)
            assert (await call()).status_code in (200, 201, 202), name
        c.cookies.clear()
        # closed, so that no open round of the shared database lives under this app's prefix
        r = await c.post(f"/admin/api/v1/rounds/{rnd['id']}/close?wait=true", headers=admin_headers)
        assert r.status_code == 200, r.text


# ---------- over real servers ----------


@pytest.fixture(scope="module")
def untrusting_server(backends: Backends) -> Iterator[Server]:
    """No trusted proxies; 2 credentials per 60 s per prefix, own key prefix."""
    server = Server(
        isolated(backends),
        VOTING_CREDENTIAL_RATE="2",
        VOTING_CREDENTIAL_PERIOD="60",
        VOTING_CREDENTIAL_BURST="2",
    )
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def proxied_server(settings: Settings) -> Iterator[Server]:
    """Behind a trusted proxy (127.0.0.1), the test prefix, 2 credentials per 60 s."""
    server = Server(
        settings,
        VOTING_TRUSTED_PROXIES="127.0.0.1/32",
        VOTING_CREDENTIAL_RATE="2",
        VOTING_CREDENTIAL_PERIOD="60",
        VOTING_CREDENTIAL_BURST="2",
    )
    try:
        yield server
    finally:
        server.stop()


@pytest_asyncio.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10) as c:
        yield c


async def test_spoofed_forwarded_for_from_an_untrusted_peer_is_ignored(untrusting_server, http):
    url = f"{untrusting_server.url}/api/v1/voters"
    replies = [
        await http.post(url, json={}, headers={"X-Forwarded-For": f"203.0.{i}.9"}) for i in range(3)
    ]
    assert [r.status_code for r in replies] == [201, 201, 429]
    assert error_code(replies[2]) == "rate_limited"
    assert 1 <= int(replies[2].headers["Retry-After"]) <= 30


async def test_forwarded_for_from_a_trusted_proxy_is_used(
    proxied_server, http, make_round, services
):
    base = f"{proxied_server.url}/api/v1"
    net = secrets.randbelow(200) + 10
    # different clients behind the proxy have their own limits...
    for i in range(4):
        r = await http.post(
            f"{base}/voters", json={}, headers={"X-Forwarded-For": f"10.{net}.{i}.1"}
        )
        assert r.status_code == 201, r.text
    # ...one client's prefix is limited, whatever it puts in front of the chain
    same = [
        await http.post(
            f"{base}/voters",
            json={},
            headers={"X-Forwarded-For": f"{i}.{i}.{i}.{i}, 198.51.{net}.{i + 7}"},
        )
        for i in range(3)
    ]
    assert [r.status_code for r in same] == [201, 201, 429]
    token = same[0].json()["voter_token"]
    # ballots store the client's prefix, never the address
    rnd = await make_round()
    r = await http.post(
        f"{base}/rounds/{rnd['id']}/ballots",
        json={"choices": rnd["candidate_ids"][:1]},
        headers={"Authorization": f"Bearer {token}", "X-Forwarded-For": f"198.51.{net}.77"},
    )
    assert r.status_code == 201, r.text
    entries = await services.redis.xrange(
        RoundKeys(services.settings.redis.prefix, rnd["id"]).stream
    )
    assert [fields["ip"] for _, fields in entries] == [f"198.51.{net}.0/24"]
