"""Retention: ``voting purge`` erases IP prefixes and voting codes of long-closed rounds; the
identity settings are validated and their secrets never shown."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, or_, select, update

from tests.integration.test_cli_and_settings import voting as run_voting
from tests.support.voters import new_voter
from voting.record import tables
from voting.record.purge import purge
from voting.settings import Settings, SettingsError


async def _closed_round_with_ballots(client, admin_headers, make_round, services, closed_days_ago):
    rnd = await make_round(identity_mode="code", status="draft")
    r = await client.post(
        f"/admin/api/v1/rounds/{rnd['id']}/codes", json={"count": 3}, headers=admin_headers
    )
    assert r.status_code == 201
    await client.post(f"/admin/api/v1/rounds/{rnd['id']}/open", headers=admin_headers)
    code = r.text.splitlines()[1].split(",")[2]
    token = (await client.post("/api/v1/voters", json={"code": code})).json()["voter_token"]
    client.cookies.clear()
    r = await client.post(
        f"/api/v1/rounds/{rnd['id']}/ballots",
        json={"choices": rnd["candidate_ids"][:1]},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert r.status_code == 201
    await client.post(f"/admin/api/v1/rounds/{rnd['id']}/close?wait=true", headers=admin_headers)
    async with services.engine.begin() as conn:
        await conn.execute(
            update(tables.rounds)
            .where(tables.rounds.c.id == rnd["id"])
            .values(closed_at=datetime.now(UTC) - timedelta(days=closed_days_ago))
        )
    return rnd


async def _counts(services, round_id):
    b, vc = tables.ballots, tables.voter_codes
    async with services.engine.connect() as conn:
        prefixes = await conn.scalar(  # ballots still holding network or browser data
            select(func.count()).where(
                b.c.round_id == round_id, or_(b.c.ip_prefix.is_not(None), b.c.agent.is_not(None))
            )
        )
        ballots = await conn.scalar(select(func.count()).where(b.c.round_id == round_id))
        codes = await conn.scalar(select(func.count()).where(vc.c.round_id == round_id))
    return int(prefixes or 0), int(ballots or 0), int(codes or 0)


async def test_purge_erases_prefixes_and_codes_after_retention(
    client, admin_headers, make_round, services
):
    old = await _closed_round_with_ballots(client, admin_headers, make_round, services, 40)
    recent = await _closed_round_with_ballots(client, admin_headers, make_round, services, 10)
    open_round = await make_round()
    await client.post(
        f"/api/v1/rounds/{open_round['id']}/ballots",
        json={"choices": open_round["candidate_ids"][:1]},
        headers=await new_voter(client),
    )
    await services.persister.drain(open_round["id"])
    assert await _counts(services, old["id"]) == (1, 1, 3)

    report = await purge(services.engine, 30)
    assert old["id"] in report.rounds and recent["id"] not in report.rounds
    assert report.ballots >= 1 and report.codes >= 3
    assert await _counts(services, old["id"]) == (0, 1, 0)  # the ballot stays, its prefix not
    assert await _counts(services, recent["id"]) == (1, 1, 3)
    assert (await _counts(services, open_round["id"]))[0] == 1
    async with services.engine.connect() as conn:
        events = await conn.scalar(
            select(func.count()).where(tables.audit_events.c.action == "purge")
        )
    assert events >= 1
    again = await purge(services.engine, 30)
    assert (again.ballots, again.codes) == (0, 0)

    # the command, with a shorter retention, reaches the recent round too
    done = await asyncio.to_thread(run_voting, services.settings, "purge", "--days", "5")
    assert done.returncode == 0, done.stderr
    assert "IP prefixes erased from" in done.stdout
    assert await _counts(services, recent["id"]) == (0, 1, 0)


def test_identity_settings(tmp_path):
    env = {"VOTING_DATA_DIR": str(tmp_path)}
    s = Settings.from_env(env)
    assert (
        s.challenge.required,
        s.challenge.pow_cost,
        s.challenge.pow_difficulty,
        s.challenge.ttl,
    ) == (
        True,
        5000,
        1000,
        300,
    )
    assert (s.limits.credential_rate, s.limits.credential_period, s.limits.credential_burst) == (
        300,
        60,
        50,
    )
    assert (s.otp.ttl, s.otp.attempts, s.otp.resend_interval) == (300, 5, 60)
    assert (s.email.sender, s.sms.sender, s.privacy.retention_days) == ("none", "none", 30)
    s = Settings.from_env(
        {
            **env,
            "VOTING_SMTP_PASSWORD": "smtp-secret-pw",
            "VOTING_SMS_WEBHOOK_AUTH": "Bearer sms-secret-token",
            "VOTING_SMS_SENDER": "webhook",
            "VOTING_SMS_WEBHOOK_URL": "https://sms.example.vn/send",
            "VOTING_CHALLENGE_REQUIRED": "false",
            "VOTING_EMAIL_SENDER": "SMTP",
        }
    )
    assert s.email.sender == "smtp" and s.challenge.required is False
    text = repr(s) + str(s)
    assert "smtp-secret-pw" not in text and "sms-secret-token" not in text


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"VOTING_EMAIL_SENDER": "pigeon"}, "VOTING_EMAIL_SENDER must be one of"),
        ({"VOTING_SMTP_TLS": "ssl3"}, "VOTING_SMTP_TLS must be one of"),
        ({"VOTING_SMS_SENDER": "webhook"}, "VOTING_SMS_WEBHOOK_URL"),
        ({"VOTING_SMS_TEMPLATE": "no code here"}, "VOTING_SMS_TEMPLATE"),
        ({"VOTING_SMS_TEMPLATE": "{code} {name}"}, "VOTING_SMS_TEMPLATE"),
        ({"VOTING_SMS_TEMPLATE": "{code"}, "VOTING_SMS_TEMPLATE"),
        ({"VOTING_POW_DIFFICULTY": "0"}, "VOTING_POW_DIFFICULTY must be >= 1"),
        ({"VOTING_CHALLENGE_REQUIRED": "sometimes"}, "VOTING_CHALLENGE_REQUIRED"),
        ({"VOTING_CREDENTIAL_BURST": "0"}, "VOTING_CREDENTIAL_BURST must be >= 1"),
        ({"VOTING_RETENTION_DAYS": "-1"}, "VOTING_RETENTION_DAYS must be >= 0"),
    ],
)
def test_bad_identity_settings(tmp_path, env, message):
    with pytest.raises(SettingsError, match=message):
        Settings.from_env({"VOTING_DATA_DIR": str(tmp_path), **env})
