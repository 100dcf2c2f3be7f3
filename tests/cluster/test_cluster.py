"""Redis Cluster on real nodes (issue 13): rounds on every primary, a slot migrated under load,
a primary killed and restarted under load. Each run is judged as the fault matrix judges
(:func:`tests.faults.verdict.check`): nothing acknowledged lost, nothing doubled, ``voting
reconcile`` clean, every round final."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from redis.asyncio.cluster import RedisCluster

from tests.cluster.conftest import TopologyStack, topology_stack
from tests.cluster.nodes import ValkeyCluster
from tests.faults.chaos import LoadClient
from tests.faults.verdict import Verdict, check
from tests.support.servers import Backends

pytestmark = pytest.mark.cluster

RATE = 150.0  # ballots per second offered per round


def slot_of(stack: TopologyStack, round_id: int) -> int:
    cluster = stack.redis
    assert isinstance(cluster, RedisCluster)
    return int(cluster.keyslot(stack.keys(round_id).meta))


async def rounds_on_every_primary(stack: TopologyStack) -> dict[int, tuple[int, list[int]]]:
    """Open rounds until every primary serves at least one; ``{port: (round id, candidates)}``
    (the first round found on each primary)."""
    cluster: ValkeyCluster = stack.topology
    primaries = set(await asyncio.to_thread(cluster.primary_ports))
    found: dict[int, tuple[int, list[int]]] = {}
    for i in range(30):
        round_id, cands = await stack.open_round(f"c{i}")
        port = await asyncio.to_thread(cluster.port_of_slot, slot_of(stack, round_id))
        found.setdefault(port, (round_id, cands))
        if set(found) == primaries:
            return found
    raise AssertionError(f"30 rounds did not cover every primary: {found}")


def judged(scenario: str, verdicts: dict[int, Verdict]) -> None:
    """Print one line per round (run with ``-s``) and fail on any broken rule."""
    for rid, v in verdicts.items():
        print(
            f"CLUSTER {scenario} round {rid}: sent {v.sent} acknowledged {v.acknowledged} "
            f"in_postgres {v.in_postgres} unknown {v.unknown} lost {v.lost} "
            f"doubled {v.doubled} final {v.final} reconcile {v.reconcile_rc}"
        )
    problems = {r: v.problems() for r, v in verdicts.items() if v.problems()}
    assert not problems, problems
    for v in verdicts.values():
        assert v.final and v.acknowledged > 0 and v.reconcile_rc == 0


@pytest_asyncio.fixture
async def stack(backends: Backends, tmp_path: Path) -> AsyncIterator[TopologyStack]:
    async with topology_stack(backends, ValkeyCluster(tmp_path / "cluster")) as s:
        yield s


async def load_rounds(
    stack: TopologyStack, rounds: dict[int, tuple[int, list[int]]], url: str
) -> list[LoadClient]:
    return [
        LoadClient([url], rid, cands, stack.signers, rate=RATE, max_ballots=2_000)
        for rid, cands in rounds.values()
    ]


async def test_rounds_on_every_primary_with_a_slot_migrated_under_load(
    stack: TopologyStack,
) -> None:
    rounds = await rounds_on_every_primary(stack)
    app = await stack.start_app("app")
    await stack.start_persister("persister")
    loads = await load_rounds(stack, rounds, app.url)
    tasks = [load.start(4.0) for load in loads]
    await asyncio.sleep(1.0)
    # move the first round's slot to another primary while ballots arrive
    cluster: ValkeyCluster = stack.topology
    port, (round_id, _) = next(iter(rounds.items()))
    target = next(p for p in rounds if p != port)
    moved = await asyncio.to_thread(
        cluster.migrate_slot, slot_of(stack, round_id), target, pause=0.05
    )
    assert moved >= 3  # meta, tally, voters, stream, ... of the round
    assert await asyncio.to_thread(cluster.port_of_slot, slot_of(stack, round_id)) == target
    await asyncio.gather(*tasks)
    verdicts = {}
    for load, (rid, _) in zip(loads, rounds.values(), strict=True):
        await load.settle(within=30)
        verdicts[rid] = await check(stack, rid, load.attempts)
        await load.aclose()
    judged("slot-migration", verdicts)
