"""Admin route that shows a round's device-mode limits: the settings that price a device
credential per client network (:mod:`voting.core.device`), so that a round's admins see what
device mode lets through before they choose it.

``GET /rounds/{round_id}/device-limits`` (admins and observers).
"""

from __future__ import annotations

import msgspec
from litestar import get
from litestar.params import FromPath

from voting.identity.challenge import pricing_of
from voting.record.queries import get_round
from voting.services.container import ServicesDep


class PricePoint(msgspec.Struct):
    """The ``credential``-th device credential of one network in the window costs
    ``expected_attempts`` attempts (each ``pow_cost`` PBKDF2 iterations) on average."""

    credential: int
    expected_attempts: float


class DeviceLimitsOut(msgspec.Struct):
    """The limits device mode applies in a round (all from the settings; ``applies``: the
    round's identity mode is ``device``)."""

    round_id: int
    identity_mode: str
    applies: bool
    challenge_required: bool
    pow_cost: int
    base_attempts: int
    share: int
    aggregate_share: int
    doubling: int
    window_seconds: int
    network_prefix: dict[str, int]
    aggregate_prefix: dict[str, int]
    credential_rate: int
    credential_period: int
    credential_burst: int
    challenge_ttl: int
    schedule: list[PricePoint]


@get("/rounds/{round_id:int}/device-limits", summary="The device-mode limits of a round")
async def device_limits(services: ServicesDep, round_id: FromPath[int]) -> DeviceLimitsOut:
    """What a device credential costs in this round, per client network (``network_prefix``
    bits, e.g. IPv4 /24) and aggregate (``aggregate_prefix``, e.g. /16): the first ``share``
    credentials of a network in ``window_seconds`` (``aggregate_share`` of an aggregate)
    cost ``base_attempts`` attempts on average; each further ``doubling`` credentials double
    it (``schedule``). Every credential request also counts against ``credential_rate`` per
    ``credential_period`` seconds (bursts of ``credential_burst``) per network. 404
    ``round_not_found``."""
    async with services.engine.connect() as conn:
        rnd = await get_round(conn, round_id)
    s = services.settings
    c, limits, privacy = s.challenge, s.limits, s.privacy
    pricing = pricing_of(s)
    return DeviceLimitsOut(
        round_id=round_id,
        identity_mode=rnd.identity_mode,
        applies=rnd.identity_mode == "device",
        challenge_required=c.required,
        pow_cost=c.pow_cost,
        base_attempts=c.pow_difficulty,
        share=c.device_share,
        aggregate_share=c.device_aggregate_share,
        doubling=c.device_doubling,
        window_seconds=c.device_window,
        network_prefix={"ipv4": privacy.ipv4_prefix, "ipv6": privacy.ipv6_prefix},
        aggregate_prefix={"ipv4": c.ipv4_aggregate, "ipv6": c.ipv6_aggregate},
        credential_rate=limits.credential_rate,
        credential_period=limits.credential_period,
        credential_burst=limits.credential_burst,
        challenge_ttl=c.ttl,
        schedule=[PricePoint(n, round(a, 1)) for n, a in pricing.schedule()],
    )


ROUTES = [device_limits]
