"""The audit log's hash chain, recomputed: any change, removal or insertion is caught."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from voting.core.chain import GENESIS, check_chain, event_hash


def chain(n: int) -> list[dict]:
    rows, prev = [], GENESIS
    start = datetime(2026, 12, 1, 1, 2, 3, 456789, tzinfo=UTC)
    for i in range(n):
        row = {
            "id": i + 1,
            "created_at": start + timedelta(seconds=i),
            "actor": "admin",
            "action": "round_open",
            "round_id": 7,
            "details": {"from": "draft", "n": i, "tên": "Gương mặt"},
            "prev_hash": prev,
        }
        row["hash"] = prev = event_hash(
            prev, row["created_at"], "admin", "round_open", 7, row["details"]
        )
        rows.append(row)
    return rows


def test_an_intact_chain_checks_and_its_head_is_the_last_hash():
    rows = chain(5)
    result = check_chain(rows)
    assert result.ok and result.events == 5 and result.head == rows[-1]["hash"]
    assert check_chain([]).head == GENESIS


def test_key_order_does_not_change_the_hash():
    when = datetime(2026, 12, 1, tzinfo=UTC)
    a = event_hash(GENESIS, when, "x", "y", None, {"a": 1, "b": [1, 2]})
    b = event_hash(GENESIS, when, "x", "y", None, {"b": [1, 2], "a": 1})
    assert a == b and len(a) == 64


def test_changes_removals_and_insertions_are_caught():
    rows = chain(6)
    changed = [dict(r) for r in rows]
    changed[2]["details"] = {**changed[2]["details"], "n": 99}
    assert check_chain(changed).broken_at == 3
    moved = [dict(r) for r in rows]
    moved[3]["created_at"] += timedelta(microseconds=1)
    assert check_chain(moved).broken_at == 4
    removed = rows[:2] + rows[3:]
    assert check_chain(removed).broken_at == 4
    forged = [dict(r) for r in rows]
    forged[4]["actor"] = "someone"
    forged[4]["hash"] = event_hash(
        forged[4]["prev_hash"],
        forged[4]["created_at"],
        "someone",
        "round_open",
        7,
        forged[4]["details"],
    )
    assert check_chain(forged).broken_at == 6  # the next event no longer follows
