"""The ASGI application: ``create_app(settings)`` builds the public and/or admin app."""

from __future__ import annotations

import contextlib
import mimetypes
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from litestar import Litestar, Response, Router, get
from litestar.datastructures import CacheControlHeader, State
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.static_files import create_static_files_router
from litestar.types import ASGIApp

from voting.http import errors
from voting.http import public as public_api
from voting.http.answers import document
from voting.http.bodies import StrictRequest, json_only
from voting.http.deadline import body_deadline
from voting.http.docs import SwaggerDocs
from voting.http.headers import SecurityHeaders, policy
from voting.http.health import healthz, readyz
from voting.http.observe import observe_requests
from voting.http.origin import same_origin_only
from voting.http.paths import canonical_ids
from voting.services.container import Services, ServicesDep, open_services
from voting.settings import Settings

STATIC = Path(__file__).parent / "static"
# ES modules are refused by browsers unless served as JavaScript; do not leave it to the host
mimetypes.add_type("text/javascript", ".js")


def _services(state: State) -> Services:
    return state.services


@get("/", include_in_schema=False, media_type="text/html")
async def index(services: ServicesDep) -> Response[bytes]:
    """The public voting page, with a fresh CSP nonce for the ALTCHA widget's stylesheet (the
    widget reads it from ``<meta name="csp-nonce">``)."""
    nonce = secrets.token_urlsafe(16)
    page = (STATIC / "index.html").read_bytes().replace(b"{{csp_nonce}}", nonce.encode())
    csp = policy(services.settings.server.frame_ancestors, style_nonce=nonce)
    return Response(
        page,
        media_type="text/html; charset=utf-8",
        headers={"Cache-Control": "no-cache", "Content-Security-Policy": csp},
    )


@get(["/kiem-tra"], include_in_schema=False, media_type="text/html")
async def receipt_page(services: ServicesDep) -> Response[bytes]:
    """The public receipt check page (``?ma=`` a tracker pre-fills it); the API it calls is
    ``GET /api/v1/receipts/{tracker}``."""
    return Response(
        (STATIC / "kiem-tra.html").read_bytes(),
        media_type="text/html; charset=utf-8",
        headers={
            "Cache-Control": "no-cache",
            "Content-Security-Policy": policy(services.settings.server.frame_ancestors),
        },
    )


def _static(path: str, directory: Path) -> Router:
    """Static files at ``path``; revalidated, so that the modules of one page never mix
    versions after a deploy."""
    return create_static_files_router(
        path=path,
        directories=[directory],
        include_in_schema=False,
        cache_control=CacheControlHeader(no_cache=True),
    )


def create_app(settings: Settings, *, public: bool = True, admin: bool = True) -> Litestar:
    """Build the app for ``settings`` (``database_url`` and ``redis_url`` must be set).

    ``public``: the public API under ``/api/v1`` and the page at ``/``; ``admin``: the admin
    API under ``/admin/api/v1``. Redis, Postgres and (when ``settings.persister.run``) the
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
        handlers += [
            index,
            receipt_page,
            Router("/api/v1", route_handlers=public_api.ROUTES, tags=["public"]),
            _static("/static", STATIC),
        ]
    else:  # the API docs' own files (see voting.http.docs)
        handlers += [
            _static("/static/docs", STATIC / "docs"),
            _static("/static/vendor/swagger-ui", STATIC / "vendor" / "swagger-ui"),
        ]
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
        request_max_body_size=1_000_000,
        logging_config=None,  # logging is the process's business (see voting.cli)
        debug=False,
    )


def served_app(settings: Settings, *, public: bool = True, admin: bool = True) -> ASGIApp:
    """The app as an ASGI server runs it: :func:`create_app` inside the request body deadline
    (``VOTING_BODY_TIMEOUT``, :func:`voting.http.deadline.body_deadline`), which sees every
    request, routed or not, and the request latency histogram
    (:func:`voting.http.observe.observe_requests`; the metrics are served on their own port,
    never here: ``VOTING_METRICS_PORT``)."""
    app = create_app(settings, public=public, admin=admin)
    headers = SecurityHeaders.from_settings(settings.server)  # the 408 carries them too
    name = "+".join(p for p, on in (("public", public), ("admin", admin)) if on)
    return observe_requests(body_deadline(app, settings.server.body_timeout, headers), name)


def app_from_env() -> ASGIApp:
    """Factory for ASGI servers (``granian --factory voting.app:app_from_env``):
    :func:`served_app` with the settings of the environment; URLs must be configured."""
    import os

    parts = set((os.environ.get("VOTING_APP_PARTS") or "public,admin").split(","))
    return served_app(Settings.from_env(), public="public" in parts, admin="admin" in parts)
