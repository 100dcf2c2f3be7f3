"""Property tests of the voting core against real Redis and Postgres (hypothesis).

For any sequence of cast attempts (valid or not, repeated voters, retried keys), the Redis
tally holds exactly the choices of the accepted ballots, one ballot per voter, and after the
persister drains the stream Postgres counts the same tally.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from tests.support.app import SAMPLE_CSV, unique_slug
from voting.core.errors import DomainError
from voting.core.rounds import DEFAULT_FIELDS
from voting.core.shortlist import parse_shortlist
from voting.live import state as live
from voting.live.keys import RoundKeys
from voting.record.queries import postgres_tally
from voting.services.container import open_services
from voting.settings import Settings

SAMPLE_ROWS = parse_shortlist(Path(SAMPLE_CSV).read_bytes(), DEFAULT_FIELDS)[:8]

attempts = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=5),  # voter number (repeats = second ballots)
        st.lists(st.integers(min_value=0, max_value=9), min_size=0, max_size=6),  # 8, 9 unknown
        st.sampled_from([None, "a", "b"]),  # Idempotency-Key
    ),
    min_size=1,
    max_size=25,
)


async def scenario(settings: Settings, plan: list[tuple[int, list[int], str | None]]) -> None:
    async with open_services(settings) as services:
        rnd = await services.rounds.create(
            "test",
            {"slug": unique_slug("prop"), "title": "property", "min_choices": 1, "max_choices": 4},
        )
        cands = await services.rounds.import_candidates("test", rnd.id, SAMPLE_ROWS)
        ids = [c.id for c in cands]
        await services.rounds.transition("test", rnd.id, "open")
        box = services.ballot_box
        voters = [services.signers.voter_hash(f"device:prop-{i}") for i in range(6)]
        expected: Counter[int] = Counter()
        accepted: dict[int, list[int]] = {}
        for voter_no, picks, key in plan:
            choices = [ids[p] if p < 8 else 10_000_000 + p for p in picks]
            try:
                (await box.rules(rnd.id)).check(choices)
                await box.cast(box.prepare(rnd.id, voters[voter_no], choices, "10.0.0.0/24", key))
            except DomainError as exc:
                assert exc.code in {
                    "too_few_choices",
                    "too_many_choices",
                    "duplicate_choice",
                    "unknown_candidate",
                    "already_voted",
                    "idempotency_key_reused",
                }
                if exc.code in ("already_voted", "idempotency_key_reused"):
                    assert voter_no in accepted
                continue
            if voter_no not in accepted:
                accepted[voter_no] = choices
                expected.update(choices)
            else:  # only an idempotent replay of the voter's first key can succeed again
                assert key is not None
        keys = RoundKeys(settings.redis.prefix, rnd.id)
        tally, total = await live.tally(services.redis, keys)
        assert tally == dict(expected)
        assert total == len(accepted)
        assert sum(tally.values()) == sum(len(c) for c in accepted.values())
        await services.persister.drain(rnd.id)
        async with services.engine.connect() as conn:
            assert await postgres_tally(conn, rnd.id) == (dict(expected), len(accepted))


@hsettings(
    max_examples=30,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(plan=attempts)
def test_tally_equals_accepted_choices(settings: Settings, plan) -> None:
    asyncio.run(scenario(settings.replace(run_persister=False), plan))
