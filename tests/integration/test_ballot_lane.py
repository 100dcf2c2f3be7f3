"""The two doors of casting (voting.http.ballots): the lean lane answers as the route does.

Each case is sent twice, once to the Litestar app alone (the documented route) and once to the
app behind the lane as the server runs it; status, error code and header names must be equal.
A counting wrapper proves which requests the lane answered itself and which it handed on.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from litestar.testing import AsyncTestClient

from tests.support.app import make_settings
from tests.support.voters import new_voter
from voting.app import create_app
from voting.http.ballots import MAX_BALLOT_BODY, ballot_lane
from voting.http.headers import SecurityHeaders


class Counting:
    """An ASGI app that counts the ballot POSTs that reach ``app`` (and has its ``state``)."""

    def __init__(self, app: Any) -> None:
        self.app, self.state, self.ballots = app, app.state, 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"].endswith("/ballots"):
            self.ballots += 1
        await self.app(scope, receive, send)


@pytest_asyncio.fixture
async def doors(backends, make_round) -> AsyncIterator[dict[str, Any]]:
    settings = make_settings(backends)
    route_app, lane_app = create_app(settings), create_app(settings)
    counting = Counting(lane_app)
    lane = ballot_lane(counting, SecurityHeaders.from_settings(settings.server))
    async with (
        AsyncTestClient(app=route_app) as route,
        AsyncTestClient(app=lane) as laned,
    ):
        rnd = await make_round()
        yield {"route": route, "lane": laned, "counting": counting, "round": rnd}


def _names(r: Any) -> set[str]:
    return {k.lower() for k in r.headers} - {"date"}


def _code(r: Any) -> str | None:
    body = r.json()
    return body["error"]["code"] if "error" in body else None


async def _both(doors: dict[str, Any], path: str, **kw: Any) -> tuple[Any, Any]:
    """The answers of the route and of the lane to one request (fresh voters when asked)."""
    answers = []
    for name in ("route", "lane"):
        c = doors[name]
        headers = dict(kw.get("headers", {}))
        if kw.get("voter"):
            headers.update(await new_voter(c))
        answers.append(await c.post(path, content=kw.get("content", b""), headers=headers))
    return answers[0], answers[1]


def _ballot(ids: list[int]) -> bytes:
    return ('{"choices":[' + ",".join(map(str, ids)) + "]}").encode()


JSON = {"Content-Type": "application/json"}


async def test_an_accepted_ballot_is_answered_alike_and_by_the_lane(doors):
    rnd, counting = doors["round"], doors["counting"]
    url = f"/api/v1/rounds/{rnd['id']}/ballots"
    route, lane = await _both(
        doors, url, content=_ballot(rnd["candidate_ids"][:3]), headers=JSON, voter=True
    )
    assert route.status_code == lane.status_code == 201, (route.text, lane.text)
    assert _names(route) == _names(lane)
    assert route.headers["content-type"] == lane.headers["content-type"] == "application/json"
    assert set(route.json()) == set(lane.json())
    assert lane.json()["choices"] == rnd["candidate_ids"][:3]
    uuid.UUID(lane.json()["ballot_id"])
    assert counting.ballots == 0  # the lane answered it without the app


async def test_already_voted_and_replay_alike(doors):
    rnd = doors["round"]
    url = f"/api/v1/rounds/{rnd['id']}/ballots"
    body = _ballot(rnd["candidate_ids"][:2])
    for name in ("route", "lane"):
        c = doors[name]
        voter = await new_voter(c)
        key = {"Idempotency-Key": uuid.uuid4().hex, **JSON, **voter}
        first = await c.post(url, content=body, headers=key)
        replay = await c.post(url, content=body, headers=key)
        assert first.status_code == replay.status_code == 201
        assert replay.json() == first.json()
        other = await c.post(url, content=_ballot(rnd["candidate_ids"][2:4]), headers=key)
        assert other.status_code == 422 and _code(other) == "idempotency_key_reused"
        again = await c.post(url, content=body, headers={**JSON, **voter})
        assert again.status_code == 409 and _code(again) == "already_voted"
        assert again.json()["error"]["ballot_id"] == first.json()["ballot_id"]
    assert doors["counting"].ballots == 0


@pytest.mark.parametrize(
    ("content", "status", "code"),
    [
        (b'{"choices": [999999]}', 400, "unknown_candidate"),
        (b'{"choices": []}', 400, "too_few_choices"),
        (b'{"choices": [1, 1]}', 400, None),  # duplicate_choice or unknown_candidate
        (b'{"choices": [1], "choices": [2]}', 400, "malformed"),
        (b'{"choices": "1"}', 400, "malformed"),
        (b"not json", 400, "malformed"),
        (b"[" * 5000 + b"]" * 5000, 400, None),  # over the size limit or nested too deeply
    ],
)
async def test_refusals_alike(doors, content, status, code):
    rnd = doors["round"]
    url = f"/api/v1/rounds/{rnd['id']}/ballots"
    if content == b'{"choices": [1, 1]}':
        first = rnd["candidate_ids"][0]
        content = f'{{"choices": [{first}, {first}]}}'.encode()
        code = "duplicate_choice"
    route, lane = await _both(doors, url, content=content, headers=JSON, voter=True)
    assert route.status_code == lane.status_code, (route.text, lane.text)
    assert _code(route) == _code(lane)
    if len(content) <= MAX_BALLOT_BODY:
        assert route.status_code == status
    if code is not None:
        assert _code(lane) == code
    assert _names(route) == _names(lane)


@pytest.mark.parametrize(
    ("headers", "status", "code", "lane_answers"),
    [
        ({"Authorization": "Basic abc"}, 401, "voter_token_invalid", True),
        ({"Authorization": "Bearer forged.token.value"}, 401, "voter_token_invalid", True),
        ({}, 401, "voter_token_required", False),  # no header: the cookie door
        ({"Idempotency-Key": "short"}, None, None, True),
        ({"Content-Type": "text/plain"}, 415, "unsupported_media_type", False),
        ({"Sec-Fetch-Site": "cross-site"}, 403, "cross_site_request", False),
        ({"Origin": "https://evil.example"}, 403, "cross_site_request", False),
    ],
)
async def test_header_cases_alike(doors, headers, status, code, lane_answers):
    rnd, counting = doors["round"], doors["counting"]
    url = f"/api/v1/rounds/{rnd['id']}/ballots"
    needs_voter = "Authorization" not in headers and headers != {}
    sent = {**JSON, **headers}
    route, lane = await _both(
        doors, url, content=_ballot(rnd["candidate_ids"][:1]), headers=sent, voter=needs_voter
    )
    assert route.status_code == lane.status_code, (route.text, lane.text)
    assert _code(route) == _code(lane)
    if status is not None:
        assert lane.status_code == status and _code(lane) == code
    assert _names(route) == _names(lane)
    assert (counting.ballots == 0) is lane_answers


async def test_unknown_round_and_long_id_alike(doors):
    for path in ("/api/v1/rounds/987654321/ballots", "/api/v1/rounds/0123/ballots"):
        route, lane = await _both(doors, path, content=b'{"choices":[1]}', headers=JSON, voter=True)
        assert route.status_code == lane.status_code == 404, path
        assert _code(route) == _code(lane)


async def test_a_body_over_the_limit_goes_to_the_route(doors):
    rnd, counting = doors["round"], doors["counting"]
    url = f"/api/v1/rounds/{rnd['id']}/ballots"
    big = b'{"choices": [' + b" " * MAX_BALLOT_BODY + b"1]}"
    route, lane = await _both(doors, url, content=big, headers=JSON, voter=True)
    assert route.status_code == lane.status_code == 413
    assert counting.ballots == 1
