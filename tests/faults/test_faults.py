"""No vote lost (issue 4): fault injection on real processes and private servers.

Each scenario runs the service as processes (``voting serve`` without persister, ``voting
persister``) on its own database (private embedded Postgres) and its own Valkey (AOF on,
everysec, noeviction), casts a steady stream of ballots from fresh voters while it injects one
fault, settles the unknown outcomes by retrying with the same ``Idempotency-Key``, and judges
the run with :func:`tests.faults.verdict.check`: nothing acknowledged lost, nothing
unexpected, nothing doubled, ``voting reconcile`` clean, no voter with two ballots.

Every scenario prints one line (``FAULT ...``) and adds a row to a JSON report written under
the pytest temporary folder at the end of the module (its path is printed). Run with ``-s`` to
see them. The servers are the tests' own; the machine's shared Postgres and Redis are never
touched. The module takes about 3 to 3.5 minutes on 2 cores: (c) holds Postgres down for 30 s,
and (a) waits for the live persister to reclaim the killed ones' entries, which it does once
they have been idle for ``voting.persister.CLAIM_IDLE_MS`` (30 s).
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from redis.exceptions import OutOfMemoryError
from sqlalchemy import select

from tests.faults.chaos import Attempt, LoadClient
from tests.faults.stack import PrivatePostgres, Stack, wait_for
from tests.faults.verdict import Verdict, check
from tests.support.servers import VotingProcess as ServiceProcess
from voting.record import tables

pytestmark = pytest.mark.faults  # deselect with -m "not faults" for a quick run

RATE = 100.0  # ballots per second offered by the load client

Report = list[dict[str, Any]]


@pytest.fixture(scope="module")
def postgres() -> Iterator[PrivatePostgres]:
    """A private embedded Postgres for this module (scenario (c) stops and restarts it)."""
    pg = PrivatePostgres()
    try:
        pg.start()
        yield pg
    finally:
        pg.close()


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Report]:
    """Rows of the fault report; written as JSON (and printed as a table) at the end."""
    rows: Report = []
    yield rows
    path = tmp_path_factory.getbasetemp() / "fault-report.json"
    path.write_text(json.dumps(rows, indent=2, ensure_ascii=False))
    print("\n" + table(rows))
    print(f"fault report: {path}")


@pytest_asyncio.fixture
async def stack(postgres: PrivatePostgres, tmp_path: Path) -> AsyncIterator[Stack]:
    """A fresh database, a fresh private Valkey and the processes a scenario starts, all
    stopped at the end (also when the scenario fails)."""
    async with Stack.open(postgres, tmp_path) as s:
        yield s


def table(rows: Report) -> str:
    """The report rows as a fixed-width table."""
    cols = [
        "scenario",
        "sent",
        "acknowledged",
        "in_postgres",
        "doubled",
        "unknown",
        "lost",
        "recover_s",
    ]
    widths = [32] + [12] * (len(cols) - 1)
    lines = [" | ".join(f"{c:>{w}}" for c, w in zip(cols, widths, strict=True))]
    for r in rows:
        cells = ["" if r.get(c) is None else str(r[c]) for c in cols]
        lines.append(" | ".join(f"{v:>{w}}" for v, w in zip(cells, widths, strict=True)))
    return "\n".join(lines)


async def finish(
    stack: Stack,
    load: LoadClient,
    round_id: int,
    scenario: str,
    report: Report,
    *,
    recover_s: float | None,
    recover_what: str,
    allowed_lost: int = 0,
    **extra: Any,
) -> Verdict:
    """Settle the unknown outcomes, judge the run, print and record its row, and fail the
    test on any broken rule."""
    left = await load.settle(within=60)
    verdict = await check(stack, round_id, load.attempts)
    row = verdict.row(
        scenario,
        recover_s=None if recover_s is None else round(recover_s, 2),
        recover_what=recover_what,
        unknown_left=left,
        acknowledged_first_try=sum(1 for a in load.attempts if a.first_outcome == "accepted"),
        reconcile=verdict.reconcile_output.splitlines()[-1:],
        **extra,
    )
    report.append(row)
    print(
        f"\nFAULT {scenario}: sent={verdict.sent} acknowledged={verdict.acknowledged}"
        f" in_postgres={verdict.in_postgres} doubled={verdict.doubled}"
        f" unknown={verdict.unknown} (settled {verdict.unknown_settled}, present"
        f" {verdict.unknown_present}) lost={verdict.lost} unexpected={verdict.unexpected}"
        + (f" recover={row['recover_s']}s ({recover_what})" if recover_s is not None else "")
        + "".join(f" {k}={v}" for k, v in extra.items())
    )
    assert not load.errors, load.errors[:5]
    assert left == 0, f"{left} outcomes still unknown after settling"
    problems = verdict.problems(allowed_lost=allowed_lost)
    assert not problems, problems
    return verdict


async def kill_mid_batch(stack: Stack, proc: ServiceProcess, round_id: int) -> int:
    """``kill -9`` the persister ``proc``, preferably while it holds a batch it has read but
    not acknowledged (waits up to 5 s for one); return how many entries its dead consumer
    left pending."""
    keys = stack.keys(round_id)
    mine = f"{socket.gethostname()}-{proc.pid}-"

    async def held() -> int:
        summary: Any = await stack.redis.xpending(keys.stream, "persisters")
        return sum(
            int(c["pending"]) for c in summary["consumers"] or [] if str(c["name"]).startswith(mine)
        )

    deadline = time.monotonic() + 5.0
    for _ in range(100_000):  # bounded by the deadline too
        if time.monotonic() >= deadline or await held():
            break
        await asyncio.sleep(0.001)
    proc.kill9()
    return await held()


# --------------------------------------------------------------------------------------------
# (a) the persister killed -9 three times under load


async def test_a_persister_killed_repeatedly(stack: Stack, report: Report) -> None:
    round_id, cands = await stack.open_round("a-persister")
    app = await stack.start_app("app")
    persister = await stack.start_persister("persister-0")
    load = LoadClient([app.url], round_id, cands, stack.signers, rate=RATE)
    try:
        run = load.start(12)
        orphaned: list[int] = []
        last_kill = time.monotonic()
        for k in range(1, 4):
            await asyncio.sleep(2.0)
            orphaned.append(await kill_mid_batch(stack, persister, round_id))
            last_kill = time.monotonic()
            persister = await stack.start_persister(f"persister-{k}")
        await run
        # the live persister reclaims the dead consumers' entries (XAUTOCLAIM, 30 s idle)
        empty_at = await stack.wait_stream_empty(round_id, within=75)
        assert sum(orphaned) > 0, "no kill caught a persister holding a batch"
        await finish(
            stack,
            load,
            round_id,
            "a persister kill -9 x3",
            report,
            recover_s=empty_at - last_kill,
            recover_what="last kill -> stream empty, by the running persister",
            orphaned_pending=orphaned,
        )
    finally:
        await load.aclose()


# --------------------------------------------------------------------------------------------
# (b) two app processes, one killed -9 mid-load and restarted


async def test_b_app_process_killed(stack: Stack, report: Report) -> None:
    round_id, cands = await stack.open_round("b-app")
    apps = [await stack.start_app("app-1"), await stack.start_app("app-2")]
    await stack.start_persister("persister")
    load = LoadClient([a.url for a in apps], round_id, cands, stack.signers, rate=RATE)
    try:
        run = load.start(14)
        await asyncio.sleep(3.0)
        killed_at = load.now()
        apps[1].kill9()
        await asyncio.sleep(1.0)
        restarting_at = load.now()
        restart_s = await stack.restart_app(apps[1])
        restarted_at = load.now()
        await run
        # while app-2 was dead, its share of the ballots failed (connection refused): unknown
        hit = [a for a in load.between(killed_at, restarting_at) if a.url == apps[1].url]
        assert hit and all(a.first_outcome == "unknown" for a in hit), [a.history for a in hit]
        assert load.first_accepted_after(restarted_at, apps[1].url) is not None
        await finish(
            stack,
            load,
            round_id,
            "b app kill -9",
            report,
            recover_s=restart_s,
            recover_what="restart -> /healthz (down 1 s on purpose)",
            failed_while_down=len(hit),
        )
    finally:
        await load.aclose()


# --------------------------------------------------------------------------------------------
# (c) Postgres stopped for 30 s under load


async def test_c_postgres_down_30s(stack: Stack, report: Report) -> None:
    round_id, cands = await stack.open_round("c-postgres")
    app = await stack.start_app("app")
    await stack.start_persister("persister")
    load = LoadClient([app.url], round_id, cands, stack.signers, rate=80)
    keys = stack.keys(round_id)
    try:
        run = load.start(38)
        await asyncio.sleep(3.0)
        down_at = load.now()
        await asyncio.to_thread(stack.postgres.stop, "immediate")
        await asyncio.sleep(30.0)
        backlog = int(await stack.redis.xlen(keys.stream))
        await asyncio.to_thread(stack.postgres.start)
        up_at, up_mono, up_ms = load.now(), time.monotonic(), int(time.time() * 1000)

        async def caught_up() -> bool:
            # every ballot of the outage is persisted: the oldest entry left is newer
            oldest: Any = await stack.redis.xrange(keys.stream, count=1)
            return not oldest or int(oldest[0][0].split("-")[0]) >= up_ms

        caught_up_at = await wait_for(caught_up, 60, what="catch-up after Postgres restart")
        await run
        during = load.between(down_at, up_at)
        refused = [a.history for a in during if a.first_outcome != "accepted"]
        assert during and not refused, f"ballots refused while Postgres was down: {refused[:5]}"
        await finish(
            stack,
            load,
            round_id,
            "c postgres down 30 s",
            report,
            recover_s=caught_up_at - up_mono,
            recover_what="Postgres back -> every outage ballot persisted",
            accepted_while_down=len(during),
            backlog_at_restart=backlog,
        )
    finally:
        await load.aclose()
        if stack.postgres.down:  # the scenario failed during the outage: later ones need it
            await asyncio.to_thread(stack.postgres.start)


# --------------------------------------------------------------------------------------------
# (d) Valkey killed -9 and restarted from its AOF


async def valkey_killed(stack: Stack, report: Report, *, durable: bool) -> None:
    """Kill -9 Valkey mid-load, restart it from its AOF on the same port, run ``voting
    reconcile`` (and ``voting recover`` only if it reports a difference)."""
    name = "d1 valkey kill -9, durable ack" if durable else "d2 valkey kill -9, everysec"
    round_id, cands = await stack.open_round("d1-durable" if durable else "d2-everysec")
    env = {"VOTING_DURABLE_ACK": "true" if durable else "false"}
    app = await stack.start_app("app", **env)
    await stack.start_persister("persister")
    load = LoadClient([app.url], round_id, cands, stack.signers, rate=RATE)
    try:
        run = load.start(10)
        await asyncio.sleep(4.0)
        killed_at = load.now()
        stack.valkey.kill9()
        at_risk = sum(
            1
            for a in load.between(killed_at - 1.0, killed_at)
            if a.first_outcome == "accepted" and a.done_at <= killed_at
        )
        await asyncio.sleep(1.0)
        load_s = await asyncio.to_thread(stack.valkey.start)
        restarted_at = load.now()
        rec = await stack.voting("reconcile", str(round_id))
        needed = "reconcile clean"
        if rec.returncode != 0:
            fix = await stack.voting("recover", str(round_id))
            assert fix.returncode == 0, fix.stderr
            needed = f"recover (reconcile said: {rec.stderr.strip()[-300:]})"
        await run
        first = load.first_accepted_after(restarted_at)
        assert first is not None, "no ballot accepted after the restart"
        await finish(
            stack,
            load,
            round_id,
            name,
            report,
            recover_s=first - restarted_at,
            recover_what="restart -> first 201",
            aof_load_s=round(load_s, 2),
            after_restart=needed,
            acked_last_second_before_kill=at_risk,
            latency_ms_before_kill=load.latency_ms(0, killed_at),
        )
    finally:
        await load.aclose()


async def test_d1_valkey_killed_durable_ack(stack: Stack, report: Report) -> None:
    await valkey_killed(stack, report, durable=True)


async def test_d2_valkey_killed_everysec(stack: Stack, report: Report) -> None:
    # A process kill leaves what Valkey wrote to its AOF in the OS page cache, so even
    # everysec loses nothing here; a host crash is what everysec risks (about the last second
    # of acknowledged ballots, reported as acked_last_second_before_kill).
    await valkey_killed(stack, report, durable=False)


# --------------------------------------------------------------------------------------------
# (e) Redis wiped under load, voting recover, keep voting


async def test_e_redis_wiped_then_recovered(stack: Stack, report: Report) -> None:
    round_id, cands = await stack.open_round("e-wipe")
    app = await stack.start_app("app")
    await stack.start_persister("persister")
    load = LoadClient([app.url], round_id, cands, stack.signers, rate=RATE)
    keys = stack.keys(round_id)
    try:
        run = load.start(12)
        await asyncio.sleep(4.0)
        async with stack.redis.pipeline(transaction=True) as pipe:
            pipe.xlen(keys.stream)  # ballots not yet persisted: what the wipe destroys
            pipe.flushall()
            unpersisted, _ = await pipe.execute()
        wiped_at = load.now()
        await asyncio.sleep(1.0)
        refused = [a for a in load.between(wiped_at + 0.2, load.now()) if a.status is not None]
        assert refused and all(a.status == 503 for a in refused), [a.history for a in refused]
        done = await stack.voting("recover", str(round_id))
        assert done.returncode == 0, done.stderr
        recovered_at = load.now()
        # earlier voters whose ballot is in the record must get 409 with their ballot id
        earlier = [a for a in load.attempts if a.outcome == "accepted" and a.sent_at < wiped_at]
        in_pg = await persisted(stack, [a.ballot_id or "" for a in earlier])
        revoters = [a for a in earlier if a.ballot_id in in_pg][:50]
        assert len(revoters) >= 20
        again = [load.new_attempt(token=a.token) for a in revoters]
        await load.burst(again)
        for before, revote in zip(revoters, again, strict=True):
            assert (revote.status, revote.code) == (409, "already_voted"), revote.history
            assert revote.ballot_id == before.ballot_id
        await run
        first = load.first_accepted_after(recovered_at)
        assert first is not None
        verdict = await finish(
            stack,
            load,
            round_id,
            "e redis wiped + recover",
            report,
            recover_s=first - wiped_at,
            recover_what="wipe -> first 201 after voting recover (1 s wait included)",
            allowed_lost=int(unpersisted),
            unpersisted_at_wipe=int(unpersisted),
            revotes_409=len(again),
        )
        lost_attempts = [a for a in load.attempts if a.ballot_id in set(verdict.lost_ballots)]
        assert all(a.sent_at < wiped_at for a in lost_attempts)
    finally:
        await load.aclose()


async def persisted(stack: Stack, ballot_ids: list[str]) -> set[str]:
    """Which of ``ballot_ids`` are in Postgres."""
    b = tables.ballots
    async with stack.services.engine.connect() as conn:
        rows = await conn.execute(select(b.c.ballot_id).where(b.c.ballot_id.in_(ballot_ids)))
        return {str(r[0]) for r in rows}


# --------------------------------------------------------------------------------------------
# (f) Valkey filled to maxmemory under load


async def test_f_valkey_full(stack: Stack, report: Report) -> None:
    round_id, cands = await stack.open_round("f-full")
    app = await stack.start_app("app")
    await stack.start_persister("persister")
    load = LoadClient([app.url], round_id, cands, stack.signers, rate=RATE)
    keys = stack.keys(round_id)
    redis = stack.redis
    try:
        run = load.start(12)
        await asyncio.sleep(3.0)
        memory: Any = await redis.info("memory")
        await redis.config_set("maxmemory", int(memory["used_memory"]) + 2_000_000)
        fillers, full = await fill(redis, "filler", "x" * 100_000, 1000)
        if not full:
            pytest.fail("Valkey never reached maxmemory")
        full_at = load.now()
        # hold it full for 3 s: the persister's XDELs free memory, which more filler takes
        hold_until = time.monotonic() + 3.0
        for i in range(100_000):  # bounded by the time too
            if time.monotonic() >= hold_until:
                break
            more, _ = await fill(redis, f"top{i}", "x" * 2_000, 50)
            fillers += more
            await asyncio.sleep(0.005)
        async with redis.pipeline(transaction=True) as pipe:
            pipe.hlen(keys.voters)
            pipe.hget(keys.meta, "ballots")
            voters, ballots = await pipe.execute()
        assert int(voters) == int(ballots)  # nobody marked as voted without a ballot counted
        assert (await stack.services.rounds.reconcile(round_id)).consistent
        full_until = load.now()
        refused = [a for a in load.between(full_at + 0.2, full_until) if a.status == 503]
        assert refused, "no ballot was refused while Valkey was full"
        marked: list[Any] = await redis.hmget(keys.voters, [a.voter_hash for a in refused])
        assert marked == [None] * len(refused)  # no refused voter is marked as voted
        window = load.between(full_at + 0.2, full_until)
        if fillers:
            await redis.delete(*fillers)
        await redis.config_set("maxmemory", 0)
        freed_at = load.now()
        await run
        first = load.first_accepted_after(freed_at)
        assert first is not None
        await finish(
            stack,
            load,
            round_id,
            "f valkey full",
            report,
            recover_s=first - freed_at,
            recover_what="memory freed -> first 201",
            refused_503_while_full=len(refused),
            accepted_while_full=sum(1 for a in window if a.first_outcome == "accepted"),
        )
    finally:
        await load.aclose()


async def fill(redis: Any, prefix: str, value: str, most: int) -> tuple[list[str], bool]:
    """SET ``prefix:0``, ``prefix:1``... to ``value`` until Valkey answers OOM (at most
    ``most`` keys); the keys written and whether Valkey refused one (it is full)."""
    written: list[str] = []
    for i in range(most):
        try:
            await redis.set(f"{prefix}:{i}", value)
        except OutOfMemoryError:
            return written, True
        written.append(f"{prefix}:{i}")
    return written, False


# --------------------------------------------------------------------------------------------
# (g) 1,000 concurrent ballots from one voter


async def test_g_one_voter_1000_concurrent(stack: Stack, report: Report) -> None:
    round_id, cands = await stack.open_round("g-concurrent")
    apps = [await stack.start_app("app-1"), await stack.start_app("app-2")]
    load = LoadClient(
        [a.url for a in apps],
        round_id,
        cands,
        stack.signers,
        timeout=60,
        max_connections=400,
    )
    try:
        token = stack.signers.issue_voter("device")
        racing = [load.new_attempt(token=token, choices=cands[:5]) for _ in range(1000)]
        began = time.monotonic()
        await load.burst(racing)
        elapsed = time.monotonic() - began
        # first answers: 201 once, 409 already_voted, or unknown: 503 when the app's Redis pool
        # (200 connections per process) is exhausted by the burst (fail closed, Retry-After)
        assert {a.first_outcome for a in racing} <= {"accepted", "rejected", "unknown"}
        assert {a.code for a in racing if a.outcome == "rejected"} == {"already_voted"}
        refused = sum(1 for a in racing if a.status == 503)
        assert await load.settle(within=60) == 0  # retried with their own keys
        accepted = [a for a in racing if a.outcome == "accepted"]
        assert len(accepted) == 1, [a.history for a in racing if a.outcome != "rejected"][:5]
        winner = accepted[0].ballot_id
        answers = {(a.status, a.code, a.ballot_id) for a in racing if a is not accepted[0]}
        assert answers == {(409, "already_voted", winner)}
        # a retried request (same Idempotency-Key) 200 times at once: one ballot, same 201
        token2 = stack.signers.issue_voter("device")
        retried: list[Attempt] = [
            load.new_attempt(token=token2, choices=cands[5:8], key="same-key-retried")
            for _ in range(200)
        ]
        await load.burst(retried)
        assert await load.settle(within=60) == 0
        assert {(a.status, a.ballot_id) for a in retried} == {(201, retried[0].ballot_id)}
        await finish(
            stack,
            load,
            round_id,
            "g 1000 concurrent, one voter",
            report,
            recover_s=None,
            recover_what="n/a",
            burst_s=round(elapsed, 2),
            first_try_503=refused,
        )
    finally:
        await load.aclose()
