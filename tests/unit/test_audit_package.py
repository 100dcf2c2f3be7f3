"""The audit package's checks on a small package made by hand, quarantine included: both
verifiers (``voting verify``'s and the standalone ``verify.py``) pass it and name the same
faults."""

from __future__ import annotations

import copy
import io
import subprocess
import sys
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from voting.core.audit_package import epoch_name, json_bytes, verify_package, zip_bytes
from voting.core.chain import GENESIS, canonical_hash
from voting.core.merkle import EMPTY_ROOT, choices_root, make_commitment, sorted_choices
from voting.core.merkle import trackers_root as troot

STANDALONE = Path(__file__).resolve().parents[2] / "voting" / "core" / "verify_standalone.py"
EPOCHS = {1: (["T1", "T2", "T3"], [[1, 2], [1], [3]]), 2: (["T4", "T5"], [[2, 4], [1, 3]])}


def files(quarantine: list[dict[str, Any]] | None = None, **results: Any) -> dict[str, Any]:
    """A package of round 9 (4 candidates, 2 seats): 5 ballots in 2 epochs; T5's ballot
    ([1, 3]) voided by quarantine, T1's counted after review."""
    rules = {"round_id": 9, "winners": 2}
    at = datetime(2026, 12, 1, 8, tzinfo=UTC)
    chain = [
        make_commitment(
            9, 0, "rules", at, 0, EMPTY_ROOT, EMPTY_ROOT, canonical_hash(rules), GENESIS
        )
    ]
    out: dict[str, Any] = {}
    for seq, (trackers, lists) in EPOCHS.items():
        chain.append(
            make_commitment(
                9,
                seq,
                "epoch",
                at + timedelta(minutes=seq),
                len(trackers),
                troot(trackers),
                choices_root(lists),
                None,
                chain[-1].hash,
            )
        )
        out[epoch_name(seq)] = {"seq": seq, "trackers": trackers, "choices": sorted_choices(lists)}
    codes = {1: "A", 2: "B", 3: "C", 4: "D"}
    votes = {1: 2, 2: 2, 3: 1, 4: 1}
    out |= {
        "round.json": {
            "round": {
                "id": 9,
                "min_choices": 1,
                "max_choices": 3,
                "winners": 2,
                "field_minimum": None,
                "rules_hash": canonical_hash(rules),
            },
            "candidates": [
                {"id": i, "code": c, "full_name": c, "field": "x"} for i, c in codes.items()
            ],
            "rules": rules,
        },
        "commitments.json": {"round_id": 9, "commitments": [c.as_json() for c in chain]},
        "results.json": {
            "total_ballots": 4,
            "candidates": [
                {"candidate_id": i, "code": codes[i], "votes": v} for i, v in votes.items()
            ],
            "winners": [1, 2],
            "tie": None,
            **results,
        },
        "quarantine.json": {
            "round_id": 9,
            "groups": quarantine
            if quarantine is not None
            else [
                {"reason": "burst", "decision": "void", "trackers": ["T5"], "choices": [[1, 3]]},
                {"reason": "farm", "decision": "count", "trackers": ["T1"]},
            ],
        },
        "audit-head.json": {
            "intact": True,
            "events_checked": 3,
            "head": "ab" * 32,
            "broken_at": None,
        },
    }
    return out


def pack(content: dict[str, Any]) -> bytes:
    return zip_bytes({k: json_bytes(v) for k, v in content.items()})


