"""Voter credentials by identity mode (BRIEF §5 ``POST /voters``): routes and their rules.

A round identifies its voters in one mode (``rounds.identity_mode``):

- ``device``: ``GET /challenge`` gives an ALTCHA proof-of-work challenge; ``POST /voters
  {"altcha": payload}`` redeems the solved payload once (:mod:`voting.challenge`) for a fresh
  random voter. ``VOTING_CHALLENGE_REQUIRED=false`` (tests, load tests) lets ``{}`` through.
- ``code``: ``POST /voters {"code": "ABCD-EFGH-JKM"}`` with a one-time code an admin generated
  (:mod:`voting.codes`); the voter is a keyed hash of the code and the credential is valid
  for the code's round only.
- ``email`` / ``phone``: ``POST /voters/otp {"email" | "phone", "consent": true}`` sends a
  6-digit code (:mod:`voting.otp`, :mod:`voting.senders`); ``POST /voters {"email" | "phone",
  "otp"}`` returns the credential. The voter is the keyed HMAC of the normalised address or
  number (:mod:`voting.identity`), so every credential of one person is one voter.

With ``round_id`` the round must be published (not draft; else 404 ``round_not_found``) and
in the same mode (else 400 ``mode_mismatch``), and the credential is valid in that round only.
Every credential route counts against a GCRA limit per client IP prefix
(``VOTING_CREDENTIAL_*``; 429 ``rate_limited`` with ``Retry-After``). Credentials are signed
tokens (:mod:`voting.tokens`) that hold no personal data in clear.
"""

from __future__ import annotations

import logging
import math
from typing import Annotated, Any, Literal

import msgspec
from litestar import Request, Response, get, post
from litestar.datastructures import Cookie, State
from litestar.di import NamedDependency, Provide
from litestar.params import JSONBody
from redis.exceptions import RedisError
from sqlalchemy.exc import DBAPIError

from voting.http.client_ip import client_prefix
from voting.http.errors import ApiError, unavailable
from voting.identity.addresses import IdentityInvalid, mask, normalise_email, normalise_phone
from voting.identity.challenge import MAX_PAYLOAD, Challenges
from voting.identity.codes import CodeInvalid, RoundCodes, normalise
from voting.identity.otp import OtpStore
from voting.identity.senders import Sender, SendError, make_senders
from voting.live.limits import Limiter, Rate, rate_limited, retry_after_seconds
from voting.services.container import Services

logger = logging.getLogger("voting.voters")
SEND_FAILED_RETRY = "30"
MAX_ROUND_ID = 2**31 - 1
Mode = Literal["device", "code", "email", "phone"]
RoundId = Annotated[int, msgspec.Meta(ge=1, le=MAX_ROUND_ID)]
Email = Annotated[str, msgspec.Meta(min_length=3, max_length=254)]
Phone = Annotated[str, msgspec.Meta(min_length=3, max_length=32)]
PROOF_FIELDS: dict[str, frozenset[str]] = {
    "device": frozenset({"altcha"}),
    "code": frozenset({"code"}),
    "email": frozenset({"email", "otp"}),
    "phone": frozenset({"phone", "otp"}),
}


class VoterIn(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """``POST /voters`` body. ``mode`` may be left out: it follows from the proof given
    (``altcha`` → device, ``code`` → code, ``email`` → email, ``phone`` → phone, none →
    device). Fields of another mode are refused."""

    mode: Mode | None = None
    round_id: RoundId | None = None
    altcha: Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_PAYLOAD)] | None = None
    code: Annotated[str, msgspec.Meta(min_length=1, max_length=64)] | None = None
    email: Email | None = None
    phone: Phone | None = None
    otp: Annotated[str, msgspec.Meta(pattern=r"^[0-9]{6}$")] | None = None


class OtpIn(msgspec.Struct, forbid_unknown_fields=True):
    """``POST /voters/otp`` body: exactly one of ``email`` / ``phone``; ``consent`` must be
    true (the voter agreed to the privacy notice before the address is used)."""

    email: Email | None = None
    phone: Phone | None = None
    round_id: RoundId | None = None
    consent: bool = False


