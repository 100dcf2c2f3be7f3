"""Commitments and the audit package over real Postgres and Redis: a sample round of a few
hundred ballots cast through the API, sealed in several epochs, closed and made official;
its package verifies with ``voting verify`` and with the bundled ``verify.py`` run by a bare
Python; and each tampering with the record is caught and named (which epoch, which event,
which commitment). Every tampering is undone before the next test."""

from __future__ import annotations

import asyncio
import io
import json
import os
import random
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from tests.support.voters import error_code, new_voter
from voting.core.audit_package import verify_package
from voting.core.merkle import (
    EMPTY_ROOT,
    check_commitments,
    choices_root,
    commitment_of,
    make_commitment,
)
from voting.record import audit, queries
from voting.record.commitments import EpochPolicy, list_commitments, seal_due, seal_epoch
from voting.record.persister import Persister
from voting.services.audit_package import build_audit_package

BALLOTS = 300
PER_EPOCH = 100  # sealed by the policy after each 100 ballots; the rest at the count
POLICY = EpochPolicy(min_ballots=50, seconds=0)


async def cast(client, round_id: int, ids: list[int], rng: random.Random, n: int) -> None:
    for _ in range(n):
        voter = await new_voter(client)
        choices = rng.sample(ids, rng.randint(1, 16))
        r = await client.post(
            f"/api/v1/rounds/{round_id}/ballots", json={"choices": choices}, headers=voter
        )
        assert r.status_code == 201, r.text


async def make_official(client, round_id: int, admin_headers) -> dict[str, Any]:
    base = f"/admin/api/v1/rounds/{round_id}"
    results = (await client.get(f"/api/v1/rounds/{round_id}/results")).json()
    if results["tie"] is not None:
        tie = results["tie"]
        r = await client.post(
            f"{base}/tie-decision",
            json={
                "chosen": tie["candidate_ids"][: tie["seats"]],
                "decided_by": "Ban Thường vụ",
                "reason": "Theo Quy chế.",
                "decided_on": "2026-12-05",
            },
            headers=admin_headers,
        )
        assert r.status_code == 200, r.text
    r = await client.post(f"{base}/official", headers=admin_headers)
    assert r.status_code == 200, r.text
    return r.json()