def standalone(tmp_path: Path, data: bytes) -> subprocess.CompletedProcess[str]:
    (tmp_path / "package.zip").write_bytes(data)
    return subprocess.run(
        [sys.executable, "-I", str(STANDALONE), "package.zip"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin"},
    )


def test_a_good_package_passes_both_verifiers(tmp_path):
    data = pack(files())
    report = verify_package(data)
    assert report.ok, report.failed
    assert "recount: 4 ballots counted, votes equal the results" in report.passed
    done = standalone(tmp_path, data)
    assert done.returncode == 0 and "4 ballots counted" in done.stdout, done.stdout
    # deterministic bytes, fixed dates
    assert pack(files()) == data
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert {i.date_time for i in zf.infolist()} == {(1980, 1, 1, 0, 0, 0)}


@pytest.mark.parametrize(
    ("change", "ours", "theirs"),
    [
        (
            lambda f: f["results.json"]["candidates"][2].update(votes=2),
            "results: votes differ for C (id 3): published 2, recount 1",
            "candidate C has 2 votes, recount 1",
        ),
        (
            lambda f: f["results.json"].update(total_ballots=5),
            "results: 5 ballots published, recount gives 4",
            "5 ballots published, recount 4",
        ),
        (
            lambda f: f["quarantine.json"]["groups"][0].update(choices=[[2, 3]]),
            "quarantine: ballots to subtract are in no epoch: 2,3",
            "ballots to subtract are in no epoch",
        ),
        (
            lambda f: f["quarantine.json"]["groups"][1].update(trackers=["T9"]),
            "quarantine farm: trackers in no epoch: T9",
            "quarantine farm: trackers in no epoch",
        ),
        (
            lambda f: f[epoch_name(2)]["choices"][0].append(4),
            "epoch 2: its choice lists do not give the committed choices_root",
            "epoch 2: roots differ",
        ),
        (
            lambda f: f[epoch_name(1)]["choices"].__setitem__(0, [1, 1]),
            "epoch 1: its choice lists do not give the committed choices_root",
            "epoch 1: invalid ballot 1,1",
        ),
        (
            lambda f: f["results.json"].update(winners=[1, 3]),
            "results: the winners by votes are not those published (A, B)",
            "winners are not those certainly in the top 2",
        ),
        (
            lambda f: f["audit-head.json"].update(intact=False, broken_at=17),
            "audit log: the chain breaks at event 17 (changed, removed or inserted)",
            "audit log: the chain breaks at event 17",
        ),
        (
            lambda f: f.pop(epoch_name(2)),
            "epoch 2: the package has no epochs/0002.json",
            "epoch 2: its file is missing",
        ),
        (
            lambda f: f["round.json"]["rules"].update(winners=3),
            "rules: the hash of round.json's rules does not match the rules commitment (seq 0)",
            "rules: round.json's rules do not match commitment seq 0",
        ),
    ],
)
def test_each_fault_is_named_by_both(tmp_path, change, ours, theirs):
    content = copy.deepcopy(files())
    change(content)
    data = pack(content)
    failed = verify_package(data).failed
    assert any(f.startswith(ours) for f in failed), failed
    done = standalone(tmp_path, data)
    assert done.returncode == 1 and theirs in done.stdout, done.stdout
    assert "NOT VERIFIED" in done.stdout


def test_an_undecided_group_is_not_counted():
    group = {"reason": "burst", "decision": None, "trackers": ["T5"], "choices": [[1, 3]]}
    assert verify_package(pack(files([group]))).ok
    # counted after review: its ballot is back in the tally
    counted = {"reason": "burst", "decision": "count", "trackers": ["T5"]}
    failed = verify_package(pack(files([counted]))).failed
    assert "results: 4 ballots published, recount gives 5" in failed


def test_saved_commitments_must_all_be_unchanged():
    content = files()
    saved = copy.deepcopy(content["commitments.json"])
    assert verify_package(pack(content), saved).ok
    assert verify_package(pack(content), saved["commitments"]).ok  # a bare list too
    saved["commitments"][1]["count"] = 4
    failed = verify_package(pack(content), saved).failed
    assert failed == ["saved commitments: seq 1 changed or missing since they were saved"]
    extra = {**saved["commitments"][2], "seq": 3}
    failed = verify_package(pack(content), [extra]).failed
    assert failed == ["saved commitments: seq 3 changed or missing since they were saved"]


def test_the_standalone_verifier_imports_only_the_standard_library():
    source = STANDALONE.read_text()
    imports = {
        line.split()[1] for line in source.splitlines() if line.startswith(("import ", "from "))
    }
    assert imports <= {"hashlib", "json", "sys", "zipfile", "collections"}
    assert len(source.splitlines()) < 160  # about a page
