"""The admin door: logins (limited, hashed off the event loop), session guards, CSRF.

Roles: ``admin`` may do everything; ``observer`` may only read. A session token is sent as
``Authorization: Bearer <token>`` or in the HttpOnly cookie ``admin_session``; each request
looks the session up (:mod:`admin.sessions`), so the role is the user's current one.

A change made with the cookie must also carry the session's CSRF token in ``X-CSRF-Token``
(the synchronizer-token pattern of the OWASP CSRF Prevention Cheat Sheet; the login answer
and ``GET /admin/api/v1/session`` give it): a cookie goes with a cross-site request, the
header cannot. A bearer token is never sent by a browser on its own, so it needs none.
Cross-site requests are refused before any of this by :mod:`voting.http.origin`.

Logins (:class:`LoginDesk`) are limited twice with GCRA (:mod:`voting.live.limits`): every
attempt per client network (``VOTING_LOGIN_RATE`` per ``VOTING_LOGIN_PERIOD``), and failed
attempts per username across all networks (``VOTING_LOGIN_USER_*``), which bounds a
distributed guess of one password. So that such a guess cannot lock the real admin out, a
network from which the user logged in within :data:`KNOWN_NETWORK_DAYS` days skips the
per-username limit (its own network limit still applies), and elsewhere a refusal lasts one
emission interval (2 minutes by default). Both limits answer the same way for names that exist
and names that do not, and an unknown name costs one argon2 verification like a known one
(no user enumeration). Hashes run in a thread pool of ``VOTING_LOGIN_HASHES`` threads, so a
login storm never blocks the event loop that serves ballots; at most that many run at once,
and a login that cannot get a thread within :data:`HASH_WAIT` seconds is answered 503
``busy``. Limits fail closed: Redis down means 503, never an unlimited door.
"""

from __future__ import annotations

import asyncio
import hmac
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from litestar import Request
from litestar.connection import ASGIConnection
from litestar.datastructures import Cookie
from litestar.di import NamedDependency
from litestar.handlers.base import BaseRouteHandler
from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy.ext.asyncio import AsyncEngine

from admin import sessions, users
from voting.core.errors import Forbidden, Unauthenticated, Unavailable, rate_limited, unavailable
from voting.http.credentials import MalformedAuthorization, presented_token
from voting.identity.tokens import Signers, TokenInvalid
from voting.live.keys import login_networks_key
from voting.live.limits import Limiter, Rate
from voting.record.audit import audit
from voting.settings import Settings

SESSION_COOKIE = "admin_session"
CSRF_HEADER = "x-csrf-token"
HASH_WAIT = 5.0  # seconds a login waits for a hashing thread before 503 busy
BUSY_RETRY = 2  # seconds, the Retry-After of ``busy``
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
KNOWN_NETWORK_DAYS = 30  # a network stays "known" for a user this long after a login


@dataclass(frozen=True)
class Admin:
    """The authenticated caller of an admin route: ``role`` is ``admin`` or ``observer`` (from
    the user's record), ``via_cookie``: the session came in the cookie (changes then need the
    CSRF token)."""

    username: str
    role: str
    session_id: str
    csrf_token: str
    expires_at: datetime
    via_cookie: bool


@dataclass(frozen=True)
class LoggedIn:
    """A new session: the signed token, its CSRF token, the user's role and the expiry."""

    token: str
    csrf_token: str
    username: str
    role: str
    expires_at: datetime


