"""Settings, read once from ``VOTING_*`` environment variables into frozen groups.

Each group is a frozen dataclass of one concern (database, redis, server, keys, tokens,
limits, persister, challenge, otp, email, sms, privacy, documents, observability). Every field
is declared once, with its type and constraints (``msgspec.Meta``), its default, its environment
variable and what it means; :meth:`Settings.from_env` converts them with ``msgspec.convert``
and reports a bad one by name (:class:`SettingsError`). Secrets are fields with ``repr=False``:
printing or logging settings never shows them. README's configuration table is checked
against :func:`variables` by a test.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
import secrets
import string
import types
import typing
import urllib.parse
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec

Positive = Annotated[int, msgspec.Meta(ge=1)]
NonNegative = Annotated[int, msgspec.Meta(ge=0)]


class SettingsError(ValueError):
    """A ``VOTING_*`` variable holds a value that cannot be used; the message names it."""


def _var(
    name: str,
    doc: str,
    default: Any,
    *,
    secret: bool = False,
    parse: Callable[[str], Any] | None = None,
) -> Any:
    """A settings field read from the variable ``name`` (``doc``: what it means)."""
    meta = {"env": name, "doc": doc, "parse": parse}
    if isinstance(default, list | dict | set):
        raise TypeError("use a tuple default")
    return field(default=default, repr=not secret, metadata=meta)


def _words(raw: str) -> tuple[str, ...]:
    """``"a, b,,c"`` → ``("a", "b", "c")``."""
    return tuple(w.strip() for w in raw.split(",") if w.strip())


def _lower(raw: str) -> str:
    return raw.strip().lower()


_BOOLS = {"1": True, "true": True, "yes": True, "on": True}
_BOOLS |= {"0": False, "false": False, "no": False, "off": False}


def _bool(raw: str) -> Any:
    return _BOOLS.get(raw.strip().lower(), raw)


def _cidrs(raw: str) -> tuple[str, ...]:
    """Comma-separated networks or addresses, normalised (``10.0.0.7`` → ``10.0.0.7/32``)."""
    out = []
    for item in _words(raw):
        try:
            out.append(str(ipaddress.ip_network(item, strict=False)))
        except ValueError:
            raise ValueError(f"{item!r} is not a CIDR or address") from None
    return tuple(out)


def is_loopback(host: str) -> bool:
    """Whether the bind address ``host`` is a loopback one (``127.0.0.0/8``, ``::1``,
    ``localhost``)."""
    host = host.strip().strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


#: CSP source expressions a frame-ancestors list may hold: keywords, schemes, hosts
_FRAME_SOURCE = re.compile(r"'self'|'none'|[a-z][a-z0-9+.-]*:|([a-z][a-z0-9+.-]*://)?[^\s;,']+")


def _frame_ancestors(raw: str) -> str:
    """``"'self', https://bloc.example.vn"`` → ``"'self' https://bloc.example.vn"`` (commas or
    spaces between sources); ``'none'`` stands alone."""
    sources = raw.replace(",", " ").split()
    for source in sources:
        if not _FRAME_SOURCE.fullmatch(source):
            raise ValueError(f"{source!r} is not a CSP source ('self', 'none', a scheme or host)")
    if not sources:
        raise ValueError("no source given")
    if "'none'" in sources and len(sources) > 1:
        raise ValueError("'none' cannot be combined with other sources")
    return " ".join(sources)


def _public_url(raw: str) -> str:
    """``https://Bloc.example.vn/binh-chon`` → ``https://bloc.example.vn/binh-chon/``: an
    absolute http(s) URL with a host, no query or fragment, ending in ``/``."""
    parts = urllib.parse.urlsplit(raw.strip())
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an absolute http(s) URL, e.g. https://binhchon.example.vn/")
    if parts.query or parts.fragment or any(c.isspace() for c in raw.strip()):
        raise ValueError("must have no query, fragment or spaces")
    path = parts.path if parts.path.endswith("/") else parts.path + "/"
    return urllib.parse.urlunsplit((parts.scheme.lower(), parts.netloc.lower(), path, "", ""))


def _redis_url(raw: str) -> str:
    """A Redis URL in one of the forms of :mod:`voting.live.connection` (checked here, so a
    bad one is refused at start-up with the variable's name)."""
    from voting.live.connection import parse  # the one parser of the URL forms

    parse(raw)
    return raw.strip()


def normalise_database_url(url: str) -> str:
    """Return ``url`` with the asyncpg driver: ``postgresql://`` → ``postgresql+asyncpg://``."""
    for plain in ("postgres://", "postgresql://"):
        if url.startswith(plain):
            return "postgresql+asyncpg://" + url[len(plain) :]
    return url


@dataclass(frozen=True)
class DatabaseSettings:
    """Postgres, the record."""

    url: str | None = _var(
        "VOTING_DATABASE_URL",
        "`postgresql://user:pass@host:5432/db`; unset: an embedded Postgres",
        None,
        parse=normalise_database_url,
    )


@dataclass(frozen=True)
class RedisSettings:
    """Redis or Valkey, the live state; ``durable_ack`` waits for its fsync."""

    url: str | None = _var(
        "VOTING_REDIS_URL",
        "`redis://host:6379/0`, `redis+cluster://h1:p1,h2:p2` or "
        "`redis+sentinel://h1:p1,h2:p2/mymaster`; unset: an embedded Valkey",
        None,
        parse=_redis_url,
    )
    prefix: str = _var("VOTING_REDIS_PREFIX", "prefix of every Redis key", "voting")
    hot_timeout: Annotated[float, msgspec.Meta(gt=0, le=60)] = _var(
        "VOTING_REDIS_HOT_TIMEOUT",
        "seconds each hot-path step waits for Redis (ballots, credentials, receipts, live "
        "results, readiness, admin progress and status changes)",
        0.5,
    )
    timeout: Annotated[float, msgspec.Meta(gt=0, le=600)] = _var(
        "VOTING_REDIS_TIMEOUT",
        "seconds every other Redis call waits (persister, close's drain, recovery, reconcile)",
        5,
    )
    durable_ack: bool = _var(
        "VOTING_DURABLE_ACK",
        "answer 201 only after Redis fsynced the ballot (WAITAOF)",
        False,
        parse=_bool,
    )
    replica_ack: Annotated[int, msgspec.Meta(ge=0, le=16)] = _var(
        "VOTING_REPLICA_ACK",
        "answer 201 only after this many replicas have the ballot (WAIT, or WAITAOF with "
        "durable acknowledgement); 0: do not wait for replicas",
        0,
    )


@dataclass(frozen=True)
class ServerSettings:
    """The HTTP server: where it listens, its data folder, cookies, proxies."""

    host: str = _var("VOTING_HOST", "bind address", "127.0.0.1")
    port: Annotated[int, msgspec.Meta(ge=0, le=65535)] = _var("VOTING_PORT", "bind port", 8000)
    data_dir: Path = _var(
        "VOTING_DATA_DIR", "embedded servers' data and generated keys", Path(".voting")
    )
    cookie_secure: bool | None = _var(
        "VOTING_COOKIE_SECURE",
        "mark cookies Secure and send HSTS (behind HTTPS); unset: unless the host is loopback",
        None,
        parse=_bool,
    )
    frame_ancestors: str = _var(
        "VOTING_FRAME_ANCESTORS",
        "CSP frame-ancestors of the public page: who may embed it",
        "'self'",
        parse=_frame_ancestors,
    )
    trusted_proxies: tuple[str, ...] = _var(
        "VOTING_TRUSTED_PROXIES",
        "CIDRs of the reverse proxies whose X-Forwarded-For is believed",
        (),
        parse=_cidrs,
    )
    header_timeout: Annotated[float, msgspec.Meta(ge=1, le=60)] = _var(
        "VOTING_HEADER_TIMEOUT",
        "seconds a connection has to send a request's headers, from its opening or the end of "
        "the previous answer (so also how long an idle keep-alive connection is kept)",
        10,
    )
    body_timeout: Annotated[float, msgspec.Meta(ge=1, le=3600)] = _var(
        "VOTING_BODY_TIMEOUT",
        "seconds a request has to send its whole body, from the end of its headers (then 408)",
        30,
    )
    public_url: str | None = _var(
        "VOTING_PUBLIC_URL",
        "the public page's address printed on voting-code cards; unset: the admin request's origin",
        None,
        parse=_public_url,
    )

    @property
    def secure(self) -> bool:
        """Whether the service is reached over HTTPS: its cookies are ``Secure`` and it sends
        HSTS. ``VOTING_COOKIE_SECURE`` when set; otherwise true unless ``host`` is a loopback
        address (a bind on loopback is a developer's machine or sits behind a local proxy)."""
        if self.cookie_secure is not None:
            return self.cookie_secure
        return not is_loopback(self.host)


@dataclass(frozen=True)
class KeySettings:
    """Secrets (never printed): signing keys newest first, the identity HMAC key, the
    bootstrap admin password."""

    secret_keys: tuple[str, ...] = _var(
        "VOTING_SECRET_KEYS",
        "signing keys, newest first; unset: generated in the data folder",
        (),
        secret=True,
        parse=_words,
    )
    identity_key: str = _var(
        "VOTING_IDENTITY_KEY",
        "HMAC key of voter identities; unset: generated in the data folder",
        "",
        secret=True,
    )
    admin_password: str | None = _var(
        "VOTING_ADMIN_PASSWORD", "password of the bootstrap admin user", None, secret=True
    )


@dataclass(frozen=True)
class TokenSettings:
    """Lifetimes of signed tokens, in seconds."""

    voter_ttl: Positive = _var(
        "VOTING_VOTER_TOKEN_TTL", "seconds a voter credential is valid", 30 * 24 * 3600
    )
    admin_ttl: Positive = _var(
        "VOTING_ADMIN_TOKEN_TTL", "seconds an admin session is valid", 12 * 3600
    )


@dataclass(frozen=True)
class LimitSettings:
    """GCRA limits (requests per period in seconds, bursts) and bounds of the hot path."""

    ballot_rate: Positive = _var("VOTING_BALLOT_RATE", "ballots per period per IP prefix", 600)
    ballot_period: Positive = _var("VOTING_BALLOT_PERIOD", "seconds of the ballot limit", 60)
    ballot_burst: Positive = _var("VOTING_BALLOT_BURST", "ballots at once per IP prefix", 100)
    credential_rate: Positive = _var(
        "VOTING_CREDENTIAL_RATE", "credential requests per period per IP prefix", 300
    )
    credential_period: Positive = _var(
        "VOTING_CREDENTIAL_PERIOD", "seconds of the credential limit", 60
    )
    credential_burst: Positive = _var(
        "VOTING_CREDENTIAL_BURST", "credential requests at once per IP prefix", 50
    )
    receipt_rate: Positive = _var(
        "VOTING_RECEIPT_RATE", "receipt checks per period per IP prefix", 60
    )
    receipt_period: Positive = _var("VOTING_RECEIPT_PERIOD", "seconds of the receipt limit", 60)
    receipt_burst: Positive = _var(
        "VOTING_RECEIPT_BURST", "receipt checks at once per IP prefix", 20
    )
    otp_send_rate: Positive = _var("VOTING_OTP_SEND_RATE", "codes sent per period per address", 5)
    otp_send_period: Positive = _var(
        "VOTING_OTP_SEND_PERIOD", "seconds of the code sending limit", 3600
    )
    otp_send_burst: Positive = _var("VOTING_OTP_SEND_BURST", "codes sent at once per address", 3)
    max_backlog: Positive = _var(
        "VOTING_MAX_BACKLOG", "ballots allowed to wait per round for the persister", 200_000
    )
    login_rate: Positive = _var(
        "VOTING_LOGIN_RATE", "admin login attempts per period per client network", 10
    )
    login_period: Positive = _var("VOTING_LOGIN_PERIOD", "seconds of the login limit", 60)
    login_burst: Positive = _var(
        "VOTING_LOGIN_BURST", "admin login attempts at once per client network", 10
    )
    login_user_rate: Positive = _var(
        "VOTING_LOGIN_USER_RATE", "failed logins per period per username, all networks", 30
    )
    login_user_period: Positive = _var(
        "VOTING_LOGIN_USER_PERIOD", "seconds of the per-username login limit", 3600
    )
    login_user_burst: Positive = _var(
        "VOTING_LOGIN_USER_BURST", "failed logins at once per username", 10
    )
    login_hashes: Positive = _var(
        "VOTING_LOGIN_HASHES", "password hashes computed at once per process (threads)", 2
    )


@dataclass(frozen=True)
class PersisterSettings:
    """The persister: whether the app runs it, its batch and idle wait, and when it seals an
    epoch (:mod:`voting.record.commitments`)."""

    run: bool = _var(
        "VOTING_RUN_PERSISTER", "run the persister inside the app process", True, parse=_bool
    )
    batch: Positive = _var("VOTING_PERSIST_BATCH", "ballots per insert", 1000)
    interval_ms: Positive = _var("VOTING_PERSIST_INTERVAL_MS", "idle wait, milliseconds", 200)
    epoch_seconds: NonNegative = _var(
        "VOTING_EPOCH_SECONDS",
        "seconds the oldest ballot of an open epoch waits at least before it is sealed",
        60,
    )
    epoch_min_ballots: Positive = _var(
        "VOTING_EPOCH_MIN_BALLOTS", "ballots an open epoch holds at least before it is sealed", 200
    )
    epoch_max_ballots: Positive = _var(
        "VOTING_EPOCH_MAX_BALLOTS",
        "ballots after which an open epoch is sealed at once, however recent",
        100_000,
    )
    live_chunk: Annotated[int, msgspec.Meta(ge=100, le=1_000_000)] = _var(
        "VOTING_LIVE_CHUNK",
        "stream entries, rows or voters per Redis command and Postgres fetch in recover, "
        "reconcile and close",
        2_000,
    )
    live_state_grace: NonNegative = _var(
        "VOTING_LIVE_STATE_GRACE",
        "seconds after a round is final before the schedule removes its live state from Redis",
        604_800,
    )


@dataclass(frozen=True)
class ChallengeSettings:
    """The device mode's proof of work (ALTCHA PBKDF2) and its price per client network
    (:mod:`voting.core.device`)."""

    required: bool = _var(
        "VOTING_CHALLENGE_REQUIRED", "device mode needs a solved proof of work", True, parse=_bool
    )
    pow_cost: Positive = _var("VOTING_POW_COST", "PBKDF2-SHA-256 iterations per attempt", 5000)
    pow_difficulty: Positive = _var(
        "VOTING_POW_DIFFICULTY",
        "expected attempts D of a credential within the share: the counter is uniform in [0, 2D)",
        1000,
    )
    ttl: Annotated[int, msgspec.Meta(ge=10)] = _var(
        "VOTING_CHALLENGE_TTL", "seconds a challenge can be solved and redeemed", 300
    )
    device_share: Positive = _var(
        "VOTING_DEVICE_SHARE",
        "device credentials per client network (IP prefix) and round in the window at work D",
        300,
    )
    device_aggregate_share: Positive = _var(
        "VOTING_DEVICE_AGGREGATE_SHARE",
        "the same per aggregate (IPv4 /16, IPv6 /48) and round",
        3000,
    )
    device_doubling: Positive = _var(
        "VOTING_DEVICE_DOUBLING",
        "beyond a share, every this many further credentials double the expected work",
        64,
    )
    device_window: Positive = _var(
        "VOTING_DEVICE_WINDOW", "seconds of the sliding window device credentials count in", 86400
    )
    ipv4_aggregate: Annotated[int, msgspec.Meta(ge=8, le=32)] = _var(
        "VOTING_IPV4_AGGREGATE", "IPv4 prefix length of the device credentials' aggregate", 16
    )
    ipv6_aggregate: Annotated[int, msgspec.Meta(ge=16, le=128)] = _var(
        "VOTING_IPV6_AGGREGATE", "IPv6 prefix length of the device credentials' aggregate", 48
    )


@dataclass(frozen=True)
class OtpSettings:
    """One-time passwords of the email and phone modes."""

    ttl: Annotated[int, msgspec.Meta(ge=30)] = _var(
        "VOTING_OTP_TTL", "seconds a one-time code lives", 300
    )
    attempts: Positive = _var("VOTING_OTP_ATTEMPTS", "wrong attempts before a lock", 5)
    resend_interval: NonNegative = _var(
        "VOTING_OTP_RESEND_INTERVAL", "seconds before a new code can be sent", 60
    )


@dataclass(frozen=True)
class EmailSettings:
    """How one-time passwords are mailed."""

    sender: Literal["none", "console", "smtp"] = _var(
        "VOTING_EMAIL_SENDER", "how codes are mailed", "none", parse=_lower
    )
    smtp_host: str = _var("VOTING_SMTP_HOST", "SMTP server", "localhost")
    smtp_port: Annotated[int, msgspec.Meta(ge=1, le=65535)] = _var(
        "VOTING_SMTP_PORT", "SMTP port", 587
    )
    smtp_tls: Literal["starttls", "tls", "none"] = _var(
        "VOTING_SMTP_TLS", "SMTP transport security", "starttls", parse=_lower
    )
    smtp_username: str | None = _var("VOTING_SMTP_USERNAME", "SMTP login", None)
    smtp_password: str | None = _var("VOTING_SMTP_PASSWORD", "SMTP password", None, secret=True)
    smtp_from: str = _var("VOTING_SMTP_FROM", "sender address", "no-reply@localhost")


@dataclass(frozen=True)
class SmsSettings:
    """How one-time passwords are texted (an HTTP gateway webhook)."""

    sender: Literal["none", "console", "webhook"] = _var(
        "VOTING_SMS_SENDER", "how codes are texted", "none", parse=_lower
    )
    webhook_url: str | None = _var("VOTING_SMS_WEBHOOK_URL", "the SMS gateway's URL", None)
    webhook_auth_header: str = _var(
        "VOTING_SMS_WEBHOOK_AUTH_HEADER", "name of the gateway's auth header", "Authorization"
    )
    webhook_auth: str | None = _var(
        "VOTING_SMS_WEBHOOK_AUTH", "value of the gateway's auth header", None, secret=True
    )
    template: str = _var(
        "VOTING_SMS_TEMPLATE",
        "the SMS text: {code} required, {minutes} optional",
        "Ma xac thuc binh chon: {code}. Ma co hieu luc {minutes} phut.",
    )


@dataclass(frozen=True)
class PrivacySettings:
    """What is kept of client addresses, and for how long (Law 91/2025/QH15)."""

    ipv4_prefix: Annotated[int, msgspec.Meta(ge=8, le=32)] = _var(
        "VOTING_IPV4_PREFIX", "IPv4 prefix length clients are grouped and stored by", 24
    )
    ipv6_prefix: Annotated[int, msgspec.Meta(ge=16, le=128)] = _var(
        "VOTING_IPV6_PREFIX", "IPv6 prefix length clients are grouped and stored by", 64
    )
    retention_days: NonNegative = _var(
        "VOTING_RETENTION_DAYS", "days after close before IP prefixes and codes are erased", 30
    )


@dataclass(frozen=True)
class DocumentSettings:
    """What printed documents (the committee report, voting-code cards) say of their issuer."""

    organisation: Annotated[str, msgspec.Meta(min_length=1, max_length=200)] = _var(
        "VOTING_ORGANISATION",
        "the issuing body named at the head of reports and cards",
        "Đảng bộ Khối các cơ quan và doanh nghiệp tỉnh",
        parse=str.strip,
    )


@dataclass(frozen=True)
class ObservabilitySettings:
    """Logs and metrics: the log format and level of every process, and where a process
    serves its Prometheus metrics (:mod:`voting.metrics`)."""

    log_format: Literal["text", "json"] = _var(
        "VOTING_LOG_FORMAT",
        "`text` (one readable line) or `json` (one JSON object a line) for every log record",
        "text",
        parse=_lower,
    )
    log_level: Literal["debug", "info", "warning", "error"] = _var(
        "VOTING_LOG_LEVEL", "the least severe log records written", "info", parse=_lower
    )
    metrics_port: Annotated[int, msgspec.Meta(ge=0, le=65535)] = _var(
        "VOTING_METRICS_PORT",
        "port of the process's Prometheus `/metrics` listener (`voting serve`: every worker's "
        "sum; `voting persister`: its own); 0: none",
        0,
    )
    metrics_host: str = _var(
        "VOTING_METRICS_HOST", "bind address of the metrics listener", "127.0.0.1"
    )


@dataclass(frozen=True)
class Settings:
    """Every setting of the service, by concern (see the module and README's table)."""

    database: DatabaseSettings = DatabaseSettings()
    redis: RedisSettings = RedisSettings()
    server: ServerSettings = ServerSettings()
    keys: KeySettings = KeySettings()
    tokens: TokenSettings = TokenSettings()
    limits: LimitSettings = LimitSettings()
    persister: PersisterSettings = PersisterSettings()
    challenge: ChallengeSettings = ChallengeSettings()
    otp: OtpSettings = OtpSettings()
    email: EmailSettings = EmailSettings()
    sms: SmsSettings = SmsSettings()
    privacy: PrivacySettings = PrivacySettings()
    documents: DocumentSettings = DocumentSettings()
    observability: ObservabilitySettings = ObservabilitySettings()

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read the settings from ``env`` (default ``os.environ``); unset or empty variables
        take their defaults.

        Raises :class:`SettingsError` naming the variable when a value is invalid. Generated
        keys are written under the data folder with mode 0600 so that every process of one
        installation signs and verifies alike.
        """
        env = os.environ if env is None else env
        hints = typing.get_type_hints(cls)
        settings = cls(**{f.name: _group(hints[f.name], env) for f in dataclasses.fields(cls)})
        keys = settings.keys
        data_dir = settings.server.data_dir
        settings = settings.replace(
            secret_keys=keys.secret_keys or (_stored_secret(data_dir, "secret_key"),),
            identity_key=keys.identity_key or _stored_secret(data_dir, "identity_key"),
        )
        _check(settings)
        return settings

    def replace(self, **changes: Any) -> Settings:
        """A copy with some fields changed, named by their variable without ``VOTING_`` in
        lower case (``run_persister=False``, ``port=8001``). Raises TypeError for a name that
        is no setting."""
        by_group: dict[str, dict[str, Any]] = {}
        for name, value in changes.items():
            group, attr = _FIELD_OF.get(name, (None, None))
            if group is None or attr is None:
                raise TypeError(f"no setting VOTING_{name.upper()}")
            by_group.setdefault(group, {})[attr] = value
        return dataclasses.replace(
            self,
            **{g: dataclasses.replace(getattr(self, g), **v) for g, v in by_group.items()},
        )


def variables() -> Iterator[tuple[str, dataclasses.Field[Any]]]:
    """Every ``(VOTING_* name, field)`` of :class:`Settings`, in declaration order."""
    hints = typing.get_type_hints(Settings)
    for group in dataclasses.fields(Settings):
        for f in dataclasses.fields(hints[group.name]):
            yield f.metadata["env"], f


def _group(cls: Any, env: Mapping[str, str]) -> Any:
    """The settings group ``cls`` converted from the variables of ``env`` (msgspec, not
    strict: ``"600"`` → 600). Raises :class:`SettingsError`."""
    raw: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        value = env.get(f.metadata["env"])
        if value is None or value == "":
            continue
        parse = f.metadata["parse"]
        try:
            raw[f.name] = parse(value) if parse is not None else value
        except ValueError as exc:
            raise SettingsError(f"{f.metadata['env']}: {exc}") from None
    try:
        return msgspec.convert(raw, cls, strict=False, dec_hook=_decode)
    except msgspec.ValidationError as exc:
        raise SettingsError(_explain(cls, raw, str(exc))) from None


def _decode(kind: type, value: Any) -> Any:
    if kind is Path and isinstance(value, str):
        return Path(value)
    raise NotImplementedError


def _explain(cls: Any, raw: dict[str, Any], error: str) -> str:
    """A msgspec error about ``$.<field>`` as a sentence naming the variable."""
    name = error.rsplit("$.", 1)[-1].rstrip("`") if "$." in error else ""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    if name not in fields:
        return error
    f, value = fields[name], raw.get(name)
    var = f.metadata["env"]
    kind = typing.get_type_hints(cls, include_extras=True)[name]
    base: Any = kind
    metas: tuple[msgspec.Meta, ...] = ()
    if typing.get_origin(kind) is Annotated:
        base, *rest = typing.get_args(kind)
        metas = tuple(m for m in rest if isinstance(m, msgspec.Meta))
    if typing.get_origin(base) in (typing.Union, types.UnionType):  # X | None
        base = next(a for a in typing.get_args(base) if a is not type(None))
    if base is bool:
        return f"{var} must be a boolean (true/false), got {value!r}"
    if typing.get_origin(base) is Literal:
        return f"{var} must be one of {', '.join(typing.get_args(base))}, got {value!r}"
    if base is int:
        try:
            number = int(str(value))
        except ValueError:
            return f"{var} must be an integer, got {value!r}"
        for m in metas:
            if m.ge is not None and number < m.ge:
                return f"{var} must be >= {m.ge}, got {number}"
            if m.le is not None and number > m.le:
                return f"{var} must be <= {m.le}, got {number}"
    return f"{var}: {error}"


def _check(settings: Settings) -> None:
    """Rules across fields; raises :class:`SettingsError`."""
    template = settings.sms.template
    try:
        names = {f for _, f, _, _ in string.Formatter().parse(template) if f is not None}
    except ValueError:
        names = {"?"}
    if "code" not in names or not names <= {"code", "minutes"}:
        raise SettingsError("VOTING_SMS_TEMPLATE must contain {code} and only {code}/{minutes}")
    challenge, privacy = settings.challenge, settings.privacy
    if challenge.ipv4_aggregate > privacy.ipv4_prefix:
        raise SettingsError("VOTING_IPV4_AGGREGATE must be <= VOTING_IPV4_PREFIX")
    if challenge.ipv6_aggregate > privacy.ipv6_prefix:
        raise SettingsError("VOTING_IPV6_AGGREGATE must be <= VOTING_IPV6_PREFIX")
    url = settings.sms.webhook_url or ""
    if settings.sms.sender == "webhook" and not url.startswith(("http://", "https://")):
        raise SettingsError("VOTING_SMS_WEBHOOK_URL must be an http(s) URL with the webhook sender")


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


#: ``ballot_rate`` → ``("limits", "ballot_rate")``: the short names of :meth:`Settings.replace`.
_FIELD_OF: dict[str, tuple[str, str]] = {}
for _group_field in dataclasses.fields(Settings):
    for _f in dataclasses.fields(typing.get_type_hints(Settings)[_group_field.name]):
        _FIELD_OF[_f.metadata["env"].removeprefix("VOTING_").lower()] = (_group_field.name, _f.name)
