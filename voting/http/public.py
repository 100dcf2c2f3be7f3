"""Public API v1 (BRIEF §5): rounds, candidates, ballots, results, receipts; the voter
credential routes (``/challenge``, ``/voters``, ``/voters/otp``, ``/privacy``) are in
:mod:`voting.voters` and served under the same prefix.

Only :func:`cast_ballot` is on the hot path: it decodes the body (msgspec, via Litestar),
checks the choices against the round's cached rules, verifies the credential and runs the
cast script in Redis. Reads of rounds and candidates come from Postgres through a short
in-process cache. Ids outside Postgres's integer range are answered 404 like unknown ones.
"""

from __future__ import annotations

import time
from typing import Annotated, Any

import msgspec
from litestar import Request, Response, get, post
from litestar.params import FromPath, HeaderParameter, JSONBody
from redis.exceptions import RedisError
from sqlalchemy import select

from voting.core.results import build_results
from voting.http.client_ip import client_prefix
from voting.http.errors import ApiError, unavailable
from voting.http.voters import ROUTES as VOTER_ROUTES
from voting.identity.tokens import TokenInvalid
from voting.live import state as live
from voting.live.ballot_box import BallotIn, CastBallot, check_idempotency_key
from voting.live.keys import RoundKeys
from voting.record import tables
from voting.services.container import Services, ServicesDep
from voting.services.rounds import get_round, list_candidates

READ_CACHE_TTL = 5.0  # seconds a public round document is served from memory
ROUND_FIELDS = (
    "id",
    "slug",
    "title",
    "status",
    "opens_at",
    "closes_at",
    "min_choices",
    "max_choices",
    "winners",
    "results_visibility",
    "identity_mode",
)
CANDIDATE_FIELDS = (
    "id",
    "code",
    "full_name",
    "gender",
    "birth_year",
    "position",
    "workplace",
    "nominated_by",
    "field",
    "summary",
)
MAX_BALLOT_BODY = 4096  # bytes; a 16-choice ballot is under 100
MAX_ID = 2**31 - 1  # Postgres integer

_json = msgspec.json.Encoder()


class RoundOut(msgspec.Struct):
    """A round as the public sees it; ``identity_mode`` tells what ``POST /voters`` needs
    (``device``, ``code``, ``email`` or ``phone``)."""

    id: int
    slug: str
    title: str
    status: str
    opens_at: str | None
    closes_at: str | None
    min_choices: int
    max_choices: int
    winners: int
    results_visibility: str
    identity_mode: str


class CandidateOut(msgspec.Struct):
    """A candidate; ``achievements`` only in the single-candidate view."""

    id: int
    code: str
    full_name: str
    gender: str
    birth_year: int
    position: str
    workplace: str
    nominated_by: str
    field: str
    summary: str
    photo_url: str | None
    achievements: str | msgspec.UnsetType = msgspec.UNSET


class RoundDetailOut(RoundOut):
    """A round with its ``description`` and candidates ordered by code."""

    description: str = ""
    candidates: list[CandidateOut] = []


class TieOut(msgspec.Struct):
    rank: int
    seats: int
    candidate_ids: list[int]


class StandingOut(msgspec.Struct):
    candidate_id: int
    code: str
    full_name: str
    field: str
    votes: int
    rank: int


class ResultsOut(msgspec.Struct):
    """Results of a round (BRIEF §5)."""

    round_id: int
    title: str
    status: str
    final: bool
    total_ballots: int
    candidates: list[StandingOut]
    winners: list[int]
    tie: TieOut | None


class ReceiptOut(msgspec.Struct):
    """What a receipt proves: the ballot and whether it is in the record yet.

    ``recorded``: persisted in Postgres; ``pending``: accepted, in Redis, not yet persisted;
    ``unknown``: neither (report it to the organisers with the receipt).
    """

    round_id: int
    ballot_id: str
    choices: list[int]
    status: str


def _iso(value: Any) -> str | None:
    return None if value is None else value.isoformat()


def round_out(row: dict[str, Any]) -> RoundOut:
    """The public view of a round row."""
    values: dict[str, Any] = {k: row[k] for k in ROUND_FIELDS}
    values["opens_at"], values["closes_at"] = _iso(row["opens_at"]), _iso(row["closes_at"])
    return RoundOut(**values)


def candidate_out(round_id: int, row: dict[str, Any], *, achievements: bool) -> CandidateOut:
    """The public view of a candidate row (``photo_url`` null when it has no photo)."""
    photo = (
        f"/api/v1/rounds/{round_id}/candidates/{row['id']}/photo" if row.get("has_photo") else None
    )
    out = CandidateOut(**{k: row[k] for k in CANDIDATE_FIELDS}, photo_url=photo)
    if achievements:
        out.achievements = row["achievements"]
    return out


