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
        b = tables.ballots
        return await self._locate(tracker, b.c.tracker == tracker, tracker, None)

    async def _locate(
        self, receipt: str, match: Any, backlog_key: str, round_id: int | None
    ) -> ReceiptOut:
        """The status of the ballot ``match`` selects: in the record, else in the backlog
        index (under ``backlog_key``) of ``round_id`` or of every live round, else looked for
        in the record once more (persisted between the two looks: the persister commits
        before it unindexes), else unknown."""
        found = await self._recorded(receipt, match)
        if found is not None:
            return found
        rounds = [round_id] if round_id is not None else await self._live_rounds()
        for rid in rounds:
            if await live.in_backlog(self.redis, RoundKeys(self.prefix, rid), backlog_key):
                return ReceiptOut(receipt=receipt, status="pending", round_id=rid)
        return await self._recorded(receipt, match) or ReceiptOut(receipt, "unknown")

    async def _live_rounds(self) -> list[int]:
        async with self.engine.connect() as conn:
            return await queries.round_ids(conn, not_final=True)

    async def _recorded(self, receipt: str, match: Any) -> ReceiptOut | None:
        b, q, d = tables.ballots, tables.quarantined_ballots, tables.quarantine_decisions
        query = (
            select(b.c.round_id, b.c.epoch, q.c.reason, d.c.decision)
            .select_from(
                b.outerjoin(q, q.c.ballot_id == b.c.ballot_id).outerjoin(
                    d, and_(d.c.round_id == q.c.round_id, d.c.reason == q.c.reason)
                )
            )
            .where(match)
            .limit(1)
        )
        async with self.engine.connect() as conn:
            row = (await conn.execute(query)).first()
        return None if row is None else _out(receipt, row)

    async def _legacy(self, receipt: str) -> ReceiptOut:
        try:
            payload = self.signers.load_receipt(receipt)
            round_id, ballot_id = int(payload["r"]), uuid.UUID(str(payload["b"]))
        except (TokenInvalid, ValueError, TypeError):
            raise Invalid("receipt_invalid", "this receipt is not valid") from None
        # entries cast before trackers are in the backlog index under their ballot id
        match = tables.ballots.c.ballot_id == ballot_id
        return await self._locate(receipt, match, str(ballot_id), round_id)


def _out(tracker: str, row: Any) -> ReceiptOut:
    reason, decision = row.reason, row.decision
    if reason is None:
        return ReceiptOut(tracker, "recorded", row.round_id, row.epoch)
    status: ReceiptStatus = "recorded" if decision == "count" else "quarantined"
    quarantine = QuarantineOut(reason=reason, decision=decision or "pending")
    return ReceiptOut(tracker, status, row.round_id, row.epoch, quarantine)
