"""Live round state in Redis: publishing a round, changing its status, reading its tally.

Redis holds what the hot path needs (status, rules, candidate ids, tally, voters, stream);
Postgres holds the record. These functions are the only writers of a round's ``meta`` hash.
A status written for a decision of the record carries that decision's number
(``status_seq``): see ``lua/set_status.lua``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from voting.live.keys import PERSIST_GROUP, RoundKeys
from voting.live.scripts import load
from voting.live.stream import StreamBallot


async def publish_round(
    redis: Redis,
    keys: RoundKeys,
    *,
    status: str,
    min_choices: int,
    max_choices: int,
    candidate_ids: list[int],
    closes_at: datetime | None = None,
    identity_mode: str = "device",
    seq: int | None = None,
) -> None:
    """Write the round's rules and status to ``meta`` and create the stream's consumer group.

    ``seq``: the number of the record's decision this status stands for (kept as
    ``status_seq``; see :func:`set_status`); written whatever number was there before.

    ``identity_mode``: how the round's voters are identified (credentials of another mode are
    refused). ``closes_at`` (aware datetime) is stored in ms since the epoch: from that instant
    the cast script refuses ballots, whether or not the scheduler has closed the round yet.
    The group starts at id ``0`` so that ballots appended before it existed are not skipped.
    """
    await ensure_group(redis, keys)
    mapping: dict[str, str | int] = {
        "status": status,
        "min_choices": min_choices,
        "max_choices": max_choices,
        "candidates": ",".join(str(c) for c in sorted(candidate_ids)),
        "identity_mode": identity_mode,
    }
    if closes_at is not None:
        mapping["closes_at"] = int(closes_at.timestamp() * 1000)
    if seq is not None:
        mapping["status_seq"] = seq
    await redis.hset(keys.meta, mapping=mapping)  # type: ignore[arg-type]


async def ensure_group(redis: Redis, keys: RoundKeys) -> None:
    """Create the persisters' consumer group on the round stream (idempotent)."""
    try:
        await redis.xgroup_create(keys.stream, PERSIST_GROUP, id="0", mkstream=True)
    except ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


@dataclass(frozen=True)
class StatusWrite:
    """What :func:`set_status` found: ``outcome`` ``ok`` (written), ``stale`` (a decision
    with a larger number is in place), ``recovering`` (left so) or ``missing`` (no live
    state; nothing written); ``status`` and ``seq`` now in Redis (``""`` / 0 when missing)."""

    outcome: str
    status: str
    seq: int


async def set_status(
    redis: Redis,
    keys: RoundKeys,
    status: str,
    seq: int | None = None,
    *,
    from_recovering: bool = False,
) -> StatusWrite:
    """Set the live status, atomically with respect to the cast script (one script).

    ``seq``: the number of the record's decision (a Postgres sequence, larger for every later
    decision): the write is refused as ``stale`` unless it is larger than the number in
    place, so a write that reaches Redis late never undoes a newer one. ``None``: an
    operator's write, applied whatever the number. ``recovering`` is only replaced with
    ``from_recovering`` (recovery's last step). A round without live state is left alone
    (``missing``), never given a partial ``meta``. Redis errors propagate (with a timeout the
    write may still be applied later, which the numbering makes harmless).
    """
    script = redis.register_script(load("set_status"))
    args: list[Any] = [status, "" if seq is None else seq, "1" if from_recovering else "0"]
    reply: Any = await script(keys=[keys.meta], args=args)
    return StatusWrite(str(reply[0]), str(reply[1]), int(reply[2]))


async def status(redis: Redis, keys: RoundKeys) -> str | None:
    """The round's live status, ``None`` when Redis holds no state for it."""
    value: Any = await redis.hget(keys.meta, "status")
    return None if value is None else str(value)


async def statuses(redis: Redis, rounds: Sequence[RoundKeys]) -> list[str | None]:
    """The live status of each of ``rounds`` (``None``: no state), in one round trip."""
    async with redis.pipeline(transaction=False) as pipe:
        for keys in rounds:
            pipe.hget(keys.meta, "status")
        replies: list[Any] = await pipe.execute()
    return [None if v is None else str(v) for v in replies]


async def presence(redis: Redis, rounds: Sequence[RoundKeys]) -> list[tuple[bool, int]]:
    """For each of ``rounds``: whether its ``meta`` exists, and its backlog (stream length),
    in one round trip."""
    async with redis.pipeline(transaction=False) as pipe:
        for keys in rounds:
            pipe.exists(keys.meta)
            pipe.xlen(keys.stream)
        replies: list[Any] = await pipe.execute()
    return [(bool(replies[i]), int(replies[i + 1])) for i in range(0, len(replies), 2)]


async def counts(redis: Redis, keys: RoundKeys) -> tuple[int, int]:
    """``(accepted, backlog)``: the ``ballots`` counter of ``meta`` and the stream's length,
    read in one MULTI (one instant)."""
    async with redis.pipeline(transaction=True) as pipe:
        pipe.hget(keys.meta, "ballots")
        pipe.xlen(keys.stream)
        total, length = await pipe.execute()
    return int(total or 0), int(length)