class LoginDesk:
    """Checks admin passwords for one process (see the module): limits, thread pool, session.

    ``close()`` shuts the thread pool down (the app's lifespan calls it).
    """

    def __init__(
        self, redis: Redis, engine: AsyncEngine, settings: Settings, signers: Signers
    ) -> None:
        self.redis, self.engine, self.settings, self.signers = redis, engine, settings, signers
        lim = settings.limits
        self.limiter = Limiter(redis, settings.redis.prefix)
        self.network_rate = Rate(lim.login_rate, lim.login_period, lim.login_burst)
        self.user_rate = Rate(lim.login_user_rate, lim.login_user_period, lim.login_user_burst)
        self.pool = ThreadPoolExecutor(lim.login_hashes, thread_name_prefix="argon2")
        self.slots = asyncio.Semaphore(lim.login_hashes)

    def close(self) -> None:
        """Stop the hashing threads (waits for running hashes)."""
        self.pool.shutdown(wait=True, cancel_futures=True)

    async def _limit(self, name: str, subject: str, rate: Rate, *, peek: bool = False) -> None:
        try:
            wait = await self.limiter.wait_ms(name, subject, rate, peek=peek)
        except RedisError:
            raise unavailable("login is unavailable for a moment", 5) from None
        if wait > 0:
            raise rate_limited(wait, "login attempts")

    async def _hash_call(self, fn: Any, *args: Any) -> Any:
        try:
            await asyncio.wait_for(self.slots.acquire(), HASH_WAIT)
        except TimeoutError:
            raise Unavailable(
                "busy", "too many logins at once; try again", retry_after=BUSY_RETRY
            ) from None
        try:
            return await asyncio.get_running_loop().run_in_executor(self.pool, fn, *args)
        finally:
            self.slots.release()

    async def login(self, username: str, password: str, network: str) -> LoggedIn:
        """Check ``username``/``password`` from the client ``network`` and start a session.

        Raises :class:`~voting.core.errors.Limited` ``rate_limited`` (429, ``retry_after``
        seconds), :class:`Unauthenticated` ``invalid_credentials`` (a wrong password, an
        unknown or disabled user: one answer), :class:`Unavailable` ``busy`` or
        ``unavailable`` (503).
        """
        user_key = username.lower()
        await self._limit("login", network, self.network_rate)
        known_key = login_networks_key(self.settings.redis.prefix, user_key)
        try:
            known = bool(await self.redis.sismember(known_key, network))
        except RedisError:
            raise unavailable("login is unavailable for a moment", 5) from None
        if not known:
            await self._limit("login_user", user_key, self.user_rate, peek=True)
        stored = await users.stored_user(self.engine, username)
        ok = await self._hash_call(users.verify_password, stored, password)
        if not ok or stored is None or stored.disabled:
            if not known:
                await self._limit("login_user", user_key, self.user_rate)  # count the failure
            raise Unauthenticated("invalid_credentials", "wrong username or password")
        try:
            pipe = self.redis.pipeline(transaction=False)
            pipe.sadd(known_key, network)
            pipe.expire(known_key, KNOWN_NETWORK_DAYS * 86400)
            await pipe.execute()
        except RedisError:
            pass  # only a convenience for the next login; the session below is what counts
        if users.hasher.check_needs_rehash(stored.password_hash):
            new_hash = await self._hash_call(users.hasher.hash, password)
            await users.rehash_if_needed(self.engine, stored, new_hash)
        ttl = self.settings.tokens.admin_ttl
        session_id, csrf, expires_at = await sessions.start(self.engine, stored.id, ttl)
        async with self.engine.begin() as conn:
            await audit(conn, username, "login", None, {"network": network})
        return LoggedIn(
            token=self.signers.issue_admin(username, session_id),
            csrf_token=csrf,
            username=username,
            role=stored.role,
            expires_at=expires_at,
        )


async def authenticated(
    connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler
) -> None:
    """Guard of every admin route but login: the caller's live session, kept in
    ``connection.state.admin``. :class:`Unauthenticated` ``unauthorized`` when the token is
    absent, malformed, forged, expired or its session ended; :class:`Forbidden`
    ``csrf_failed`` for a change made with the cookie without the session's CSRF token."""
    try:
        token = presented_token(connection, SESSION_COOKIE)
    except MalformedAuthorization:
        token = None
    if not token:
        raise Unauthenticated("unauthorized", "log in at POST /admin/api/v1/login")
    services = connection.app.state.services
    try:
        _, session_id = services.signers.load_admin(token, services.settings.tokens.admin_ttl)
    except TokenInvalid as exc:
        raise Unauthenticated("unauthorized", f"session is not valid: {exc}") from None
    session = await sessions.lookup(services.engine, session_id)
    if session is None:
        raise Unauthenticated("unauthorized", "session has ended; log in again")
    via_cookie = "authorization" not in connection.headers
    if via_cookie and connection.scope.get("method", "GET") not in SAFE_METHODS:
        sent = connection.headers.get(CSRF_HEADER, "")
        if not hmac.compare_digest(sent.encode(), session.csrf_token.encode()):
            raise Forbidden(
                "csrf_failed",
                "a change made with the session cookie needs the session's X-CSRF-Token header",
            )
    connection.state.admin = Admin(
        username=session.username,
        role=session.role,
        session_id=session.id,
        csrf_token=session.csrf_token,
        expires_at=session.expires_at,
        via_cookie=via_cookie,
    )


def session_cookie(value: str, max_age: int, secure: bool) -> Cookie:
    """The HttpOnly, ``SameSite=Strict`` session cookie for ``/admin`` (``max_age`` seconds; 0
    with an empty value clears it)."""
    return Cookie(
        key=SESSION_COOKIE,
        value=value,
        httponly=True,
        samesite="strict",
        path="/admin",
        max_age=max_age,
        secure=secure,
    )


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