async def _public_round(services: Services, round_id: int) -> dict[str, Any]:
    if not 1 <= round_id <= MAX_ID:
        raise ApiError(404, "round_not_found", f"round {round_id} does not exist")
    async with services.engine.connect() as conn:
        row = await get_round(conn, round_id)
    if row["status"] == "draft":
        raise ApiError(404, "round_not_found", f"round {round_id} does not exist")
    return row


def _json_response(body: bytes, status: int = 200) -> Response[bytes]:
    return Response(body, status_code=status, media_type="application/json")


@get("/rounds", summary="List the rounds that are not in draft")
async def list_rounds(services: ServicesDep) -> list[RoundOut]:
    """Every non-draft round, newest first."""
    r = tables.rounds
    async with services.engine.connect() as conn:
        rows = await conn.execute(select(r).where(r.c.status != "draft").order_by(r.c.id.desc()))
        return [round_out(dict(row)) for row in rows.mappings()]


@get("/rounds/{round_id:int}", summary="A round with its candidates", response_model=RoundDetailOut)
async def round_detail(services: ServicesDep, round_id: FromPath[int]) -> Response[bytes]:
    """The round and its candidates (``achievements`` left out), served from a 5-second cache."""
    cache_key = f"round:{round_id}"
    cached = services.cache.get(cache_key)
    if cached is not None and cached[0] > time.monotonic():
        return _json_response(cached[1])
    row = await _public_round(services, round_id)
    async with services.engine.connect() as conn:
        cands = await list_candidates(conn, round_id)
    detail = RoundDetailOut(
        **msgspec.structs.asdict(round_out(row)),
        description=row["description"],
        candidates=[candidate_out(round_id, c, achievements=False) for c in cands],
    )
    body = _json.encode(detail)
    services.cache[cache_key] = (time.monotonic() + READ_CACHE_TTL, body)
    return _json_response(body)


@get("/rounds/{round_id:int}/candidates/{candidate_id:int}", summary="One candidate")
async def candidate_detail(
    services: ServicesDep, round_id: FromPath[int], candidate_id: FromPath[int]
) -> CandidateOut:
    """One candidate of a public round, with ``achievements``; 404 ``candidate_not_found``."""
    await _public_round(services, round_id)
    if not 1 <= candidate_id <= MAX_ID:
        raise ApiError(404, "candidate_not_found", f"candidate {candidate_id} is not in this round")
    c = tables.candidates
    cols = [col for col in c.c if col.name != "photo"]
    async with services.engine.connect() as conn:
        row = (
            (
                await conn.execute(
                    select(*cols, c.c.photo.isnot(None).label("has_photo")).where(
                        c.c.round_id == round_id, c.c.id == candidate_id
                    )
                )
            )
            .mappings()
            .first()
        )
    if row is None:
        raise ApiError(404, "candidate_not_found", f"candidate {candidate_id} is not in this round")
    return candidate_out(round_id, dict(row), achievements=True)


@get(
    "/rounds/{round_id:int}/candidates/{candidate_id:int}/photo",
    summary="A candidate's photo",
    media_type="image/jpeg",
)
async def candidate_photo(
    services: ServicesDep, round_id: FromPath[int], candidate_id: FromPath[int]
) -> Response[bytes]:
    """The photo bytes; 404 ``photo_not_found`` when the candidate has none."""
    await _public_round(services, round_id)
    if not 1 <= candidate_id <= MAX_ID:
        raise ApiError(404, "photo_not_found", "this candidate has no photo")
    c = tables.candidates
    async with services.engine.connect() as conn:
        row = (
            await conn.execute(
                select(c.c.photo, c.c.photo_type).where(
                    c.c.round_id == round_id, c.c.id == candidate_id
                )
            )
        ).first()
    if row is None or row[0] is None:
        raise ApiError(404, "photo_not_found", "this candidate has no photo")
    return Response(
        row[0], media_type=row[1] or "image/jpeg", headers={"Cache-Control": "public, max-age=3600"}
    )


def _voter_token(request: Request[Any, Any, Any]) -> str:
    auth = request.headers.get("authorization")
    if auth:
        scheme, _, token = auth.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise ApiError(
                401, "voter_token_invalid", "Authorization must be 'Bearer <voter_token>'"
            )
        return token.strip()
    cookie = request.cookies.get("voter")
    if not cookie:
        raise ApiError(
            401, "voter_token_required", "get a voter credential from POST /api/v1/voters"
        )
    return cookie


