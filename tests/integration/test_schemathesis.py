"""Property-based fuzzing of the public and the admin API from their own OpenAPI schema
(schemathesis).

Every operation under ``/api/v1`` and ``/admin/api/v1`` gets a bounded number of generated
requests (valid and invalid bodies, paths, query and headers; and some aimed at a real open
round and a real draft, both with the sample photos) against a real ``voting serve`` process
with the proof of work required and console OTP senders, so that every route can answer
normally. It runs on a database and key prefix of its own, since the admin operations it
generates change rounds.
Each answer must pass schemathesis's checks: not a 5xx, a status code the operation documents,
the documented media type, and a body that fits the documented schema.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hypothesis_settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.support.app import ADMIN_PASSWORD, SAMPLE_CSV
from tests.support.servers import Backends, own_service

SAMPLE_PHOTOS = SAMPLE_CSV.with_name("shortlist-sample-photos.zip")
MAX_EXAMPLES = 20  # per operation and kind of data
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
#: not fuzzed: it would end the session the other admin operations are called with (the
#: door's tests cover it)
SKIP_ADMIN = {"/admin/api/v1/logout"}


class Api:
    """The fuzzed server: its URL, a bearer header of an admin, an open and a draft round,
    and a candidate (with a photo) of each round."""

    def __init__(
        self,
        url: str,
        admin: dict[str, str],
        open_round: int,
        draft: int,
        candidates: dict[int, int],
    ) -> None:
        self.url, self.admin, self.open_round, self.draft = url, admin, open_round, draft
        self.candidates = candidates


def _prepare(url: str) -> tuple[dict[str, str], int, int, dict[int, int]]:
    with httpx.Client(base_url=url, timeout=30) as http:
        r = http.post("/admin/api/v1/login", json={"username": "admin", "password": ADMIN_PASSWORD})
        r.raise_for_status()
        admin = {"Authorization": f"Bearer {r.json()['token']}"}
        ids = []
        candidates = {}
        for opened in (True, False):
            r = http.post(
                "/admin/api/v1/rounds",
                json={"slug": f"fuzz-{secrets.token_hex(3)}", "title": "Fuzz"},
                headers=admin,
            )
            r.raise_for_status()
            round_id = r.json()["id"]
            r = http.post(
                f"/admin/api/v1/rounds/{round_id}/candidates/import",
                content=SAMPLE_CSV.read_bytes(),
                headers={**admin, "Content-Type": "text/csv"},
            )
            r.raise_for_status()
            candidates[round_id] = r.json()["candidates"][0]["id"]
            r = http.post(
                f"/admin/api/v1/rounds/{round_id}/photos",
                content=SAMPLE_PHOTOS.read_bytes(),
                headers={**admin, "Content-Type": "application/zip"},
            )
            r.raise_for_status()
            if opened:
                http.post(f"/admin/api/v1/rounds/{round_id}/open", headers=admin).raise_for_status()
            ids.append(round_id)
    return admin, ids[0], ids[1], candidates


@pytest.fixture(scope="module")
def api(backends: Backends) -> Iterator[Api]:
    with own_service(
        backends,
        "fuzz",
        [("admin", ADMIN_PASSWORD, "admin")],
        VOTING_RUN_PERSISTER="false",
        VOTING_CHALLENGE_REQUIRED="true",
        VOTING_EMAIL_SENDER="console",
        VOTING_SMS_SENDER="console",
    ) as url:
        yield Api(url, *_prepare(url))


def fuzz(api: Api, path_regex: str, headers: dict[str, str], skip: set[str]) -> list[str]:
    """Run every operation under ``path_regex``; the failed checks, one line each."""
    schema = schemathesis.openapi.from_url(f"{api.url}/schema/openapi.json").include(
        path_regex=path_regex
    )
    operations = [r.ok() for r in schema.get_all_operations()]
    operations = [op for op in operations if op.path not in skip]
    assert len(operations) >= 10  # every route is in the schema
    failures: list[str] = []
    runs = []
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            runs.append(operation.as_strategy(generation_mode=mode))
        if "{round_id}" in operation.path:
            for round_id in (api.open_round, api.draft):
                path = {"round_id": round_id}
                if "{candidate_id}" in operation.path:
                    path["candidate_id"] = api.candidates[round_id]
                runs.append(operation.as_strategy(path_parameters=path))
    for strategy in runs:

        @given(case=strategy)
        @hypothesis_settings(
            max_examples=MAX_EXAMPLES,
            deadline=None,
            derandomize=True,
            database=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        def exercise(case: Any) -> None:
            case.headers = {**headers, **(case.headers or {})}
            try:
                case.call_and_validate(checks=CHECKS, timeout=10)
            except (Exception, BaseExceptionGroup) as exc:  # failed checks: collect, go on
                found = exc.exceptions if isinstance(exc, BaseExceptionGroup) else (exc,)
                for failure in found:
                    lines = [x.strip() for x in str(failure).strip().splitlines() if x.strip()]
                    failures.append(
                        f"{case.method} {case.operation.path}: {' | '.join(lines[:4])[:300]}"
                    )

        try:
            exercise()
        except Unsatisfiable:
            pass  # nothing of this operation can break its schema (e.g. GET /rounds)
    return failures


def test_public_api_conforms_to_its_schema(api: Api) -> None:
    failures = fuzz(api, r"^/api/v1/", {}, set())
    assert not failures, f"{len(failures)} failures:\n" + "\n".join(sorted(set(failures))[:30])


def test_admin_api_conforms_to_its_schema(api: Api) -> None:
    failures = fuzz(api, r"^/admin/api/v1/", api.admin, SKIP_ADMIN)
    assert not failures, f"{len(failures)} failures:\n" + "\n".join(sorted(set(failures))[:30])
