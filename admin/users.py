"""Admin users: argon2id password hashes, roles, disabling, deletion.

Every change that alters what a user may do (new password, new role, disabled, deleted) ends
all of that user's sessions in the same transaction (:func:`admin.sessions.end_all`) and
writes an audit event. Names follow :data:`voting.core.text.USERNAME_PATTERN`; passwords
have at least 8 characters. Hashing is argon2id with argon2-cffi's defaults (RFC 9106's
second recommended option: 64 MiB, 3 passes, 4 lanes; about 50 ms here); it is CPU work that
callers on an event loop run in a thread (see :class:`admin.auth.LoginDesk`).
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import datetime

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from admin.sessions import end_all
from voting.core.roles import ADMIN_ROLES
from voting.core.text import USERNAME_PATTERN
from voting.record import tables
from voting.record.audit import audit

hasher = PasswordHasher()
# verified when the user does not exist, so both paths cost one argon2 verification
_DUMMY_HASH = hasher.hash(secrets.token_hex(16))
_USERNAME = re.compile(USERNAME_PATTERN)
MIN_PASSWORD = 8
MAX_PASSWORD = 1024


class UserExists(Exception):
    """A user with that name already exists."""


class UserNotFound(Exception):
    """No user has that name."""


@dataclass(frozen=True)
class User:
    """An admin user as listed: ``disabled_at`` is None while the user may log in;
    ``sessions``: sessions open now."""

    username: str
    role: str
    created_at: datetime
    disabled_at: datetime | None
    sessions: int


@dataclass(frozen=True)
class StoredUser:
    """What a login needs of a user row."""

    id: int
    password_hash: str
    role: str
    disabled: bool


def check_username(username: str) -> None:
    """ValueError unless ``username`` is 1–64 letters, digits, ``.``, ``_`` or ``-``."""
    if not _USERNAME.fullmatch(username) or len(username) > 64:
        raise ValueError("username must be 1-64 letters, digits, '.', '_' or '-'")


def check_password(password: str) -> None:
    """ValueError unless ``password`` has 8–1024 characters."""
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise ValueError(
            f"password must have at least {MIN_PASSWORD} characters ({MAX_PASSWORD} at most)"
        )


def check_role(role: str) -> None:
    """ValueError unless ``role`` is one of :data:`voting.core.roles.ADMIN_ROLES`."""
    if role not in ADMIN_ROLES:
        raise ValueError(f"role must be one of {', '.join(ADMIN_ROLES)}")


def verify_password(stored: StoredUser | None, password: str) -> bool:
    """Whether ``password`` matches ``stored``'s hash (CPU-bound: one argon2 verification,
    also when ``stored`` is None, so an unknown name costs the same)."""
    try:
        hasher.verify(stored.password_hash if stored else _DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        return False
    return stored is not None


async def stored_user(engine: AsyncEngine, username: str) -> StoredUser | None:
    """The row a login checks, or None."""
    u = tables.admin_users
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                select(u.c.id, u.c.password_hash, u.c.role, u.c.disabled_at).where(
                    u.c.username == username
                )
            )
        ).first()
    if row is None:
        return None
    return StoredUser(
        id=row.id,
        password_hash=row.password_hash,
        role=row.role,
        disabled=row.disabled_at is not None,
    )


async def rehash_if_needed(engine: AsyncEngine, user: StoredUser, new_hash: str) -> None:
    """Store ``new_hash`` for ``user`` (after argon2's parameters changed); sessions stay."""
    async with engine.begin() as conn:
        await conn.execute(
            update(tables.admin_users)
            .where(tables.admin_users.c.id == user.id)
            .values(password_hash=new_hash)
        )


async def create_user(
    engine: AsyncEngine, username: str, password: str, role: str, actor: str = "cli"
) -> None:
    """Add a user with an argon2id hash of ``password``.

    Raises ValueError on an unknown role, a bad name or password, and :class:`UserExists`
    when the name is taken.
    """
    check_role(role)
    check_username(username)
    check_password(password)
    try:
        async with engine.begin() as conn:
            await conn.execute(
                tables.admin_users.insert().values(
                    username=username, password_hash=hasher.hash(password), role=role
                )
            )
            await audit(conn, actor, "user_create", None, {"username": username, "role": role})
    except IntegrityError:
        raise UserExists(username) from None


async def user_exists(engine: AsyncEngine, username: str) -> bool:
    """Whether an admin user named ``username`` exists."""
    async with engine.connect() as conn:
        u = tables.admin_users
        return await conn.scalar(select(u.c.id).where(u.c.username == username)) is not None


async def list_users(engine: AsyncEngine) -> list[User]:
    """Every admin user by name, with the number of its open sessions."""
    u, s = tables.admin_users, tables.admin_sessions
    open_sessions = (
        select(func.count())
        .where(s.c.user_id == u.c.id, s.c.ended_at.is_(None), s.c.expires_at > func.now())
        .scalar_subquery()
    )
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(u.c.username, u.c.role, u.c.created_at, u.c.disabled_at, open_sessions).order_by(
                u.c.username
            )
        )
        return [User(r[0], r[1], r[2], r[3], int(r[4])) for r in rows]


