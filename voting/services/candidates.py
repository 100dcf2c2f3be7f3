"""Editing one candidate of a draft round (the shortlist's other door: the whole file is
imported by :meth:`voting.services.rounds.RoundService.import_candidates`)."""

from __future__ import annotations

import msgspec
from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from voting.core.errors import Conflict
from voting.core.rounds import Candidate
from voting.core.shortlist import CandidateRow
from voting.record import queries, tables
from voting.record.audit import audit


async def edit_candidate(
    engine: AsyncEngine, actor: str, round_id: int, candidate_id: int, row: CandidateRow
) -> Candidate:
    """Replace the profile of ``candidate_id`` in the draft ``round_id`` by ``row`` (already
    checked, :func:`voting.core.shortlist.check_candidate`); audited with the fields that
    changed. Raises ``round_not_found``, ``candidate_not_found``; :class:`Conflict`
    ``round_not_draft``, ``code_taken`` (another candidate of the round has that code)."""
    try:
        async with engine.begin() as conn:
            rnd = await queries.get_round(conn, round_id, for_update=True)
            if rnd.status != "draft":
                raise Conflict("round_not_draft", "candidates can only be changed in draft")
            before = await queries.get_candidate(conn, round_id, candidate_id)
            values = msgspec.structs.asdict(row)
            changed = sorted(k for k, v in values.items() if getattr(before, k, None) != v)
            c = tables.candidates
            await conn.execute(
                update(c).where(c.c.id == candidate_id, c.c.round_id == round_id).values(**values)
            )
            await audit(
                conn,
                actor,
                "candidate_update",
                round_id,
                {"candidate_id": candidate_id, "code": row.code, "changed": changed},
            )
            return await queries.get_candidate(conn, round_id, candidate_id)
    except IntegrityError:
        raise Conflict(
            "code_taken", f"another candidate of the round has code {row.code!r}"
        ) from None
