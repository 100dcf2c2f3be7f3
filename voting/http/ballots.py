"""Casting a ballot over HTTP: ``POST /api/v1/rounds/{round_id}/ballots``, and its lean lane.

:func:`cast` is the one implementation (BRIEF §3 rules, in this order: the body decoded once
and strictly, the ``Idempotency-Key``, the voter credential, the round's cached rules, the
credential's round and mode, then one Lua script in Redis). Two doors lead to it:

* the Litestar route :func:`cast_ballot`, documented in the OpenAPI schema, which takes any
  request (a ``voter`` cookie instead of a bearer token, another media type, a body over
  the limit, a cross-site request: each answered as the API contract says);
* :func:`ballot_lane`, an ASGI wrapper around the app that answers the common request itself:
  ``POST`` to the canonical path, ``Content-Type: application/json`` with a
  ``Content-Length`` within :data:`MAX_BALLOT_BODY`, ``Authorization: Bearer``, sent from the
  page's own site (or by no browser). It skips the framework's routing, dependency injection
  and middleware stack, which cost a ballot more than its Redis script does (the benchmark's
  profile, ``loadtest/README.md``), and answers with the same status, body and headers
  (:class:`voting.http.headers.SecurityHeaders` included; ``tests/integration/
  test_ballot_lane.py`` compares the two doors). Anything else it hands, untouched and unread,
  to the app. What the lane leaves out is only what its requests cannot need.
"""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Annotated, Any

import msgspec
from litestar import Request, Response, post
from litestar.exceptions import HTTPException
from litestar.openapi.spec import OpenAPIMediaType, OpenAPIType, Operation, RequestBody, Schema
from litestar.params import FromPath, HeaderParameter, RawBody
from litestar.types import ASGIApp, Receive, Scope, Send
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from voting import metrics
from voting.core.ballot import check_idempotency_key, parse_ballot
from voting.core.errors import (
    DomainError,
    Unauthenticated,
    outcome_unknown,
    unavailable,
)
from voting.http.answers import answers
from voting.http.client_ip import client_prefix, prefix_of
from voting.http.errors import status_of
from voting.http.headers import SecurityHeaders
from voting.http.origin import cross_site
from voting.identity.tokens import TokenInvalid
from voting.live.durable import DurableAckFailed
from voting.services.container import Services, ServicesDep

logger = logging.getLogger("voting")

MAX_BALLOT_BODY = 4096  # bytes; a 16-choice ballot is under 100
VOTER_COOKIE = "voter"


@dataclass
class BallotOperation(Operation):
    """The OpenAPI operation of casting: the handler takes the raw body (decoded once, strictly,
    by :func:`voting.core.ballot.parse_ballot`), so the body's schema is written here."""

    def __post_init__(self) -> None:
        choices = Schema(type=OpenAPIType.ARRAY, items=Schema(type=OpenAPIType.INTEGER))
        body = Schema(
            type=OpenAPIType.OBJECT,
            properties={"choices": choices},
            required=["choices"],
            additional_properties=False,
            description="min_choices to max_choices distinct candidate ids of the round",
        )
        self.request_body = RequestBody(
            content={"application/json": OpenAPIMediaType(schema=body)}, required=True
        )


def agent_hash(user_agent: str | None) -> str:
    """The first 16 hex digits of SHA-256 of the User-Agent header ("" without one): enough for
    the quarantine rules to count distinct browsers, not to identify one."""
    if not user_agent:
        return ""
    return hashlib.sha256(user_agent.encode("utf-8", "replace")).hexdigest()[:16]


def _bearer(auth: str) -> str:
    """The token of an ``Authorization`` value; Unauthenticated when it is not a bearer one."""
    scheme, _, token = auth.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("voter_token_invalid", "Authorization must be 'Bearer <voter_token>'")
    return token.strip()


@dataclass(frozen=True, slots=True)
class CastRequest:
    """What casting reads of a request: the ``round_id`` of its path, its raw ``body``, the
    ``auth`` header (``Bearer <voter_token>``) or else the ``voter`` ``cookie``'s value, its
    ``Idempotency-Key``, the client's network ``prefix`` and its ``User-Agent``."""

    round_id: int
    body: bytes
    auth: str | None
    cookie: str | None
    idempotency_key: str | None
    prefix: str
    user_agent: str | None


