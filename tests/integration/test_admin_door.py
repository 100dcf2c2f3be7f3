"""The admin door: login limits and hashing off the event loop, server-side sessions and their
revocation, CSRF and cross-site refusals, the media type and duplicate keys of JSON bodies,
and the ``voting admin`` user commands."""

from __future__ import annotations

import asyncio
import json
import secrets
import statistics
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import pytest_asyncio
from litestar.testing import AsyncTestClient

from tests.support.app import ADMIN_PASSWORD, make_settings, unique_slug
from tests.support.servers import Backends
from tests.support.servers import ServeProcess as Server
from tests.support.servers import run_voting as voting
from tests.support.voters import error_code, new_voter
from voting.record.db import make_engine
from voting.settings import Settings

LOGIN = "/admin/api/v1/login"


async def new_user(settings: Settings, role: str = "admin") -> tuple[str, str]:
    """A fresh admin user; ``(name, password)``."""
    from admin.users import create_user

    name, password = f"u{secrets.token_hex(4)}", secrets.token_urlsafe(12)
    engine = make_engine(settings.database.url or "")
    try:
        await create_user(engine, name, password, role)
    finally:
        await engine.dispose()
    return name, password


async def log_in(client: AsyncTestClient[Any], name: str, password: str) -> dict[str, Any]:
    r = await client.post(LOGIN, json={"username": name, "password": password})
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def bearer(session: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {session['token']}"}


def cookie(session: dict[str, Any], csrf: bool = True) -> dict[str, str]:
    headers = {"Cookie": f"admin_session={session['token']}"}
    if csrf:
        headers["X-CSRF-Token"] = session["csrf_token"]
    return headers


def round_body() -> dict[str, Any]:
    return {"slug": unique_slug("door"), "title": "Vòng thử"}


# ---------- sessions ----------


async def test_session_is_recorded_and_logout_ends_it(client, settings, admin_users):
    name, password = await new_user(settings)
    session = await log_in(client, name, password)
    assert session["role"] == "admin" and len(session["csrf_token"]) >= 32
    r = await client.get("/admin/api/v1/session", headers=bearer(session))
    assert r.status_code == 200
    assert r.json()["username"] == name and r.json()["csrf_token"] == session["csrf_token"]
    r = await client.post("/admin/api/v1/logout", headers=bearer(session))
    assert r.status_code == 204
    assert 'admin_session=""' in r.headers["set-cookie"] or "Max-Age=0" in r.headers["set-cookie"]
    for headers in (bearer(session), cookie(session)):
        r = await client.get("/admin/api/v1/rounds", headers=headers)
        assert r.status_code == 401 and error_code(r) == "unauthorized"
    # another session of the same user is untouched
    other = await log_in(client, name, password)
    assert (await client.get("/admin/api/v1/rounds", headers=bearer(other))).status_code == 200


async def test_a_signed_token_without_a_session_is_refused(client, services, admin_users):
    for token in (
        services.signers.issue_admin("ghost", secrets.token_urlsafe(16)),  # never existed
        services.signers.issue_admin("admin", "admin"),
        # the old format: a role written in the token
        services.signers.admin.dumps({"u": "admin", "r": "admin", "j": "x"}),
    ):
        r = await client.get("/admin/api/v1/rounds", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 401 and error_code(r) == "unauthorized"


@pytest.mark.parametrize(
    ("command", "args"),
    [
        ("set-role", ("observer",)),
        ("disable", ()),
        ("delete", ()),
        ("reset-password", ()),
    ],
)
async def test_user_changes_end_sessions_at_once(client, settings, admin_users, command, args):
    name, password = await new_user(settings)
    session = await log_in(client, name, password)
    assert (await client.get("/admin/api/v1/rounds", headers=bearer(session))).status_code == 200
    done = await asyncio.to_thread(
        voting, settings, "admin", command, name, *args, stdin="a-new-password-1\n"
    )
    assert done.returncode == 0, done.stderr
    assert "a-new-password-1" not in done.stdout + done.stderr
    r = await client.get("/admin/api/v1/rounds", headers=bearer(session))
    assert r.status_code == 401 and error_code(r) == "unauthorized"
    r = await client.post(LOGIN, json={"username": name, "password": password})
    if command == "set-role":  # the role now comes from the record
        assert r.status_code == 200 and r.json()["role"] == "observer"
        r = await client.post("/admin/api/v1/rounds", json=round_body(), headers=bearer(r.json()))
        assert r.status_code == 403 and error_code(r) == "forbidden"
    else:
        assert r.status_code == 401 and error_code(r) == "invalid_credentials"
    if command == "reset-password":
        await log_in(client, name, "a-new-password-1")


async def test_disabled_user_can_be_enabled_and_listed(client, settings, admin_users):
    name, password = await new_user(settings, "observer")
    await log_in(client, name, password)
    listing = await asyncio.to_thread(voting, settings, "admin", "list")
    assert listing.returncode == 0, listing.stderr
    row = next(line for line in listing.stdout.splitlines() if line.startswith(name + " "))
    assert row.split()[1:4] == ["observer", "active", "1"]
    assert (await asyncio.to_thread(voting, settings, "admin", "disable", name)).returncode == 0
    listing = await asyncio.to_thread(voting, settings, "admin", "list")
    row = next(line for line in listing.stdout.splitlines() if line.startswith(name + " "))
    assert row.split()[1:4] == ["observer", "disabled", "0"]
    r = await client.post(LOGIN, json={"username": name, "password": password})
    assert r.status_code == 401
    assert (await asyncio.to_thread(voting, settings, "admin", "enable", name)).returncode == 0
    await log_in(client, name, password)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("set-role", "nobody-here", "admin"), "no user named nobody-here"),
        (("disable", "nobody-here"), "no user named nobody-here"),
        (("delete", "nobody-here"), "no user named nobody-here"),
        (("reset-password", "nobody-here"), "no user named nobody-here"),
        (("reset-password", "admin", "short"), "password must have at least 8"),
    ],
)
async def test_user_command_errors(settings, admin_users, args, message):
    *args, stdin = args if args[-1] == "short" else (*args, "long-enough-password")
    done = await asyncio.to_thread(voting, settings, "admin", *args, stdin=stdin + "\n")
    assert done.returncode == 2
    assert message in done.stderr and "Traceback" not in done.stderr


