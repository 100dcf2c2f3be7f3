"""Issuing voter credentials by identity mode (BRIEF §5 ``POST /voters``).

A round identifies its voters in one mode (``rounds.identity_mode``):

- ``device``: an ALTCHA proof of work (:mod:`voting.identity.challenge`) made for one round
  (``GET /challenge?round_id=N``), redeemed once, for a fresh random voter of that round; its
  price grows with the credentials the client's network already received in the round
  (:mod:`voting.core.device`). ``VOTING_CHALLENGE_REQUIRED=false`` (tests, load tests) lets
  ``{}`` through, for any device round unless ``round_id`` is given.
- ``code``: a one-time voting code an admin generated (:mod:`voting.identity.codes`); the
  voter is a keyed hash of the code and the credential is valid for the code's round only.
- ``email`` / ``phone``: a 6-digit one-time password sent to the address or number
  (:mod:`voting.identity.otp`, :mod:`voting.identity.senders`); the voter is the keyed HMAC
  of the normalised address or number (:mod:`voting.identity.addresses`), so every
  credential of one person is one voter.

With ``round_id`` the round must be published (else ``round_not_found``) and in the same
mode (else ``mode_mismatch``), and the credential is valid in that round only. Every
credential request counts against a GCRA limit per client IP prefix
(``VOTING_CREDENTIAL_*``), which fails closed: without Redis, 503 ``unavailable``.
Credentials are signed tokens (:mod:`voting.identity.tokens`) that hold no personal data in
clear.
"""

from __future__ import annotations

import logging
import math
from typing import Annotated, Any

import msgspec
from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy.ext.asyncio import AsyncEngine

from voting.core.errors import (
    MAX_ID,
    Invalid,
    Limited,
    Unavailable,
    rate_limited,
    retry_after_seconds,
    unavailable,
)
from voting.core.rounds import IdentityMode
from voting.identity.addresses import IdentityInvalid, mask, normalise_email, normalise_phone
from voting.identity.challenge import MAX_PAYLOAD, Challenges
from voting.identity.codes import CodeInvalid, RoundCodes, normalise
from voting.identity.otp import OtpStore
from voting.identity.senders import Sender, SendError, make_senders
from voting.identity.tokens import Signers
from voting.live.ballot_box import BallotBox
from voting.live.limits import Limiter, Rate
from voting.settings import Settings

logger = logging.getLogger("voting.voters")
SEND_FAILED_RETRY = 30  # seconds
RoundId = Annotated[int, msgspec.Meta(ge=1, le=MAX_ID)]
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

    mode: IdentityMode | None = None
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


