"""Settings, read once from ``VOTING_*`` environment variables into a frozen object.

Secrets (signing keys, identity key, admin password) are kept in fields whose ``repr``
is suppressed, so printing or logging a :class:`Settings` never shows them.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class SettingsError(ValueError):
    """A ``VOTING_*`` variable holds a value that cannot be used; the message names it."""


def _int(env: Mapping[str, str], name: str, default: int, minimum: int = 0) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be an integer, got {raw!r}") from None
    if value < minimum:
        raise SettingsError(f"{name} must be >= {minimum}, got {value}")
    return value


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    lowered = raw.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise SettingsError(f"{name} must be a boolean (true/false), got {raw!r}")


@dataclass(frozen=True)
class Settings:
    """Every setting of the service.

    Environment variables (all optional):

    ``VOTING_DATABASE_URL``
        SQLAlchemy URL of Postgres (``postgresql+asyncpg://...``; ``postgresql://`` is accepted
        and rewritten). Unset: an embedded Postgres under ``VOTING_DATA_DIR``.
    ``VOTING_REDIS_URL``
        ``redis://`` URL. Unset: an embedded Valkey (AOF on) under ``VOTING_DATA_DIR``.
    ``VOTING_REDIS_PREFIX``
        Prefix of every Redis key (default ``voting``); lets tests share one server.
    ``VOTING_SECRET_KEYS``
        Comma-separated signing keys, **newest first**: the first signs, all verify.
        Unset: a random key is generated and stored in ``VOTING_DATA_DIR/secret_key``.
    ``VOTING_IDENTITY_KEY``
        Key of the HMAC that turns voter identities into stored hashes; never rotated
        within a round. Unset: derived file next to the secret key.
    ``VOTING_DATA_DIR``
        Folder for embedded servers' data and generated keys (default ``./.voting``).
    ``VOTING_HOST`` / ``VOTING_PORT``
        Bind address (default ``127.0.0.1:8000``).
    ``VOTING_ADMIN_PASSWORD``
        Password of the bootstrap ``admin`` user made by ``voting up``.
    ``VOTING_VOTER_TOKEN_TTL``
        Seconds a voter credential stays valid (default 30 days).
    ``VOTING_ADMIN_TOKEN_TTL``
        Seconds an admin session stays valid (default 12 hours).
    ``VOTING_BALLOT_RATE`` / ``VOTING_BALLOT_PERIOD`` / ``VOTING_BALLOT_BURST``
        Per client-IP-prefix ballot limit: ``RATE`` ballots per ``PERIOD`` seconds with bursts
        of ``BURST`` (GCRA). Defaults 600 per 60 s, burst 100: one office behind a NAT can cast
        about ten ballots a second.
    ``VOTING_IPV4_PREFIX`` / ``VOTING_IPV6_PREFIX``
        Prefix lengths that group client addresses (default 24 and 64).
    ``VOTING_IDEMPOTENCY_TTL``
        Seconds an ``Idempotency-Key`` result is kept (default 86400).
    ``VOTING_MAX_BACKLOG``
        Most ballots allowed to wait in a round's stream for the persister (default 200000);
        past it ballots get 503 with Retry-After instead of growing Redis without limit.
    ``VOTING_DURABLE_ACK``
        Answer 201 only after Redis has fsynced the ballot (``WAITAOF``, group commit; needs
        Redis/Valkey >= 7.2 with AOF on; default false).
    ``VOTING_COOKIE_SECURE``
        Mark cookies ``Secure`` (default false; set true behind HTTPS in production).
    ``VOTING_PERSIST_BATCH`` / ``VOTING_PERSIST_INTERVAL_MS``
        Persister batch size (default 1000 ballots) and wait (default 200 ms).
    ``VOTING_RUN_PERSISTER``
        Whether the app process runs the persister in its lifespan (default true).

    Voter credentials and privacy (see README "Identity modes"):

    ``VOTING_TRUSTED_PROXIES``
        Comma-separated CIDRs or addresses of reverse proxies (default none). Only when the
        socket peer is one of them is the right-most untrusted ``X-Forwarded-For`` address
        taken as the client's.
    ``VOTING_CHALLENGE_REQUIRED``
        Device mode needs a solved ALTCHA proof of work (default true; tests turn it off).
    ``VOTING_POW_COST`` / ``VOTING_POW_DIFFICULTY``
        PBKDF2-SHA-256 iterations per attempt (default 5000) and the counter base ``D``: the
        secret counter is drawn from ``[D, 2D)``, so a client derives about ``1.5 D`` keys
        (default 1000).
    ``VOTING_CHALLENGE_TTL``
        Seconds a challenge can be solved and redeemed (default 300).
    ``VOTING_CREDENTIAL_RATE`` / ``VOTING_CREDENTIAL_PERIOD`` / ``VOTING_CREDENTIAL_BURST``
        Per client IP prefix, for each of ``GET /challenge``, ``POST /voters`` and
        ``POST /voters/otp``: RATE requests per PERIOD seconds, bursts of BURST (GCRA;
        default 300 per 60 s, burst 50).
    ``VOTING_OTP_TTL`` / ``VOTING_OTP_ATTEMPTS`` / ``VOTING_OTP_RESEND_INTERVAL``
        One-time passwords live 300 s, allow 5 wrong attempts, and a new one can be sent to
        the same address 60 s after the last.
    ``VOTING_OTP_SEND_RATE`` / ``VOTING_OTP_SEND_PERIOD`` / ``VOTING_OTP_SEND_BURST``
        Per email address or phone number: sends per period (GCRA; default 5 per 3600 s,
        burst 3).
    ``VOTING_EMAIL_SENDER``
        ``none`` (default: email mode cannot send), ``console`` (development: logged) or
        ``smtp``.
    ``VOTING_SMTP_HOST`` / ``VOTING_SMTP_PORT`` / ``VOTING_SMTP_TLS`` /
    ``VOTING_SMTP_USERNAME`` / ``VOTING_SMTP_PASSWORD`` / ``VOTING_SMTP_FROM``
        The SMTP server (port default 587; TLS ``starttls`` (default), ``tls`` or ``none``),
        its login and the sender address.
    ``VOTING_SMS_SENDER``
        ``none`` (default), ``console`` or ``webhook``.
    ``VOTING_SMS_WEBHOOK_URL`` / ``VOTING_SMS_WEBHOOK_AUTH_HEADER`` /
    ``VOTING_SMS_WEBHOOK_AUTH`` / ``VOTING_SMS_TEMPLATE``
        The SMS gateway: ``POST {"to": "+84...", "message": ...}`` to the URL with the auth
        header (name default ``Authorization``; value secret); the message template has
        ``{code}`` and ``{minutes}``.
    ``VOTING_RETENTION_DAYS``
        ``voting purge`` erases ballots' IP prefixes and the round's voting codes this many
        days after a round closes (default 30).
    """

    database_url: str | None = None
    redis_url: str | None = None
    redis_prefix: str = "voting"
    secret_keys: tuple[str, ...] = field(default=(), repr=False)
    identity_key: str = field(default="", repr=False)
    data_dir: Path = Path(".voting")
    host: str = "127.0.0.1"
    port: int = 8000
    admin_password: str | None = field(default=None, repr=False)
    voter_token_ttl: int = 30 * 24 * 3600
    admin_token_ttl: int = 12 * 3600
    ballot_rate: int = 600
    ballot_period: int = 60
    ballot_burst: int = 100
    ipv4_prefix: int = 24
    ipv6_prefix: int = 64
    idempotency_ttl: int = 86400
    cookie_secure: bool = False
    max_backlog: int = 200_000
    durable_ack: bool = False
    persist_batch: int = 1000
    persist_interval_ms: int = 200
    run_persister: bool = True
    # voter credentials and privacy (parsed by _identity_settings)
    trusted_proxies: tuple[str, ...] = ()
    challenge_required: bool = True
    pow_cost: int = 5000
    pow_difficulty: int = 1000
    challenge_ttl: int = 300
    credential_rate: int = 300
    credential_period: int = 60
    credential_burst: int = 50
    otp_ttl: int = 300
    otp_attempts: int = 5
    otp_resend_interval: int = 60
    otp_send_rate: int = 5
    otp_send_period: int = 3600
    otp_send_burst: int = 3
    email_sender: str = "none"
    smtp_host: str = "localhost"
    smtp_port: int = 587
    smtp_tls: str = "starttls"
    smtp_username: str | None = None
    smtp_password: str | None = field(default=None, repr=False)
    smtp_from: str = "no-reply@localhost"
    sms_sender: str = "none"
    sms_webhook_url: str | None = None
    sms_webhook_auth_header: str = "Authorization"
    sms_webhook_auth: str | None = field(default=None, repr=False)
    sms_template: str = "Ma xac thuc binh chon: {code}. Ma co hieu luc {minutes} phut."
    retention_days: int = 30

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read the settings from ``env`` (default ``os.environ``).

        Raises :class:`SettingsError` naming the variable when a value is invalid.
        Generated keys are written under the data folder with mode 0600 so that every
        process of one installation signs and verifies alike.
        """
        env = os.environ if env is None else env
        data_dir = Path(env.get("VOTING_DATA_DIR") or ".voting")
        keys = tuple(
            k.strip() for k in (env.get("VOTING_SECRET_KEYS") or "").split(",") if k.strip()
        )
        if not keys:
            keys = (_stored_secret(data_dir, "secret_key"),)
        identity_key = env.get("VOTING_IDENTITY_KEY") or _stored_secret(data_dir, "identity_key")
        database_url = env.get("VOTING_DATABASE_URL") or None
        if database_url is not None:
            database_url = normalise_database_url(database_url)
        ipv4 = _int(env, "VOTING_IPV4_PREFIX", 24, 8)
        ipv6 = _int(env, "VOTING_IPV6_PREFIX", 64, 16)
        if ipv4 > 32:
            raise SettingsError("VOTING_IPV4_PREFIX must be <= 32")
        if ipv6 > 128:
            raise SettingsError("VOTING_IPV6_PREFIX must be <= 128")
        return cls(
            database_url=database_url,
            redis_url=env.get("VOTING_REDIS_URL") or None,
            redis_prefix=env.get("VOTING_REDIS_PREFIX") or "voting",
            secret_keys=keys,
            identity_key=identity_key,
            data_dir=data_dir,
            host=env.get("VOTING_HOST") or "127.0.0.1",
            port=_int(env, "VOTING_PORT", 8000, 0),
            admin_password=env.get("VOTING_ADMIN_PASSWORD") or None,
            voter_token_ttl=_int(env, "VOTING_VOTER_TOKEN_TTL", 30 * 24 * 3600, 1),
            admin_token_ttl=_int(env, "VOTING_ADMIN_TOKEN_TTL", 12 * 3600, 1),
            ballot_rate=_int(env, "VOTING_BALLOT_RATE", 600, 1),
            ballot_period=_int(env, "VOTING_BALLOT_PERIOD", 60, 1),
            ballot_burst=_int(env, "VOTING_BALLOT_BURST", 100, 1),
            ipv4_prefix=ipv4,
            ipv6_prefix=ipv6,
            idempotency_ttl=_int(env, "VOTING_IDEMPOTENCY_TTL", 86400, 1),
            cookie_secure=_bool(env, "VOTING_COOKIE_SECURE", False),
            max_backlog=_int(env, "VOTING_MAX_BACKLOG", 200_000, 1),
            durable_ack=_bool(env, "VOTING_DURABLE_ACK", False),
            persist_batch=_int(env, "VOTING_PERSIST_BATCH", 1000, 1),
            persist_interval_ms=_int(env, "VOTING_PERSIST_INTERVAL_MS", 200, 1),
            run_persister=_bool(env, "VOTING_RUN_PERSISTER", True),
            **_identity_settings(env),
        )


