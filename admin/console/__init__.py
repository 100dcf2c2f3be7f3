"""The admin console at ``/admin``: server-rendered Vietnamese pages (Jinja templates) with
htmx for partial updates and uPlot for charts, both vendored in ``admin/static``.

:func:`console_routers` gives the routers: the login page (open), every other page behind the
API's session guard (:func:`admin.auth.authenticated`; a missing session is sent to the login
page), and the console's static files at ``/admin/static``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from litestar import Router
from litestar.datastructures import CacheControlHeader
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.static_files import create_static_files_router
from litestar.template import TemplateConfig

from admin.auth import authenticated
from admin.console import (
    access,
    accounts,
    audit_log,
    codes,
    dashboard,
    photos,
    quarantine,
    results,
    rounds,
)
from voting.core.errors import DomainError, Unauthenticated

TEMPLATES = Path(__file__).resolve().parents[1] / "templates"
STATIC = Path(__file__).resolve().parents[1] / "static"

PAGES = [
    rounds.home,
    rounds.rounds_page,
    rounds.new_round_page,
    rounds.create_round,
    rounds.round_page,
    rounds.edit_round_page,
    rounds.update_round,
    rounds.change_status,
    rounds.close_state_fragment,
    rounds.upload_shortlist,
    rounds.edit_candidate_page,
    rounds.edit_candidate,
    rounds.preview_page,
    access.logout,
    *dashboard.ROUTES,
    *results.ROUTES,
    *quarantine.ROUTES,
    *audit_log.ROUTES,
    *accounts.ROUTES,
    *codes.ROUTES,
    *photos.ROUTES,
]


def template_config() -> TemplateConfig[Any]:
    """Jinja over ``admin/templates`` (autoescaped), with the console's filters."""
    return TemplateConfig(directory=TEMPLATES, engine=JinjaTemplateEngine)


def console_routers(dependencies: dict[str, Any]) -> list[Router]:
    """The console's routers (see the module); ``dependencies``: the admin API's (the caller)."""
    return [
        Router(
            "/admin",
            route_handlers=[access.login_page, access.login_submit],
            include_in_schema=False,
        ),
        Router(
            "/admin",
            route_handlers=PAGES,
            guards=[authenticated],
            dependencies=dependencies,
            exception_handlers={
                Unauthenticated: access.to_login,
                DomainError: access.console_error,
            },
            include_in_schema=False,
        ),
        create_static_files_router(
            path="/admin/static",
            directories=[STATIC],
            include_in_schema=False,
            cache_control=CacheControlHeader(no_cache=True),
        ),
    ]
