"""The console's admin accounts (role ``admin`` only): list, create, change role, disable or
enable, reset a password, delete. The same functions as ``voting admin ...``
(:mod:`admin.users`): a new role or password, disabling and deleting end the user's sessions.
An admin cannot demote, disable or delete their own account here (so that the console is never
left without an admin by a slip); the CLI can."""

from __future__ import annotations

from typing import Any

from litestar import Response, get, post
from litestar.params import FromPath
from litestar.plugins.htmx import ClientRedirect
from litestar.response import Template

from admin import users
from admin.auth import Admin, AdminDep, writer
from admin.console.access import FormBody, page
from admin.console.forms import vietnam_time
from voting.services.container import Services, ServicesDep

ROLE_LABELS = {"admin": "Quản trị viên", "observer": "Quan sát viên"}


async def _page(services: Services, admin: Admin, **extra: Any) -> Template:
    rows = [
        {"user": u, "created": vietnam_time(u.created_at), "role_label": ROLE_LABELS[u.role]}
        for u in await users.list_users(services.engine)
    ]
    context = {"message": "", "error": "", "errors": {}, "values": {}, **extra}
    return page("accounts.html", admin, section="users", rows=rows, roles=ROLE_LABELS, **context)


@get("/users", include_in_schema=False, guards=[writer])
async def accounts_page(services: ServicesDep, admin: AdminDep) -> Template:
    """Every admin account with its role, state and open sessions."""
    return await _page(services, admin)


def _message(exc: Exception) -> str:
    if isinstance(exc, users.UserExists):
        return "Tên đăng nhập này đã có."
    if isinstance(exc, users.UserNotFound):
        return "Không tìm thấy tài khoản."
    text = str(exc)
    if text.startswith("username"):
        return (
            "Tên đăng nhập gồm 1–64 chữ cái không dấu, chữ số, dấu chấm, gạch dưới hoặc gạch ngang."
        )
    if text.startswith("password"):
        return "Mật khẩu cần ít nhất 8 ký tự."
    return "Giá trị không hợp lệ."


@post("/users", include_in_schema=False, guards=[writer], status_code=200)
async def create_account(services: ServicesDep, admin: AdminDep, data: FormBody) -> Response[Any]:
    """Create an account (as ``voting admin create-user``)."""
    name = str(data.get("username", "")).strip()
    role = str(data.get("role", "observer"))
    try:
        await users.create_user(
            services.engine, name, str(data.get("password", "")), role, actor=admin.username
        )
    except (ValueError, users.UserExists) as exc:
        return await _page(
            services, admin, error=_message(exc), values={"username": name, "role": role}
        )
    return ClientRedirect(redirect_to="/admin/users")


@post("/users/{name:str}/{change:str}", include_in_schema=False, guards=[writer], status_code=200)
async def change_account(
    services: ServicesDep,
    admin: AdminDep,
    name: FromPath[str],
    change: FromPath[str],
    data: FormBody,
) -> Response[Any]:
    """``change``: ``role`` (with ``role``), ``disable``, ``enable``, ``password`` (with
    ``password``) or ``delete``."""
    if name == admin.username and change in ("role", "disable", "delete"):
        return await _page(
            services,
            admin,
            error="Không thể tự đổi vai trò, khóa hay xóa tài khoản của chính mình.",
        )
    engine, me = services.engine, admin.username
    try:
        if change == "role":
            await users.set_role(engine, name, str(data.get("role", "")), actor=me)
        elif change in ("disable", "enable"):
            await users.set_disabled(engine, name, change == "disable", actor=me)
        elif change == "password":
            await users.reset_password(engine, name, str(data.get("password", "")), actor=me)
        elif change == "delete":
            await users.delete_user(engine, name, actor=me)
        else:
            return await _page(services, admin, error="Thao tác không hợp lệ.")
    except (ValueError, users.UserNotFound) as exc:
        return await _page(services, admin, error=_message(exc))
    done = {
        "role": f"Đã đổi vai trò của {name}; các phiên đăng nhập của tài khoản này đã kết thúc.",
        "disable": f"Đã khóa {name}.",
        "enable": f"Đã mở khóa {name}.",
        "password": f"Đã đặt mật khẩu mới cho {name}; các phiên đăng nhập cũ đã kết thúc.",
        "delete": f"Đã xóa {name}.",
    }[change]
    return await _page(services, admin, message=done)


ROUTES = [accounts_page, create_account, change_account]