def normalise_database_url(url: str) -> str:
    """Return ``url`` with the asyncpg driver: ``postgresql://`` → ``postgresql+asyncpg://``."""
    for plain in ("postgres://", "postgresql://"):
        if url.startswith(plain):
            return "postgresql+asyncpg://" + url[len(plain) :]
    return url


def _stored_secret(data_dir: Path, name: str) -> str:
    """Read (or create, 32 random bytes hex, mode 0600) the secret file ``data_dir/name``."""
    path = data_dir / name
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    data_dir.mkdir(parents=True, exist_ok=True)
    value = secrets.token_hex(32)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process created it first
        return path.read_text().strip()
    with os.fdopen(fd, "w") as fh:
        fh.write(value)
    return value


def _choice(env: Mapping[str, str], name: str, default: str, allowed: tuple[str, ...]) -> str:
    raw = (env.get(name) or "").strip().lower()
    if not raw:
        return default
    if raw not in allowed:
        raise SettingsError(f"{name} must be one of {', '.join(allowed)}, got {raw!r}")
    return raw


def _cidrs(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    """Comma-separated networks or addresses, normalised (``10.0.0.7`` → ``10.0.0.7/32``)."""
    out = []
    for item in (env.get(name) or "").split(","):
        if item.strip():
            try:
                out.append(str(ipaddress.ip_network(item.strip(), strict=False)))
            except ValueError:
                raise SettingsError(f"{name}: {item.strip()!r} is not a CIDR or address") from None
    return tuple(out)


def _identity_settings(env: Mapping[str, str]) -> dict[str, Any]:
    """The voter-credential and privacy settings of :class:`Settings` (``VOTING_TRUSTED_PROXIES``
    to ``VOTING_RETENTION_DAYS``), validated; raises :class:`SettingsError` naming the variable."""
    template = env.get("VOTING_SMS_TEMPLATE") or Settings.sms_template
    try:
        fields = {f for _, f, _, _ in string.Formatter().parse(template) if f is not None}
    except ValueError:
        fields = {"?"}
    if "code" not in fields or not fields <= {"code", "minutes"}:
        raise SettingsError("VOTING_SMS_TEMPLATE must contain {code} and only {code}/{minutes}")
    values: dict[str, Any] = {
        "trusted_proxies": _cidrs(env, "VOTING_TRUSTED_PROXIES"),
        "challenge_required": _bool(env, "VOTING_CHALLENGE_REQUIRED", True),
        "pow_cost": _int(env, "VOTING_POW_COST", 5000, 1),
        "pow_difficulty": _int(env, "VOTING_POW_DIFFICULTY", 1000, 1),
        "challenge_ttl": _int(env, "VOTING_CHALLENGE_TTL", 300, 10),
        "credential_rate": _int(env, "VOTING_CREDENTIAL_RATE", 300, 1),
        "credential_period": _int(env, "VOTING_CREDENTIAL_PERIOD", 60, 1),
        "credential_burst": _int(env, "VOTING_CREDENTIAL_BURST", 50, 1),
        "otp_ttl": _int(env, "VOTING_OTP_TTL", 300, 30),
        "otp_attempts": _int(env, "VOTING_OTP_ATTEMPTS", 5, 1),
        "otp_resend_interval": _int(env, "VOTING_OTP_RESEND_INTERVAL", 60, 0),
        "otp_send_rate": _int(env, "VOTING_OTP_SEND_RATE", 5, 1),
        "otp_send_period": _int(env, "VOTING_OTP_SEND_PERIOD", 3600, 1),
        "otp_send_burst": _int(env, "VOTING_OTP_SEND_BURST", 3, 1),
        "email_sender": _choice(env, "VOTING_EMAIL_SENDER", "none", ("none", "console", "smtp")),
        "smtp_host": env.get("VOTING_SMTP_HOST") or "localhost",
        "smtp_port": _int(env, "VOTING_SMTP_PORT", 587, 1),
        "smtp_tls": _choice(env, "VOTING_SMTP_TLS", "starttls", ("starttls", "tls", "none")),
        "smtp_username": env.get("VOTING_SMTP_USERNAME") or None,
        "smtp_password": env.get("VOTING_SMTP_PASSWORD") or None,
        "smtp_from": env.get("VOTING_SMTP_FROM") or "no-reply@localhost",
        "sms_sender": _choice(env, "VOTING_SMS_SENDER", "none", ("none", "console", "webhook")),
        "sms_webhook_url": env.get("VOTING_SMS_WEBHOOK_URL") or None,
        "sms_webhook_auth_header": env.get("VOTING_SMS_WEBHOOK_AUTH_HEADER") or "Authorization",
        "sms_webhook_auth": env.get("VOTING_SMS_WEBHOOK_AUTH") or None,
        "sms_template": template,
        "retention_days": _int(env, "VOTING_RETENTION_DAYS", 30, 0),
    }
    if values["sms_sender"] == "webhook" and not (values["sms_webhook_url"] or "").startswith(
        ("http://", "https://")
    ):
        raise SettingsError("VOTING_SMS_WEBHOOK_URL must be an http(s) URL with the webhook sender")
    return values
