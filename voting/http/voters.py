"""Voter credential routes (BRIEF §5 ``POST /voters``): ``GET /challenge``, ``POST /voters``,
``POST /voters/otp`` and ``GET /privacy``, served under ``/api/v1``.

The rules are :mod:`voting.services.voters`'s; these handlers count each request against
the client network's credential limit, call the desk, and set the ``voter`` cookie.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Request, Response, get, post
from litestar.datastructures import Cookie
from litestar.params import JSONBody, Parameter
from redis.exceptions import RedisError
from sqlalchemy.exc import DBAPIError

from voting import metrics
from voting.core.errors import MAX_ID, Unavailable, unavailable
from voting.http.answers import answers
from voting.http.client_ip import client_networks, client_prefix
from voting.live.counters import CREDENTIALS
from voting.services.container import ServicesDep
from voting.services.voters import OtpIn, OtpSentOut, VoterIn, VoterTokenOut


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


def _unavailable() -> Unavailable:
    return unavailable("the credential store is unavailable; try again shortly")


@get(
    "/challenge",
    summary="A proof-of-work challenge for one round (device mode)",
    responses=answers(404, 429),
)
async def challenge(
    request: Request[Any, Any, Any],
    services: ServicesDep,
    round_id: Annotated[
        int | None, Parameter(ge=1, le=MAX_ID, description="the round the credential is for")
    ] = None,
) -> Response[ChallengeOut]:
    """A signed ALTCHA challenge for ``POST /voters {"altcha": ..., "round_id": N}``, valid
    ``VOTING_CHALLENGE_TTL`` seconds, redeemable once, for round ``round_id`` only. Its work
    grows with the device credentials the client's network already received in that round
    (``data.level``: credentials beyond the network's share). Errors: 400 ``malformed`` (no
    ``round_id``), ``mode_mismatch``; 404 ``round_not_found``; 429 ``rate_limited``;
    503 ``unavailable``."""
    desk = services.voters
    network, aggregate = client_networks(request, services.settings)
    try:
        await desk.limit(network, "challenge")
        body = await desk.challenge(round_id, network, aggregate)
    except RedisError:
        raise _unavailable() from None
    return Response(msgspec.convert(body, ChallengeOut), headers={"Cache-Control": "no-store"})


@post(
    "/voters",
    summary="Issue a voter credential",
    status_code=201,
    responses=answers(404, 409, 429),
)
async def issue_voter(
    request: Request[Any, Any, Any],
    services: ServicesDep,
    data: JSONBody[VoterIn | None] = None,
) -> Response[VoterTokenOut]:
    """A signed voter credential, in the body and as the HttpOnly cookie ``voter``; what the
    body must carry depends on the round's identity mode (see :mod:`voting.services.voters`).

    Errors: 400 ``malformed``, ``mode_mismatch``, ``challenge_required``,
    ``challenge_invalid``, ``challenge_expired``, ``code_invalid``, ``code_unknown``,
    ``email_invalid``, ``phone_invalid``, ``otp_expired``, ``otp_invalid`` (with
    ``attempts_left``), ``challenge_wrong_round``; 404 ``round_not_found``; 409
    ``challenge_used``, ``challenge_stale`` (the network received more credentials since the
    challenge was made: solve a new one); 429 ``rate_limited``, ``otp_locked``
    (``Retry-After``); 503 ``unavailable``.
    """
    network, aggregate = client_networks(request, services.settings)
    try:
        await services.voters.limit(network, "voters")
        out = await services.voters.issue(data or VoterIn(), network, aggregate)
    except (RedisError, DBAPIError, ConnectionError):
        raise _unavailable() from None
    if out.round_id is not None:
        services.counters.add(out.round_id, CREDENTIALS)
    metrics.CREDENTIALS_ISSUED.labels(out.mode).inc()
    s = services.settings
    cookie = Cookie(
        key="voter",
        value=out.voter_token,
        max_age=s.tokens.voter_ttl,
        httponly=True,
        samesite="lax",
        secure=s.server.secure,
        path="/api/",
    )
    return Response(out, status_code=201, cookies=[cookie])


@post(
    "/voters/otp",
    summary="Send a one-time code (email or phone mode)",
    status_code=202,
    responses=answers(404, 429),
)
async def send_otp(
    request: Request[Any, Any, Any], services: ServicesDep, data: JSONBody[OtpIn]
) -> OtpSentOut:
    """Send a 6-digit code to ``email`` or ``phone`` (``consent`` must be true).

    Errors: 400 ``malformed``, ``consent_required``, ``email_invalid``, ``phone_invalid``,
    ``mode_mismatch``; 404 ``round_not_found``; 429 ``rate_limited`` (``Retry-After``: per
    network, per address, resend interval); 503 ``otp_unavailable`` (no sender for the
    channel), ``otp_send_failed`` (``Retry-After``), ``unavailable``.
    """
    try:
        await services.voters.limit(client_prefix(request, services.settings), "otp")
        return await services.voters.send_otp(data)
    except RedisError:
        raise _unavailable() from None


@get("/privacy", summary="What is kept about voters, and for how long")
async def privacy(services: ServicesDep) -> PrivacyOut:
    """The retention and minimisation settings the public page's privacy notice quotes."""
    s = services.settings
    return PrivacyOut(
        ip_retention_days=s.privacy.retention_days,
        ipv4_prefix=s.privacy.ipv4_prefix,
        ipv6_prefix=s.privacy.ipv6_prefix,
        otp_ttl_seconds=s.otp.ttl,
        voter_token_ttl_seconds=s.tokens.voter_ttl,
    )


ROUTES = [challenge, issue_voter, send_otp, privacy]
