"""Stalls: a Redis that stops answering gives fast 503s, and a status change that fails
half-way leaves Postgres and Redis agreeing.

The app under test reaches the suite's real Redis through :class:`StallingProxy`, a real TCP
proxy that holds every byte while stalled and delivers them on resume, as SIGSTOP and SIGCONT
do to a server (a command whose client gave up still runs afterwards). The shared server is
never stopped. The suite's own ``services`` (the same database and Redis, not through the
proxy) look at both stores and play the schedule loop once Redis answers again.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import pytest_asyncio
from litestar import Litestar
from litestar.testing import AsyncTestClient

from tests.support.app import make_settings
from tests.support.stall import StallingProxy
from tests.support.voters import error_code, new_voter
from voting.app import create_app
from voting.live import state as live
from voting.record import queries
from voting.record.audit import decision_number
from voting.services import schedule
from voting.services.container import Services, open_services
from voting.settings import Settings

FAST = 1.5  # seconds: a ballot, /readyz or progress under a stall answers within this
ADMIN_FAST = 2.5  # seconds: a status change (its write, then its undo, each may wait)


@dataclasses.dataclass
class Stalled:
    """An app whose Redis is behind ``proxy``; ``settings`` are the app's."""

    client: AsyncTestClient[Litestar]
    proxy: StallingProxy
    settings: Settings


@pytest_asyncio.fixture
async def stalled(backends) -> AsyncIterator[Stalled]:
    url = urlsplit(backends.redis_url)
    proxy = StallingProxy(url.hostname or "127.0.0.1", url.port or 6379)
    port = proxy.start()
    # the hot timeout is the default one; the other Redis calls wait 1 s (reconcile)
    settings = make_settings(
        backends, redis_url=f"redis://127.0.0.1:{port}{url.path or '/0'}", redis_timeout=1
    )
    try:
        async with AsyncTestClient(app=create_app(settings)) as c:
            try:
                yield Stalled(c, proxy, settings)
            finally:
                proxy.resume()  # let the app close its connections
    finally:
        proxy.stop()


async def timed(call: Awaitable[Any]) -> tuple[Any, float]:
    start = time.monotonic()
    result = await call
    return result, time.monotonic() - start


async def statuses(services: Services, round_id: int) -> tuple[str, str | None]:
    """``(record's status, Redis's status)`` of ``round_id``, read directly."""
    async with services.engine.connect() as conn:
        record = (await queries.get_round(conn, round_id)).status
    return record, await live.status(services.redis, services.ballot_box.keys(round_id))


async def eventually(check: Callable[[], Awaitable[bool]]) -> bool:
    """Whether ``check()`` comes true within 5 s."""
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline:
        if await check():
            return True
        await asyncio.sleep(0.05)
    return False


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat().replace("+00:00", "Z")


def ballot_url(rnd: dict[str, Any]) -> str:
    return f"/api/v1/rounds/{rnd['id']}/ballots"


async def test_ballots_under_a_stall_are_a_fast_503_and_the_keyed_retry_tells(
    stalled, make_round, services
):
    c, proxy = stalled.client, stalled.proxy
    rnd, other = await make_round(), await make_round()
    body = {"choices": rnd["candidate_ids"][:2]}
    voters = [await new_voter(c) for _ in range(3)]
    assert (await c.post(ballot_url(rnd), json=body, headers=voters[0])).status_code == 201
    keyed = {**voters[1], "Idempotency-Key": "stalled-1"}
    proxy.stall()
    # the round's rules are cached: the script is sent and not answered, so it may have run
    r, took = await timed(c.post(ballot_url(rnd), json=body, headers=keyed))
    print(f"ballot, script sent, stalled Redis: {r.status_code} in {took:.2f} s")
    assert r.status_code == 503 and error_code(r) == "outcome_unknown", r.text
    assert int(r.headers["Retry-After"]) >= 1
    assert took < FAST
    # another round's rules are not cached: nothing was sent, so nothing changed
    r, took = await timed(
        c.post(ballot_url(other), json={"choices": other["candidate_ids"][:1]}, headers=voters[2])
    )
    print(f"ballot, rules not cached, stalled Redis: {r.status_code} in {took:.2f} s")
    assert r.status_code == 503 and error_code(r) == "unavailable", r.text
    assert int(r.headers["Retry-After"]) >= 1
    assert took < FAST
    proxy.resume()
    # the held script runs once Redis answers again (as after SIGCONT): the retry tells
    keys = services.ballot_box.keys(rnd["id"])

    async def counted_twice() -> bool:
        return (await live.tally(services.redis, keys))[1] == 2

    assert await eventually(counted_twice)
    again = await c.post(ballot_url(rnd), json=body, headers=keyed)
    assert again.status_code == 201, again.text  # the original answer, replayed
    assert (await live.tally(services.redis, keys))[1] == 2  # counted once


