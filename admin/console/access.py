"""The console's door: the login page, logout, and what a page needs to know of its viewer.

The console uses the API's sessions (:mod:`admin.sessions`, the ``admin_session`` cookie) and
its login desk (:class:`admin.auth.LoginDesk`: the same limits, hashing and audit). Pages are
rendered for an :class:`~admin.auth.Admin`; htmx sends the session's CSRF token with every
change (``hx-headers`` on ``<body>``), which the API's guard checks. A request without a live
session is sent to the login page (an htmx request by ``HX-Redirect``), never answered JSON.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

import msgspec
from litestar import Request, Response, get, post
from litestar.enums import RequestEncodingType
from litestar.params import Body, FromQuery
from litestar.plugins.htmx import ClientRedirect
from litestar.response import Redirect, Template

from admin import sessions
from admin.api import LoginIn
from admin.auth import SESSION_COOKIE, Admin, AdminDep, LoginDesk, session_cookie
from admin.console.forms import domain_errors
from voting.core.errors import DomainError, Limited, Unauthenticated, Unavailable
from voting.http.client_ip import client_prefix
from voting.http.errors import status_of
from voting.record.audit import audit
from voting.services.container import ServicesDep

HOME = "/admin"
LOGIN = "/admin/login"
FormBody = Annotated[dict[str, Any], Body(media_type=RequestEncodingType.URL_ENCODED)]


def page(name: str, admin: Admin | None, **context: Any) -> Template:
    """The console template ``name`` (under ``admin/templates/console``) for ``admin``."""
    return Template(template_name=f"console/{name}", context={"admin": admin, **context})


def is_htmx(request: Request[Any, Any, Any]) -> bool:
    """Whether htmx sent the request (it then swaps the answer into the page)."""
    return request.headers.get("hx-request") == "true"


def to_login(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    """Exception handler of the console for :class:`Unauthenticated`: to the login page,
    back to this page afterwards."""
    target = f"{LOGIN}?next={quote(request.url.path)}"
    if request.cookies.get(SESSION_COOKIE):  # there was a session: it has ended
        target += "&expired=1"
    if is_htmx(request):
        return ClientRedirect(redirect_to=target)
    return Redirect(path=target, status_code=303)


def console_error(request: Request[Any, Any, Any], exc: DomainError) -> Response[Any]:
    """Exception handler of the console for the other domain errors (forbidden, not found,
    a CSRF failure...): a Vietnamese page with the error's status; to htmx, the message in
    place (htmx swaps only 2xx answers)."""
    admin = getattr(request.state, "admin", None)
    message = message_of(exc)
    if is_htmx(request):
        return page("notice.html", admin, kind="error", message=message)
    template = page("error.html", admin, message=message)
    template.status_code = status_of(exc)
    return template


def _safe_next(value: str | None) -> str:
    """A ``next`` target inside the console only (no open redirect)."""
    if value and value.startswith("/admin") and not value.startswith("//"):
        return value
    return HOME


@get("/login", include_in_schema=False)
async def login_page(
    next: FromQuery[str | None] = None, expired: FromQuery[str | None] = None
) -> Template:
    """The login form."""
    notice = "Phiên đăng nhập đã hết hạn, vui lòng đăng nhập lại." if expired else ""
    return page("login.html", None, next=_safe_next(next), notice=notice, error="", username="")


LOGIN_MESSAGES = {
    "invalid_credentials": "Sai tên đăng nhập hoặc mật khẩu.",
    "busy": "Hệ thống đang bận kiểm tra đăng nhập; vui lòng thử lại sau ít giây.",
    "unavailable": "Hệ thống tạm thời không phản hồi; vui lòng thử lại sau ít phút.",
}


@post("/login", include_in_schema=False, status_code=200)
async def login_submit(
    request: Request[Any, Any, Any], services: ServicesDep, data: FormBody
) -> Response[Any]:
    """Check the password like ``POST /admin/api/v1/login``; on success set the session
    cookie and go to ``next``. A refusal re-renders the form with a Vietnamese message."""
    target = _safe_next(str(data.get("next") or ""))
    username = str(data.get("username", "")).strip()
    try:
        form = msgspec.convert(
            {"username": username, "password": str(data.get("password", ""))}, LoginIn
        )
        desk: LoginDesk = request.app.state.login_desk
        who = await desk.login(
            form.username, form.password, client_prefix(request, services.settings)
        )
    except msgspec.ValidationError:
        error = LOGIN_MESSAGES["invalid_credentials"]
    except Limited as exc:
        error = f"Đăng nhập sai quá nhiều lần. Vui lòng thử lại sau {exc.retry_after or 60} giây."
    except (Unauthenticated, Unavailable) as exc:
        error = LOGIN_MESSAGES.get(exc.code, LOGIN_MESSAGES["invalid_credentials"])
    else:
        settings = services.settings
        cookie = session_cookie(who.token, settings.tokens.admin_ttl, settings.server.secure)
        answer: Response[Any] = (
            ClientRedirect(redirect_to=target)
            if is_htmx(request)
            else Redirect(path=target, status_code=303)
        )
        answer.set_cookie(cookie)
        return answer
    template = "login_form.html" if is_htmx(request) else "login.html"
    return page(template, None, next=target, notice="", error=error, username=username)


@post("/logout", include_in_schema=False, status_code=200)
async def logout(services: ServicesDep, admin: AdminDep) -> Response[Any]:
    """End the session (as ``POST /admin/api/v1/logout``) and go to the login page."""
    await sessions.end(services.engine, admin.session_id)
    async with services.engine.begin() as conn:
        await audit(conn, admin.username, "logout", None)
    answer = ClientRedirect(redirect_to=LOGIN)
    answer.set_cookie(session_cookie("", 0, services.settings.server.secure))
    return answer


def message_of(exc: DomainError) -> str:
    """A domain error said in Vietnamese for a page."""
    return next(iter(domain_errors(exc).errors.values()))