async def cast(services: Services, req: CastRequest) -> bytes:
    """Cast the ballot of ``req``; return the ``201`` body (an accepted ballot, or the first
    answer again on a replay of its ``Idempotency-Key``). Refusals of a round that exists are
    counted by code.

    Raises :class:`~voting.core.errors.DomainError`: ``malformed``, ``too_many_choices``,
    ``too_few_choices``, ``duplicate_choice``, ``unknown_candidate`` (400),
    ``voter_token_required`` / ``voter_token_invalid`` (401), ``round_not_found`` (404),
    ``already_voted`` / ``round_not_open`` (409), ``idempotency_key_reused`` /
    ``idempotency_key_invalid`` (422), ``rate_limited`` (429), ``unavailable`` (503, nothing
    changed) and ``outcome_unknown`` (503, the ballot may be recorded: retry with the key).
    """
    try:
        return await _cast(services, req)
    except DomainError as exc:
        if exc.code != "round_not_found":  # only rounds that exist are counted
            services.counters.add(req.round_id, exc.code)
        metrics.BALLOTS_REFUSED.labels(exc.code).inc()
        raise


async def _cast(services: Services, req: CastRequest) -> bytes:
    """:func:`cast` without the counting of refusals."""
    round_id = req.round_id
    choices = parse_ballot(req.body)  # decoded once, strictly: see voting.core.ballot
    key = check_idempotency_key(req.idempotency_key)
    token = _bearer(req.auth) if req.auth is not None else (req.cookie or None)
    if token is None:
        raise Unauthenticated(
            "voter_token_required", "get a voter credential from POST /api/v1/voters"
        )
    try:  # no I/O before the credential is known good
        voter = services.signers.load_voter(token, services.settings.tokens.voter_ttl)
    except TokenInvalid as exc:
        raise Unauthenticated("voter_token_invalid", str(exc)) from None
    box = services.ballot_box
    try:
        rules = await box.rules(round_id)
    except RedisError:
        raise unavailable("the vote store is unavailable; try again shortly") from None
    rules.check(choices)
    try:
        voter.check_round(
            round_id, rules.identity_mode, device_bound=services.settings.challenge.required
        )
    except TokenInvalid as exc:
        raise Unauthenticated("voter_token_invalid", str(exc)) from None
    try:
        call = box.prepare(
            round_id,
            voter.voter_hash,
            choices,
            req.prefix,
            key,
            credential_at=voter.issued_at,
            agent=agent_hash(req.user_agent),
        )
        return await box.cast(call)
    except (RedisConnectionError, RedisTimeoutError, DurableAckFailed):
        raise outcome_unknown() from None  # asked, no answer: it may be recorded
    except RedisError:  # refused before it ran (full, read-only, ...): nothing changed
        raise unavailable("the vote store is unavailable; try again shortly") from None


@post(
    "/rounds/{round_id:int}/ballots",
    summary="Cast a ballot",
    status_code=201,
    request_max_body_size=MAX_BALLOT_BODY,
    operation_class=BallotOperation,
    responses=answers(401, 409, 422, 429),
)
async def cast_ballot(
    request: Request[Any, Any, Any],
    services: ServicesDep,
    round_id: FromPath[int],
    body: RawBody,
    idempotency_key: Annotated[str | None, HeaderParameter(name="Idempotency-Key")] = None,
) -> Response[bytes]:
    """Cast one ballot ``{"choices": [candidate_id, ...]}`` (BRIEF §3 rules) with the voter
    credential as ``Authorization: Bearer <voter_token>`` (or the ``voter`` cookie).

    Answers 201 with the accepted ballot (its ``receipt`` is the tracker to check later).
    Errors: 400 malformed / too_many_choices / too_few_choices / duplicate_choice /
    unknown_candidate; 401 voter_token_required / voter_token_invalid; 403
    cross_site_request; 404 round_not_found; 409 already_voted (with ballot_id) /
    round_not_open; 413 payload_too_large; 415 (not application/json); 422
    idempotency_key_reused; 429 rate_limited (Retry-After); 503 unavailable (Retry-After:
    nothing changed) or outcome_unknown (Retry-After: the ballot may be recorded; retry with
    the same Idempotency-Key).
    """
    if request.content_type[0] != "application/json":
        raise HTTPException(status_code=415, detail="a ballot is sent as application/json")
    headers = request.headers
    answer = await cast(
        services,
        CastRequest(
            round_id,
            body,
            headers.get("authorization"),
            request.cookies.get(VOTER_COOKIE),
            idempotency_key,
            client_prefix(request, services.settings),
            headers.get("user-agent"),
        ),
    )
    return Response(answer, status_code=201, media_type="application/json")


# -- the lane ------------------------------------------------------------------------------------

