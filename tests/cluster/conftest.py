"""Fixtures of the cluster and sentinel tests: a scratch database of their own on the suite's
Postgres server (the shared one or an embedded one; never stopped here), so that the open rounds
they leave, whose live state is on nodes stopped since, are not the suite's, and stacks whose
Redis is a real topology of :mod:`tests.cluster.nodes`."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

from tests.faults.chaos import Attempt
from tests.faults.stack import Stack, private_dir
from tests.support.servers import Backends, create_database, drop_database
from voting.services.container import open_services
from voting.settings import Settings


class TopologyStack(Stack):
    """A fault-injection :class:`~tests.faults.stack.Stack` on a Redis topology (cluster or
    sentinel group) instead of one private Valkey, on the suite's scratch database."""

    topology: Any

    def stop_store(self) -> None:
        """Stop the topology's nodes."""
        self.topology.close()


@contextlib.asynccontextmanager
async def topology_stack(
    backends: Backends, topology: Any, **settings: Any
) -> AsyncIterator[TopologyStack]:
    """Start ``topology`` (a :class:`~tests.cluster.nodes.ValkeyCluster` or
    :class:`~tests.cluster.nodes.SentinelGroup`), open the services on it under a fresh key
    prefix, and stop everything on exit."""
    root = private_dir("voting-topology-")
    name = f"topology_{secrets.token_hex(4)}"
    database_url = await create_database(backends.database_url, name)
    config = Settings().replace(
        database_url=database_url,
        redis_url=topology.url,
        redis_prefix=f"topo-{secrets.token_hex(3)}",
        secret_keys=(secrets.token_hex(16),),
        identity_key=secrets.token_hex(16),
        data_dir=root / "data",
        ballot_rate=1_000_000,
        ballot_burst=1_000_000,
        run_persister=False,
        **settings,
    )
    stack = TopologyStack(root, None, database_url, None, config)  # type: ignore[arg-type]
    stack.topology = topology
    try:
        await asyncio.to_thread(topology.start)
        stack._services = await stack._exit.enter_async_context(open_services(config))
        yield stack
    finally:
        try:
            await stack.close()
        finally:
            await drop_database(backends.database_url, name)


def root_dir(tmp: Path) -> Path:
    """A folder for the nodes (mode 0755)."""
    tmp.mkdir(parents=True, exist_ok=True)
    return tmp


def internal_errors(attempts: Sequence[Attempt]) -> list[str]:
    """Every answer 500 (or another 5xx than 503) that ``attempts`` met, first tries and
    retries alike: a Redis failover or a moving slot must be 503, never an internal error."""
    return [
        f"attempt {a.index}: {note}"
        for a in attempts
        for note in a.history
        if note.split()[-1].isdigit() and int(note.split()[-1]) >= 500 and note.split()[-1] != "503"
    ]