class VoterDesk:
    """Issues voter credentials for one process (see the module).

    ``box`` tells a round's identity mode (its cached rules); ``engine`` holds the voting
    codes; ``redis`` the limits, used challenges and one-time passwords.
    """

    def __init__(
        self,
        redis: Redis,
        engine: AsyncEngine,
        settings: Settings,
        signers: Signers,
        box: BallotBox,
    ) -> None:
        self.engine, self.settings, self.signers, self.box = engine, settings, signers, box
        s = settings
        self.limiter = Limiter(redis, s.redis.prefix)
        self.credential_rate = Rate(
            s.limits.credential_rate, s.limits.credential_period, s.limits.credential_burst
        )
        self.challenges = Challenges(redis, s, signers)
        self.otp = OtpStore(redis, s, signers)
        self.codes = RoundCodes(signers)
        self.senders: dict[str, Sender] = make_senders(s)

    async def limit(self, prefix: str, bucket: str) -> None:
        """Count one request of the client IP ``prefix`` in ``bucket`` (``challenge``,
        ``voters``, ``otp``); :class:`Limited` ``rate_limited`` when over.

        Fails closed: when Redis cannot count the request, :class:`Unavailable`
        ``unavailable`` (503, ``Retry-After``) and nothing is issued, since a limit that
        lets requests through unseen is no limit (a stalled Redis would otherwise hand out
        challenges and codes unmetered)."""
        try:
            wait = await self.limiter.wait_ms(bucket, prefix, self.credential_rate)
        except RedisError as exc:
            logger.warning("credential limit not checked, Redis error: %s", type(exc).__name__)
            raise unavailable(
                "the credential limits cannot be checked right now; try again shortly"
            ) from None
        if wait > 0:
            raise rate_limited(wait, "credential requests from this network")

    async def challenge(self, round_id: int | None, network: str, aggregate: str) -> dict[str, Any]:
        """A proof-of-work challenge for a device credential of ``round_id``, priced for the
        client ``network`` and ``aggregate`` (:meth:`Challenges.create`). :class:`Invalid`
        ``malformed`` without a round, ``mode_mismatch`` for a round of another mode;
        ``round_not_found``. Redis errors propagate."""
        if round_id is None:
            raise Invalid(
                "malformed", "ask GET /challenge?round_id=N: a challenge is for one round"
            )
        await self.check_mode(round_id, "device")
        return await self.challenges.create(round_id, network, aggregate)

    async def round_mode(self, round_id: int) -> str:
        """The identity mode of a published round; ``round_not_found`` otherwise."""
        return (await self.box.rules(round_id)).identity_mode

    async def check_mode(self, round_id: int | None, mode: str) -> None:
        """:class:`Invalid` ``mode_mismatch`` when ``round_id`` is given and identifies voters
        otherwise."""
        if round_id is None:
            return
        actual = await self.round_mode(round_id)
        if actual != mode:
            raise Invalid(
                "mode_mismatch",
                f"round {round_id} identifies voters by {actual}, not {mode}",
                details={"identity_mode": actual},
            )

    async def issue(
        self, data: VoterIn, network: str = "unknown", aggregate: str = "unknown"
    ) -> VoterTokenOut:
        """Check the proof of ``data`` for its mode and sign a credential (see the module);
        ``network`` / ``aggregate``: the client's IP prefix and its aggregate, which a device
        credential is counted against."""
        present = {
            f for f in ("altcha", "code", "email", "phone", "otp") if getattr(data, f) is not None
        }
        mode = data.mode or _infer_mode(present)
        unused = sorted(present - PROOF_FIELDS[mode])
        if unused:
            raise Invalid("malformed", f"{', '.join(unused)} not used in mode {mode}")
        await self.check_mode(data.round_id, mode)
        signers = self.signers
        if mode == "device":
            if data.altcha is not None:
                if data.round_id is None:
                    raise Invalid(
                        "malformed",
                        "device mode needs round_id: the round the proof of work was made for",
                    )
                await self.challenges.redeem(data.altcha, data.round_id, network, aggregate)
            elif self.settings.challenge.required:
                raise Invalid(
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
            raise Invalid("malformed", f"mode {mode} needs {channel} and otp")
        identity = _normalise(channel, raw)
        result = await self.otp.check(self.otp.identity_hash(channel, identity), data.otp)
        if result.status == "expired":
            raise Invalid("otp_expired", "no valid code for this address; request a new one")
        if result.status == "invalid":
            raise Invalid(
                "otp_invalid",
                f"wrong code; {result.attempts_left} attempt(s) left",
                details={"attempts_left": result.attempts_left},
            )
        if result.status == "locked":
            retry = retry_after_seconds(result.retry_ms)
            raise Limited(
                "otp_locked",
                f"too many wrong codes; request a new code in {retry} s",
                retry_after=retry,
            )
        token = signers.issue_voter(mode, identity, data.round_id)
        return VoterTokenOut(token, mode, data.round_id)

    async def _redeem_code(self, data: VoterIn) -> VoterTokenOut:
        if data.code is None:
            raise Invalid("malformed", "mode code needs code")
        try:
            code = normalise(data.code)
        except CodeInvalid as exc:
            raise Invalid("code_invalid", f"this is not a valid voting code: {exc}") from None
        engine = self.engine
        async with engine.connect() as conn:
            round_id = await self.codes.find(conn, code)
        if round_id is None or (data.round_id is not None and data.round_id != round_id):
            raise Invalid("code_unknown", "no such voting code for this round")
        await self.check_mode(round_id, "code")
        async with engine.begin() as conn:
            await self.codes.mark_redeemed(conn, code)
        token = self.signers.issue_voter("code", code, round_id)
        return VoterTokenOut(token, "code", round_id)

    async def send_otp(self, data: OtpIn) -> OtpSentOut:
        """Send a one-time code to the address or number of ``data`` (see the module)."""
        if (data.email is None) == (data.phone is None):
            raise Invalid("malformed", "give exactly one of email and phone")
        channel = "email" if data.email is not None else "phone"
        if not data.consent:
            raise Invalid(
                "consent_required",
                f"agree to the privacy notice (consent: true) before your {channel} is used",
            )
        identity = _normalise(channel, data.email or data.phone or "")
        await self.check_mode(data.round_id, channel)
        sender = self.senders.get(channel)
        if sender is None:
            raise Unavailable("otp_unavailable", f"this service cannot send codes by {channel}")
        s = self.settings
        ident = self.otp.identity_hash(channel, identity)
        otp, wait = await self.otp.issue(ident)
        if otp is None:
            raise rate_limited(wait, "codes requested for this address")
        try:
            await sender.send(identity, otp, math.ceil(s.otp.ttl / 60))
        except SendError as exc:
            await self.otp.forget(ident, otp)
            raise Unavailable(
                "otp_send_failed",
                f"the code could not be sent ({exc}); try again later",
                retry_after=SEND_FAILED_RETRY,
            ) from None
        return OtpSentOut(channel, mask(channel, identity), s.otp.ttl, s.otp.resend_interval)


def _infer_mode(present: set[str]) -> IdentityMode:
    for field, mode in (("altcha", "device"), ("code", "code"), ("email", "email")):
        if field in present:
            return mode  # type: ignore[return-value]
    return "phone" if "phone" in present else "device"


def _normalise(channel: str, raw: str) -> str:
    try:
        return normalise_email(raw) if channel == "email" else normalise_phone(raw)
    except IdentityInvalid as exc:
        raise Invalid(f"{channel}_invalid", str(exc)) from None