class VoterTokenOut(msgspec.Struct):
    """A new voter credential (also set as the HttpOnly cookie ``voter``): the identity mode
    that vouched for it and its round (null: any round of that mode)."""

    voter_token: str
    mode: str
    round_id: int | None


class OtpSentOut(msgspec.Struct):
    """A code is on its way: to whom (masked), how long it lives and when another can be
    requested (seconds)."""

    channel: str
    sent_to: str
    expires_in: int
    resend_after: int


class ChallengeParametersOut(msgspec.Struct, omit_defaults=True):
    """ALTCHA PoW v2 challenge parameters (see https://altcha.org/docs/v2)."""

    algorithm: str
    cost: int
    keyLength: int  # noqa: N815 - the ALTCHA wire format
    keyPrefix: str  # noqa: N815
    nonce: str
    salt: str
    keySignature: str | None = None  # noqa: N815
    expiresAt: int | None = None  # noqa: N815
    data: dict[str, str] | None = None


class ChallengeOut(msgspec.Struct):
    """An ALTCHA challenge, as the widget fetches it."""

    parameters: ChallengeParametersOut
    signature: str


class PrivacyOut(msgspec.Struct):
    """What the service keeps about voters and for how long (shown by the public page)."""

    ip_retention_days: int
    ipv4_prefix: int
    ipv6_prefix: int
    otp_ttl_seconds: int
    voter_token_ttl_seconds: int