async def tally(redis: Redis, keys: RoundKeys) -> tuple[dict[int, int], int]:
    """The live tally ``{candidate id: votes}`` and the number of accepted ballots (the
    ``ballots`` counter of ``meta``), read together in one MULTI so that they are consistent."""
    async with redis.pipeline(transaction=True) as pipe:
        pipe.hgetall(keys.tally)
        pipe.hget(keys.meta, "ballots")
        raw, total = await pipe.execute()
    return {int(k): int(v) for k, v in raw.items()}, int(total or 0)


async def backlog(redis: Redis, keys: RoundKeys) -> int:
    """Ballots in the stream not yet persisted (entries still in the stream; persisted ones are
    deleted after XACK)."""
    return int(await redis.xlen(keys.stream))


async def in_backlog(redis: Redis, keys: RoundKeys, tracker: str) -> bool:
    """Whether the ballot of ``tracker`` is accepted and still waiting in the stream (one
    index lookup, never a stream scan)."""
    return bool(await redis.hexists(keys.backlog_index, tracker))


async def snapshot_head(redis: Redis, keys: RoundKeys) -> tuple[dict[int, int], int, str | None]:
    """The live tally, the accepted-ballots counter and the id of the stream's last entry
    (``None`` when the stream is empty), read in one MULTI: one instant. The ballots still in
    the stream at that instant are the entries up to that id; read them with
    :func:`backlog_chunks` (entries persisted meanwhile are gone from the stream, and in
    Postgres)."""
    async with redis.pipeline(transaction=True) as pipe:
        pipe.hgetall(keys.tally)
        pipe.hget(keys.meta, "ballots")
        pipe.xrevrange(keys.stream, "+", "-", count=1)
        raw, total, last = await pipe.execute()
    last_id = str(last[0][0]) if last else None
    return {int(k): int(v) for k, v in raw.items()}, int(total or 0), last_id


async def backlog_chunks(
    redis: Redis, keys: RoundKeys, last_id: str | None, chunk: int
) -> AsyncIterator[list[StreamBallot]]:
    """The ballots in the stream up to ``last_id`` (included), ``chunk`` entries per
    ``XRANGE`` (exclusive start ``(id``, Redis ≥ 6.2), so that neither Redis nor this
    process holds the whole backlog at once: one chunk costs Redis about a millisecond per
    thousand entries. Entries deleted meanwhile (persisted) are skipped."""
    if last_id is None:
        return
    start = "-"
    while True:
        entries: Any = await redis.xrange(keys.stream, start, last_id, count=chunk)
        if not entries:
            return
        yield [StreamBallot.from_entry(e, f) for e, f in entries if f]
        final = str(entries[-1][0])
        if final == last_id or len(entries) < chunk:
            return
        start = f"({final}"


def staging_key(keys: RoundKeys) -> str:
    """Where recovery builds a round's voters hash before it replaces the live one (same hash
    tag as the round's other keys)."""
    return keys.voters + ":rebuild"


async def clear_staging(redis: Redis, keys: RoundKeys) -> None:
    """Drop a half-built voters hash (``UNLINK``: freed off Redis's main thread)."""
    await redis.unlink(staging_key(keys))


async def stage_voters(redis: Redis, keys: RoundKeys, voters: Sequence[tuple[str, str]]) -> None:
    """Add ``(voter hash, ballot id)`` pairs to the staging voters hash, one ``HSET`` of this
    chunk (Redis is busy for this chunk only, not for the whole round)."""
    if voters:
        await redis.hset(staging_key(keys), mapping=dict(voters))


async def swap_in(
    redis: Redis, keys: RoundKeys, tally: dict[int, int], ballots: int, *, staged: bool
) -> None:
    """Make the staged voters hash the round's (``staged``: whether any voter was staged; an
    empty round has none) and write ``tally`` and the ballot counter, in one MULTI of O(1)
    commands and one ``HSET`` of the candidates: ``UNLINK`` of the old voters and tally (freed
    off the main thread however big), ``RENAME`` of the staging key. Used by recovery while
    the round refuses ballots, so nothing ever sees a half-built voters hash."""
    async with redis.pipeline(transaction=True) as pipe:
        pipe.unlink(keys.voters, keys.tally)
        if staged:
            pipe.rename(staging_key(keys), keys.voters)
        if tally:
            pipe.hset(keys.tally, mapping={str(k): v for k, v in tally.items()})
        pipe.hset(keys.meta, "ballots", ballots)
        await pipe.execute()


async def remove(redis: Redis, keys: RoundKeys) -> int:
    """Remove a round's live state: ``meta``, tally, voters, stream, backlog index and a
    staging hash (``UNLINK``: freed off the main thread). The counters of credentials issued
    and ballots refused (a few fields, shown by the dashboard and nowhere else) are kept; the
    round's other keys (rate limits, idempotency results, device counts, used challenges)
    expire by themselves. Returns the number of keys removed."""
    names = [keys.meta, keys.tally, keys.voters, keys.stream, keys.backlog_index]
    return int(await redis.unlink(*names, staging_key(keys)))


async def oldest_wait(redis: Redis, keys: RoundKeys, now_ms: int) -> float | None:
    """Seconds the oldest ballot still in the stream has waited for the persister (its entry
    id is its arrival time in ms); None when none waits."""
    first = await redis.xrange(keys.stream, count=1)
    if not first:
        return None
    entry_id = first[0][0]
    text = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
    return max(0.0, (now_ms - int(text.split("-", 1)[0])) / 1000)
