"""Helpers of the tests over the app: settings, sample data, admin users, rounds."""

from __future__ import annotations

import itertools
import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

from litestar import Litestar
from litestar.testing import AsyncTestClient

from tests.support.servers import Backends
from voting.settings import Settings

#: The realistic shortlist of 28 profiles (a copy of shared/data/shortlist-sample.csv).
SAMPLE_CSV = Path(__file__).resolve().parents[2] / "data" / "shortlist-sample.csv"
ADMIN_PASSWORD = "correct-horse-battery"
OBSERVER_PASSWORD = "observer-password-1"
_slugs = itertools.count(1)


def make_settings(backends: Backends, **overrides: Any) -> Settings:
    """Test settings: generous limits, no background persister unless asked."""
    values: dict[str, Any] = {
        "database_url": backends.database_url,
        "redis_url": backends.redis_url,
        "redis_prefix": backends.prefix,
        "secret_keys": ("test-key-new", "test-key-old"),
        "identity_key": "test-identity-key",
        "data_dir": backends.data_dir,
        "ballot_rate": 100_000,
        "ballot_burst": 100_000,
        "run_persister": False,
        # new_voter() posts {}: device mode without proof of work (tests of the proof of
        # work turn it back on), and room for the suite's many credentials
        "challenge_required": False,
        "credential_rate": 100_000,
        "credential_burst": 100_000,
        "login_rate": 100_000,
        "login_burst": 100_000,
        "login_user_rate": 100_000,
        "login_user_burst": 100_000,
        "receipt_rate": 100_000,
        "receipt_burst": 100_000,
    }
    values.update(overrides)
    return Settings().replace(**values)


async def login(client: AsyncTestClient[Litestar], username: str, password: str) -> str:
    r = await client.post("/admin/api/v1/login", json={"username": username, "password": password})
    assert r.status_code == 200, r.text
    return str(r.json()["token"])


def unique_slug(stem: str = "round") -> str:
    return f"{stem}-{os.getpid()}-{next(_slugs)}-{secrets.token_hex(2)}"


RoundFactory = Callable[..., Any]


def round_factory(client: AsyncTestClient[Litestar], admin_headers: dict[str, str]) -> RoundFactory:
    """``await factory(status="open", **rules)``: a round filled from the sample CSV.

    Returns the admin view of the round plus ``candidate_ids`` (ordered by code).
    """

    async def factory(
        status: str = "open", csv: bytes | None = None, **rules: Any
    ) -> dict[str, Any]:
        body = {"slug": unique_slug(), "title": "Test round", **rules}
        r = await client.post("/admin/api/v1/rounds", json=body, headers=admin_headers)
        assert r.status_code == 201, r.text
        rnd = r.json()
        r = await client.post(
            f"/admin/api/v1/rounds/{rnd['id']}/candidates/import",
            content=csv if csv is not None else SAMPLE_CSV.read_bytes(),
            headers={**admin_headers, "Content-Type": "text/csv"},
        )
        assert r.status_code == 200, r.text
        rnd["candidate_ids"] = [c["id"] for c in r.json()["candidates"]]
        if status in ("open", "paused", "closed"):
            r = await client.post(f"/admin/api/v1/rounds/{rnd['id']}/open", headers=admin_headers)
            assert r.status_code == 200, r.text
        if status == "paused":
            r = await client.post(f"/admin/api/v1/rounds/{rnd['id']}/pause", headers=admin_headers)
            assert r.status_code == 200, r.text
        if status == "closed":
            r = await client.post(
                f"/admin/api/v1/rounds/{rnd['id']}/close?wait=true", headers=admin_headers
            )
            assert r.status_code == 200, r.text
        rnd["status"] = status
        return rnd

    return factory