class VoterDesk:
    """Issues voter credentials for one process (built lazily on the app's services)."""

    def __init__(self, services: Services) -> None:
        self.services = services
        s = services.settings
        self.limiter = Limiter(services.redis, s.redis_prefix)
        self.credential_rate = Rate(s.credential_rate, s.credential_period, s.credential_burst)
        self.challenges = Challenges(services.redis, s, services.signers)
        self.otp = OtpStore(services.redis, s, services.signers)
        self.codes = RoundCodes(services.signers)
        self.senders: dict[str, Sender] = make_senders(s)

    async def limit(self, request: Request[Any, Any, Any], bucket: str) -> None:
        """Count one request of the client's IP prefix in ``bucket``; 429 when over.

        Fails open when Redis is unreachable: what a credential needs beyond this limit (a
        single-use proof of work, an OTP) and every ballot need Redis too, so a credential
        issued meanwhile buys nothing that the limit guards."""
        s = self.services.settings
        prefix = client_prefix(request, s)
        try:
            wait = await self.limiter.wait_ms(bucket, prefix, self.credential_rate)
        except RedisError as exc:
            logger.warning("credential limit not applied, Redis error: %s", type(exc).__name__)
            return
        if wait > 0:
            raise rate_limited(wait, "credential requests from this network")

    async def round_mode(self, round_id: int) -> str:
        """The identity mode of a published round; 404 ``round_not_found`` otherwise."""
        return (await self.services.ballot_box.rules(round_id)).identity_mode

    async def check_mode(self, round_id: int | None, mode: str) -> None:
        """400 ``mode_mismatch`` when ``round_id`` is given and identifies voters otherwise."""
        if round_id is None:
            return
        actual = await self.round_mode(round_id)
        if actual != mode:
            raise ApiError(
                400,
                "mode_mismatch",
                f"round {round_id} identifies voters by {actual}, not {mode}",
                extra={"identity_mode": actual},
            )

    async def issue(self, data: VoterIn) -> VoterTokenOut:
        """Check the proof of ``data`` for its mode and sign a credential (see the module)."""
        present = {
            f for f in ("altcha", "code", "email", "phone", "otp") if getattr(data, f) is not None
        }
        mode = data.mode or _infer_mode(present)
        unused = sorted(present - PROOF_FIELDS[mode])
        if unused:
            raise ApiError(400, "malformed", f"{', '.join(unused)} not used in mode {mode}")
        await self.check_mode(data.round_id, mode)
        signers = self.services.signers
        if mode == "device":
            if data.altcha is not None:
                await self.challenges.redeem(data.altcha)
            elif self.services.settings.challenge_required:
                raise ApiError(
                    400,
                    "challenge_required",
                    "solve the proof of work from GET /api/v1/challenge and send it as altcha",
                )
            token = signers.issue_voter("device", None, data.round_id)
            return VoterTokenOut(token, mode, data.round_id)
        if mode == "code":
            return await self._redeem_code(data)
        channel = mode
        raw = data.email if channel == "email" else data.phone
        if raw is None or data.otp is None:
            raise ApiError(400, "malformed", f"mode {mode} needs {channel} and otp")
        identity = _normalise(channel, raw)
        result = await self.otp.check(self.otp.identity_hash(channel, identity), data.otp)
        if result.status == "expired":
            raise ApiError(400, "otp_expired", "no valid code for this address; request a new one")
        if result.status == "invalid":
            raise ApiError(
                400,
                "otp_invalid",
                f"wrong code; {result.attempts_left} attempt(s) left",
                extra={"attempts_left": result.attempts_left},
            )
        if result.status == "locked":
            retry = retry_after_seconds(result.retry_ms)
            raise ApiError(
                429,
                "otp_locked",
                f"too many wrong codes; request a new code in {retry} s",
                extra={"retry_after": retry},
                headers={"Retry-After": str(retry)},
            )
        token = signers.issue_voter(mode, identity, data.round_id)
        return VoterTokenOut(token, mode, data.round_id)

    async def _redeem_code(self, data: VoterIn) -> VoterTokenOut:
        if data.code is None:
            raise ApiError(400, "malformed", "mode code needs code")
        try:
            code = normalise(data.code)
        except CodeInvalid as exc:
            raise ApiError(400, "code_invalid", f"this is not a valid voting code: {exc}") from None
        engine = self.services.engine
        async with engine.connect() as conn:
            round_id = await self.codes.find(conn, code)
        if round_id is None or (data.round_id is not None and data.round_id != round_id):
            raise ApiError(400, "code_unknown", "no such voting code for this round")
        await self.check_mode(round_id, "code")
        async with engine.begin() as conn:
            await self.codes.mark_redeemed(conn, code)
        token = self.services.signers.issue_voter("code", code, round_id)
        return VoterTokenOut(token, "code", round_id)

    async def send_otp(self, data: OtpIn) -> OtpSentOut:
        """Send a one-time code to the address or number of ``data`` (see the module)."""
        if (data.email is None) == (data.phone is None):
            raise ApiError(400, "malformed", "give exactly one of email and phone")
        channel = "email" if data.email is not None else "phone"
        if not data.consent:
            raise ApiError(
                400,
                "consent_required",
                f"agree to the privacy notice (consent: true) before your {channel} is used",
            )
        identity = _normalise(channel, data.email or data.phone or "")
        await self.check_mode(data.round_id, channel)
        sender = self.senders.get(channel)
        if sender is None:
            raise ApiError(503, "otp_unavailable", f"this service cannot send codes by {channel}")
        s = self.services.settings
        ident = self.otp.identity_hash(channel, identity)
        code, wait = await self.otp.issue(ident)
        if code is None:
            raise rate_limited(wait, "codes requested for this address")
        try:
            await sender.send(identity, code, math.ceil(s.otp_ttl / 60))
        except SendError as exc:
            await self.otp.forget(ident, code)
            raise ApiError(
                503,
                "otp_send_failed",
                f"the code could not be sent ({exc}); try again later",
                headers={"Retry-After": SEND_FAILED_RETRY},
            ) from None
        return OtpSentOut(channel, mask(channel, identity), s.otp_ttl, s.otp_resend_interval)


def _infer_mode(present: set[str]) -> Mode:
    for field, mode in (("altcha", "device"), ("code", "code"), ("email", "email")):
        if field in present:
            return mode  # type: ignore[return-value]
    return "phone" if "phone" in present else "device"


def _normalise(channel: str, raw: str) -> str:
    try:
        return normalise_email(raw) if channel == "email" else normalise_phone(raw)
    except IdentityInvalid as exc:
        raise ApiError(400, f"{channel}_invalid", str(exc)) from None


