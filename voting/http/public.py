"""Public API v1 (BRIEF §5) under ``/api/v1``: rounds, candidates, ballots, results,
receipts; the voter credential routes are in :mod:`voting.http.voters`.

Only :func:`cast_ballot` is on the hot path: it verifies the voter credential (a signature,
no I/O) first, then checks the choices against the round's cached rules and runs the cast
script in Redis (:class:`voting.live.ballot_box.BallotBox`). Reads of rounds and candidates
come from Postgres through a short in-process cache.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar

import msgspec
from litestar import Request, Response, get
from litestar.datastructures import CacheControlHeader
from litestar.params import FromPath, HeaderParameter, QueryParameter
from redis.exceptions import RedisError

from voting.core.errors import (
    Forbidden,
    unavailable,
)
from voting.core.photos import DEFAULT_SIZE, MEDIA_TYPE, SIZES, SizeName
from voting.core.quarantine import DetectionOut, public_rules, thresholds
from voting.core.results import Results
from voting.core.rounds import Candidate, Profile, Round
from voting.core.rules import frozen_rules
from voting.http.answers import answers
from voting.http.ballots import cast_ballot
from voting.http.client_ip import client_prefix
from voting.http.photos import (
    IMMUTABLE,
    SHORT,
    BinaryOperation,
    PhotoOperation,
    etag_matches,
    photo_response,
)
from voting.http.voters import ROUTES as VOTER_ROUTES
from voting.record import queries
from voting.services.audit_package import build_audit_package, round_commitments
from voting.services.container import Services, ServicesDep
from voting.services.receipts import ReceiptOut
from voting.services.results import round_results

READ_CACHE_TTL = 5.0  # seconds a public document is served from memory
AUDIT_CACHE_TTL = 60.0  # seconds an audit package is served from memory
#: ``Cache-Control`` of the commitments: a new epoch is sealed every minute at most
COMMITMENTS_CACHE = "public, max-age=10"
#: ``Cache-Control`` of an audit package: official results do not change
AUDIT_CACHE = "public, max-age=60"

_json = msgspec.json.Encoder()
SIZE_DOC = ", ".join(f"{s.name}: {s.width}×{s.height} px" for s in SIZES.values())
V_DOC = "the photo's version, as in photo_url: its answer may be cached for a year"


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


class CandidateOut(Profile, frozen=True, kw_only=True):
    """A candidate; ``achievements`` only in the single-candidate view."""

    id: int
    photo_url: str | None
    achievements: str | msgspec.UnsetType = msgspec.UNSET


class RoundDetailOut(RoundOut):
    """A round with its ``description``, candidates ordered by code, and the rules fixed at
    opening (see :mod:`voting.core.rules` and :mod:`voting.core.seats`): ``tie_break``
    (``committee``, ``draw`` or ``field_balance``), ``field_minimum`` (null: off),
    ``rules_hash`` (SHA-256 of the frozen rules, the round's first commitment; the document
    is ``GET /rounds/{id}/rules``), ``draw_commitment`` (SHA-256 of the draw's seed, ``draw``
    rounds) and ``draw_seed`` (null until the round is closed)."""

    description: str = ""
    candidates: list[CandidateOut] = []
    #: the quarantine rules fixed with the round, with its thresholds (voting.core.quarantine)
    detection: DetectionOut | None = None
    tie_break: str = "committee"
    field_minimum: int | None = None
    rules_hash: str | None = None
    draw_commitment: str | None = None
    draw_seed: str | None = None


class RulesOut(msgspec.Struct):
    """The frozen rules of a round (:func:`voting.core.rules.frozen_rules`) and the hash
    stored when it opened: ``canonical_hash(rules)`` equals ``rules_hash`` (null for a round
    opened before rules were hashed)."""

    round_id: int
    rules_hash: str | None
    rules: dict[str, Any]


class CommitmentOut(msgspec.Struct):
    """One commitment (see :mod:`voting.core.merkle`): ``seq`` 0 is the rules frozen at
    opening (``kind`` ``rules``, ``count`` 0, both roots the empty root, ``rules_hash``), then
    one per sealed epoch (``kind`` ``epoch``, ``rules_hash`` null). ``closed_at``: ISO 8601
    UTC with microseconds; ``count``: ballots in the epoch; ``trackers_root`` /
    ``choices_root``: RFC 6962 Merkle roots (hex) over the epoch's trackers sorted and its
    choice lists (ids ascending joined by ``,``) sorted; ``prev``: the hash of the commitment
    before (64 zeros for seq 0); ``hash``: SHA-256 of the canonical JSON of every field but
    itself."""

    round_id: int
    seq: int
    kind: str
    closed_at: str
    count: int
    trackers_root: str
    choices_root: str
    rules_hash: str | None
    prev: str
    hash: str


class CommitmentsOut(msgspec.Struct):
    """A round's commitments by seq: keep a copy during the vote, and ``voting verify
    PACKAGE --commitments COPY`` (or the package's ``verify.py``) proves none changed."""

    round_id: int
    commitments: list[CommitmentOut]


@dataclass
class ZipOperation(BinaryOperation):
    """The OpenAPI operation of the audit package: 200 with a ZIP, 304 without a body."""

    media_type: ClassVar[str] = "application/zip"
    header: ClassVar[tuple[str, str]] = ("Content-Disposition", "attachment")


def round_out(rnd: Round) -> RoundOut:
    """The public view of a round."""
    return RoundOut(
        id=rnd.id,
        slug=rnd.slug,
        title=rnd.title,
        status=rnd.status,
        opens_at=None if rnd.opens_at is None else rnd.opens_at.isoformat(),
        closes_at=None if rnd.closes_at is None else rnd.closes_at.isoformat(),
        min_choices=rnd.min_choices,
        max_choices=rnd.max_choices,
        winners=rnd.winners,
        results_visibility=rnd.results_visibility,
        identity_mode=rnd.identity_mode,
    )


def candidate_out(c: Candidate, *, achievements: bool) -> CandidateOut:
    """The public view of a candidate: ``photo_url`` names the current version of its photo
    (default size; add ``&size=card`` for the card's), null when it has none."""
    photo = (
        f"/api/v1/rounds/{c.round_id}/candidates/{c.id}/photo?v={c.photo_version}"
        if c.photo_version
        else None
    )
    profile = {f: getattr(c, f) for f in Profile.__struct_fields__}
    return CandidateOut(
        **profile,
        id=c.id,
        photo_url=photo,
        achievements=c.achievements if achievements else msgspec.UNSET,
    )


async def _public_round(services: Services, round_id: int) -> Round:
    async with services.engine.connect() as conn:
        return await queries.get_public_round(conn, round_id)


def _json_response(body: bytes, status: int = 200) -> Response[bytes]:
    return Response(body, status_code=status, media_type="application/json")


def _cached(services: Services, key: str) -> bytes | None:
    hit = services.cache.get(key)
    return hit[1] if hit is not None and hit[0] > time.monotonic() else None


def _cache(services: Services, key: str, body: bytes) -> bytes:
    services.cache[key] = (time.monotonic() + READ_CACHE_TTL, body)
    return body


@get("/rounds", summary="List the rounds that are not in draft", response_model=list[RoundOut])
async def list_rounds(services: ServicesDep) -> Response[bytes]:
    """Every non-draft round, newest first, served from a 5-second cache."""
    body = _cached(services, "rounds")
    if body is None:
        async with services.engine.connect() as conn:
            rounds = await queries.list_rounds(conn, published_only=True)
        body = _cache(services, "rounds", _json.encode([round_out(r) for r in rounds]))
    return _json_response(body)


@get("/rounds/{round_id:int}", summary="A round with its candidates", response_model=RoundDetailOut)
async def round_detail(services: ServicesDep, round_id: FromPath[int]) -> Response[bytes]:
    """The round and its candidates (``achievements`` left out), served from a 5-second cache."""
    key = f"round:{round_id}"
    body = _cached(services, key)
    if body is None:
        async with services.engine.connect() as conn:
            rnd = await queries.get_public_round(conn, round_id)
            cands = await queries.list_candidates(conn, round_id)
        detail = RoundDetailOut(
            **msgspec.structs.asdict(round_out(rnd)),
            description=rnd.description,
            candidates=[candidate_out(c, achievements=False) for c in cands],
            detection=public_rules(thresholds(rnd.detection, rnd.identity_mode)),
            tie_break=rnd.tie_break,
            field_minimum=rnd.field_minimum,
            rules_hash=rnd.rules_hash,
            draw_commitment=rnd.draw_commitment,
            draw_seed=rnd.draw_seed if rnd.status == "closed" else None,  # secret until then
        )
        body = _cache(services, key, _json.encode(detail))
    return _json_response(body)


@get(
    "/rounds/{round_id:int}/rules",
    summary="The rules frozen when the round opened",
    response_model=RulesOut,
)
async def round_rules(services: ServicesDep, round_id: FromPath[int]) -> Response[bytes]:
    """The document whose SHA-256 is ``rules_hash`` (see :mod:`voting.core.rules`), rebuilt
    from the record (nothing in it can change after opening), served from a 5-second cache;
    404 ``round_not_found`` for drafts."""
    key = f"rules:{round_id}"
    body = _cached(services, key)
    if body is None:
        async with services.engine.connect() as conn:
            rnd = await queries.get_public_round(conn, round_id)
            cands = await queries.list_candidates(conn, round_id)
        out = RulesOut(round_id=rnd.id, rules_hash=rnd.rules_hash, rules=frozen_rules(rnd, cands))
        body = _cache(services, key, _json.encode(out))
    return _json_response(body)


@get("/rounds/{round_id:int}/candidates/{candidate_id:int}", summary="One candidate")
async def candidate_detail(
    services: ServicesDep, round_id: FromPath[int], candidate_id: FromPath[int]
) -> CandidateOut:
    """One candidate of a public round, with ``achievements``; 404 ``candidate_not_found``."""
    async with services.engine.connect() as conn:
        await queries.get_public_round(conn, round_id)
        return candidate_out(
            await queries.get_candidate(conn, round_id, candidate_id), achievements=True
        )


@get(
    "/rounds/{round_id:int}/candidates/{candidate_id:int}/photo",
    summary="A candidate's photo",
    media_type=MEDIA_TYPE,
    operation_class=PhotoOperation,
)
async def candidate_photo(
    services: ServicesDep,
    round_id: FromPath[int],
    candidate_id: FromPath[int],
    size: Annotated[SizeName, QueryParameter(description=SIZE_DOC)] = DEFAULT_SIZE,
    v: Annotated[str | None, QueryParameter(max_length=64, description=V_DOC)] = None,
    if_none_match: Annotated[str | None, HeaderParameter(name="If-None-Match")] = None,
) -> Response[bytes]:
    """One size of the photo (WebP), as ``photo_url`` names it: with ``ETag``,
    ``Cache-Control`` (a year and ``immutable`` when ``v`` is the current version, else 5
    minutes) and 304 when ``If-None-Match`` names the ETag. 404 ``photo_not_found`` when the
    candidate has none (or is not in the round); 400 ``malformed`` for another ``size``."""
    photo = await services.photos.find(round_id, candidate_id, size, public=True)
    cache = IMMUTABLE if v == photo.version else SHORT
    return photo_response(photo, cache, if_none_match)


@get("/rounds/{round_id:int}/results", summary="Results of a round", responses=answers(403))
async def public_results(services: ServicesDep, round_id: FromPath[int]) -> Results:
    """Ranked tally, winners and tie; 403 ``results_hidden`` while not visible."""
    rnd = await _public_round(services, round_id)
    if not rnd.results_visible():
        raise Forbidden("results_hidden", "results are published after the round closes")
    try:
        return await round_results(
            services.engine, services.hot, services.settings.redis.prefix, rnd
        )
    except RedisError:
        raise unavailable("live results are unavailable; try again shortly") from None


def _etag(body: bytes) -> str:
    return f'"{hashlib.sha256(body).hexdigest()[:32]}"'


def _tagged(
    body: bytes, media_type: str, headers: dict[str, str], if_none_match: str | None
) -> Response[bytes]:
    """``body`` with its ETag and ``headers``, or 304 when ``if_none_match`` names it."""
    headers = {"ETag": _etag(body), **headers}
    if etag_matches(if_none_match, headers["ETag"]):
        return Response(b"", status_code=304, headers=headers, media_type=media_type)
    return Response(body, media_type=media_type, headers=headers)


@get(
    "/rounds/{round_id:int}/commitments",
    summary="Commitments of a round",
    response_model=CommitmentsOut,
)
async def commitments_route(
    services: ServicesDep,
    round_id: FromPath[int],
    if_none_match: Annotated[str | None, HeaderParameter(name="If-None-Match")] = None,
) -> Response[bytes]:
    """Every commitment of a published round, by seq (see :class:`CommitmentOut`), from its
    opening on: they fix the ballots of each sealed epoch without showing any count but the
    epoch's. ``Cache-Control: public, max-age=10`` and an ``ETag`` (304 on
    ``If-None-Match``); 404 ``round_not_found`` for a draft or unknown round."""
    key = f"commitments:{round_id}"
    body = _cached(services, key)
    if body is None:
        doc = await round_commitments(services.engine, round_id)
        body = _cache(services, key, _json.encode(doc))
    headers = {"Cache-Control": COMMITMENTS_CACHE}
    return _tagged(body, "application/json", headers, if_none_match)


@get(
    "/rounds/{round_id:int}/audit",
    summary="The audit package of a round",
    media_type="application/zip",
    operation_class=ZipOperation,
    responses=answers(409),
)
async def audit_route(
    services: ServicesDep,
    round_id: FromPath[int],
    if_none_match: Annotated[str | None, HeaderParameter(name="If-None-Match")] = None,
) -> Response[bytes]:
    """The audit package (ZIP; format in :mod:`voting.core.audit_package`) of a round whose
    results are official: rules and candidates, every commitment, each epoch's sorted
    trackers and sorted choice lists, the results, the quarantine, the audit log's head and
    a standalone verifier (``python3 verify.py package.zip``). The same record gives the
    same bytes (``ETag``); kept 60 s in memory. 404 ``round_not_found`` for a draft or
    unknown round; 409 ``audit_not_ready`` until the results are official."""
    key = f"audit:{round_id}"
    body = _cached(services, key)
    if body is None:
        settings = services.settings
        body = await build_audit_package(
            services.engine, services.hot, settings.redis.prefix, round_id
        )
        services.cache[key] = (time.monotonic() + AUDIT_CACHE_TTL, body)
    headers = {
        "Cache-Control": AUDIT_CACHE,
        "Content-Disposition": f'attachment; filename="round-{round_id}-audit.zip"',
    }
    return _tagged(body, "application/zip", headers, if_none_match)


@get(
    "/receipts/{receipt:str}",
    summary="Check a ballot receipt",
    responses=answers(400, 429, 503),
    cache_control=CacheControlHeader(no_store=True),
)
async def check_receipt(
    request: Request[Any, Any, Any], services: ServicesDep, receipt: FromPath[str]
) -> ReceiptOut:
    """Where the ballot of a receipt (its tracker; hyphens, spaces and case do not matter)
    is: ``recorded``, ``pending`` (accepted, being recorded), ``quarantined`` (set aside by a
    published rule, with its reason) or ``unknown``. 400 ``receipt_invalid`` when it is not a
    tracker (a typo is caught by its check symbol); 429 ``rate_limited`` past the
    per-network limit of receipt checks."""
    try:
        return await services.receipts.check(receipt, client_prefix(request, services.settings))
    except RedisError:
        raise unavailable("the vote store is unavailable; try again shortly") from None


ROUTES = [
    list_rounds,
    round_detail,
    round_rules,
    candidate_detail,
    candidate_photo,
    *VOTER_ROUTES,
    cast_ballot,
    public_results,
    commitments_route,
    audit_route,
    check_receipt,
]
