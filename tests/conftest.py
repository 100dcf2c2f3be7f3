"""Test fixtures over real Postgres and Redis.

With ``VOTING_DATABASE_URL`` and ``VOTING_REDIS_URL`` set (CI, the machine's services) the
suite uses those servers; otherwise it starts embedded Postgres and Valkey in a temporary
folder. Either way it works in its own database (created and dropped here) and under its own
Redis key prefix (its keys deleted at the end): never ``FLUSHALL`` on a shared server.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import pytest_asyncio
from litestar import Litestar
from litestar.testing import AsyncTestClient
from redis.asyncio import Redis
from sqlalchemy.engine import make_url

from admin.auth import create_user
from voting import embedded
from voting.app import create_app
from voting.record.db import make_engine, migrate
from voting.services.container import Services, open_services
from voting.settings import Settings, normalise_database_url

#: The realistic shortlist of 28 profiles (a copy of shared/data/shortlist-sample.csv).
SAMPLE_CSV = Path(__file__).resolve().parents[1] / "data" / "shortlist-sample.csv"
ADMIN_PASSWORD = "correct-horse-battery"
OBSERVER_PASSWORD = "observer-password-1"
_slugs = itertools.count(1)


@dataclasses.dataclass(frozen=True)
class Backends:
    """URLs of the test database and Redis, and the key prefix of this run."""

    database_url: str
    redis_url: str
    prefix: str
    data_dir: Path


def _asyncpg_dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def _create_database(server_url: str, name: str) -> str:
    url = make_url(server_url)
    conn = await asyncpg.connect(_asyncpg_dsn(server_url))
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return url.set(database=name).render_as_string(hide_password=False)


async def _drop_database(server_url: str, name: str) -> None:
    conn = await asyncpg.connect(_asyncpg_dsn(server_url))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


async def _delete_prefix(redis_url: str, prefix: str) -> None:
    redis = Redis.from_url(redis_url)
    try:
        batch = [k async for k in redis.scan_iter(match=f"{prefix}:*", count=1000)]
        for i in range(0, len(batch), 500):
            await redis.delete(*batch[i : i + 500])
    finally:
        await redis.aclose()


@pytest.fixture(scope="session")
def backends(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backends]:
    """A fresh database and key prefix on the configured servers, or on embedded ones."""
    data_dir = tmp_path_factory.mktemp("voting-data")
    db_url = os.environ.get("VOTING_DATABASE_URL")
    redis_url = os.environ.get("VOTING_REDIS_URL")
    servers = embedded.start(data_dir, postgres=not db_url, redis=not redis_url)
    server_db = normalise_database_url(db_url) if db_url else servers.database_url
    redis_url = redis_url or servers.redis_url
    assert server_db and redis_url
    name = f"voting_test_{secrets.token_hex(4)}"
    database_url = asyncio.run(_create_database(server_db, name))
    migrate(database_url)
    prefix = f"test-{secrets.token_hex(4)}"
    try:
        yield Backends(database_url, redis_url, prefix, data_dir)
    finally:
        asyncio.run(_delete_prefix(redis_url, prefix))
        asyncio.run(_drop_database(server_db, name))
        servers.stop()


def make_settings(backends: Backends, **overrides: Any) -> Settings:
    """Test settings: generous limits, no background persister unless asked."""
    values: dict[str, Any] = {
        "database_url": backends.database_url,
        "redis_url": backends.redis_url,
        "redis_prefix": backends.prefix,
        "secret_keys": ("test-key-new", "test-key-old"),
        "identity_key": "test-identity-key",
        "data_dir": backends.data_dir,
        "ballot_rate": 100_000,
        "ballot_burst": 100_000,
        "run_persister": False,
        # new_voter() posts {}: device mode without proof of work (tests of the proof of
        # work turn it back on), and room for the suite's many credentials
        "challenge_required": False,
        "credential_rate": 100_000,
        "credential_burst": 100_000,
    }
    values.update(overrides)
    return Settings().replace(**values)


@pytest.fixture(scope="session")
def settings(backends: Backends) -> Settings:
    return make_settings(backends)


@pytest_asyncio.fixture(scope="session")
async def app(settings: Settings) -> AsyncIterator[Litestar]:
    yield create_app(settings)


@pytest_asyncio.fixture(scope="session")
async def client(app: Litestar) -> AsyncIterator[AsyncTestClient[Litestar]]:
    """An HTTP client on the app, its lifespan (Redis, Postgres) open for the session."""
    async with AsyncTestClient(app=app) as c:
        yield c


@pytest_asyncio.fixture(scope="session")
async def services(settings: Settings) -> AsyncIterator[Services]:
    """The voting core opened in the tests' own event loop (the test client runs the app's
    lifespan in another loop, whose connections cannot be shared)."""
    async with open_services(settings) as s:
        yield s


@pytest_asyncio.fixture(scope="session")
async def admin_users(settings: Settings) -> None:
    engine = make_engine(settings.database.url or "")
    try:
        await create_user(engine, "admin", ADMIN_PASSWORD, "admin")
        await create_user(engine, "observer", OBSERVER_PASSWORD, "observer")
    finally:
        await engine.dispose()


async def login(client: AsyncTestClient[Litestar], username: str, password: str) -> str:
    r = await client.post("/admin/api/v1/login", json={"username": username, "password": password})
    assert r.status_code == 200, r.text
    return str(r.json()["token"])


@pytest_asyncio.fixture(scope="session")
async def admin_headers(client: AsyncTestClient[Litestar], admin_users: None) -> dict[str, str]:
    return {"Authorization": f"Bearer {await login(client, 'admin', ADMIN_PASSWORD)}"}


@pytest_asyncio.fixture(scope="session")
async def observer_headers(client: AsyncTestClient[Litestar], admin_users: None) -> dict[str, str]:
    return {"Authorization": f"Bearer {await login(client, 'observer', OBSERVER_PASSWORD)}"}


def unique_slug(stem: str = "round") -> str:
    return f"{stem}-{os.getpid()}-{next(_slugs)}-{secrets.token_hex(2)}"


RoundFactory = Callable[..., Any]


def round_factory(client: AsyncTestClient[Litestar], admin_headers: dict[str, str]) -> RoundFactory:
    """``await factory(status="open", **rules)``: a round filled from the sample CSV.

    Returns the admin view of the round plus ``candidate_ids`` (ordered by code).
    """

    async def factory(
        status: str = "open", csv: bytes | None = None, **rules: Any
    ) -> dict[str, Any]:
        body = {"slug": unique_slug(), "title": "Test round", **rules}
        r = await client.post("/admin/api/v1/rounds", json=body, headers=admin_headers)
        assert r.status_code == 201, r.text
        rnd = r.json()
        r = await client.post(
            f"/admin/api/v1/rounds/{rnd['id']}/candidates/import",
            content=csv if csv is not None else SAMPLE_CSV.read_bytes(),
            headers={**admin_headers, "Content-Type": "text/csv"},
        )
        assert r.status_code == 200, r.text
        rnd["candidate_ids"] = [c["id"] for c in r.json()["candidates"]]
        if status in ("open", "paused", "closed"):
            r = await client.post(f"/admin/api/v1/rounds/{rnd['id']}/open", headers=admin_headers)
            assert r.status_code == 200, r.text
        if status == "paused":
            r = await client.post(f"/admin/api/v1/rounds/{rnd['id']}/pause", headers=admin_headers)
            assert r.status_code == 200, r.text
        if status == "closed":
            r = await client.post(f"/admin/api/v1/rounds/{rnd['id']}/close", headers=admin_headers)
            assert r.status_code == 200, r.text
        rnd["status"] = status
        return rnd

    return factory


async def new_voter(client: AsyncTestClient[Litestar] | httpx.AsyncClient) -> dict[str, str]:
    """Headers carrying a fresh voter credential."""
    r = await client.post("/api/v1/voters", json={})
    assert r.status_code == 201, r.text
    client.cookies.clear()  # the bearer token is the credential under test, not the cookie
    return {"Authorization": f"Bearer {r.json()['voter_token']}"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclasses.dataclass(frozen=True)
class LiveServer:
    """A real ``voting serve`` process: its URL, an open round of the sample, the process."""

    base_url: str
    round_id: int
    process: subprocess.Popen[bytes]


def server_env(settings: Settings, port: int, **extra: str) -> dict[str, str]:
    """Environment for a ``voting`` subprocess sharing the test database and key prefix."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VOTING_")}
    env.update(
        VOTING_DATABASE_URL=settings.database.url or "",
        VOTING_REDIS_URL=settings.redis.url or "",
        VOTING_REDIS_PREFIX=settings.redis.prefix,
        VOTING_SECRET_KEYS=",".join(settings.keys.secret_keys),
        VOTING_IDENTITY_KEY=settings.keys.identity_key,
        VOTING_DATA_DIR=str(settings.server.data_dir),
        VOTING_PORT=str(port),
        VOTING_BALLOT_RATE="100000",
        VOTING_BALLOT_BURST="100000",
        VOTING_CREDENTIAL_RATE="100000",
        VOTING_CREDENTIAL_BURST="100000",
        VOTING_CHALLENGE_REQUIRED="false",
    )
    env.update(extra)
    return env


def wait_http(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer in {timeout} s")


@pytest_asyncio.fixture(scope="session")
async def live_server(settings: Settings, make_round: RoundFactory) -> AsyncIterator[LiveServer]:
    """``voting serve`` in a subprocess (public + admin, no persister) with an open round."""
    rnd = await make_round()
    port = free_port()
    proc = subprocess.Popen(  # noqa: ASYNC220 - started once per session
        [sys.executable, "-m", "voting.cli", "serve"],
        # no persister: tests of the persister share this database and must not race with it
        # the page solves real proofs of work in device mode (the demo round's mode)
        env=server_env(
            settings, port, VOTING_RUN_PERSISTER="false", VOTING_CHALLENGE_REQUIRED="true"
        ),
    )
    try:
        await asyncio.to_thread(wait_http, f"http://127.0.0.1:{port}/healthz")
        yield LiveServer(f"http://127.0.0.1:{port}", int(rnd["id"]), proc)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="session")
def make_round(client: AsyncTestClient[Litestar], admin_headers: dict[str, str]) -> RoundFactory:
    """See :func:`round_factory`."""
    return round_factory(client, admin_headers)