def provide_desk(state: State) -> VoterDesk:
    """Dependency: the process's :class:`VoterDesk`, made on first use from the app's
    services (and remade if they were reopened)."""
    desk: VoterDesk | None = state.get("voter_desk")
    if desk is None or desk.services is not state.services:
        desk = VoterDesk(state.services)
        state.voter_desk = desk
    return desk


#: Handler parameter type for the :class:`VoterDesk` (a named Litestar dependency).
DeskDep = NamedDependency[VoterDesk]
DESK = {"desk": Provide(provide_desk, sync_to_thread=False)}


def _unavailable() -> ApiError:
    return unavailable("the credential store is unavailable; try again shortly")


@get("/challenge", summary="A proof-of-work challenge (device mode)", dependencies=DESK)
async def challenge(request: Request[Any, Any, Any], desk: DeskDep) -> Response[ChallengeOut]:
    """A signed ALTCHA challenge for ``POST /voters {"altcha": ...}``, valid
    ``VOTING_CHALLENGE_TTL`` seconds and redeemable once. 429 ``rate_limited``;
    503 ``unavailable``."""
    try:
        await desk.limit(request, "challenge")
        body = await desk.challenges.create()
    except RedisError:
        raise _unavailable() from None
    return Response(msgspec.convert(body, ChallengeOut), headers={"Cache-Control": "no-store"})


@post("/voters", summary="Issue a voter credential", status_code=201, dependencies=DESK)
async def issue_voter(
    request: Request[Any, Any, Any],
    desk: DeskDep,
    data: JSONBody[VoterIn | None] = None,
) -> Response[VoterTokenOut]:
    """A signed voter credential, in the body and as the HttpOnly cookie ``voter``; what the
    body must carry depends on the round's identity mode (see :mod:`voting.voters`).

    Errors: 400 ``malformed``, ``mode_mismatch``, ``challenge_required``,
    ``challenge_invalid``, ``challenge_expired``, ``code_invalid``, ``code_unknown``,
    ``email_invalid``, ``phone_invalid``, ``otp_expired``, ``otp_invalid`` (with
    ``attempts_left``); 404 ``round_not_found``; 409 ``challenge_used``; 429 ``rate_limited``,
    ``otp_locked`` (``Retry-After``); 503 ``unavailable``.
    """
    try:
        await desk.limit(request, "voters")
        out = await desk.issue(data or VoterIn())
    except (RedisError, DBAPIError, ConnectionError):
        raise _unavailable() from None
    s = desk.services.settings
    cookie = Cookie(
        key="voter",
        value=out.voter_token,
        max_age=s.voter_token_ttl,
        httponly=True,
        samesite="lax",
        secure=s.cookie_secure,
        path="/api/",
    )
    return Response(out, status_code=201, cookies=[cookie])


@post(
    "/voters/otp",
    summary="Send a one-time code (email or phone mode)",
    status_code=202,
    dependencies=DESK,
)
async def send_otp(
    request: Request[Any, Any, Any], desk: DeskDep, data: JSONBody[OtpIn]
) -> OtpSentOut:
    """Send a 6-digit code to ``email`` or ``phone`` (``consent`` must be true).

    Errors: 400 ``malformed``, ``consent_required``, ``email_invalid``, ``phone_invalid``,
    ``mode_mismatch``; 404 ``round_not_found``; 429 ``rate_limited`` (``Retry-After``: per
    network, per address, resend interval); 503 ``otp_unavailable`` (no sender for the
    channel), ``otp_send_failed`` (``Retry-After``), ``unavailable``.
    """
    try:
        await desk.limit(request, "otp")
        return await desk.send_otp(data)
    except RedisError:
        raise _unavailable() from None


@get("/privacy", summary="What is kept about voters, and for how long")
async def privacy(state: State) -> PrivacyOut:
    """The retention and minimisation settings the public page's privacy notice quotes."""
    s = state.services.settings
    return PrivacyOut(
        ip_retention_days=s.retention_days,
        ipv4_prefix=s.ipv4_prefix,
        ipv6_prefix=s.ipv6_prefix,
        otp_ttl_seconds=s.otp_ttl,
        voter_token_ttl_seconds=s.voter_token_ttl,
    )


ROUTES = [challenge, issue_voter, send_otp, privacy]