async def _user_id(conn: AsyncConnection, username: str) -> int:
    u = tables.admin_users
    user_id = await conn.scalar(select(u.c.id).where(u.c.username == username).with_for_update())
    if user_id is None:
        raise UserNotFound(username)
    return int(user_id)


async def set_role(engine: AsyncEngine, username: str, role: str, actor: str = "cli") -> int:
    """Give ``username`` ``role``; end its sessions. Returns the sessions ended. Raises
    ValueError (unknown role) or :class:`UserNotFound`."""
    check_role(role)
    async with engine.begin() as conn:
        user_id = await _user_id(conn, username)
        await conn.execute(
            update(tables.admin_users).where(tables.admin_users.c.id == user_id).values(role=role)
        )
        ended = await end_all(conn, user_id)
        await audit(
            conn,
            actor,
            "user_role",
            None,
            {"username": username, "role": role, "sessions_ended": ended},
        )
    return ended


async def set_disabled(
    engine: AsyncEngine, username: str, disabled: bool, actor: str = "cli"
) -> int:
    """Disable (no login, sessions ended) or enable ``username``; returns the sessions ended.
    Raises :class:`UserNotFound`."""
    async with engine.begin() as conn:
        user_id = await _user_id(conn, username)
        await conn.execute(
            update(tables.admin_users)
            .where(tables.admin_users.c.id == user_id)
            .values(disabled_at=func.now() if disabled else None)
        )
        ended = await end_all(conn, user_id) if disabled else 0
        await audit(
            conn,
            actor,
            "user_disable" if disabled else "user_enable",
            None,
            {"username": username, "sessions_ended": ended},
        )
    return ended


async def delete_user(engine: AsyncEngine, username: str, actor: str = "cli") -> None:
    """Delete ``username`` and its sessions (audit events keep the name). Raises
    :class:`UserNotFound`."""
    async with engine.begin() as conn:
        user_id = await _user_id(conn, username)
        await conn.execute(delete(tables.admin_users).where(tables.admin_users.c.id == user_id))
        await audit(conn, actor, "user_delete", None, {"username": username})


async def reset_password(
    engine: AsyncEngine, username: str, password: str, actor: str = "cli"
) -> int:
    """Set a new password for ``username``; end its sessions; returns the sessions ended.
    Raises ValueError (password too short or long) or :class:`UserNotFound`."""
    check_password(password)
    new_hash = hasher.hash(password)
    async with engine.begin() as conn:
        user_id = await _user_id(conn, username)
        await conn.execute(
            update(tables.admin_users)
            .where(tables.admin_users.c.id == user_id)
            .values(password_hash=new_hash)
        )
        ended = await end_all(conn, user_id)
        await audit(
            conn, actor, "user_password", None, {"username": username, "sessions_ended": ended}
        )
    return ended
