"""Test fixtures over real Postgres and Redis.

With ``VOTING_DATABASE_URL`` and ``VOTING_REDIS_URL`` set (CI, the machine's services) the
suite uses those servers; otherwise it starts embedded Postgres and Valkey in a temporary
folder. Either way it works in its own database (created and dropped here) and under its own
Redis key prefix (its keys deleted at the end): never ``FLUSHALL`` on a shared server. The
bootstrap is :mod:`tests.support.servers`; the helpers the tests import are in
:mod:`tests.support`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import subprocess
from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio
from litestar import Litestar
from litestar.testing import AsyncTestClient

from admin.users import create_user
from tests.support.app import (
    ADMIN_PASSWORD,
    OBSERVER_PASSWORD,
    RoundFactory,
    login,
    make_settings,
    round_factory,
)
from tests.support.servers import (
    Backends,
    VotingProcess,
    free_port,
    scratch_backends,
    server_env,
)
from voting.app import create_app, served
from voting.record.db import make_engine
from voting.services.container import Services, open_services
from voting.settings import Settings


@pytest.fixture(scope="session")
def backends(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backends]:
    """A fresh database and key prefix on the configured servers, or on embedded ones."""
    with scratch_backends(tmp_path_factory.mktemp("voting-data"), "voting_test") as b:
        yield b


@pytest.fixture(scope="session")
def settings(backends: Backends) -> Settings:
    return make_settings(backends)


@pytest_asyncio.fixture(scope="session")
async def app(settings: Settings) -> AsyncIterator[Litestar]:
    yield create_app(settings)


@pytest_asyncio.fixture(scope="session")
async def client(app: Litestar, settings: Settings) -> AsyncIterator[AsyncTestClient[Litestar]]:
    """An HTTP client on the app as the server runs it (:func:`voting.app.served`: the lane of
    ballots, the body deadline), its lifespan (Redis, Postgres) open for the session."""
    async with AsyncTestClient(app=served(app, settings)) as c:
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


@pytest_asyncio.fixture(scope="session")
async def admin_headers(client: AsyncTestClient[Litestar], admin_users: None) -> dict[str, str]:
    return {"Authorization": f"Bearer {await login(client, 'admin', ADMIN_PASSWORD)}"}


@pytest_asyncio.fixture(scope="session")
async def observer_headers(client: AsyncTestClient[Litestar], admin_users: None) -> dict[str, str]:
    return {"Authorization": f"Bearer {await login(client, 'observer', OBSERVER_PASSWORD)}"}


@dataclasses.dataclass(frozen=True)
class LiveServer:
    """A real ``voting serve`` process: its URL, an open round of the sample, the process."""

    base_url: str
    round_id: int
    process: subprocess.Popen[bytes]


@pytest_asyncio.fixture(scope="session")
async def live_server(settings: Settings, make_round: RoundFactory) -> AsyncIterator[LiveServer]:
    """``voting serve`` in a subprocess (public + admin, no persister) with an open round."""
    rnd = await make_round()
    port = free_port()
    proc = VotingProcess(
        "live-server",
        ["serve"],
        # no persister: tests of the persister share this database and must not race with it
        # the page solves real proofs of work in device mode (the demo round's mode)
        server_env(settings, port, VOTING_RUN_PERSISTER="false", VOTING_CHALLENGE_REQUIRED="true"),
        settings.server.data_dir / "live-server.log",
        port,
    )
    proc.start()
    try:
        await asyncio.to_thread(proc.wait_healthy, 30.0)
        assert proc.process is not None
        yield LiveServer(proc.url, int(rnd["id"]), proc.process)
    finally:
        await asyncio.to_thread(proc.stop)


@pytest.fixture(scope="session")
def make_round(client: AsyncTestClient[Litestar], admin_headers: dict[str, str]) -> RoundFactory:
    """See :func:`round_factory`."""
    return round_factory(client, admin_headers)
