"""Embedded Postgres and Valkey (the newcomer's default): data survives a restart."""

from __future__ import annotations

import asyncio

import asyncpg
import redis

from voting import embedded


def _pg(url: str, sql: str) -> object:
    async def run() -> object:
        conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
        try:
            return await conn.fetchval(sql)
        finally:
            await conn.close()

    return asyncio.run(run())


def test_embedded_servers_keep_data_across_restart(tmp_path):
    servers = embedded.start(tmp_path, postgres=True, redis=True)
    try:
        assert servers.database_url and servers.redis_url
        _pg(servers.database_url, "CREATE TABLE kept AS SELECT 42 AS v")
        r = redis.Redis.from_url(servers.redis_url)
        r.set("kept", "yes")
        assert r.config_get("appendonly")["appendonly"] == "yes"
        assert r.config_get("maxmemory-policy")["maxmemory-policy"] == "noeviction"
        r.close()
    finally:
        servers.stop()
    servers.stop()  # a second stop is harmless
    again = embedded.start(tmp_path, postgres=True, redis=True)
    try:
        assert _pg(again.database_url or "", "SELECT v FROM kept") == 42
        r = redis.Redis.from_url(again.redis_url or "")
        assert r.get("kept") == b"yes"
        r.close()
    finally:
        again.stop()
    assert (tmp_path / "valkey" / "appendonlydir").is_dir()