@pytest_asyncio.fixture(scope="module")
async def sample(client, make_round, admin_headers, services) -> dict[str, Any]:
    """The sample round, official: its id, candidate ids, the commitments saved after the
    second epoch (as an observer would), and its package as first downloaded."""
    rnd = await make_round()
    rid, ids = rnd["id"], rnd["candidate_ids"]
    r = await client.get(f"/api/v1/rounds/{rid}/commitments")
    assert r.status_code == 200
    first = r.json()["commitments"]
    assert [c["kind"] for c in first] == ["rules"] and first[0]["count"] == 0
    assert first[0]["trackers_root"] == first[0]["choices_root"] == EMPTY_ROOT
    r = await client.get(f"/api/v1/rounds/{rid}/audit")
    assert r.status_code == 409 and error_code(r) == "audit_not_ready"
    rng = random.Random(10)
    saved = None
    for epoch in range(BALLOTS // PER_EPOCH):
        await cast(client, rid, ids, rng, PER_EPOCH if epoch < 2 else PER_EPOCH - 20)
        await services.persister.drain(rid)
        sealed = await seal_due(services.engine, rid, POLICY)
        assert sealed is not None and sealed.seq == epoch + 1
        if epoch == 1:
            await asyncio.sleep(READ_CACHE)  # the route's cache: see the new epochs
            saved = (await client.get(f"/api/v1/rounds/{rid}/commitments")).json()
    await cast(client, rid, ids, rng, 20)  # left in the open epoch: sealed at the count
    r = await client.post(f"/admin/api/v1/rounds/{rid}/close?wait=true", headers=admin_headers)
    assert r.status_code == 200 and r.json()["final_at"] is not None, r.text
    r = await client.get(f"/api/v1/rounds/{rid}/audit")
    assert r.status_code == 409 and error_code(r) == "audit_not_ready"  # final, not official
    await make_official(client, rid, admin_headers)
    r = await client.get(f"/api/v1/rounds/{rid}/audit")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/zip"
    return {"id": rid, "ids": ids, "saved": saved, "package": r.content}


READ_CACHE = 5.2  # seconds: the public routes' in-process cache, and a little


async def package_of(services, round_id: int) -> bytes:
    """The package rebuilt from the record as it is now (not the route's cached copy)."""
    return await build_audit_package(
        services.engine, services.hot, services.settings.redis.prefix, round_id
    )


ROOT = Path(__file__).resolve().parents[2]


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``python -m voting.cli ARGS`` of this tree, run in ``cwd``, without any VOTING_*."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VOTING_")}
    return subprocess.run(
        [sys.executable, "-m", "voting.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        env={**env, "PYTHONPATH": str(ROOT)},
    )


def failures(data: bytes, saved: Any = None) -> list[str]:
    return verify_package(data, saved).failed


def bare_python(folder: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    """``python3 verify.py package.zip EXTRA`` in ``folder`` with an isolated Python (``-I``:
    no user site, no PYTHONPATH, not even the script's folder's neighbours but itself)."""
    return subprocess.run(
        [sys.executable, "-I", "verify.py", "package.zip", *extra],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin"},
    )


def standalone(tmp_path: Path, data: bytes, *extra: str) -> subprocess.CompletedProcess[str]:
    """Put ``data`` and its own ``verify.py`` in a fresh folder and run it (:func:`bare_python`),
    as a stranger would."""
    folder = tmp_path / f"pkg{len(list(tmp_path.iterdir()))}"
    folder.mkdir()
    (folder / "package.zip").write_bytes(data)
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        (folder / "verify.py").write_bytes(zf.read("verify.py"))
    return bare_python(folder, *extra)


async def test_the_package_is_complete_and_verifies(sample, services, tmp_path):
    data = sample["package"]
    report = verify_package(data, sample["saved"])
    assert report.ok, report.failed
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        names = set(zf.namelist())
        assert {"round.json", "commitments.json", "results.json", "quarantine.json"} <= names
        assert {"audit-head.json", "verify.py", "README.txt"} <= names
        assert {"epochs/0001.json", "epochs/0002.json", "epochs/0003.json"} <= names
        assert "epochs/0004.json" in names  # the 20 sealed at the count
        chain = [commitment_of(c) for c in json.loads(zf.read("commitments.json"))["commitments"]]
        assert check_commitments(chain).ok
        assert [c.count for c in chain] == [0, 100, 100, 80, 20]
        epoch = json.loads(zf.read("epochs/0002.json"))
        assert epoch["trackers"] == sorted(epoch["trackers"]) and len(epoch["choices"]) == 100
        assert all(len(t) == 13 for t in epoch["trackers"])  # the voters' receipts
        results = json.loads(zf.read("results.json"))
        assert results["total_ballots"] == BALLOTS and results["official"] is True
        readme = zf.read("README.txt").decode()
        assert "python3 verify.py package.zip" in readme and "Tiếng Việt" in readme
        head = json.loads(zf.read("audit-head.json"))
        assert head["intact"] and head["round_events"][-1]["action"] == "results_official"
        assert b"import voting" not in zf.read("verify.py")
    # the same record gives the same bytes
    assert await package_of(services, sample["id"]) == data
    # voting verify, with and without the saved commitments
    saved = tmp_path / "saved.json"
    saved.write_text(json.dumps(sample["saved"]))
    pkg = tmp_path / "package.zip"
    pkg.write_bytes(data)
    done = await asyncio.to_thread(
        cli, "verify", str(pkg), "--commitments", str(saved), cwd=tmp_path
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "VERIFIED" in done.stdout and "FAILED" not in done.stdout
    assert "saved commitments: all 3 unchanged" in done.stdout
    assert not (tmp_path / ".voting").exists()  # offline: no generated keys written
    # the bundled verifier, by a bare Python
    done = await asyncio.to_thread(standalone, tmp_path, data, "--commitments", str(saved))
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip().endswith("VERIFIED")


async def test_a_stranger_downloads_unzips_and_verifies(sample, live_server, tmp_path):
    async with httpx.AsyncClient(base_url=live_server.base_url) as http:
        r = await http.get(f"/api/v1/rounds/{sample['id']}/audit")
        assert r.status_code == 200
        assert "attachment" in r.headers["content-disposition"]
        etag = r.headers["etag"]
        again = await http.get(
            f"/api/v1/rounds/{sample['id']}/audit", headers={"If-None-Match": etag}
        )
        assert again.status_code == 304 and again.content == b""
    assert r.content == sample["package"]  # another process builds the same bytes
    folder = tmp_path / "stranger"
    folder.mkdir()
    with zipfile.ZipFile(io.BytesIO(r.content)) as zf:
        zf.extractall(folder)
    (folder / "package.zip").write_bytes(r.content)
    done = await asyncio.to_thread(bare_python, folder)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "VERIFIED" in done.stdout


async def one_ballot(services, round_id: int, epoch: int) -> dict[str, Any]:
    async with services.engine.connect() as conn:
        row = (
            (
                await conn.execute(
                    text(
                        "SELECT * FROM ballots WHERE round_id = :r AND epoch = :e "
                        "ORDER BY ballot_id LIMIT 1"
                    ),
                    {"r": round_id, "e": epoch},
                )
            )
            .mappings()
            .one()
        )
    return dict(row)


async def sql(services, statement: str, **params: Any) -> None:
    async with services.engine.begin() as conn:
        await conn.execute(text(statement), params)


async def test_changed_choices_are_caught_and_the_epoch_named(sample, services, tmp_path):
    rid, ids = sample["id"], sample["ids"]
    victim = await one_ballot(services, rid, 2)
    other = [i for i in ids if i not in victim["choices"]][:1]
    await sql(
        services,
        "UPDATE ballots SET choices = :c WHERE ballot_id = :b",
        c=other,
        b=victim["ballot_id"],
    )
    try:
        data = await package_of(services, rid)
        failed = failures(data)
        assert any(f.startswith("epoch 2:") and "choices_root" in f for f in failed), failed
        assert not any(f.startswith(("epoch 1:", "epoch 3:")) for f in failed)
        assert any("votes differ" in f for f in failed)  # the recount no longer matches
        done = await asyncio.to_thread(standalone, tmp_path, data)
        assert done.returncode == 1 and "epoch 2: roots differ" in done.stdout, done.stdout
    finally:
        await sql(
            services,
            "UPDATE ballots SET choices = :c WHERE ballot_id = :b",
            c=victim["choices"],
            b=victim["ballot_id"],
        )
    assert verify_package(await package_of(services, rid)).ok


async def test_a_deleted_ballot_is_caught(sample, services, tmp_path):
    rid = sample["id"]
    victim = await one_ballot(services, rid, 3)
    await sql(services, "DELETE FROM ballots WHERE ballot_id = :b", b=victim["ballot_id"])
    try:
        data = await package_of(services, rid)
        failed = failures(data)
        assert any(f.startswith("epoch 3:") and "committed 80" in f for f in failed), failed
        assert any("ballots published, recount gives" in f for f in failed)
        done = await asyncio.to_thread(standalone, tmp_path, data)
        assert done.returncode == 1 and "epoch 3: count differs" in done.stdout
    finally:
        columns = ", ".join(victim)
        values = ", ".join(f":{k}" for k in victim)
        await sql(services, f"INSERT INTO ballots ({columns}) VALUES ({values})", **victim)
    assert verify_package(await package_of(services, rid)).ok


async def test_an_added_ballot_is_caught(sample, services, tmp_path):
    rid, ids = sample["id"], sample["ids"]
    added = "00000000-0000-4000-8000-000000000001"
    await sql(
        services,
        "INSERT INTO ballots (ballot_id, round_id, voter_hash, choices, cast_at, epoch) "
        "VALUES (:b, :r, 'forged', :c, now(), 1)",
        b=added,
        r=rid,
        c=ids[:3],
    )
    try:
        failed = failures(await package_of(services, rid))
        assert any(f.startswith("epoch 1:") and "committed 100" in f for f in failed), failed
        # a ballot slipped in under an epoch nobody committed is named too
        await sql(services, "UPDATE ballots SET epoch = 9 WHERE ballot_id = :b", b=added)
        data = await package_of(services, rid)
        failed = failures(data)
        assert any("epochs/0009.json" in f for f in failed), failed
    finally:
        await sql(services, "DELETE FROM ballots WHERE ballot_id = :b", b=added)
    assert verify_package(await package_of(services, rid)).ok


def audit_verify(settings) -> subprocess.CompletedProcess[str]:
    from tests.support.servers import service_env

    env = service_env(
        database_url=settings.database.url.replace("+asyncpg", ""),
        redis_url=settings.redis.url,
        prefix=f"{settings.redis.prefix}:verify",
        data_dir=settings.server.data_dir,
        port=0,
    )
    return subprocess.run(
        [sys.executable, "-m", "voting.cli", "audit", "verify"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


async def test_a_reordered_or_edited_audit_log_is_caught(sample, services, settings):
    rid = sample["id"]
    async with services.engine.connect() as conn:
        rows = (
            (
                await conn.execute(
                    text(
                        "SELECT id, action, details, created_at FROM audit_events "
                        "WHERE round_id = :r ORDER BY id"
                    ),
                    {"r": rid},
                )
            )
            .mappings()
            .all()
        )
    first, second = dict(rows[0]), dict(rows[1])  # round_create, candidates_import

    async def put(pairs: list[tuple[dict[str, Any], dict[str, Any]]]) -> None:
        """Write each source event's content into the target's row (the owner, trigger off)."""
        async with services.engine.begin() as conn:
            await conn.execute(text("ALTER TABLE audit_events DISABLE TRIGGER USER"))
            for target, source in pairs:
                await conn.execute(
                    text(
                        "UPDATE audit_events SET action = :action, "
                        "details = CAST(:details AS jsonb), created_at = :created_at "
                        "WHERE id = :id"
                    ),
                    {**source, "details": json.dumps(source["details"]), "id": target["id"]},
                )
            await conn.execute(text("ALTER TABLE audit_events ENABLE TRIGGER USER"))

    await put([(first, second), (second, first)])  # the two events change places
    try:
        async with services.engine.connect() as conn:
            assert (await audit.check(conn)).broken_at == first["id"]
        done = await asyncio.to_thread(audit_verify, settings)
        assert done.returncode == 1 and f"breaks at event {first['id']}" in done.stderr
        failed = failures(await package_of(services, rid))
        assert failed == [
            f"audit log: the chain breaks at event {first['id']} (changed, removed or inserted)"
        ]
    finally:
        await put([(first, first), (second, second)])
    async with services.engine.connect() as conn:
        assert (await audit.check(conn)).ok
    assert (await asyncio.to_thread(audit_verify, settings)).returncode == 0


async def test_the_commitments_table_refuses_update_and_delete(sample, services):
    rid = sample["id"]
    for statement in (
        "UPDATE commitments SET count = 1 WHERE round_id = :r AND seq = 1",
        "DELETE FROM commitments WHERE round_id = :r AND seq = 1",
    ):
        with pytest.raises(DBAPIError, match="append-only"):
            await sql(services, statement, r=rid)


async def test_an_edited_commitment_is_caught_by_the_chain_and_the_saved_copy(
    sample, services, tmp_path
):
    """The owner disables the trigger and edits seq 2; then, cleverer, rewrites the ballots,
    the epoch's roots, every later hash and the stored final count so that the package is
    consistent in itself: only the commitments saved during the vote catch that."""
    rid, saved = sample["id"], sample["saved"]
    saved_file = tmp_path / "saved.json"
    saved_file.write_text(json.dumps(saved))
    async with services.engine.connect() as conn:
        original = await list_commitments(conn, rid)
        final = (
            await conn.execute(text("SELECT final_tally FROM rounds WHERE id = :r"), {"r": rid})
        ).scalar_one()
    victim = await one_ballot(services, rid, 2)

    async def rewrite(chain, tally) -> None:
        async with services.engine.begin() as conn:
            await conn.execute(text("ALTER TABLE commitments DISABLE TRIGGER USER"))
            for c in chain:
                await conn.execute(
                    text(
                        "UPDATE commitments SET count = :count, trackers_root = :trackers_root, "
                        "choices_root = :choices_root, prev = :prev, hash = :hash "
                        "WHERE round_id = :round_id AND seq = :seq"
                    ),
                    {k: getattr(c, k) for k in c.__dataclass_fields__},
                )
            await conn.execute(text("ALTER TABLE commitments ENABLE TRIGGER USER"))
            await conn.execute(
                text("UPDATE rounds SET final_tally = CAST(:t AS jsonb) WHERE id = :r"),
                {"t": json.dumps(tally), "r": rid},
            )

    try:
        # 1. one field edited: the chain breaks at that seq
        import dataclasses

        edited = dataclasses.replace(original[2], count=101)
        await rewrite([edited], final)
        data = await package_of(services, rid)
        failed = failures(data, saved)
        assert any(f.startswith("commitment chain breaks at seq 2") for f in failed), failed
        assert any(f.startswith("saved commitments: seq 2") for f in failed), failed
        done = await asyncio.to_thread(standalone, tmp_path, data, "--commitments", str(saved_file))
        assert done.returncode == 1 and "commitment chain breaks at seq 2" in done.stdout
        # 2. everything rewritten consistently: a ballot of epoch 2 moved to another candidate
        moved_from = victim["choices"][0]
        moved_to = next(i for i in sample["ids"] if i not in victim["choices"])
        new_choices = [moved_to, *victim["choices"][1:]]
        await sql(
            services,
            "UPDATE ballots SET choices = :c WHERE ballot_id = :b",
            c=new_choices,
            b=victim["ballot_id"],
        )
        async with services.engine.connect() as conn:
            lists = [
                list(c)
                for (c,) in await conn.execute(
                    text("SELECT choices FROM ballots WHERE round_id = :r AND epoch = 2"),
                    {"r": rid},
                )
            ]
        forged, prev = [original[0], original[1]], original[1].hash
        for c in original[2:]:
            root = choices_root(lists) if c.seq == 2 else c.choices_root
            f = make_commitment(
                rid, c.seq, c.kind, c.closed_at, c.count, c.trackers_root, root, None, prev
            )
            forged.append(f)
            prev = f.hash
        tally = {**final["tally"]}
        tally[str(moved_from)] -= 1
        tally[str(moved_to)] += 1
        await rewrite(forged[2:], {**final, "tally": tally})
        data = await package_of(services, rid)
        assert failures(data) == []  # consistent in itself...
        failed = failures(data, saved)
        assert failed == ["saved commitments: seq 2 changed or missing since they were saved"]
        done = await asyncio.to_thread(standalone, tmp_path, data, "--commitments", str(saved_file))
        assert done.returncode == 1 and "saved commitment seq 2 changed" in done.stdout
        assert "epoch" not in done.stdout.split("FAILED")[1]  # ...but not to the saved copy
    finally:
        await sql(
            services,
            "UPDATE ballots SET choices = :c WHERE ballot_id = :b",
            c=victim["choices"],
            b=victim["ballot_id"],
        )
        await rewrite(original, final)
    assert verify_package(await package_of(services, rid), saved).ok


async def test_the_commitments_route(client, make_round, sample):
    rid = sample["id"]
    await asyncio.sleep(READ_CACHE)  # past the in-process copy read during the vote
    r = await client.get(f"/api/v1/rounds/{rid}/commitments")
    assert r.status_code == 200
    assert r.headers["cache-control"] == "public, max-age=10"
    body = r.json()
    assert body["round_id"] == rid and [c["seq"] for c in body["commitments"]] == [0, 1, 2, 3, 4]
    again = await client.get(
        f"/api/v1/rounds/{rid}/commitments", headers={"If-None-Match": r.headers["etag"]}
    )
    assert again.status_code == 304
    draft = await make_round(status="draft")
    for path in ("commitments", "audit"):
        for round_id in (draft["id"], 999_999, 2**40):
            r = await client.get(f"/api/v1/rounds/{round_id}/{path}")
            assert r.status_code == 404 and error_code(r) == "round_not_found", (path, round_id)


async def test_the_policy_seals_only_full_and_old_epochs(client, make_round, services):
    rnd = await make_round()
    rid = rnd["id"]
    await cast(client, rid, rnd["candidate_ids"], random.Random(3), 6)
    await services.persister.drain(rid)
    assert await seal_due(services.engine, rid, EpochPolicy(min_ballots=7, seconds=0)) is None
    assert await seal_due(services.engine, rid, EpochPolicy(min_ballots=6, seconds=3600)) is None
    young_but_big = EpochPolicy(min_ballots=6, seconds=3600, max_ballots=7)
    assert await seal_due(services.engine, rid, young_but_big) is None
    young_and_full = EpochPolicy(min_ballots=6, seconds=3600, max_ballots=6)
    sealed = await seal_due(services.engine, rid, young_and_full)  # full: sealed at once
    assert sealed is not None and (sealed.seq, sealed.count) == (1, 6)
    async with services.engine.begin() as conn:
        assert await seal_epoch(conn, rid) is None  # nothing left: nothing written
    async with services.engine.connect() as conn:
        assert [c.seq for c in await list_commitments(conn, rid)] == [0, 1]
    await cast(client, rid, rnd["candidate_ids"], random.Random(4), 2)  # the open epoch
    await services.persister.drain(rid)
    async with services.engine.connect() as conn:  # progress: sealed counts + open epoch
        assert await queries.persisted_count(conn, rid) == 8
        assert (await queries.postgres_tally(conn, rid))[1] == 8


async def test_the_persister_loop_seals_epochs(client, make_round, services):
    rnd = await make_round()
    rid = rnd["id"]
    await cast(client, rid, rnd["candidate_ids"], random.Random(4), 5)
    persister = Persister(
        services.redis,
        services.engine,
        services.settings.redis.prefix,
        interval=0.05,
        epochs=EpochPolicy(min_ballots=5, seconds=0, every=0.1),
    )
    stop = asyncio.Event()
    task = asyncio.create_task(persister.run(stop, flush_seconds=0.5))
    try:
        for _ in range(100):
            async with services.engine.connect() as conn:
                chain = await list_commitments(conn, rid)
            if len(chain) == 2:
                break
            await asyncio.sleep(0.1)
    finally:
        stop.set()
        await task
    assert [(c.seq, c.count) for c in chain] == [(0, 0), (1, 5)]
    assert check_commitments(chain).ok


def test_a_file_that_is_no_package_fails_cleanly(tmp_path):
    bad = tmp_path / "bad.zip"
    bad.write_bytes(b"not a zip")
    assert verify_package(bad.read_bytes()).failed == ["this file is not a ZIP audit package"]
    done = cli("verify", str(bad), cwd=tmp_path)
    assert done.returncode == 1 and "FAILED: this file is not a ZIP" in done.stdout
    done = cli("verify", str(tmp_path / "missing.zip"), cwd=tmp_path)
    assert done.returncode == 2 and "Traceback" not in done.stderr


async def test_a_round_with_a_voided_quarantine_group_verifies_and_recounts(
    client, make_round, admin_headers, tmp_path
):
    """The set-aside ballots are in the commitments like every ballot; the package lists
    their trackers by reason and, for a group voided by the committee, the choice lists to
    subtract, so a stranger's recount equals the published (counted) result."""
    rnd = await make_round(detection={"fast_redeem_seconds": 2})
    rid, ids = rnd["id"], rnd["candidate_ids"]
    rng = random.Random(7)
    careful = [await new_voter(client) for _ in range(12)]
    await asyncio.sleep(2.2)  # these voters read the page before they vote
    for voter in careful:
        r = await client.post(
            f"/api/v1/rounds/{rid}/ballots",
            json={"choices": rng.sample(ids, 3)},
            headers=voter,
        )
        assert r.status_code == 201, r.text
    hasty = []
    for _ in range(5):  # these vote the instant their credential arrives
        r = await client.post(
            f"/api/v1/rounds/{rid}/ballots",
            json={"choices": [ids[0], ids[1]]},
            headers=await new_voter(client),
        )
        assert r.status_code == 201, r.text
        hasty.append(r.json()["receipt"])
    r = await client.post(f"/admin/api/v1/rounds/{rid}/close?wait=true", headers=admin_headers)
    assert r.status_code == 200 and r.json()["final_at"] is not None, r.text
    r = await client.post(
        f"/admin/api/v1/rounds/{rid}/quarantine/fast_redeem",
        json={"decision": "void", "note": "Phiếu gửi tự động, không đọc trang."},
        headers=admin_headers,
    )
    assert r.status_code == 200, r.text
    await make_official(client, rid, admin_headers)
    r = await client.get(f"/api/v1/rounds/{rid}/audit")
    assert r.status_code == 200, r.text
    data = r.content
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        results = json.loads(zf.read("results.json"))
        quarantine = json.loads(zf.read("quarantine.json"))
        chain = json.loads(zf.read("commitments.json"))["commitments"]
    assert results["total_ballots"] == 12
    assert sum(c["count"] for c in chain) == 17  # every ballot is committed
    assert json.dumps(quarantine).count('"fast_redeem"') >= 1
    assert all(t in json.dumps(quarantine) for t in hasty)
    assert verify_package(data).ok, verify_package(data).failed
    done = await asyncio.to_thread(standalone, tmp_path, data)
    assert done.returncode == 0, done.stdout + done.stderr
