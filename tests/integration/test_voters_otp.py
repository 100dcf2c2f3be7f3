"""Email and phone modes over HTTP: one-time codes, brute force, throttles, real senders.

Codes are read from the console sender's in-memory outbox, or from a real SMTP server
(aiosmtpd) and a real HTTP SMS gateway (http.server) run by the tests. Redis and Postgres are
the real ones; the privacy test scans both for addresses and numbers in clear.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import json
import re
import threading
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import pytest_asyncio
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import text

from tests.support.app import make_settings
from tests.support.servers import free_port
from tests.support.voters import error_code
from voting.app import create_app

CONSOLE = {"email_sender": "console", "sms_sender": "console", "otp_resend_interval": 0}


def outbox_code(app: Litestar, channel: str, to: str) -> str:
    """The last code the console sender of ``app`` sent to ``to``."""
    code = app.state.services.voters.senders[channel].last_code(to)
    assert code is not None, f"no {channel} sent to {to}"
    return str(code)


@pytest_asyncio.fixture(scope="module")
async def otp_app(backends: Any) -> AsyncIterator[tuple[Litestar, AsyncTestClient[Litestar]]]:
    """An app with console senders and no resend interval (throttles are tested apart)."""
    app = create_app(make_settings(backends, **CONSOLE))
    async with AsyncTestClient(app=app) as c:
        yield app, c


async def send(client: Any, **body: Any) -> Any:
    body.setdefault("consent", True)
    return await client.post("/api/v1/voters/otp", json=body)


async def verify(client: Any, **body: Any) -> Any:
    r = await client.post("/api/v1/voters", json=body)
    client.cookies.clear()
    return r


async def cast(client: Any, rnd: dict[str, Any], token: str, n: int = 1) -> Any:
    return await client.post(
        f"/api/v1/rounds/{rnd['id']}/ballots",
        json={"choices": rnd["candidate_ids"][:n]},
        headers={"Authorization": f"Bearer {token}"},
    )


async def test_email_mode_end_to_end_one_ballot_per_address(otp_app, make_round):
    app, c = otp_app
    rnd = await make_round(identity_mode="email")
    r = await send(c, email="An.Nguyen@Gmail.com", round_id=rnd["id"])
    assert r.status_code == 202, r.text
    assert r.json() == {
        "channel": "email",
        "sent_to": "a***@gmail.com",
        "expires_in": 300,
        "resend_after": 0,
    }
    code = outbox_code(app, "email", "annguyen@gmail.com")
    assert re.fullmatch(r"[0-9]{6}", code)
    r = await verify(c, email="an.nguyen@gmail.com", otp=code, round_id=rnd["id"])
    assert r.status_code == 201, r.text
    assert (r.json()["mode"], r.json()["round_id"]) == ("email", rnd["id"])
    first = await cast(c, rnd, r.json()["voter_token"], 2)
    assert first.status_code == 201, first.text

    # another spelling of the same mailbox, a second credential (not bound to the round)
    r = await send(c, email="  AnNguyen+binh.chon@googlemail.com ")
    assert r.status_code == 202
    code = outbox_code(app, "email", "annguyen@gmail.com")
    r = await verify(c, email="annguyen@gmail.com", otp=code)
    assert r.status_code == 201 and r.json()["round_id"] is None
    again = await cast(c, rnd, r.json()["voter_token"])
    assert again.status_code == 409
    assert error_code(again) == "already_voted"
    assert again.json()["error"]["ballot_id"] == first.json()["ballot_id"]


async def test_code_is_single_use(otp_app):
    app, c = otp_app
    await send(c, email="single.use@example.org")
    code = outbox_code(app, "email", "single.use@example.org")
    assert (await verify(c, email="single.use@example.org", otp=code)).status_code == 201
    r = await verify(c, email="single.use@example.org", otp=code)
    assert r.status_code == 400
    assert error_code(r) == "otp_expired"
    # a newer code replaces an older one
    await send(c, email="single.use@example.org")
    old = outbox_code(app, "email", "single.use@example.org")
    await send(c, email="single.use@example.org")
    new = outbox_code(app, "email", "single.use@example.org")
    if old != new:
        r = await verify(c, email="single.use@example.org", otp=old)
        assert error_code(r) == "otp_invalid"
    assert (await verify(c, email="single.use@example.org", otp=new)).status_code == 201


async def test_phone_mode_end_to_end(otp_app, make_round):
    app, c = otp_app
    rnd = await make_round(identity_mode="phone")
    r = await send(c, phone="0912 345 678", round_id=rnd["id"])
    assert r.status_code == 202, r.text
    assert r.json()["sent_to"] == "+8491*****78"
    code = outbox_code(app, "phone", "+84912345678")
    r = await verify(c, phone="+84 91 234 5678", otp=code, round_id=rnd["id"])
    assert r.status_code == 201, r.text
    assert (await cast(c, rnd, r.json()["voter_token"])).status_code == 201
    for bad in ("024 3825 1234", "+1 202 555 0100", "12345", "số điện thoại"):
        r = await send(c, phone=bad)
        assert r.status_code == 400, bad
        assert error_code(r) == "phone_invalid", bad


async def test_brute_force_is_locked_out_and_retry_after_is_honoured(backends):
    settings = make_settings(backends, **{**CONSOLE, "otp_resend_interval": 2})
    app = create_app(settings)
    async with AsyncTestClient(app=app) as c:
        who = "brute.force@example.org"
        assert (await send(c, email=who)).status_code == 202
        code = outbox_code(app, "email", who)
        wrong = f"{(int(code) + 1) % 1_000_000:06d}"
        for left in (4, 3, 2, 1):
            r = await verify(c, email=who, otp=wrong)
            assert r.status_code == 400
            assert error_code(r) == "otp_invalid"
            assert r.json()["error"]["attempts_left"] == left
        r = await verify(c, email=who, otp=wrong)
        assert r.status_code == 429
        assert error_code(r) == "otp_locked"
        retry = int(r.headers["Retry-After"])
        assert 1 <= retry <= 2
        # the right code no longer helps
        r = await verify(c, email=who, otp=code)
        assert r.status_code == 429 and error_code(r) == "otp_locked"
        # asking too early is refused; after Retry-After a new code is sent and works
        early = await send(c, email=who)
        if early.status_code == 429:
            assert error_code(early) == "rate_limited"
        await asyncio.sleep(retry)
        assert (await send(c, email=who)).status_code == 202
        code = outbox_code(app, "email", who)
        assert (await verify(c, email=who, otp=code)).status_code == 201


async def test_resend_interval(backends):
    settings = make_settings(backends, **{**CONSOLE, "otp_resend_interval": 2})
    async with AsyncTestClient(app=create_app(settings)) as c:
        assert (await send(c, email="resend@example.org")).status_code == 202
        r = await send(c, email="RESEND@example.org")
        assert r.status_code == 429
        assert error_code(r) == "rate_limited"
        retry = int(r.headers["Retry-After"])
        assert 1 <= retry <= 2
        # another address is not affected
        assert (await send(c, email="other.resend@example.org")).status_code == 202
        await asyncio.sleep(retry)
        assert (await send(c, email="resend@example.org")).status_code == 202


async def test_sends_per_address_are_limited(backends):
    settings = make_settings(
        backends, **CONSOLE, otp_send_rate=2, otp_send_period=3600, otp_send_burst=2
    )
    async with AsyncTestClient(app=create_app(settings)) as c:
        for _ in range(2):
            assert (await send(c, phone="0987654321")).status_code == 202
        r = await send(c, phone="+84987654321")
        assert r.status_code == 429
        assert error_code(r) == "rate_limited"
        assert 1700 <= int(r.headers["Retry-After"]) <= 1800  # one interval: 3600 s / 2
        assert (await send(c, phone="0987654322")).status_code == 202


async def test_otp_errors(otp_app, make_round):
    _, c = otp_app
    device_round = await make_round()
    draft = await make_round(status="draft", identity_mode="email")
    sends = [
        ({"email": "x@example.org", "consent": False}, 400, "consent_required"),
        ({"email": "x@example.org", "consent": "yes"}, 400, "malformed"),
        ({"email": "no-at-sign"}, 400, "email_invalid"),
        ({"email": "two@@example.org"}, 400, "email_invalid"),
        ({"email": "dots..here@example.org"}, 400, "email_invalid"),
        ({"email": "x@localhost"}, 400, "email_invalid"),
        ({"email": "x@-bad-.org"}, 400, "email_invalid"),
        ({"email": "x@example.org", "phone": "0912345678"}, 400, "malformed"),
        ({}, 400, "malformed"),
        ({"email": "x" * 300}, 400, "malformed"),
        ({"email": "x@example.org", "round_id": device_round["id"]}, 400, "mode_mismatch"),
        ({"email": "x@example.org", "round_id": draft["id"]}, 404, "round_not_found"),
        ({"email": "x@example.org", "extra": True}, 400, "malformed"),
    ]
    for body, status, code in sends:
        body.setdefault("consent", True)
        r = await c.post("/api/v1/voters/otp", json=body)
        assert r.status_code == status, (body, r.text)
        assert error_code(r) == code, body
    verifies = [
        ({"email": "never.sent@example.org", "otp": "123456"}, 400, "otp_expired"),
        ({"email": "x@example.org", "otp": "12345"}, 400, "malformed"),
        ({"email": "x@example.org", "otp": "abcdef"}, 400, "malformed"),
        ({"email": "x@example.org"}, 400, "malformed"),
        ({"mode": "email", "otp": "123456"}, 400, "malformed"),
        ({"email": "x@example.org", "otp": "123456", "phone": "0912345678"}, 400, "malformed"),
        ({"email": "bad", "otp": "123456"}, 400, "email_invalid"),
        ({"phone": "bad", "otp": "123456"}, 400, "phone_invalid"),
        (
            {"email": "x@example.org", "otp": "123456", "round_id": device_round["id"]},
            400,
            "mode_mismatch",
        ),
    ]
    for body, status, code in verifies:
        r = await verify(c, **body)
        assert r.status_code == status, (body, r.text)
        assert error_code(r) == code, body


async def test_no_sender_configured(client):
    r = await send(client, email="nobody@example.org")
    assert r.status_code == 503
    assert error_code(r) == "otp_unavailable"
    r = await send(client, phone="0912345678")
    assert error_code(r) == "otp_unavailable"


async def test_no_address_or_number_in_clear_in_redis_or_postgres(otp_app, make_round, services):
    app, c = otp_app
    rnd = await make_round(identity_mode="email")
    email, phone = "privacy.check@example.org", "+84911222333"
    await send(c, email=email)
    await send(c, phone="0911 222 333")
    for channel, who in (("email", email), ("phone", phone)):
        body = {channel: who, "otp": outbox_code(app, channel, who)}
        token = (await verify(c, **body)).json()["voter_token"]
        if channel == "email":
            assert (await cast(c, rnd, token)).status_code == 201
    await send(c, email=email)  # a pending code, too
    await services.persister.drain(rnd["id"])
    needles = [email, "privacy.check", phone, "84911222333", "911222333"]
    redis = services.redis
    dump = []
    async for key in redis.scan_iter(match=f"{services.settings.redis.prefix}:*", count=1000):
        kind = await redis.type(key)
        dump.append(key)
        if kind == "string":
            dump.append(str(await redis.get(key)))
        elif kind == "hash":
            dump.append(repr(await redis.hgetall(key)))
        elif kind == "stream":
            dump.append(repr(await redis.xrange(key)))
    blob = "\n".join(dump)
    assert f"{services.settings.redis.prefix}:{{otp:" in blob  # the OTP state is there...
    for needle in needles:
        assert needle not in blob, needle  # ...but never the address or number
    async with services.engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT string_agg(t::text, '\n') FROM (SELECT * FROM ballots) t "
                "UNION ALL SELECT string_agg(a::text, '\n') FROM audit_events a"
            )
        )
        pg = "\n".join(str(v) for (v,) in rows)
    for needle in needles:
        assert needle not in pg, needle


# ---------- real senders ----------


class _Mailbox:
    def __init__(self) -> None:
        self.messages: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        self.messages.append(envelope)
        return "250 OK"


@pytest.fixture(scope="module")
def smtp_server() -> Iterator[tuple[_Mailbox, int]]:
    """A real SMTP server (aiosmtpd) on a free local port."""
    from aiosmtpd.controller import Controller

    mailbox = _Mailbox()
    port = free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield mailbox, port
    controller.stop()


async def test_smtp_sender_delivers_through_a_real_server(backends, smtp_server, make_round):
    mailbox, port = smtp_server
    settings = make_settings(
        backends,
        email_sender="smtp",
        smtp_host="127.0.0.1",
        smtp_port=port,
        smtp_tls="none",
        smtp_from="binhchon@example.org",
        otp_resend_interval=0,
    )
    rnd = await make_round(identity_mode="email")
    async with AsyncTestClient(app=create_app(settings)) as c:
        r = await send(c, email="Mail.Test@Example.org", round_id=rnd["id"])
        assert r.status_code == 202, r.text
        envelope = mailbox.messages[-1]
        assert envelope.rcpt_tos == ["mail.test@example.org"]
        assert envelope.mail_from == "binhchon@example.org"
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert message["Subject"] == "Mã xác thực bình chọn gương điển hình tiêu biểu"
        body = message.get_content()
        code = re.search(r"\b([0-9]{6})\b", body)
        assert code is not None, body
        r = await verify(c, email="mail.test@example.org", otp=code.group(1))
        assert r.status_code == 201, r.text
        assert (await cast(c, rnd, r.json()["voter_token"])).status_code == 201


async def test_smtp_failure_is_503_and_changes_nothing(backends):
    settings = make_settings(
        backends, email_sender="smtp", smtp_host="127.0.0.1", smtp_port=free_port(), smtp_tls="none"
    )
    async with AsyncTestClient(app=create_app(settings)) as c:
        r = await send(c, email="unreachable@example.org")
        assert r.status_code == 503
        assert error_code(r) == "otp_send_failed"
        assert int(r.headers["Retry-After"]) > 0
        r = await verify(c, email="unreachable@example.org", otp="000000")
        assert error_code(r) == "otp_expired"  # no code is pending


class _Gateway(BaseHTTPRequestHandler):
    status = 200
    received: list[tuple[str, dict[str, str], Any]] = []

    def do_POST(self) -> None:  # noqa: N802
        length = int(self.headers.get("content-length", "0"))
        body = json.loads(self.rfile.read(length))
        _Gateway.received.append((self.path, dict(self.headers), body))
        self.send_response(_Gateway.status)
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def sms_gateway() -> Iterator[str]:
    """A real HTTP server standing in for the SMS gateway; returns its URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Gateway)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/sms/send"
    server.shutdown()
    server.server_close()