# ---------- CSRF, cross-site requests, media types, duplicate keys ----------


async def test_cookie_changes_need_the_csrf_token(client, settings, admin_users):
    name, password = await new_user(settings)
    session = await log_in(client, name, password)
    before = len((await client.get("/admin/api/v1/rounds", headers=bearer(session))).json())
    for headers in (
        cookie(session, csrf=False),
        {**cookie(session, csrf=False), "X-CSRF-Token": "x" * 43},
    ):
        r = await client.post("/admin/api/v1/rounds", json=round_body(), headers=headers)
        assert r.status_code == 403 and error_code(r) == "csrf_failed"
        r = await client.post("/admin/api/v1/logout", headers=headers)
        assert r.status_code == 403
    # reading with the cookie alone is fine; nothing was created
    r = await client.get("/admin/api/v1/rounds", headers=cookie(session, csrf=False))
    assert r.status_code == 200 and len(r.json()) == before
    r = await client.post("/admin/api/v1/rounds", json=round_body(), headers=cookie(session))
    assert r.status_code == 201
    # a bearer token is never sent by a browser on its own: no CSRF token needed
    r = await client.post("/admin/api/v1/rounds", json=round_body(), headers=bearer(session))
    assert r.status_code == 201


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "https://evil.example"},
        {"Origin": "null"},
        {"Origin": "http://testserver.local.evil.example"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},  # a sibling subdomain
        {"Sec-Fetch-Site": "cross-site", "Origin": "http://testserver.local"},
    ],
)
async def test_cross_site_changes_are_refused(client, settings, admin_users, headers):
    name, password = await new_user(settings)
    session = await log_in(client, name, password)
    before = len((await client.get("/admin/api/v1/rounds", headers=bearer(session))).json())
    r = await client.post(
        "/admin/api/v1/rounds", json=round_body(), headers={**cookie(session), **headers}
    )
    assert r.status_code == 403 and error_code(r) == "cross_site_request"
    r = await client.post(LOGIN, json={"username": name, "password": password}, headers=headers)
    assert r.status_code == 403
    voter = await new_voter(client)
    r = await client.post("/api/v1/voters", json={}, headers=headers)
    assert r.status_code == 403 and error_code(r) == "cross_site_request"
    r = await client.post(
        "/api/v1/rounds/1/ballots", json={"choices": [1]}, headers={**voter, **headers}
    )
    assert r.status_code == 403
    # reading is never refused
    r = await client.get("/admin/api/v1/rounds", headers={**bearer(session), **headers})
    assert r.status_code == 200 and len(r.json()) == before


