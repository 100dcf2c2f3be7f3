"""The live dashboard of a round: ballots accepted, persisted and waiting, ballots per minute
(a uPlot chart), turnout by hour, the health of Redis, Postgres and the persister,
credentials issued and ballots refused by reason, and the live tally for those allowed to see
it.

Credentials issued and ballots refused are the processes' counts (:mod:`voting.live.counters`,
a few seconds behind). The figures refresh by themselves (htmx polls the ``stats`` fragment
every :data:`REFRESH` seconds; the chart follows). Accepted ballots are Redis's count;
persisted ballots and the per-minute and per-hour series are Postgres's (ballots are there
within about a second of being accepted, see ``waiting``). An admin may show the live tally
(each showing is audited); an observer sees it only when the round's results are public.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

from litestar import get
from litestar.params import FromPath, FromQuery
from litestar.response import Template
from redis.exceptions import RedisError
from sqlalchemy.exc import SQLAlchemyError

from admin.auth import AdminDep
from admin.console.access import page
from admin.console.forms import VIETNAM
from admin.console.rounds import STATUS_LABELS
from admin.labels import refusal_groups
from voting.live import counters
from voting.live import state as live
from voting.live.keys import RoundKeys
from voting.record import queries
from voting.record.audit import audit
from voting.services.container import Services, ServicesDep
from voting.services.readiness import readiness
from voting.services.results import round_results

REFRESH = 5  # seconds between refreshes of the figures
HOURS = 6  # hours of the per-minute chart
PERSISTER_LATE = 30.0  # seconds a ballot may wait before the persister is called late


async def _stats(services: Services, round_id: int) -> dict[str, Any]:
    keys = RoundKeys(services.settings.redis.prefix, round_id)
    stats: dict[str, Any] = {"accepted": None, "waiting": None, "oldest_wait": None}
    async with services.engine.connect() as conn:
        rnd = await queries.get_round(conn, round_id)
        stats["persisted"] = await queries.persisted_count(conn, round_id)
    stats["credentials"] = None
    stats["refusals"] = []
    try:
        counts = await counters.read(services.redis, keys)
        stats["credentials"] = counts.pop(counters.CREDENTIALS, 0)
        stats["refusals"] = refusal_groups(counts)
        _, stats["accepted"] = await live.tally(services.redis, keys)
        stats["waiting"] = await live.backlog(services.redis, keys)
        stats["oldest_wait"] = await live.oldest_wait(services.redis, keys, int(time.time() * 1000))
    except RedisError:
        pass
    if rnd.final and not stats["accepted"] and not stats["waiting"]:
        # live state removed after its grace period (or Redis down): the record's count
        stats["accepted"], stats["waiting"] = stats["persisted"], 0
    checks = await readiness(services)
    late = stats["oldest_wait"] is not None and stats["oldest_wait"] > PERSISTER_LATE
    stats["health"] = [
        (
            "Redis (phiếu trực tiếp)",
            checks.get("redis") == "ok" and checks.get("redis_safe") == "ok",
        ),
        ("Postgres (lưu trữ)", checks.get("postgres") == "ok"),
        ("Bộ ghi phiếu (persister)", stats["waiting"] is not None and not late),
    ]
    stats["round"] = rnd
    stats["status_label"] = STATUS_LABELS[rnd.status]
    return stats


@get("/rounds/{round_id:int}/dashboard", include_in_schema=False)
async def dashboard_page(
    services: ServicesDep, admin: AdminDep, round_id: FromPath[int]
) -> Template:
    """The dashboard (its figures and chart then refresh by themselves)."""
    stats = await _stats(services, round_id)
    return page("dashboard.html", admin, refresh=REFRESH, hours=HOURS, **stats)


@get("/rounds/{round_id:int}/dashboard/stats", include_in_schema=False)
async def dashboard_stats(
    services: ServicesDep, admin: AdminDep, round_id: FromPath[int]
) -> Template:
    """The figures fragment the dashboard polls."""
    stats = await _stats(services, round_id)
    return page("dashboard_stats.html", admin, refresh=REFRESH, **stats)


@get("/rounds/{round_id:int}/dashboard/series", include_in_schema=False)
async def dashboard_series(services: ServicesDep, round_id: FromPath[int]) -> dict[str, Any]:
    """The chart's data: ballots per minute over the last :data:`HOURS` hours (``x``: Unix
    seconds of each minute, ``y``: ballots, zeros filled in) and turnout per hour in Vietnam
    time (``hours``: ``[["dd/mm HH:00", count], ...]``)."""
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    since = now - timedelta(hours=HOURS)
    async with services.engine.connect() as conn:
        await queries.get_round(conn, round_id)
        minutes = dict(await queries.ballots_by_time(conn, round_id, "minute", since))
        hours = await queries.ballots_by_time(
            conn, round_id, "hour", datetime(2000, 1, 1, tzinfo=UTC), "Asia/Ho_Chi_Minh"
        )
    xs, ys = [], []
    t = since
    counts = {m.astimezone(UTC).replace(second=0, microsecond=0): n for m, n in minutes.items()}
    while t <= now:
        xs.append(int(t.timestamp()))
        ys.append(counts.get(t, 0))
        t += timedelta(minutes=1)
    return {
        "x": xs,
        "y": ys,
        "hours": [[h.astimezone(VIETNAM).strftime("%d/%m %H:00"), n] for h, n in hours],
    }


@get("/rounds/{round_id:int}/dashboard/tally", include_in_schema=False)
async def dashboard_tally(
    services: ServicesDep,
    admin: AdminDep,
    round_id: FromPath[int],
    show: FromQuery[bool] = False,
) -> Template:
    """The live tally, when asked for and allowed (see the module)."""
    async with services.engine.connect() as conn:
        rnd = await queries.get_round(conn, round_id)
    allowed = admin.role == "admin" or rnd.results_visible()
    results = None
    if show and allowed:
        try:
            results = await round_results(
                services.engine, services.redis, services.settings.redis.prefix, rnd
            )
        except (RedisError, SQLAlchemyError):
            results = None
        else:
            async with services.engine.begin() as conn:
                await audit(conn, admin.username, "tally_view", round_id)
    return page(
        "dashboard_tally.html", admin, round=rnd, allowed=allowed, results=results, shown=show
    )


ROUTES = [dashboard_page, dashboard_stats, dashboard_series, dashboard_tally]
