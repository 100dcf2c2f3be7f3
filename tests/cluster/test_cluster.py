"""Redis Cluster on real nodes (issue 13): rounds on every primary, a slot migrated under load,
a primary killed and restarted under load. Each run is judged as the fault matrix judges
(:func:`tests.faults.verdict.check`): nothing acknowledged lost, nothing doubled, ``voting
reconcile`` clean, every round final."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from redis.asyncio.cluster import RedisCluster
from sqlalchemy import func, select

from tests.cluster.conftest import TopologyStack, internal_errors, topology_stack
from tests.cluster.nodes import ValkeyCluster, client
from tests.faults.chaos import LoadClient
from tests.faults.verdict import Verdict, check
from tests.support.servers import Backends
from voting.live import guard
from voting.record import tables
from voting.services.readiness import readiness

pytestmark = pytest.mark.cluster

RATE = 120.0  # ballots per second offered per round


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
    tag = secrets.token_hex(3)
    for i in range(30):
        round_id, cands = await stack.open_round(f"c{i}-{tag}")
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
    """A 3-primary cluster (no replicas) that keeps serving the slots of the running primaries
    while one is down (``cluster-require-full-coverage no``)."""
    cluster = ValkeyCluster(tmp_path / "cluster", **{"cluster-require-full-coverage": "no"})
    async with topology_stack(backends, cluster) as s:
        yield s


async def persisted(stack: TopologyStack, round_id: int) -> int:
    """Ballots of ``round_id`` in Postgres."""
    async with stack.services.engine.connect() as conn:
        count = await conn.scalar(
            select(func.count())
            .select_from(tables.ballots)
            .where(tables.ballots.c.round_id == round_id)
        )
    return int(count or 0)


async def judge_all(
    stack: TopologyStack, loads: list[LoadClient], rounds: dict[int, tuple[int, list[int]]]
) -> dict[int, Verdict]:
    """Settle each round's unknown outcomes, check that no answer was a 5xx other than 503,
    and judge each round; every load client is closed, also on failure."""
    verdicts = {}
    try:
        for load, (rid, _) in zip(loads, rounds.values(), strict=True):
            await load.settle(within=30)
            assert not load.errors and not internal_errors(load.attempts), (
                load.errors[:3],
                internal_errors(load.attempts)[:3],
            )
            verdicts[rid] = await check(stack, rid, load.attempts)
    finally:
        for load in loads:
            await load.aclose()
    return verdicts


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
    tasks = [load.start(3.0) for load in loads]
    await asyncio.sleep(0.5)
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
    verdicts = await judge_all(stack, loads, rounds)
    judged("slot-migration", verdicts)


async def test_a_primary_killed_and_restarted_under_load_with_durable_ack(
    stack: TopologyStack,
) -> None:
    """kill -9 of one primary (no replica) while ballots arrive with ``VOTING_DURABLE_ACK``:
    its rounds answer 503 until it is back from its AOF (same port and node id), the other
    rounds are accepted and persisted meanwhile, and no acknowledged ballot is lost."""
    rounds = await rounds_on_every_primary(stack)
    app = await stack.start_app("app", VOTING_DURABLE_ACK="true")
    await stack.start_persister("persister")
    loads = await load_rounds(stack, rounds, app.url)
    tasks = [load.start(5.0) for load in loads]
    await asyncio.sleep(1.0)
    cluster: ValkeyCluster = stack.topology
    victim_port, (victim_round, _) = next(iter(rounds.items()))
    others = [rid for port, (rid, _) in rounds.items() if port != victim_port]
    await asyncio.to_thread(cluster.node(victim_port).kill9)
    before = {rid: await persisted(stack, rid) for rid in others}
    await asyncio.sleep(2.5)  # past cluster-node-timeout: the others mark it failed
    during = {rid: await persisted(stack, rid) for rid in others}
    await asyncio.to_thread(cluster.node(victim_port).start)
    await asyncio.to_thread(cluster.wait_ok)
    await asyncio.gather(*tasks)
    verdicts = await judge_all(stack, loads, rounds)
    judged("primary-kill9-durable", verdicts)
    # the rounds on the running primaries went on being persisted while the victim was down
    assert all(during[r] > before[r] for r in others), (before, during)
    assert verdicts[victim_round].unknown > 0  # its ballots did meet the dead primary


async def test_durable_ack_commits_per_primary_and_follows_a_moved_slot(
    backends: Backends, tmp_path: Path
) -> None:
    """In process, ``VOTING_DURABLE_ACK`` on a cluster: concurrent ballots of rounds on the
    three primaries are sent as one pipeline + ``WAITAOF`` per primary (fewer batches than
    ballots, at least one per primary), and after a round's slot moved its next ballots meet
    ``MOVED`` once and are committed on the new owner."""
    async with topology_stack(
        backends, ValkeyCluster(tmp_path / "cluster"), durable_ack=True
    ) as stack:
        rounds = await rounds_on_every_primary(stack)
        box = stack.services.ballot_box
        assert box.group_commit is not None

        async def cast_all(tag: str, each: int) -> list[bytes]:
            return await asyncio.gather(
                *(
                    box.cast(box.prepare(rid, f"{tag}-{rid}-{i}", cands[:3], "127.0.0.0/24", None))
                    for rid, cands in rounds.values()
                    for i in range(each)
                )
            )

        answers = await cast_all("a", 50)
        assert len(answers) == 150
        assert 3 <= box.group_commit.batches < 150
        cluster: ValkeyCluster = stack.topology
        port, (round_id, _) = next(iter(rounds.items()))
        target = next(p for p in rounds if p != port)
        await asyncio.to_thread(cluster.migrate_slot, slot_of(stack, round_id), target)
        assert len(await cast_all("b", 20)) == 60
        assert box.group_commit.redirects > 0  # the stale owner answered MOVED
        for rid, _ in rounds.values():
            meta = stack.keys(rid).meta
            assert int(await stack.redis.hget(meta, "ballots") or 0) == 70
        # readiness reads every round's state across the primaries
        checks = await readiness(stack.services)
        assert checks["redis"] == checks["backlog"] == "ok", checks
        # (rounds other tests left open on their own Redis are missing here, not these)
        missing = [] if checks["round_state"] == "ok" else checks["round_state"]["missing"]
        assert not {rid for rid, _ in rounds.values()} & set(missing), checks
        # the guard asks every primary: one that may evict refuses ballots, and is named
        await guard.check(stack.redis, box)
        assert box.safe
        with client(target) as node:
            node.config_set("maxmemory-policy", "allkeys-lru")
        await guard.check(stack.redis, box)
        assert not box.safe and f"127.0.0.1:{target}" in box.unsafe_reason, box.unsafe_reason
        with client(target) as node:
            node.config_set("maxmemory-policy", "noeviction")
        await guard.check(stack.redis, box)
        assert box.safe
