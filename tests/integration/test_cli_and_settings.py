"""The ``voting`` command, settings from the environment, and signing-key rotation."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from tests.support.servers import run_voting as voting
from tests.support.voters import new_voter
from voting.identity.tokens import Signers, TokenInvalid
from voting.live.keys import RoundKeys
from voting.settings import Settings, SettingsError


async def test_create_user_from_env_and_stdin(settings, client):
    done = await asyncio.to_thread(
        voting,
        settings,
        "admin",
        "create-user",
        "cli-admin",
        "--role",
        "admin",
        VOTING_ADMIN_PASSWORD="from-env-password",
    )
    assert done.returncode == 0, done.stderr
    assert "from-env-password" not in done.stdout + done.stderr
    r = await client.post(
        "/admin/api/v1/login", json={"username": "cli-admin", "password": "from-env-password"}
    )
    assert r.status_code == 200 and r.json()["role"] == "admin"
    done = await asyncio.to_thread(
        voting,
        settings,
        "admin",
        "create-user",
        "cli-observer",
        "--role",
        "observer",
        stdin="from-stdin-password\n",
    )
    assert done.returncode == 0, done.stderr
    r = await client.post(
        "/admin/api/v1/login",
        json={"username": "cli-observer", "password": "from-stdin-password"},
    )
    assert r.status_code == 200 and r.json()["role"] == "observer"


async def test_create_user_errors(settings, admin_users):
    dup = await asyncio.to_thread(
        voting, settings, "admin", "create-user", "admin", VOTING_ADMIN_PASSWORD="whatever-123"
    )
    assert dup.returncode == 2
    assert "already exists" in dup.stderr
    short = await asyncio.to_thread(
        voting, settings, "admin", "create-user", "shorty", VOTING_ADMIN_PASSWORD="short"
    )
    assert short.returncode == 2
    assert "at least 8" in short.stderr
    bad_role = await asyncio.to_thread(
        voting,
        settings,
        "admin",
        "create-user",
        "x",
        "--role",
        "root",
        VOTING_ADMIN_PASSWORD="whatever-123",
    )
    assert bad_role.returncode == 2


async def test_reconcile_command(settings, client, make_round, services):
    rnd = await make_round()
    r = await client.post(
        f"/api/v1/rounds/{rnd['id']}/ballots",
        json={"choices": rnd["candidate_ids"][:2]},
        headers=await new_voter(client),
    )
    assert r.status_code == 201
    pending = await asyncio.to_thread(voting, settings, "reconcile", str(rnd["id"]))
    assert pending.returncode == 0, pending.stderr
    assert "(0 persisted, 1 in the backlog)" in pending.stdout
    await services.persister.drain(rnd["id"])
    clean = await asyncio.to_thread(voting, settings, "reconcile", str(rnd["id"]))
    assert clean.returncode == 0, clean.stderr
    assert "(1 persisted, 0 in the backlog)" in clean.stdout
    # a tally Redis holds that the record does not: exit 1 with the difference
    keys = RoundKeys(settings.redis.prefix, rnd["id"])
    await services.redis.hincrby(keys.tally, str(rnd["candidate_ids"][5]), 1)
    bad = await asyncio.to_thread(voting, settings, "reconcile", str(rnd["id"]))
    assert bad.returncode == 1
    assert "MISMATCH" in bad.stderr and str(rnd["candidate_ids"][5]) in bad.stderr


async def test_migrate_command_is_idempotent(settings):
    done = await asyncio.to_thread(voting, settings, "migrate")
    assert done.returncode == 0, done.stderr
    assert "migrations applied" in done.stdout


async def test_bad_setting_is_a_clear_error(settings):
    done = await asyncio.to_thread(voting, settings, "migrate", VOTING_BALLOT_RATE="many")
    assert done.returncode == 2
    assert "VOTING_BALLOT_RATE must be an integer" in done.stderr


def test_settings_from_env_and_secrets_never_shown(tmp_path):
    s = Settings.from_env(
        {
            "VOTING_SECRET_KEYS": "new-secret, old-secret",
            "VOTING_IDENTITY_KEY": "identity-secret",
            "VOTING_ADMIN_PASSWORD": "admin-secret",
            "VOTING_DATABASE_URL": "postgresql://u@h/db",
            "VOTING_DATA_DIR": str(tmp_path),
            "VOTING_COOKIE_SECURE": "true",
            "VOTING_PORT": "9000",
        }
    )
    assert s.keys.secret_keys == ("new-secret", "old-secret")
    assert s.database.url == "postgresql+asyncpg://u@h/db"
    assert s.server.cookie_secure is True and s.server.port == 9000
    text = repr(s) + str(s)
    for secret in ("new-secret", "old-secret", "identity-secret", "admin-secret"):
        assert secret not in text
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.server.port = 1  # type: ignore[misc]


def test_generated_keys_are_stored_once(tmp_path):
    a = Settings.from_env({"VOTING_DATA_DIR": str(tmp_path)})
    b = Settings.from_env({"VOTING_DATA_DIR": str(tmp_path)})
    assert a.keys.secret_keys == b.keys.secret_keys and len(a.keys.secret_keys[0]) == 64
    assert a.keys.identity_key == b.keys.identity_key != a.keys.secret_keys[0]
    assert (tmp_path / "secret_key").stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"VOTING_PORT": "x"}, "VOTING_PORT must be an integer"),
        ({"VOTING_BALLOT_BURST": "0"}, "VOTING_BALLOT_BURST must be >= 1"),
        ({"VOTING_IPV4_PREFIX": "33"}, "VOTING_IPV4_PREFIX must be <= 32"),
        ({"VOTING_RUN_PERSISTER": "maybe"}, "VOTING_RUN_PERSISTER must be a boolean"),
    ],
)
def test_bad_settings(tmp_path, env, message):
    with pytest.raises(SettingsError, match=message):
        Settings.from_env({"VOTING_DATA_DIR": str(tmp_path), **env})


def test_key_rotation():
    old = Signers.from_keys(("old-key",), "id")
    rotated = Signers.from_keys(("new-key", "old-key"), "id")
    new_only = Signers.from_keys(("new-key",), "id")
    token = old.issue_voter()
    assert rotated.load_voter(token, 3600) == old.load_voter(token, 3600)  # old still verifies
    fresh = rotated.issue_voter()
    assert new_only.load_voter(fresh, 3600)  # the newest key signs
    with pytest.raises(TokenInvalid):
        old.load_voter(fresh, 3600)
    with pytest.raises(TokenInvalid):  # a receipt is not a voter token
        rotated.load_voter(rotated.issue_receipt(1, "b", [1]), 3600)


def test_voter_hash_is_keyed():
    a = Signers.from_keys(("k",), "identity-1")
    b = Signers.from_keys(("k",), "identity-2")
    assert a.voter_hash("email:x@example.org") == a.voter_hash("email:x@example.org")
    assert a.voter_hash("email:x@example.org") != b.voter_hash("email:x@example.org")
    assert len(a.voter_hash("x")) == 32
