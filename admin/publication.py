"""Admin API for what follows the count (see :mod:`voting.services.publication`): recording
the standing committee's decision on a tie, and making the final results official."""

from __future__ import annotations

from datetime import date
from typing import Annotated

import msgspec
from litestar import post
from litestar.params import FromPath, JSONBody

from admin.auth import AdminDep, writer
from voting.core.results import Results
from voting.core.text import LINE_PATTERN, TEXT_PATTERN, nfc
from voting.http.answers import answers
from voting.services import publication
from voting.services.container import ServicesDep


class DecisionIn(msgspec.Struct, forbid_unknown_fields=True):
    """``POST .../tie-decision`` body: the tied candidates (ids) given the seats left, the
    body that decided (e.g. "Ban Thường vụ Đảng ủy Khối"), its reason and the day."""

    chosen: Annotated[list[int], msgspec.Meta(min_length=1, max_length=200)]
    decided_by: Annotated[str, msgspec.Meta(pattern=LINE_PATTERN, min_length=1, max_length=300)]
    reason: Annotated[str, msgspec.Meta(pattern=TEXT_PATTERN, min_length=1, max_length=5000)]
    decided_on: date


@post(
    "/rounds/{round_id:int}/tie-decision",
    summary="Record the standing committee's decision on a tie",
    status_code=200,
    guards=[writer],
    responses=answers(409),
)
async def record_tie_decision(
    services: ServicesDep, admin: AdminDep, round_id: FromPath[int], data: JSONBody[DecisionIn]
) -> Results:
    """Record (or, until the results are official, replace) which tied candidates take the
    seats left. 400 ``decision_invalid`` (not exactly ``seats`` of the tied); 409
    ``round_not_final``, ``no_tie``, ``already_official``."""
    return await publication.record_decision(
        services.engine,
        services.redis,
        services.settings.redis.prefix,
        admin.username,
        round_id,
        data.chosen,
        nfc(data.decided_by),
        nfc(data.reason),
        data.decided_on,
    )


@post(
    "/rounds/{round_id:int}/official",
    summary="Publish the final results as official",
    status_code=200,
    guards=[writer],
    responses=answers(409),
)
async def make_official(services: ServicesDep, admin: AdminDep, round_id: FromPath[int]) -> Results:
    """From now on the public page shows the elected as the official result. 409
    ``round_not_final``, ``tie_undecided``, ``already_official``."""
    results = await publication.make_official(
        services.engine, services.redis, services.settings.redis.prefix, admin.username, round_id
    )
    services.forget(round_id)
    return results


ROUTES = [record_tie_decision, make_official]
