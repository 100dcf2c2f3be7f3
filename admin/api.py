"""Admin API v1 under ``/admin/api/v1`` (BRIEF §5): login, rounds, shortlist import, status
changes, progress, reconciliation and results exports; one-time voting codes are in
:mod:`admin.codes`, the committee report in :mod:`admin.report`, candidate photos in
:mod:`admin.photos`. Every change writes an audit event."""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
from litestar import Litestar, Request, Response, get, patch, post, put
from litestar.di import Provide
from litestar.exceptions import HTTPException
from litestar.handlers import HTTPRouteHandler
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import (
    OpenAPIFormat,
    OpenAPIMediaType,
    OpenAPIResponse,
    OpenAPIType,
    Operation,
    Schema,
)
from litestar.params import FromPath, JSONBody, QueryParameter
from redis.exceptions import RedisError

from admin import sessions
from admin.auth import (
    AdminDep,
    LoginDesk,
    authenticated,
    current_admin,
    session_cookie,
    writer,
)
from admin.codes import ROUTES as CODE_ROUTES
from admin.device import ROUTES as DEVICE_ROUTES
from admin.export import results_csv, results_xlsx
from admin.photos import ROUTES as PHOTO_ROUTES
from admin.publication import ROUTES as PUBLICATION_ROUTES
from admin.quarantine import ROUTES as QUARANTINE_ROUTES
from admin.report import ROUTES as REPORT_ROUTES
from voting.core.errors import Conflict, Invalid, unavailable
from voting.core.rounds import Action, IdentityMode, Profile, Round, RoundRecord, TieBreak
from voting.core.shortlist import ShortlistError, check_candidate, parse_shortlist
from voting.core.text import LINE_PATTERN, TEXT_PATTERN, USERNAME_PATTERN, nfc
from voting.http.answers import answers
from voting.http.client_ip import client_prefix
from voting.live import state as live
from voting.live.keys import RoundKeys
from voting.record import queries
from voting.record.audit import audit
from voting.services import candidates
from voting.services.closing import CloseState, close_state
from voting.services.container import ServicesDep
from voting.services.results import round_results

MAX_CSV_BYTES = 5_000_000
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
SLUG = r"^[a-z0-9]+(?:-[a-z0-9]+)*$"
Title = Annotated[str, msgspec.Meta(pattern=LINE_PATTERN, min_length=1, max_length=300)]
Description = Annotated[str, msgspec.Meta(pattern=TEXT_PATTERN, max_length=20_000)]
FieldLabel = Annotated[str, msgspec.Meta(pattern=LINE_PATTERN, min_length=1, max_length=200)]
#: Quarantine thresholds by name (voting.core.quarantine.THRESHOLDS); ``{}``: the defaults
Detection = Annotated[dict[str, int | float], msgspec.Meta(max_length=32)]
FieldMinimum = Annotated[int, msgspec.Meta(ge=1, le=200)]


class LoginIn(msgspec.Struct, forbid_unknown_fields=True):
    """``POST /login`` body."""

    username: Annotated[str, msgspec.Meta(pattern=USERNAME_PATTERN, min_length=1, max_length=64)]
    password: Annotated[str, msgspec.Meta(min_length=1, max_length=1024)]


class LoginOut(msgspec.Struct):
    """A new session: ``token`` (also set as the HttpOnly cookie ``admin_session``), the CSRF
    token that changes made with the cookie send as ``X-CSRF-Token``, and the expiry."""

    token: str
    csrf_token: str
    username: str
    role: str
    expires_at: datetime


class SessionOut(msgspec.Struct):
    """The caller's session: who, with which role now, its CSRF token and expiry."""

    username: str
    role: str
    csrf_token: str
    expires_at: datetime


