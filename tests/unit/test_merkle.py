"""Merkle roots (RFC 6962) and the chain of commitments, against vectors computed by hand."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest

from voting.core.merkle import (
    EMPTY_ROOT,
    ballot_token,
    check_commitments,
    choice_string,
    choices_root,
    commitment_hash,
    commitment_of,
    make_commitment,
    sorted_choices,
    trackers_root,
    tree_hash,
)


def h(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def leaf(d: bytes) -> bytes:
    return h(b"\x00" + d)


def node(a: bytes, b: bytes) -> bytes:
    return h(b"\x01" + a + b)


def test_tree_hash_by_hand_for_0_1_2_3_5_leaves():
    a, b, c, d, e = (x.encode() for x in "abcde")
    assert tree_hash([]) == hashlib.sha256(b"").hexdigest() == EMPTY_ROOT
    assert EMPTY_ROOT == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert tree_hash([a]) == leaf(a).hex()
    assert tree_hash([a, b]) == node(leaf(a), leaf(b)).hex()
    # n = 3: split at 2
    assert tree_hash([a, b, c]) == node(node(leaf(a), leaf(b)), leaf(c)).hex()
    # n = 5: split at 4, then 2 + 2
    left = node(node(leaf(a), leaf(b)), node(leaf(c), leaf(d)))
    assert tree_hash([a, b, c, d, e]) == node(left, leaf(e)).hex()
    # order matters: a tree is not a set
    assert tree_hash([b, a]) != tree_hash([a, b])


def test_rfc6962_reference_vector():
    # the empty leaf's hash, as in RFC 6962 test vectors (certificate-transparency-go)
    assert tree_hash([b""]) == "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"


def test_trackers_root_sorts_bytewise_and_choices_root_sorts_canonical_strings():
    trackers = ["ZZZZ", "AAAA", "M000"]
    expected = node(node(leaf(b"AAAA"), leaf(b"M000")), leaf(b"ZZZZ")).hex()
    assert trackers_root(trackers) == trackers_root(sorted(trackers)) == expected
    lists = [[12, 3, 7], [2], [10]]
    assert choice_string([12, 3, 7]) == "3,7,12"
    # "10" < "2" < "3,7,12" bytewise
    assert sorted_choices(lists) == [[10], [2], [3, 7, 12]]
    expected = node(node(leaf(b"10"), leaf(b"2")), leaf(b"3,7,12")).hex()
    assert choices_root(lists) == expected
    assert choices_root([]) == trackers_root([]) == EMPTY_ROOT


def test_a_ballot_without_a_tracker_is_its_ballot_id():
    bid = uuid.UUID("12345678-1234-5678-1234-567812345678")
    assert ballot_token(None, bid) == "12345678-1234-5678-1234-567812345678"
    assert ballot_token("", str(bid).upper()) == str(bid)
    assert ballot_token("0123456789ABC", bid) == "0123456789ABC"


def test_commitment_hash_is_the_canonical_json_of_the_spec():
    at = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
    body = {
        "round_id": 7,
        "seq": 0,
        "kind": "rules",
        "closed_at": "2026-12-01T08:00:00.000000+00:00",
        "count": 0,
        "trackers_root": EMPTY_ROOT,
        "choices_root": EMPTY_ROOT,
        "rules_hash": "ab" * 32,
        "prev": "0" * 64,
    }
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    expected = hashlib.sha256(text.encode()).hexdigest()
    got = commitment_hash(7, 0, "rules", at, 0, EMPTY_ROOT, EMPTY_ROOT, "ab" * 32, "0" * 64)
    assert got == expected
    # the same moment in another zone hashes the same
    other = at.astimezone(timezone(timedelta(hours=7)))
    made = make_commitment(7, 0, "rules", other, 0, EMPTY_ROOT, EMPTY_ROOT, "ab" * 32, "0" * 64)
    assert made.hash == expected


def chain(n: int) -> list:
    at = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
    out = [make_commitment(1, 0, "rules", at, 0, EMPTY_ROOT, EMPTY_ROOT, "cd" * 32, "0" * 64)]
    for seq in range(1, n):
        out.append(
            make_commitment(
                1,
                seq,
                "epoch",
                at + timedelta(minutes=seq),
                seq * 10,
                trackers_root([f"T{seq}"]),
                choices_root([[seq]]),
                None,
                out[-1].hash,
            )
        )
    return out


def test_check_commitments_names_the_first_broken_seq():
    good = chain(5)
    result = check_commitments(good)
    assert result.ok and result.checked == 5 and result.head == good[-1].hash
    assert check_commitments([]).ok
    # a field changed: its own hash no longer matches
    bad = [*good]
    bad[2] = dataclasses.replace(bad[2], count=999)
    result = check_commitments(bad)
    assert result.broken_at == 2 and "hash" in (result.problem or "")
    # the hash recomputed too: the next one's prev breaks
    fields = {f.name: getattr(bad[2], f.name) for f in dataclasses.fields(bad[2])}
    del fields["hash"]
    bad[2] = make_commitment(**fields)
    result = check_commitments(bad)
    assert result.broken_at == 3 and "prev" in (result.problem or "")
    # a gap, a wrong first one
    assert check_commitments([good[0], good[2]]).broken_at == 1
    assert check_commitments(good[1:]).broken_at == 0
    reordered = [good[0], good[2], good[1]]
    assert check_commitments(reordered).broken_at == 1


def test_published_form_round_trips():
    for c in chain(3):
        again = commitment_of(json.loads(json.dumps(c.as_json())))
        assert again == c
    with pytest.raises(ValueError):
        commitment_of({"seq": 1})
    with pytest.raises(ValueError):
        commitment_of({**chain(1)[0].as_json(), "closed_at": "2026-12-01T08:00:00"})