@pytest.mark.parametrize(
    "headers",
    [
        {"Sec-Fetch-Site": "same-origin"},
        {"Sec-Fetch-Site": "none"},
        {"Origin": "http://testserver.local"},
        {"Origin": "https://testserver.local", "Sec-Fetch-Site": "same-origin"},
    ],
)
async def test_same_origin_changes_pass(client, settings, admin_users, headers):
    name, password = await new_user(settings)
    r = await client.post(LOGIN, json={"username": name, "password": password}, headers=headers)
    assert r.status_code == 200
    r = await client.post(
        "/admin/api/v1/rounds", json=round_body(), headers={**cookie(r.json()), **headers}
    )
    assert r.status_code == 201, r.text


@pytest.mark.parametrize(
    ("content", "media_type"),
    [
        (None, "text/plain"),
        (None, "application/x-www-form-urlencoded"),
        (None, "multipart/form-data; boundary=x"),
        (None, None),
    ],
)
async def test_json_routes_refuse_other_media_types(
    client, settings, admin_users, content, media_type
):
    name, password = await new_user(settings)
    session = await log_in(client, name, password)
    body = json.dumps(round_body()).encode()
    headers = {**cookie(session), **({"Content-Type": media_type} if media_type else {})}
    r = await client.post("/admin/api/v1/rounds", content=body, headers=headers)
    if media_type is None:  # httpx sends no Content-Type for raw content
        assert r.status_code == 415
    else:
        assert r.status_code == 415, r.text
    assert error_code(r) == "unsupported_media_type"
    login_body = json.dumps({"username": name, "password": password}).encode()
    r = await client.post(LOGIN, content=login_body, headers={"Content-Type": "text/plain"})
    assert r.status_code == 415
    r = await client.post("/api/v1/voters", content=b"{}", headers={"Content-Type": "text/plain"})
    assert r.status_code == 415
    # application/json with parameters, and +json types, are JSON
    r = await client.post(
        LOGIN, content=login_body, headers={"Content-Type": "application/json; charset=utf-8"}
    )
    assert r.status_code == 200


@pytest.mark.parametrize(
    ("path", "raw"),
    [
        (LOGIN, '{"username": "admin", "username": "observer", "password": "x"}'),
        (LOGIN, '{"username": "admin", "password": NaN}'),
        (LOGIN, '{"username": "admin", "password": "x", "password": "y"}'),
        ("/admin/api/v1/rounds", '{"slug": "dup-a", "title": "A", "title": "B"}'),
        ("/admin/api/v1/rounds", '{"slug": "dup-b", "title": "A", "winners": Infinity}'),
        ("/api/v1/voters", '{"mode": "device", "mode": "code"}'),
        ("/api/v1/voters", '{"round_id": 1, "round_id": 2}'),
        ("/api/v1/voters/otp", '{"email": "a@example.org", "email": "b@example.org"}'),
    ],
)
async def test_duplicate_keys_and_non_json_numbers_are_refused(client, admin_headers, path, raw):
    r = await client.post(
        path, content=raw.encode(), headers={**admin_headers, "Content-Type": "application/json"}
    )
    assert r.status_code == 400, r.text
    assert error_code(r) == "malformed"


# ---------- login limits and the event loop, on a real server ----------


def isolated(backends: Backends) -> Settings:
    return make_settings(backends, redis_prefix=f"{backends.prefix}:door-{secrets.token_hex(3)}")


@pytest.fixture(scope="module")
def limited_server(backends: Backends, admin_users: None) -> Iterator[Server]:
    """3 login attempts per minute per network; 3 failures per hour per username."""
    server = Server(
        isolated(backends),
        VOTING_TRUSTED_PROXIES="127.0.0.1/32",
        VOTING_LOGIN_RATE="3",
        VOTING_LOGIN_BURST="3",
        VOTING_LOGIN_PERIOD="60",
        VOTING_LOGIN_USER_RATE="3",
        VOTING_LOGIN_USER_BURST="3",
        VOTING_LOGIN_USER_PERIOD="3600",
    )
    try:
        yield server
    finally:
        server.stop()