@post(
    "/rounds/{round_id:int}/ballots",
    summary="Cast a ballot",
    status_code=201,
    response_model=CastBallot,
    request_max_body_size=MAX_BALLOT_BODY,
)
async def cast_ballot(
    request: Request[Any, Any, Any],
    services: ServicesDep,
    round_id: FromPath[int],
    data: JSONBody[BallotIn],
    idempotency_key: Annotated[str | None, HeaderParameter(name="Idempotency-Key")] = None,
) -> Response[bytes]:
    """Cast one ballot ``{"choices": [candidate_id, ...]}`` (BRIEF §3 rules).

    Errors: 400 malformed / too_many_choices / too_few_choices / duplicate_choice /
    unknown_candidate; 401 voter_token_required / voter_token_invalid; 404 round_not_found;
    409 already_voted (with ballot_id) / round_not_open; 413 payload_too_large;
    422 idempotency_key_reused; 429 rate_limited (Retry-After); 503 unavailable (Retry-After).
    """
    box = services.ballot_box
    key = check_idempotency_key(idempotency_key)
    try:
        rules = await box.rules(round_id)
        rules.check(data.choices)
        try:
            voter = services.signers.load_voter(
                _voter_token(request), services.settings.voter_token_ttl
            )
            voter.check_round(round_id, rules.identity_mode)
        except TokenInvalid as exc:
            raise ApiError(401, "voter_token_invalid", str(exc)) from None
        body = await box.cast(
            round_id,
            voter.voter_hash,
            data.choices,
            client_prefix(request, services.settings),
            key,
        )
    except RedisError:
        raise unavailable("the vote store is unavailable; try again shortly") from None
    return _json_response(body, 201)


def results_visible(row: dict[str, Any]) -> bool:
    """Results are public when the round's visibility is ``live`` or it is closed."""
    return row["results_visibility"] == "live" or row["status"] == "closed"


async def round_results(services: Services, row: dict[str, Any]) -> dict[str, Any]:
    """The results document: final (from the tally counted in Postgres at close) when the round
    is final, else live from Redis."""
    round_id = row["id"]
    async with services.engine.connect() as conn:
        cands = await list_candidates(conn, round_id)
    if row["final_at"] is not None and row["final_tally"]:
        ft = row["final_tally"]
        tally = {int(k): int(v) for k, v in ft["tally"].items()}
        return build_results(row, cands, tally, int(ft["ballots"]), final=True)
    if row["status"] == "draft":
        tally, total = {}, 0
    else:
        tally, total = await live.tally(
            services.redis, RoundKeys(services.settings.redis_prefix, round_id)
        )
    return build_results(row, cands, tally, total, final=False)


@get("/rounds/{round_id:int}/results", summary="Results of a round", response_model=ResultsOut)
async def public_results(services: ServicesDep, round_id: FromPath[int]) -> dict[str, Any]:
    """Ranked tally, winners and tie; 403 ``results_hidden`` while not visible."""
    row = await _public_round(services, round_id)
    if not results_visible(row):
        raise ApiError(403, "results_hidden", "results are published after the round closes")
    try:
        return await round_results(services, row)
    except RedisError:
        raise unavailable("live results are unavailable; try again shortly") from None


@get("/receipts/{receipt:str}", summary="Check a ballot receipt")
async def check_receipt(services: ServicesDep, receipt: FromPath[str]) -> ReceiptOut:
    """Verify a receipt's signature and say whether its ballot is recorded; 400
    ``receipt_invalid`` when forged or malformed."""
    try:
        payload = services.signers.load_receipt(receipt)
    except TokenInvalid:
        raise ApiError(400, "receipt_invalid", "this receipt is not valid") from None
    b = tables.ballots
    async with services.engine.connect() as conn:
        found = await conn.scalar(select(b.c.ballot_id).where(b.c.ballot_id == payload["b"]))
    status = "recorded" if found is not None else "unknown"
    if found is None and await _in_stream(services, int(payload["r"]), str(payload["b"])):
        status = "pending"
    return ReceiptOut(
        round_id=int(payload["r"]),
        ballot_id=str(payload["b"]),
        choices=list(payload["c"]),
        status=status,
    )


async def _in_stream(services: Services, round_id: int, ballot_id: str) -> bool:
    """Whether ``ballot_id`` is among the round's not yet persisted stream entries."""
    stream = RoundKeys(services.settings.redis_prefix, round_id).stream
    start = "-"
    while True:
        entries: Any = await services.redis.xrange(stream, min=start, count=1000)
        if any(fields.get("b") == ballot_id for _, fields in entries):
            return True
        if len(entries) < 1000:
            return False
        start = "(" + entries[-1][0]


ROUTES = [
    list_rounds,
    round_detail,
    candidate_detail,
    candidate_photo,
    *VOTER_ROUTES,
    cast_ballot,
    public_results,
    check_receipt,
]
