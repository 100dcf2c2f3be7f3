"""Live round state in Redis: publishing a round, changing its status, reading its tally.

Redis holds what the hot path needs (status, rules, candidate ids, tally, voters, stream);
Postgres holds the record. These functions are the only writers of a round's ``meta`` hash.
"""

from __future__ import annotations

from datetime import datetime

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from voting.live.keys import PERSIST_GROUP, RoundKeys
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
) -> None:
    """Write the round's rules and status to ``meta`` and create the stream's consumer group.

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
    await redis.hset(keys.meta, mapping=mapping)  # type: ignore[arg-type]


async def ensure_group(redis: Redis, keys: RoundKeys) -> None:
    """Create the persisters' consumer group on the round stream (idempotent)."""
    try:
        await redis.xgroup_create(keys.stream, PERSIST_GROUP, id="0", mkstream=True)
    except ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


async def set_status(redis: Redis, keys: RoundKeys, status: str) -> None:
    """Set the live status; atomic with respect to the cast script (one HSET)."""
    await redis.hset(keys.meta, "status", status)


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


async def in_backlog(redis: Redis, keys: RoundKeys, ballot_id: str) -> bool:
    """Whether ``ballot_id`` is accepted and still waiting in the stream (an index lookup)."""
    return bool(await redis.hexists(keys.backlog_index, ballot_id))


async def snapshot(redis: Redis, keys: RoundKeys) -> tuple[dict[int, int], int, list[StreamBallot]]:
    """The live tally, the accepted-ballots counter and every ballot still in the stream (not
    yet persisted), read in one MULTI so that they describe one instant."""
    async with redis.pipeline(transaction=True) as pipe:
        pipe.hgetall(keys.tally)
        pipe.hget(keys.meta, "ballots")
        pipe.xrange(keys.stream, "-", "+")
        raw, total, entries = await pipe.execute()
    backlog = [StreamBallot.from_entry(e, f) for e, f in entries if f]
    return {int(k): int(v) for k, v in raw.items()}, int(total or 0), backlog


async def restore(
    redis: Redis, keys: RoundKeys, tally: dict[int, int], voters: dict[str, str], ballots: int
) -> None:
    """Replace the round's tally, voters (voter hash → ballot id) and ballot counter with the
    given ones (used by recovery; the round must refuse ballots meanwhile)."""
    async with redis.pipeline(transaction=True) as pipe:
        pipe.delete(keys.tally, keys.voters)
        if tally:
            pipe.hset(keys.tally, mapping={str(k): v for k, v in tally.items()})
        items = list(voters.items())
        for i in range(0, len(items), 10_000):
            pipe.hset(keys.voters, mapping=dict(items[i : i + 10_000]))
        pipe.hset(keys.meta, "ballots", ballots)
        await pipe.execute()


async def oldest_wait(redis: Redis, keys: RoundKeys, now_ms: int) -> float | None:
    """Seconds the oldest ballot still in the stream has waited for the persister (its entry
    id is its arrival time in ms); None when none waits."""
    first = await redis.xrange(keys.stream, count=1)
    if not first:
        return None
    entry_id = first[0][0]
    text = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
    return max(0.0, (now_ms - int(text.split("-", 1)[0])) / 1000)