@pytest_asyncio.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=30) as c:
        yield c


def net() -> str:
    return f"198.{secrets.randbelow(250) + 2}.{secrets.randbelow(250) + 2}.7"


async def attempt(
    http: httpx.AsyncClient, server: Server, name: str, password: str, network: str
) -> httpx.Response:
    return await http.post(
        server.url + LOGIN,
        json={"username": name, "password": password},
        headers={"X-Forwarded-For": network},
    )


async def test_login_limit_per_network_without_enumeration(limited_server, http):
    office = net()  # the real admin logged in from here before
    assert (await attempt(http, limited_server, "admin", ADMIN_PASSWORD, office)).status_code == 200
    codes = {}
    for name in ("admin", "no-such-user"):
        network = net()
        replies = [
            await attempt(http, limited_server, f"{name}", f"wrong-{i}", network) for i in range(4)
        ]
        codes[name] = [(r.status_code, r.json()["error"]["code"]) for r in replies]
        assert 1 <= int(replies[-1].headers["Retry-After"]) <= 20
    # a real user and an unknown name are answered alike
    assert codes["admin"] == codes["no-such-user"] == [
        (401, "invalid_credentials"), (401, "invalid_credentials"),
        (401, "invalid_credentials"), (429, "rate_limited"),
    ]  # fmt: skip
    # the guesses used up the username's failures (3 per hour); the real admin still gets in
    # from a network it logged in from before, and a stranger's network waits
    r = await attempt(http, limited_server, "admin", ADMIN_PASSWORD, office)
    assert r.status_code == 200
    r = await attempt(http, limited_server, "admin", ADMIN_PASSWORD, net())
    assert r.status_code == 429


async def test_failed_logins_per_username_across_networks(limited_server, http, settings):
    name, password = await new_user(settings)
    replies = [await attempt(http, limited_server, name, "wrong-pass", net()) for _ in range(4)]
    assert [r.status_code for r in replies] == [401, 401, 401, 429]
    retry = int(replies[-1].headers["Retry-After"])
    assert 1 <= retry <= 3600 // 3  # one emission interval, not a lock-out
    ghost = f"ghost-{secrets.token_hex(3)}"
    replies = [await attempt(http, limited_server, ghost, "wrong-pass", net()) for _ in range(4)]
    assert [r.status_code for r in replies] == [401, 401, 401, 429]
    # successful logins do not count against the username
    other, other_password = await new_user(settings)
    for _ in range(4):
        r = await attempt(http, limited_server, other, other_password, net())
        assert r.status_code == 200
    # wrong passwords from a known network skip the username's limit, not the network's
    office = net()
    assert (await attempt(http, limited_server, other, other_password, office)).status_code == 200
    replies = [await attempt(http, limited_server, other, "wrong", office) for _ in range(3)]
    assert [r.status_code for r in replies] == [401, 401, 429]  # 3 per minute per network


@pytest.fixture(scope="module")
def storm_server(backends: Backends, admin_users: None) -> Iterator[Server]:
    server = Server(
        isolated(backends), VOTING_TRUSTED_PROXIES="127.0.0.1/32", VOTING_LOGIN_HASHES="2"
    )
    try:
        yield server
    finally:
        server.stop()


async def test_a_login_storm_does_not_stall_the_event_loop(storm_server, http):
    """32 wrong passwords at once (each an argon2 verification of ~50 ms of CPU); meanwhile
    ``/healthz`` is answered as if nothing happened, because hashes run in the thread pool.
    When they ran on the event loop, each health check waited for the hashes queued ahead."""

    async def storm() -> list[int]:
        replies = await asyncio.gather(
            *(attempt(http, storm_server, "admin", f"wrong-{i}", net()) for i in range(32))
        )
        return [r.status_code for r in replies]

    async def health() -> list[float]:
        times = []
        async with httpx.AsyncClient(timeout=30) as other:
            for _ in range(15):
                start = time.perf_counter()
                r = await other.get(storm_server.url + "/healthz")
                times.append(time.perf_counter() - start)
                assert r.status_code == 200
                await asyncio.sleep(0.02)
        return times

    storm_task = asyncio.ensure_future(storm())
    await asyncio.sleep(0.05)
    times = await health()
    statuses = await storm_task
    assert set(statuses) <= {401, 503} and statuses.count(401) >= 16, statuses
    assert statistics.median(times) < 0.1, times
