"""The audit log as recorded is one hash chain, however many writers; it refuses UPDATE and
DELETE; tampering by someone who gets past that is caught by ``voting audit verify``; the
committee report prints the head."""

from __future__ import annotations

import asyncio
import secrets
import subprocess
import sys

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from tests.support.servers import Backends, create_database, drop_database, service_env
from voting.record import audit
from voting.record.db import make_engine, migrate_async


def verify(database_url: str, backends: Backends) -> subprocess.CompletedProcess[str]:
    env = service_env(
        database_url=database_url,
        redis_url=backends.redis_url,
        prefix=f"{backends.prefix}:chain",
        data_dir=backends.data_dir,
        port=0,
    )
    return subprocess.run(
        [sys.executable, "-m", "voting.cli", "audit", "verify"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


async def test_concurrent_writers_keep_one_chain_and_tampering_is_caught(backends):
    name = f"voting_chain_{secrets.token_hex(4)}"
    url = await create_database(backends.database_url, name)
    engine = make_engine(url)
    try:

        async def write(i: int) -> None:
            async with engine.begin() as conn:
                await audit.audit(conn, f"writer{i % 3}", "round_update", None, {"i": i})

        await asyncio.gather(*(write(i) for i in range(40)))
        async with engine.connect() as conn:
            result = await audit.check(conn)
            assert result.ok and result.events == 40
            assert result.head == await audit.head(conn)
        done = await asyncio.to_thread(verify, url, backends)
        assert done.returncode == 0, done.stderr
        assert f"40 events chained; head {result.head}" in done.stdout
        victim = None
        for statement in (
            "UPDATE audit_events SET actor = 'x' WHERE id = (SELECT min(id) FROM audit_events)",
            "DELETE FROM audit_events WHERE id = (SELECT min(id) FROM audit_events)",
        ):  # the log refuses changes outright
            with pytest.raises(DBAPIError, match="append-only"):
                async with engine.begin() as conn:
                    await conn.execute(text(statement))
        async with engine.begin() as conn:  # the table's owner gets past the trigger...
            await conn.execute(text("ALTER TABLE audit_events DISABLE TRIGGER USER"))
            victim = await conn.scalar(
                text("SELECT id FROM audit_events ORDER BY id LIMIT 1 OFFSET 10")
            )
            await conn.execute(
                text("UPDATE audit_events SET details = '{\"i\": 999}' WHERE id = :id"),
                {"id": victim},
            )
            await conn.execute(text("ALTER TABLE audit_events ENABLE TRIGGER USER"))
        async with engine.connect() as conn:  # ...and the chain shows it
            assert (await audit.check(conn)).broken_at == victim
        done = await asyncio.to_thread(verify, url, backends)
        assert done.returncode == 1 and f"breaks at event {victim}" in done.stderr
        assert "Traceback" not in done.stderr
    finally:
        await engine.dispose()
        await drop_database(backends.database_url, name)


async def test_the_session_database_chain_holds(services):
    async with services.engine.connect() as conn:
        result = await audit.check(conn)
    assert result.ok, result


async def test_the_migration_chains_the_events_already_recorded(backends):
    name = f"voting_chain_{secrets.token_hex(4)}"
    url = await create_database(backends.database_url, name, migrate=False)
    await migrate_async(url, "0006")
    engine = make_engine(url)
    try:
        async with engine.begin() as conn:  # events written before the chain existed
            for i in range(5):
                await conn.execute(
                    text(
                        "INSERT INTO audit_events (actor, action, details) "
                        "VALUES ('cli', 'user_create', CAST(:d AS jsonb))"
                    ),
                    {"d": f'{{"username": "u{i}", "tên": "Nguyễn"}}'},
                )
        await migrate_async(url, "head")
        async with engine.connect() as conn:
            result = await audit.check(conn)
        assert result.ok and result.events == 5
        async with engine.begin() as conn:
            await audit.audit(conn, "admin", "login", None)
        async with engine.connect() as conn:
            assert (await audit.check(conn)).events == 6
    finally:
        await engine.dispose()
        await drop_database(backends.database_url, name)