async def test_a_refused_connection_before_the_script_is_unavailable_not_unknown(
    stalled, make_round, services
):
    c, proxy = stalled.client, stalled.proxy
    rnd = await make_round()
    body = {"choices": rnd["candidate_ids"][:1]}
    first, second = await new_voter(c), await new_voter(c)
    assert (await c.post(ballot_url(rnd), json=body, headers=first)).status_code == 201
    proxy.refuse()  # Redis down: the script cannot even be sent
    # (once the app has seen its pooled connections closed; one that looks alive is written
    # to, and then the answer is rightly outcome_unknown)
    await asyncio.sleep(0.2)
    r, took = await timed(c.post(ballot_url(rnd), json=body, headers=second))
    print(f"ballot, Redis refusing connections: {r.status_code} in {took:.2f} s")
    assert r.status_code == 503 and error_code(r) == "unavailable", r.text
    assert took < FAST
    _, total = await live.tally(services.redis, services.ballot_box.keys(rnd["id"]))
    assert total == 1


async def test_readyz_under_a_stall_is_a_fast_503(stalled):
    c, proxy = stalled.client, stalled.proxy
    assert (await c.get("/readyz")).json()["checks"]["redis"] == "ok"
    proxy.stall()
    r, took = await timed(c.get("/readyz"))
    print(f"/readyz, stalled Redis: {r.status_code} in {took:.2f} s")
    assert r.status_code == 503
    assert r.json()["checks"]["redis"] != "ok"
    assert took < FAST


async def test_admin_reads_under_a_stall_or_outage_are_503_not_500(
    stalled, make_round, admin_headers
):
    c, proxy = stalled.client, stalled.proxy
    rnd = await make_round(results_visibility="live")
    base = f"/admin/api/v1/rounds/{rnd['id']}"
    assert (await c.get(f"{base}/progress", headers=admin_headers)).status_code == 200
    proxy.stall()
    for path, bound in (("progress", FAST), ("results", FAST), ("reconcile", ADMIN_FAST)):
        r, took = await timed(c.get(f"{base}/{path}", headers=admin_headers))
        print(f"admin {path}, stalled Redis: {r.status_code} in {took:.2f} s")
        assert r.status_code == 503 and error_code(r) == "unavailable", (path, r.text)
        assert int(r.headers["Retry-After"]) >= 1
        assert took < bound, path
    r = await c.get(f"/api/v1/rounds/{rnd['id']}/results")
    assert r.status_code == 503 and error_code(r) == "unavailable"
    proxy.refuse()
    r = await c.get(f"{base}/progress", headers=admin_headers)
    assert r.status_code == 503 and error_code(r) == "unavailable", r.text


async def test_a_resume_that_redis_did_not_confirm_is_finished_never_half_open(
    stalled, make_round, services, client, admin_headers
):
    """The reported case: a resume timed out; Postgres must never say paused while Redis
    takes ballots, and once Redis answers both say the same."""
    c, proxy = stalled.client, stalled.proxy
    rnd = await make_round(status="paused")
    voter = await new_voter(client)
    proxy.stall()
    r, took = await timed(c.post(f"/admin/api/v1/rounds/{rnd['id']}/resume", headers=admin_headers))
    print(f"admin resume, stalled Redis: {r.status_code} in {took:.2f} s")
    assert r.status_code == 503 and error_code(r) == "unavailable", r.text
    assert took < ADMIN_FAST
    record, redis_status = await statuses(services, rnd["id"])
    assert not (record == "paused" and redis_status == "open"), (record, redis_status)
    body = {"choices": rnd["candidate_ids"][:1]}
    if redis_status != "open":  # Redis refuses until the resume is finished: the safe side
        r = await client.post(ballot_url(rnd), json=body, headers=voter)
        assert r.status_code == 409 and error_code(r) == "round_not_open", r.text
    proxy.resume()
    await asyncio.sleep(0.3)  # the held write, if any, lands
    await schedule.apply(services.rounds)  # what the schedule loop does within seconds
    record, redis_status = await statuses(services, rnd["id"])
    assert record == redis_status, (record, redis_status)
    r = await client.post(ballot_url(rnd), json=body, headers=voter)
    if record == "open":
        assert r.status_code == 201, r.text
    else:
        assert r.status_code == 409, r.text