async def test_sms_webhook_delivers_through_a_real_gateway(backends, sms_gateway, make_round):
    settings = make_settings(
        backends,
        sms_sender="webhook",
        sms_webhook_url=sms_gateway,
        sms_webhook_auth_header="X-Api-Key",
        sms_webhook_auth="gateway-secret",
        sms_template="BINH CHON: ma {code}, hieu luc {minutes} phut",
        otp_resend_interval=0,
    )
    rnd = await make_round(identity_mode="phone")
    async with AsyncTestClient(app=create_app(settings)) as c:
        _Gateway.status = 200
        r = await send(c, phone="0345 678 901", round_id=rnd["id"])
        assert r.status_code == 202, r.text
        path, headers, body = _Gateway.received[-1]
        assert path == "/sms/send"
        assert headers["X-Api-Key"] == "gateway-secret"
        assert body["to"] == "+84345678901"
        found = re.fullmatch(r"BINH CHON: ma ([0-9]{6}), hieu luc 5 phut", body["message"])
        assert found, body
        r = await verify(c, phone="+84345678901", otp=found.group(1), round_id=rnd["id"])
        assert r.status_code == 201, r.text
        assert (await cast(c, rnd, r.json()["voter_token"])).status_code == 201
        _Gateway.status = 500
        r = await send(c, phone="0345 678 902")
        assert r.status_code == 503
        assert error_code(r) == "otp_send_failed"


async def test_send_limit_retry_after_is_honoured(backends):
    settings = make_settings(
        backends, **CONSOLE, otp_send_rate=1, otp_send_period=2, otp_send_burst=1
    )
    async with AsyncTestClient(app=create_app(settings)) as c:
        assert (await send(c, email="honour.limit@example.org")).status_code == 202
        r = await send(c, email="honour.limit@example.org")
        assert r.status_code == 429
        assert error_code(r) == "rate_limited"
        retry = int(r.headers["Retry-After"])
        assert 1 <= retry <= 2
        await asyncio.sleep(retry)
        assert (await send(c, email="honour.limit@example.org")).status_code == 202
