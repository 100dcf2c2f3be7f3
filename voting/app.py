"""The ASGI application: ``create_app(settings)`` builds the public and/or admin app."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from litestar import Litestar, Response, Router, get
from litestar.datastructures import State
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.static_files import create_static_files_router
from sqlalchemy import select

from voting.http import errors
from voting.http import public as public_api
from voting.record import tables
from voting.services.container import Services, ServicesDep, open_services
from voting.settings import Settings

STATIC = Path(__file__).parent / "static"


def _services(state: State) -> Services:
    return state.services


@get("/", include_in_schema=False, media_type="text/html")
async def index() -> Response[bytes]:
    """The public voting page."""
    return Response(
        (STATIC / "index.html").read_bytes(),
        media_type="text/html; charset=utf-8",
        headers={"Cache-Control": "no-cache"},
    )


@get("/healthz", summary="Liveness", include_in_schema=True)
async def healthz() -> dict[str, str]:
    """Always 200 while the process serves requests."""
    return {"status": "ok"}


@get("/readyz", summary="Readiness: Redis and Postgres reachable, Redis state intact")
async def readyz(services: ServicesDep) -> Response[dict[str, Any]]:
    """200 when Redis answers, Postgres answers, Redis does not evict, every open or paused
    round has its live state in Redis and each backlog is under ``VOTING_MAX_BACKLOG``; 503
    otherwise, with the failing checks named in ``checks``."""
    checks: dict[str, Any] = {}
    try:
        await services.redis.ping()
        checks["redis"] = "ok"
    except Exception as exc:  # noqa: BLE001 - any failure means not ready
        checks["redis"] = type(exc).__name__
    try:
        async with services.engine.connect() as conn:
            live_rounds = [
                r[0]
                for r in await conn.execute(
                    select(tables.rounds.c.id).where(tables.rounds.c.status.in_(("open", "paused")))
                )
            ]
        checks["postgres"] = "ok"
    except Exception as exc:  # noqa: BLE001
        checks["postgres"] = type(exc).__name__
        live_rounds = []
    box = services.ballot_box
    checks["redis_safe"] = "ok" if box.safe else box.unsafe_reason
    if checks["redis"] == "ok" and live_rounds:
        try:
            missing, backlog = [], {}
            for round_id in live_rounds:
                keys = box.keys(round_id)
                if not await services.redis.exists(keys.meta):
                    missing.append(round_id)
                length = await services.redis.xlen(keys.stream)
                if length >= services.settings.max_backlog:
                    backlog[str(round_id)] = length
            checks["round_state"] = "ok" if not missing else {"missing": missing}
            checks["backlog"] = "ok" if not backlog else {"over_bound": backlog}
        except Exception as exc:  # noqa: BLE001
            checks["round_state"] = type(exc).__name__
    ok = all(v == "ok" for v in checks.values())
    return Response(
        {"status": "ok" if ok else "unavailable", "checks": checks},
        status_code=200 if ok else 503,
    )


def create_app(settings: Settings, *, public: bool = True, admin: bool = True) -> Litestar:
    """Build the app for ``settings`` (``database_url`` and ``redis_url`` must be set).

    ``public``: the public API under ``/api/v1`` and the page at ``/``; ``admin``: the admin
    API under ``/admin/api/v1``. Redis, Postgres and (when ``settings.run_persister``) the
    persister are opened in the lifespan and closed on shutdown. The OpenAPI schema is served
    at ``/schema`` (``/schema/openapi.json``).
    """

    @contextlib.asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        async with open_services(settings) as services:
            app.state.services = services
            yield

    handlers: list[Any] = [healthz, readyz]
    if public:
        handlers += [
            index,
            Router("/api/v1", route_handlers=public_api.ROUTES, tags=["public"]),
            create_static_files_router(
                path="/static", directories=[STATIC], include_in_schema=False
            ),
        ]
    if admin:
        from admin.api import ADMIN_DEPENDENCIES, ROUTES, login

        handlers.append(
            Router(
                "/admin/api/v1",
                route_handlers=[login, *ROUTES],
                tags=["admin"],
                dependencies=ADMIN_DEPENDENCIES,
            )
        )
    return Litestar(
        route_handlers=handlers,
        lifespan=[lifespan],
        dependencies={"services": Provide(_services, sync_to_thread=False)},
        exception_handlers=errors.EXCEPTION_HANDLERS,
        openapi_config=OpenAPIConfig(
            title="Voting service",
            version="1.0.0",
            path="/schema",
            render_plugins=[SwaggerRenderPlugin()],
        ),
        request_max_body_size=1_000_000,
        logging_config=None,  # logging is the process's business (see voting.cli)
        debug=False,
    )


def app_from_env() -> Litestar:
    """Factory for ASGI servers (``uvicorn --factory voting.app:app_from_env``): settings from
    the environment; URLs must be configured."""
    import os

    parts = set((os.environ.get("VOTING_APP_PARTS") or "public,admin").split(","))
    return create_app(Settings.from_env(), public="public" in parts, admin="admin" in parts)
