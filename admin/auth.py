"""Admin users and sessions: argon2 password hashes, signed expiring session tokens, roles.

Roles: ``admin`` may do everything; ``observer`` may only read. A session token is sent as
``Authorization: Bearer <token>`` or in the HttpOnly cookie ``admin_session``.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from litestar import Request
from litestar.connection import ASGIConnection
from litestar.di import NamedDependency
from litestar.handlers.base import BaseRouteHandler
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from voting.core.errors import Forbidden, Unauthenticated
from voting.core.roles import ADMIN_ROLES
from voting.http.credentials import MalformedAuthorization, presented_token
from voting.identity.tokens import TokenInvalid
from voting.record import tables
from voting.record.audit import audit

SESSION_COOKIE = "admin_session"
_hasher = PasswordHasher()
# verified when the user does not exist, so both paths cost one argon2 verification
_DUMMY_HASH = _hasher.hash(secrets.token_hex(16))


class UserExists(Exception):
    """A user with that name already exists."""


@dataclass(frozen=True)
class Admin:
    """The authenticated caller of an admin route: ``role`` is ``admin`` or ``observer``."""

    username: str
    role: str


def authenticated(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """Guard of every admin route but login: the caller from the bearer token or the session
    cookie, kept in ``connection.state.admin``. :class:`Unauthenticated` ``unauthorized``
    when absent, malformed, forged or expired."""
    try:
        token = presented_token(connection, SESSION_COOKIE)
    except MalformedAuthorization:
        token = None
    if not token:
        raise Unauthenticated("unauthorized", "log in at POST /admin/api/v1/login")
    services = connection.app.state.services
    try:
        username, role = services.signers.load_admin(token, services.settings.tokens.admin_ttl)
    except TokenInvalid as exc:
        raise Unauthenticated("unauthorized", f"session is not valid: {exc}") from None
    connection.state.admin = Admin(username=username, role=role)


def writer(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """Guard of every route that changes something: only role ``admin`` (observers read).
    :class:`Forbidden` ``forbidden`` otherwise. Runs after :func:`authenticated`."""
    if connection.state.admin.role != "admin":
        raise Forbidden("forbidden", "observers can read but not change anything")


def current_admin(request: Request[Any, Any, Any]) -> Admin:
    """Dependency: the caller :func:`authenticated` found."""
    admin: Admin = request.state.admin
    return admin


#: Handler parameter type for the authenticated caller (a named Litestar dependency).
AdminDep = NamedDependency[Admin]


async def create_user(engine: AsyncEngine, username: str, password: str, role: str) -> None:
    """Add a user with an argon2id hash of ``password``.

    Raises ValueError on an unknown role, a bad name or a password under 8 characters, and
    :class:`UserExists` when the name is taken.
    """
    if role not in ADMIN_ROLES:
        raise ValueError(f"role must be one of {', '.join(ADMIN_ROLES)}")
    if (
        not username
        or len(username) > 64
        or not username.replace("_", "").replace("-", "").replace(".", "").isalnum()
    ):
        raise ValueError("username must be 1-64 letters, digits, '.', '_' or '-'")
    if len(password) < 8:
        raise ValueError("password must have at least 8 characters")
    try:
        async with engine.begin() as conn:
            await conn.execute(
                tables.admin_users.insert().values(
                    username=username, password_hash=_hasher.hash(password), role=role
                )
            )
            await audit(conn, "cli", "user_create", None, {"username": username, "role": role})
    except IntegrityError:
        raise UserExists(username) from None


async def user_exists(engine: AsyncEngine, username: str) -> bool:
    """Whether an admin user named ``username`` exists."""
    async with engine.connect() as conn:
        u = tables.admin_users
        return await conn.scalar(select(u.c.id).where(u.c.username == username)) is not None


async def authenticate(engine: AsyncEngine, username: str, password: str) -> Admin:
    """Check a username and password; return the :class:`Admin`.

    Raises :class:`Unauthenticated` ``invalid_credentials`` (same answer and cost for an
    unknown user). Rehashes
    the stored hash when argon2's parameters have changed.
    """
    u = tables.admin_users
    async with engine.connect() as conn:
        row = (
            await conn.execute(select(u.c.password_hash, u.c.role).where(u.c.username == username))
        ).first()
    stored = row[0] if row else _DUMMY_HASH
    try:
        _hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        raise Unauthenticated("invalid_credentials", "wrong username or password") from None
    if row is None:
        raise Unauthenticated("invalid_credentials", "wrong username or password")
    if _hasher.check_needs_rehash(stored):
        async with engine.begin() as conn:
            await conn.execute(
                update(u)
                .where(u.c.username == username)
                .values(password_hash=_hasher.hash(password))
            )
    return Admin(username=username, role=row[1])