ROUTE_TEMPLATE = "/api/v1/rounds/{round_id}/ballots"  # as Litestar names the route
#: the canonical path (no leading zero: see voting.http.paths), round ids up to 18 digits
_PATH = re.compile(r"/api/v1/rounds/([1-9][0-9]{0,17})/ballots")
_encode = msgspec.json.Encoder().encode
_JSON = (b"content-type", b"application/json")


@dataclass(frozen=True)
class _Head:
    """What the lane reads of a request's headers (each seen at most once)."""

    length: int
    auth: str
    idempotency_key: str | None
    user_agent: str | None
    forwarded_for: list[str]


def _head(headers: Iterable[tuple[bytes, bytes]]) -> _Head | None:
    """The request's head if the lane takes it, else None (the app answers it)."""
    length = auth = content_type = key = agent = None
    forwarded: list[str] = []
    for name, value in headers:
        if name == b"content-length":
            if length is not None or not value.isdigit():
                return None
            length = int(value)
        elif name == b"authorization":
            if auth is not None:
                return None
            auth = value.decode("latin-1")
        elif name == b"content-type":
            if content_type is not None:
                return None
            content_type = value
        elif name == b"idempotency-key":
            if key is not None:
                return None
            key = value.decode("latin-1")
        elif name == b"user-agent":
            agent = value.decode("latin-1")
        elif name == b"x-forwarded-for":
            forwarded.append(value.decode("latin-1"))
        elif name == b"transfer-encoding":
            return None
    if (
        length is None
        or length > MAX_BALLOT_BODY
        or auth is None
        or content_type is None
        or content_type.split(b";", 1)[0].strip().lower() != b"application/json"
        or cross_site(headers) is not None
    ):
        return None
    return _Head(length, auth, key, agent, forwarded)


async def _body(receive: Receive, length: int) -> bytes | None:
    """The whole body (at most ``length`` bytes), or None when the client left first."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > length:  # the server frames by Content-Length; never more than it said
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _error(exc: DomainError) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
    """Status, body and extra headers of a refusal, as :mod:`voting.http.errors` answers it."""
    error: dict[str, Any] = {"code": exc.code, "message": exc.message}
    if exc.details:
        error.update(exc.details)
    extra = [(b"retry-after", str(exc.retry_after).encode())] if exc.retry_after is not None else []
    return status_of(exc), _encode({"error": error}), extra


def ballot_lane(app: Any, security: SecurityHeaders) -> ASGIApp:
    """``app`` (the Litestar app, whose ``state.services`` its lifespan sets) with the lean
    lane for ballots in front (see the module); ``security`` adds the headers every answer
    carries."""

    async def lane(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") != "POST":
            await app(scope, receive, send)
            return
        match = _PATH.fullmatch(scope["path"])
        head = _head(scope["headers"]) if match is not None else None
        services: Services | None = getattr(app.state, "services", None)
        if match is None or head is None or services is None:
            await app(scope, receive, send)
            return
        scope["path_template"] = ROUTE_TEMPLATE  # what the request histogram labels it by
        body = await _body(receive, head.length)
        if body is None:
            return  # the client is gone: nobody to answer
        round_id = int(match.group(1))
        client = scope.get("client")
        prefix = prefix_of(client[0] if client else None, head.forwarded_for, services.settings)
        extra: list[tuple[bytes, bytes]] = []
        try:
            req = CastRequest(
                round_id, body, head.auth, None, head.idempotency_key, prefix, head.user_agent
            )
            answer = await cast(services, req)
            status = 201
        except DomainError as exc:
            status, answer, extra = _error(exc)
        except RecursionError:  # msgspec's refusal of JSON nested too deeply
            status, answer = (
                400,
                _encode(
                    {
                        "error": {
                            "code": "malformed",
                            "message": "the JSON body is nested too deeply",
                        }
                    }
                ),
            )
        except Exception:
            request_id = secrets.token_hex(8)
            logger.exception("unhandled error %s on POST %s", request_id, scope["path"])
            status, answer = (
                500,
                _encode(
                    {
                        "error": {
                            "code": "internal",
                            "message": "internal server error",
                            "request_id": request_id,
                        }
                    }
                ),
            )
        start: Any = {
            "type": "http.response.start",
            "status": status,
            "headers": [_JSON, (b"content-length", str(len(answer)).encode()), *extra],
        }
        await security(start, scope)
        await send(start)
        end: Any = {"type": "http.response.body", "body": answer}
        await send(end)

    return lane
