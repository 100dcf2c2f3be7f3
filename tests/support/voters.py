"""Helpers of the voter-credential tests: a fresh credential, solving ALTCHA challenges like a
client does."""

from __future__ import annotations

import base64
import json
from typing import Any

import altcha
import httpx
from litestar import Litestar
from litestar.testing import AsyncTestClient


async def new_voter(client: AsyncTestClient[Litestar] | httpx.AsyncClient) -> dict[str, str]:
    """Headers carrying a fresh voter credential."""
    r = await client.post("/api/v1/voters", json={})
    assert r.status_code == 201, r.text
    client.cookies.clear()  # the bearer token is the credential under test, not the cookie
    return {"Authorization": f"Bearer {r.json()['voter_token']}"}


def error_code(r: Any) -> str:
    """The ``error.code`` of a JSON error answer."""
    return str(r.json()["error"]["code"])


def solve(challenge: dict[str, Any]) -> str:
    """Solve a challenge (the JSON of ``GET /challenge``) with the library's reference solver
    and return the widget's payload: base64 of ``{"challenge", "solution"}``."""
    solution = altcha.solve_challenge(altcha.Challenge.from_dict(challenge), timeout=120)
    assert solution is not None, "challenge not solved"
    return encode(challenge, solution.to_dict())


def encode(challenge: dict[str, Any], solution: dict[str, Any]) -> str:
    """A payload as the widget builds it (``btoa(JSON.stringify(...))``)."""
    body = {"challenge": challenge, "solution": solution}
    return base64.b64encode(json.dumps(body).encode()).decode()


async def fetch_and_solve(client: Any, round_id: int, **headers: str) -> str:
    """``GET /api/v1/challenge?round_id=N``, solved: a ready ``altcha`` payload for a device
    credential of that round (``headers``: e.g. ``X-Forwarded-For``, underscores for dashes)."""
    r = await client.get(
        "/api/v1/challenge",
        params={"round_id": round_id},
        headers={k.replace("_", "-"): v for k, v in headers.items()},
    )
    assert r.status_code == 200, r.text
    return solve(r.json())
