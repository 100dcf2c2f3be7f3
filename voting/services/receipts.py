"""Checking a receipt: where the ballot of a tracker is (BRIEF §5, issue "trust").

A receipt is the ballot's tracker (:mod:`voting.core.tracker`). Its status is read from
indexes only, never a stream scan: the record's ``ballots_tracker`` index (``recorded``, or
``quarantined`` when a quarantine rule set it aside and no admin decided to count its reason
group), else each live round's backlog index in Redis, tracker → ballot id (``pending``:
accepted, not yet in Postgres), else ``unknown``. Receipts issued before trackers (signed
``{"r","b","c"}``) still check, by ballot id. Checks are rate limited per client network
(GCRA, ``VOTING_RECEIPT_*``), since every answer says whether a guess exists.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, Literal

import msgspec
from redis.asyncio import Redis
from sqlalchemy import and_, select
from sqlalchemy.ext.asyncio import AsyncEngine

from voting.core.errors import Invalid
from voting.core.tracker import TrackerInvalid, normalise
from voting.identity.tokens import Signers, TokenInvalid
from voting.live import state as live
from voting.live.keys import RoundKeys
from voting.live.limits import Limiter, Rate
from voting.record import queries, tables

ReceiptStatus = Literal["recorded", "pending", "quarantined", "unknown"]


class QuarantineOut(msgspec.Struct):
    """Why a ballot was set aside: the rule's ``reason`` code, and the admins' ``decision`` on
    that reason group so far (``pending`` review, ``count``, ``void``)."""

    reason: str
    decision: str


class ReceiptOut(msgspec.Struct, omit_defaults=True):
    """Where the ballot of a receipt is.

    ``status``: ``recorded`` (in Postgres, in the tally), ``pending`` (accepted, waiting in
    Redis for the persister: it will be recorded within seconds), ``quarantined`` (recorded
    but set aside by a published rule; see ``quarantine``), ``unknown`` (no such ballot:
    check the characters; if it was accepted, report it to the organisers). ``round_id``
    unless unknown; ``epoch``: the commitment that includes the tracker, once sealed.
    """

    receipt: str
    status: ReceiptStatus
    round_id: int | None = None
    epoch: int | None = None
    quarantine: QuarantineOut | None = None


@dataclass
class ReceiptDesk:
    """Answers receipt checks (see the module): ``redis`` is the hot-path client (its short
    timeouts bound a check), ``rate`` the per-network limit."""

    engine: AsyncEngine
    redis: Redis
    prefix: str
    signers: Signers
    rate: Rate

    def __post_init__(self) -> None:
        self.limiter = Limiter(self.redis, self.prefix)

    async def check(self, receipt: str, client: str) -> ReceiptOut:
        """The status of ``receipt`` (a tracker, typed forgivingly, or an old signed
        receipt) for a client of network ``client``.

        Raises :class:`~voting.core.errors.Invalid` ``receipt_invalid`` (not a tracker: wrong
        length, symbol or check symbol; a forged old receipt),
        :class:`~voting.core.errors.Limited` ``rate_limited``. Redis and Postgres errors
        propagate (the HTTP layer answers 503).
        """
        await self.limiter.check("receipt", client, self.rate, "receipt checks")
        if "." in receipt and len(receipt) > 40:  # a signed receipt from before trackers
            return await self._legacy(receipt)
        try:
            tracker = normalise(receipt)
        except TrackerInvalid as exc:
            raise Invalid("receipt_invalid", f"this receipt is not valid: {exc}") from None
        found = await self._recorded(tracker)
        if found is not None:
            return found
        for round_id in await self._live_rounds():
            if await live.in_backlog(self.redis, RoundKeys(self.prefix, round_id), tracker):
                return ReceiptOut(receipt=tracker, status="pending", round_id=round_id)
        # persisted between the two looks: the persister commits before it unindexes
        return await self._recorded(tracker) or ReceiptOut(receipt=tracker, status="unknown")

    async def _live_rounds(self) -> list[int]:
        async with self.engine.connect() as conn:
            return await queries.round_ids(conn, not_final=True)

    async def _recorded(self, tracker: str) -> ReceiptOut | None:
        b, q, d = tables.ballots, tables.quarantined_ballots, tables.quarantine_decisions
        query = (
            select(b.c.round_id, b.c.epoch, q.c.reason, d.c.decision)
            .select_from(
                b.outerjoin(q, q.c.ballot_id == b.c.ballot_id).outerjoin(
                    d, and_(d.c.round_id == q.c.round_id, d.c.reason == q.c.reason)
                )
            )
            .where(b.c.tracker == tracker)
            .limit(1)
        )
        async with self.engine.connect() as conn:
            row = (await conn.execute(query)).first()
        if row is None:
            return None
        return _out(tracker, row)

    async def _legacy(self, receipt: str) -> ReceiptOut:
        try:
            payload = self.signers.load_receipt(receipt)
            round_id, ballot_id = int(payload["r"]), uuid.UUID(str(payload["b"]))
        except (TokenInvalid, ValueError, TypeError):
            raise Invalid("receipt_invalid", "this receipt is not valid") from None
        async with self.engine.connect() as conn:
            if await queries.ballot_recorded(conn, ballot_id):
                return ReceiptOut(receipt=receipt, status="recorded", round_id=round_id)
        keys = RoundKeys(self.prefix, round_id)
        if await live.in_backlog(self.redis, keys, str(ballot_id)):  # entries from before
            return ReceiptOut(receipt=receipt, status="pending", round_id=round_id)
        async with self.engine.connect() as conn:
            if await queries.ballot_recorded(conn, ballot_id):
                return ReceiptOut(receipt=receipt, status="recorded", round_id=round_id)
        return ReceiptOut(receipt=receipt, status="unknown")


def _out(tracker: str, row: Any) -> ReceiptOut:
    reason, decision = row.reason, row.decision
    if reason is None:
        return ReceiptOut(tracker, "recorded", row.round_id, row.epoch)
    status: ReceiptStatus = "recorded" if decision == "count" else "quarantined"
    quarantine = QuarantineOut(reason=reason, decision=decision or "pending")
    return ReceiptOut(tracker, status, row.round_id, row.epoch, quarantine)
