"""The ASGI application: ``create_app(settings)`` builds the public and/or admin app."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from litestar import Litestar, Router
from litestar.datastructures import State
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.types import ASGIApp

from voting.http import errors
from voting.http import public as public_api
from voting.http.answers import document
from voting.http.assets import Assets, assets_router
from voting.http.ballots import ballot_lane
from voting.http.bodies import StrictRequest, json_only
from voting.http.compression import compression_config
from voting.http.deadline import body_deadline
from voting.http.docs import SwaggerDocs
from voting.http.headers import SecurityHeaders
from voting.http.health import healthz, readyz
from voting.http.observe import observe_requests
from voting.http.origin import same_origin_only
from voting.http.page import Pages, page_routes
from voting.http.paths import canonical_ids
from voting.services.container import Services, open_services
from voting.settings import Settings

STATIC = Path(__file__).parent / "static"


def _services(state: State) -> Services:
    return state.services


def create_app(settings: Settings, *, public: bool = True, admin: bool = True) -> Litestar:
    """Build the app for ``settings`` (``database_url`` and ``redis_url`` must be set).

    ``public``: the public API under ``/api/v1``, the page at ``/`` and its deep links, the
    service worker and the static files (:mod:`voting.http.page`, :mod:`voting.http.assets`);
    ``admin``: the admin API under ``/admin/api/v1``. Text answers are compressed
    (:mod:`voting.http.compression`). Redis, Postgres and (when ``settings.persister.run``) the
    persister are opened in the lifespan and closed on shutdown. The OpenAPI schema is served
    at ``/schema`` (``/schema/openapi.json``).
    """

    @contextlib.asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        async with open_services(settings) as services:
            app.state.services = services
            yield

    handlers: list[Any] = [healthz, readyz]
    lifespans: list[Any] = [lifespan]
    templates = None
    if public:
        document(public_api.ROUTES)
        assets = Assets.load(STATIC)  # read and hashed once (see voting.http.assets)
        handlers += [
            *page_routes(Pages.build(STATIC, assets)),
            Router("/api/v1", route_handlers=public_api.ROUTES, tags=["public"]),
            assets_router(assets),
        ]
    else:  # the API docs' own files (see voting.http.docs)
        handlers.append(assets_router(Assets.load(STATIC, only=("docs", "vendor/swagger-ui"))))
    if admin:
        from admin.api import (  # admin is the layer above
            ADMIN_DEPENDENCIES,
            ADMIN_GUARDS,
            ROUTES,
            admin_lifespan,
            login,
        )
        from admin.console import console_routers, template_config

        lifespans.append(admin_lifespan)
        document([login])
        document(ROUTES, guarded=True)
        handlers += console_routers(ADMIN_DEPENDENCIES)
        templates = template_config()

        handlers += [
            Router("/admin/api/v1", route_handlers=[login], tags=["admin"]),
            Router(
                "/admin/api/v1",
                route_handlers=ROUTES,
                tags=["admin"],
                dependencies=ADMIN_DEPENDENCIES,
                guards=ADMIN_GUARDS,
            ),
        ]
    return Litestar(
        route_handlers=handlers,
        lifespan=lifespans,
        dependencies={"services": Provide(_services, sync_to_thread=False)},
        exception_handlers=errors.EXCEPTION_HANDLERS,
        middleware=[canonical_ids, same_origin_only, json_only],
        request_class=StrictRequest,
        template_config=templates,
        openapi_config=OpenAPIConfig(
            title="Voting service",
            version="1.0.0",
            path="/schema",
            render_plugins=[SwaggerDocs()],
        ),
        before_send=[SecurityHeaders.from_settings(settings.server)],
        compression_config=compression_config(),
        request_max_body_size=1_000_000,
        logging_config=None,  # logging is the process's business (see voting.cli)
        debug=False,
    )


def served_app(settings: Settings, *, public: bool = True, admin: bool = True) -> ASGIApp:
    """The app as an ASGI server runs it: :func:`create_app` wrapped by :func:`served`."""
    app = create_app(settings, public=public, admin=admin)
    return served(app, settings, public=public, admin=admin)


def served(
    app: Litestar, settings: Settings, *, public: bool = True, admin: bool = True
) -> ASGIApp:
    """``app`` behind the lean lane of ballots (:func:`voting.http.ballots.ballot_lane`, when
    it has the public side), inside the request body deadline (``VOTING_BODY_TIMEOUT``,
    :func:`voting.http.deadline.body_deadline`), which sees every request, routed or not, and
    the request latency histogram (:func:`voting.http.observe.observe_requests`; the metrics
    are served on their own port, never here: ``VOTING_METRICS_PORT``)."""
    headers = SecurityHeaders.from_settings(settings.server)  # the 408 carries them too
    inner: ASGIApp = ballot_lane(app, headers) if public else app
    name = "+".join(p for p, on in (("public", public), ("admin", admin)) if on)
    return observe_requests(body_deadline(inner, settings.server.body_timeout, headers), name)


def app_from_env() -> ASGIApp:
    """Factory for ASGI servers (``granian --factory voting.app:app_from_env``):
    :func:`served_app` with the settings of the environment; URLs must be configured."""
    import os

    parts = set((os.environ.get("VOTING_APP_PARTS") or "public,admin").split(","))
    return served_app(Settings.from_env(), public="public" in parts, admin="admin" in parts)