async def test_a_resume_whose_write_failed_is_finished_by_repeating_it(
    stalled, make_round, services, client, admin_headers
):
    c, proxy = stalled.client, stalled.proxy
    rnd = await make_round(status="paused")
    proxy.refuse()
    r = await c.post(f"/admin/api/v1/rounds/{rnd['id']}/resume", headers=admin_headers)
    assert r.status_code == 503 and error_code(r) == "unavailable", r.text
    assert "open in the record" in r.json()["error"]["message"]
    assert await statuses(services, rnd["id"]) == ("open", "paused")  # refusing: safe side
    r = await client.post(f"/admin/api/v1/rounds/{rnd['id']}/resume", headers=admin_headers)
    assert r.status_code == 200, r.text
    assert await statuses(services, rnd["id"]) == ("open", "open")
    r = await client.post(f"/admin/api/v1/rounds/{rnd['id']}/resume", headers=admin_headers)
    assert r.status_code == 409 and error_code(r) == "invalid_transition"


async def test_a_pause_or_close_that_redis_did_not_confirm_is_undone(
    stalled, make_round, services, client, admin_headers
):
    c, proxy = stalled.client, stalled.proxy
    for action in ("pause", "close"):
        rnd = await make_round()
        proxy.stall()
        r, took = await timed(
            c.post(f"/admin/api/v1/rounds/{rnd['id']}/{action}", headers=admin_headers)
        )
        print(f"admin {action}, stalled Redis: {r.status_code} in {took:.2f} s")
        assert r.status_code == 503 and error_code(r) == "unavailable", r.text
        assert took < ADMIN_FAST
        record, _ = await statuses(services, rnd["id"])
        assert record == "open"  # not recorded: the change is undone
        proxy.resume()
        await asyncio.sleep(0.3)  # the held write lands: Redis refuses, the safe side
        await schedule.apply(services.rounds)
        assert await statuses(services, rnd["id"]) == ("open", "open")
        voter = await new_voter(client)
        r = await client.post(
            ballot_url(rnd), json={"choices": [rnd["candidate_ids"][0]]}, headers=voter
        )
        assert r.status_code == 201, r.text
        r = await c.post(f"/admin/api/v1/rounds/{rnd['id']}/{action}", headers=admin_headers)
        # Redis answers again: the change goes through (a close's count then runs in the
        # background: 202)
        assert r.status_code == (200 if action == "pause" else 202), r.text
        expected = "paused" if action == "pause" else "closed"
        assert await statuses(services, rnd["id"]) == (expected, expected)


async def test_the_schedule_close_under_a_stall_waits_and_then_closes(
    stalled, make_round, services
):
    closes = time.time() + 1.0
    rnd = await make_round(closes_at=_iso(closes))
    async with open_services(stalled.settings) as behind_proxy:
        stalled.proxy.stall()
        await asyncio.sleep(max(0.0, closes - time.time()) + 0.1)
        applied, took = await timed(schedule.apply(behind_proxy.rounds))
        print(f"schedule close, stalled Redis: applied {applied} in {took:.2f} s")
        assert (rnd["id"], "close") not in applied
        assert (await statuses(services, rnd["id"]))[0] == "open"
        stalled.proxy.resume()
        await asyncio.sleep(0.3)
        assert (rnd["id"], "close") in await schedule.apply(behind_proxy.rounds)
    assert await statuses(services, rnd["id"]) == ("closed", "closed")


async def test_a_late_status_write_never_undoes_a_newer_decision(make_round, services):
    rnd = await make_round()
    keys = services.ballot_box.keys(rnd["id"])
    async with services.engine.connect() as conn:
        older, newer = await decision_number(conn), await decision_number(conn)
    done = await live.set_status(services.redis, keys, "paused", newer)
    assert done.outcome == "ok"
    late = await live.set_status(services.redis, keys, "open", older)  # e.g. sent before a stall
    assert (late.outcome, late.status) == ("stale", "paused")
    assert await live.status(services.redis, keys) == "paused"
    # the record says open: the schedule's follow-up sets Redis back under a newer number
    assert rnd["id"] in await services.rounds.follow_record()
    assert await statuses(services, rnd["id"]) == ("open", "open")
    missing = services.ballot_box.keys(2_000_000_001)
    assert (await live.set_status(services.redis, missing, "open", newer + 10)).outcome == "missing"
    assert not await services.redis.exists(missing.meta)  # no partial live state made