class RoundIn(msgspec.Struct, forbid_unknown_fields=True):
    """``POST /rounds`` body: a new round in draft (defaults of BRIEF §3)."""

    slug: Annotated[str, msgspec.Meta(pattern=SLUG, min_length=1, max_length=80)]
    title: Title
    description: Description = ""
    min_choices: Annotated[int, msgspec.Meta(ge=1, le=200)] = 1
    max_choices: Annotated[int, msgspec.Meta(ge=1, le=200)] = 16
    winners: Annotated[int, msgspec.Meta(ge=1, le=200)] = 16
    opens_at: Annotated[datetime, msgspec.Meta(tz=True)] | None = None
    closes_at: Annotated[datetime, msgspec.Meta(tz=True)] | None = None
    results_visibility: Literal["live", "after_close"] = "after_close"
    fields: list[FieldLabel] | None = None
    identity_mode: IdentityMode = "device"
    #: quarantine thresholds that differ from the defaults (see voting.core.quarantine)
    detection: Detection | None = None
    #: who settles a tie across the cut-off (see voting.core.seats), fixed at opening
    tie_break: TieBreak = "committee"
    #: at least this many winners per field (at most ``winners``); null: no field minimum
    field_minimum: FieldMinimum | None = None


class RoundPatch(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """``PATCH /rounds/{id}`` body: the settings to change (draft only); ``null`` clears a
    date or the field minimum."""

    title: Title | msgspec.UnsetType = msgspec.UNSET
    description: Description | msgspec.UnsetType = msgspec.UNSET
    min_choices: Annotated[int, msgspec.Meta(ge=1, le=200)] | msgspec.UnsetType = msgspec.UNSET
    max_choices: Annotated[int, msgspec.Meta(ge=1, le=200)] | msgspec.UnsetType = msgspec.UNSET
    winners: Annotated[int, msgspec.Meta(ge=1, le=200)] | msgspec.UnsetType = msgspec.UNSET
    opens_at: Annotated[datetime, msgspec.Meta(tz=True)] | None | msgspec.UnsetType = msgspec.UNSET
    closes_at: Annotated[datetime, msgspec.Meta(tz=True)] | None | msgspec.UnsetType = msgspec.UNSET
    results_visibility: Literal["live", "after_close"] | msgspec.UnsetType = msgspec.UNSET
    fields: list[FieldLabel] | msgspec.UnsetType = msgspec.UNSET
    identity_mode: IdentityMode | msgspec.UnsetType = msgspec.UNSET
    detection: Detection | msgspec.UnsetType = msgspec.UNSET
    tie_break: TieBreak | msgspec.UnsetType = msgspec.UNSET
    field_minimum: FieldMinimum | None | msgspec.UnsetType = msgspec.UNSET


class ProgressOut(msgspec.Struct):
    """Live progress: ballots accepted (Redis), persisted (Postgres) and the backlog
    (accepted, waiting in the stream for the persister)."""

    round_id: int
    status: str
    accepted: int
    persisted: int
    backlog: int


class ReconcileOut(msgspec.Struct):
    """``consistent``: Redis equals Postgres + the backlog; ``ok``: and the backlog is
    empty. ``differences``: per candidate and in ballots, ``{redis, postgres, backlog}``."""

    round_id: int
    consistent: bool
    ok: bool
    persisted: int
    backlog: int
    differences: dict[str, Any]


#: A round as admins see it: every recorded setting and time (the final tally is in the results;
#: ``draw_seed`` is null until the round is closed, for admins too).
AdminRoundOut = RoundRecord


def create_values(data: RoundIn) -> dict[str, Any]:
    """The settings of a new round from its body (texts in NFC, unset options left out)."""
    return {k: nfc(v) for k, v in msgspec.structs.asdict(data).items() if v is not None}


def patch_values(data: RoundPatch) -> dict[str, Any]:
    """The settings a patch changes (texts in NFC; ``None`` clears a date)."""
    return {
        f: nfc(getattr(data, f))
        for f in data.__struct_fields__
        if getattr(data, f) is not msgspec.UNSET
    }


def admin_round(rnd: Round) -> AdminRoundOut:
    """The admin view of a round (the draw's seed only once the round is closed: nobody may
    know it while ballots can still be cast)."""
    out = RoundRecord(**{f: getattr(rnd, f) for f in RoundRecord.__struct_fields__})
    return out if rnd.status == "closed" else msgspec.structs.replace(out, draw_seed=None)


@post("/login", summary="Log in", status_code=200, responses=answers(401, 429))
async def login(
    request: Request[Any, Any, Any], services: ServicesDep, data: JSONBody[LoginIn]
) -> Response[LoginOut]:
    """Check the password; start a session: a bearer token, the HttpOnly session cookie and
    the CSRF token. 401 ``invalid_credentials`` on a wrong username or password (the same for
    an unknown or disabled user); 429 ``rate_limited`` (``Retry-After``) past the login limits
    per network and per username; 503 ``busy`` when too many passwords are being checked."""
    desk: LoginDesk = request.app.state.login_desk
    network = client_prefix(request, services.settings)
    who = await desk.login(data.username, data.password, network)
    cookie = session_cookie(
        who.token, services.settings.tokens.admin_ttl, services.settings.server.secure
    )
    out = LoginOut(who.token, who.csrf_token, who.username, who.role, who.expires_at)
    return Response(out, cookies=[cookie])


@post("/logout", summary="End this session", status_code=204)
async def logout(services: ServicesDep, admin: AdminDep) -> Response[None]:
    """End the caller's session (its token and cookie stop working at once) and clear the
    cookie. With the cookie, send ``X-CSRF-Token`` too."""
    await sessions.end(services.engine, admin.session_id)
    async with services.engine.begin() as conn:
        await audit(conn, admin.username, "logout", None)
    return Response(
        None, status_code=204, cookies=[session_cookie("", 0, services.settings.server.secure)]
    )


@get("/session", summary="The caller's session")
async def current_session(admin: AdminDep) -> SessionOut:
    """Who is logged in, the role they have now, the CSRF token and when the session ends."""
    return SessionOut(admin.username, admin.role, admin.csrf_token, admin.expires_at)


@get("/rounds", summary="All rounds, drafts included")
async def admin_list_rounds(services: ServicesDep) -> list[AdminRoundOut]:
    """Every round, newest first."""
    async with services.engine.connect() as conn:
        return [admin_round(r) for r in await queries.list_rounds(conn, published_only=False)]


@post(
    "/rounds",
    summary="Create a round in draft",
    status_code=201,
    guards=[writer],
    responses=answers(409),
)
async def create_round(
    services: ServicesDep, admin: AdminDep, data: JSONBody[RoundIn]
) -> AdminRoundOut:
    """409 ``slug_taken``; 400 ``invalid_round`` (min > max, closes before opens, a field
    minimum above the winners)."""
    return admin_round(await services.rounds.create(admin.username, create_values(data)))


@patch(
    "/rounds/{round_id:int}",
    summary="Change a draft round's settings",
    guards=[writer],
    responses=answers(409),
)
async def update_round(
    services: ServicesDep, admin: AdminDep, round_id: FromPath[int], data: JSONBody[RoundPatch]
) -> AdminRoundOut:
    """409 ``round_not_draft`` once opened (the rules, the tie-break and the field minimum
    included, are frozen then); 400 ``invalid_round`` when a rule would break."""
    values = patch_values(data)
    if not values:
        raise Invalid("malformed", "nothing to change")
    return admin_round(await services.rounds.update(admin.username, round_id, values))


@get("/rounds/{round_id:int}", summary="A round with its candidates")
async def admin_round_detail(services: ServicesDep, round_id: FromPath[int]) -> dict[str, Any]:
    """The round's settings and every candidate with ``achievements`` and ``has_photo``."""
    async with services.engine.connect() as conn:
        rnd = await queries.get_round(conn, round_id)
        cands = await queries.list_candidates(conn, round_id)
    out = msgspec.to_builtins(admin_round(rnd))
    out["candidates"] = msgspec.to_builtins(cands)
    return out


@post(
    "/rounds/{round_id:int}/candidates/import",
    summary="Import the shortlist CSV (only in draft)",
    status_code=200,
    request_max_body_size=MAX_CSV_BYTES + 64_000,
    guards=[writer],
    responses=answers(409, 413, 415),
)
async def import_candidates(
    request: Request[Any, Any, Any], services: ServicesDep, admin: AdminDep, round_id: FromPath[int]
) -> dict[str, Any]:
    """Body: ``text/csv``, or ``multipart/form-data`` with a ``file`` part, in the format of
    ``shared/data/shortlist-sample.csv``. The whole file is rejected with 400
    ``invalid_shortlist`` and ``errors[{row, column, message}]`` if any row is bad; 409
    ``round_not_draft`` once the round has opened; 415 for other content types."""
    async with services.engine.connect() as conn:
        rnd = await queries.get_round(conn, round_id)
    if rnd.status != "draft":
        raise Conflict("round_not_draft", "candidates can only be imported while in draft")
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype == "multipart/form-data":
        form = await request.form()
        upload = form.get("file")
        if upload is None or not hasattr(upload, "read"):
            raise Invalid("malformed", "multipart body needs a 'file' part")
        data: bytes = await upload.read()
    elif ctype in ("text/csv", "text/plain", "application/csv"):
        data = await request.body()
    else:
        raise HTTPException(status_code=415, detail="send text/csv or multipart/form-data")
    try:
        rows = parse_shortlist(data, rnd.fields, max_bytes=MAX_CSV_BYTES)
    except ShortlistError as exc:
        raise Invalid(
            "invalid_shortlist",
            f"the file was rejected: {len(exc.errors)} error(s)",
            details={
                "errors": [
                    {"row": e.row, "column": e.column, "message": e.message} for e in exc.errors
                ]
            },
        ) from None
    cands = await services.rounds.import_candidates(admin.username, round_id, rows)
    return {
        "round_id": round_id,
        "imported": len(cands),
        "candidates": [{"id": c.id, "code": c.code} for c in cands],
    }


class CandidateIn(Profile, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """``PUT /rounds/{id}/candidates/{candidate_id}`` body: the candidate's whole profile (the
    columns of the sample CSV), checked by the rules of a shortlist row."""

    achievements: str = ""


@put(
    "/rounds/{round_id:int}/candidates/{candidate_id:int}",
    summary="Change one candidate's profile (only in draft)",
    guards=[writer],
    responses=answers(409),
)
async def edit_candidate(
    services: ServicesDep,
    admin: AdminDep,
    round_id: FromPath[int],
    candidate_id: FromPath[int],
    data: JSONBody[CandidateIn],
) -> dict[str, Any]:
    """400 ``invalid_candidate`` with ``errors[{column, message}]``; 404
    ``candidate_not_found``; 409 ``round_not_draft``, ``code_taken``."""
    async with services.engine.connect() as conn:
        rnd = await queries.get_round(conn, round_id)
    cells = {k: str(v) for k, v in msgspec.structs.asdict(data).items()}
    try:
        row = check_candidate(cells, rnd.fields)
    except ShortlistError as exc:
        raise Invalid(
            "invalid_candidate",
            f"the profile was rejected: {len(exc.errors)} error(s)",
            details={"errors": [{"column": e.column, "message": e.message} for e in exc.errors]},
        ) from None
    cand = await candidates.edit_candidate(
        services.engine, admin.username, round_id, candidate_id, row
    )
    services.forget(round_id)
    return msgspec.to_builtins(cand)


def _transition_route(action: Action, summary: str, doc: str) -> HTTPRouteHandler:
    """The ``POST /rounds/{round_id}/<action>`` route: apply ``action`` as the caller."""

    async def transition(
        services: ServicesDep, admin: AdminDep, round_id: FromPath[int]
    ) -> AdminRoundOut:
        try:
            rnd = await services.rounds.transition(admin.username, round_id, action)
        finally:  # a change that failed half-way may have changed the record too
            services.forget(round_id)
        return admin_round(rnd)

    transition.__doc__ = (
        f"{doc} 503 ``unavailable`` when Redis does not confirm: the message says whether the "
        "change is recorded and will be finished (open, resume: repeat it, or the schedule "
        "does) or was undone (pause, close)."
    )
    return post(
        f"/rounds/{{round_id:int}}/{action}",
        summary=summary,
        status_code=200,
        guards=[writer],
        operation_id=f"{action}_round",
        name=f"{action}_round",
        responses=answers(409),
    )(transition)


open_round = _transition_route(
    "open",
    "Open a draft round",
    "Freezes the rules: stores ``rules_hash`` (and, for the ``draw`` tie-break, the seed's "
    "``draw_commitment``; the seed stays hidden until the close). 409 ``invalid_transition`` "
    "unless in draft; ``no_candidates``; ``rules_infeasible`` when the field minimum needs "
    "more seats than ``winners``.",
)
pause_round = _transition_route(
    "pause", "Pause an open round", "409 ``invalid_transition`` unless open."
)
resume_round = _transition_route(
    "resume", "Resume a paused round", "409 ``invalid_transition`` unless paused."
)
#: How long ``POST .../close?wait=true`` waits for the finalisation, seconds.
CLOSE_WAIT = 300.0


@post(
    "/rounds/{round_id:int}/close",
    summary="Close a round; its count is finished in the background",
    status_code=202,
    guards=[writer],
    operation_id="close_round",
    name="close_round",
    response_model=CloseState,
    responses={
        **answers(409),
        200: ResponseSpec(
            data_container=AdminRoundOut,
            description="With `?wait=true`: the round, once its count is over.",
        ),
    },
)
async def close_round(
    services: ServicesDep,
    admin: AdminDep,
    round_id: FromPath[int],
    wait: Annotated[bool, QueryParameter(name="wait")] = False,
) -> Response[Any]:
    """Stops acceptance atomically (a ballot is in before the close or refused), records the
    close and answers ``202`` with where the close is (as ``GET .../close``: ``state``
    ``closing``, ``draining``, ``counting``, ``final`` or ``mismatch``); the process then
    drains every ballot into Postgres, counts the final tally there and marks it final if it
    equals Redis's, in the background (``voting.services.closing``). Closing a closed round
    again is no change: 202 with the current state (a closed, not final round's finalisation
    is retried, e.g. after a mismatch). ``?wait=true``: answers ``200`` with the round (as
    the other status changes) once the finalisation is over (at most 5 minutes), ``final_at``
    null on a mismatch (see ``GET .../reconcile``). 409 ``invalid_transition`` for a draft.
    503 ``unavailable`` when Redis does not confirm: the close was undone."""
    async with services.engine.connect() as conn:
        rnd = await queries.get_round(conn, round_id)
    if rnd.status != "closed":
        try:
            rnd = await services.rounds.transition(
                admin.username, round_id, "close", finalise=False
            )
        finally:  # a change that failed half-way may have changed the record too
            services.forget(round_id)
    if not rnd.final:
        services.finaliser.start(admin.username, round_id)
    if wait:
        await services.finaliser.wait(round_id, CLOSE_WAIT)
        services.forget(round_id)
        async with services.engine.connect() as conn:
            rnd = await queries.get_round(conn, round_id)
        return Response(msgspec.to_builtins(admin_round(rnd)), status_code=200)
    return Response(msgspec.to_builtins(await _close_state(services, round_id)), status_code=202)


async def _close_state(services: Any, round_id: int) -> CloseState:
    try:
        return await close_state(
            services.hot, services.settings.redis.prefix, round_id, services.engine
        )
    except RedisError:
        raise unavailable("Redis is not answering: the close's progress is unavailable") from None


@get("/rounds/{round_id:int}/close", summary="Where the close of a round is")
async def close_progress(services: ServicesDep, round_id: FromPath[int]) -> CloseState:
    """``state``: ``open`` (not closed: draft, open or paused, see ``status``), ``closing``
    (closed, the count not started yet: a process finishes it within seconds), ``draining``
    (``backlog`` ballots still to move into Postgres), ``counting`` (counting and comparing
    in Postgres), ``final`` or ``mismatch`` (Redis and Postgres differ: ``differences``;
    nothing is patched, see the runbook). ``backlog`` null once the live state is removed.
    503 ``unavailable`` when Redis does not answer."""
    return await _close_state(services, round_id)


@get("/rounds/{round_id:int}/progress", summary="Ballots accepted, persisted and waiting")
async def progress(services: ServicesDep, round_id: FromPath[int]) -> ProgressOut:
    """Ballots accepted (Redis), persisted (Postgres) and in the backlog; a final round's
    from Postgres when its live state is gone (removed after ``VOTING_LIVE_STATE_GRACE``) or
    Redis does not answer; 503 ``unavailable`` when Redis does not answer within
    ``VOTING_REDIS_HOT_TIMEOUT`` seconds for a round not final."""
    async with services.engine.connect() as conn:
        rnd = await queries.get_round(conn, round_id)
        persisted = await queries.persisted_count(conn, round_id)
    keys = RoundKeys(services.settings.redis.prefix, round_id)
    try:
        accepted, backlog = await live.counts(services.hot, keys)
        if rnd.final and not accepted and not backlog:  # live state removed after its grace
            accepted = persisted
    except RedisError:
        if not rnd.final:
            raise unavailable("Redis is not answering: live progress is unavailable") from None
        accepted, backlog = persisted, 0  # a final round's count is the record's
    return ProgressOut(
        round_id=round_id,
        status=rnd.status,
        accepted=accepted,
        persisted=persisted,
        backlog=backlog,
    )


@get("/rounds/{round_id:int}/reconcile", summary="Compare Redis and Postgres tallies")
async def reconcile(services: ServicesDep, round_id: FromPath[int]) -> ReconcileOut:
    """Redis against Postgres + the backlog, read at one instant; 503 ``unavailable`` when
    Redis does not answer (within ``VOTING_REDIS_TIMEOUT`` seconds)."""
    async with services.engine.connect() as conn:
        await queries.get_round(conn, round_id)
    try:
        rec = await services.rounds.reconcile(round_id)
    except RedisError:
        raise unavailable("Redis is not answering: cannot reconcile now") from None
    return ReconcileOut(
        round_id=round_id,
        consistent=rec.consistent,
        ok=rec.ok,
        persisted=rec.postgres_ballots,
        backlog=rec.backlog_ballots,
        differences=rec.differences(),
    )


@dataclass
class ResultsOperation(Operation):
    """The OpenAPI operation of the admin results: JSON, or the same table as CSV or XLSX."""

    def __post_init__(self) -> None:
        ok = self.responses.get("200") if self.responses else None
        if isinstance(ok, OpenAPIResponse):
            binary = Schema(type=OpenAPIType.STRING, format=OpenAPIFormat.BINARY)
            ok.content = {
                **(ok.content or {}),
                "application/json": OpenAPIMediaType(schema=Schema(type=OpenAPIType.OBJECT)),
                "text/csv": OpenAPIMediaType(schema=Schema(type=OpenAPIType.STRING)),
                XLSX: OpenAPIMediaType(schema=binary),
            }


@get(
    "/rounds/{round_id:int}/results",
    summary="Results (always visible to admins)",
    operation_class=ResultsOperation,
)
async def admin_results(
    services: ServicesDep,
    round_id: FromPath[int],
    format: Annotated[Literal["json", "csv", "xlsx"], QueryParameter(name="format")] = "json",
) -> Response[Any]:
    """``format``: json (default), csv (UTF-8 with BOM) or xlsx; 503 ``unavailable`` when
    the live tally is needed and Redis does not answer."""
    async with services.engine.connect() as conn:
        rnd = await queries.get_round(conn, round_id)
    try:
        results = await round_results(
            services.engine, services.hot, services.settings.redis.prefix, rnd
        )
    except RedisError:
        raise unavailable("Redis is not answering: live results are unavailable") from None
    document = msgspec.to_builtins(results)
    name = re.sub(r"[^a-z0-9-]", "", rnd.slug) or f"round-{round_id}"
    if format == "csv":
        return Response(
            results_csv(document),
            media_type="text/csv",  # Litestar adds "; charset=utf-8" to text types
            headers={"Content-Disposition": f'attachment; filename="{name}-results.csv"'},
        )
    if format == "xlsx":
        return Response(
            results_xlsx(document),
            media_type=XLSX,
            headers={"Content-Disposition": f'attachment; filename="{name}-results.xlsx"'},
        )
    return Response(document)


ROUTES = [
    *CODE_ROUTES,
    *DEVICE_ROUTES,
    *PUBLICATION_ROUTES,
    *QUARANTINE_ROUTES,
    *REPORT_ROUTES,
    *PHOTO_ROUTES,
    logout,
    current_session,
    admin_list_rounds,
    create_round,
    update_round,
    admin_round_detail,
    import_candidates,
    edit_candidate,
    open_round,
    pause_round,
    resume_round,
    close_round,
    close_progress,
    progress,
    reconcile,
    admin_results,
]


@contextlib.asynccontextmanager
async def admin_lifespan(app: Litestar) -> AsyncIterator[None]:
    """Lifespan of the admin part (after the services'): the process's :class:`LoginDesk`."""
    services = app.state.services
    desk = LoginDesk(services.redis, services.engine, services.settings, services.signers)
    app.state.login_desk = desk
    try:
        yield
    finally:
        desk.close()


ADMIN_DEPENDENCIES = {"admin": Provide(current_admin, sync_to_thread=False)}
#: Guards of the admin router (login is outside it); changes also need :func:`writer`.
ADMIN_GUARDS = [authenticated]
