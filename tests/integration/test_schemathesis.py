"""Property-based fuzzing of the public API from its own OpenAPI schema (schemathesis).

Every operation under ``/api/v1`` gets a bounded number of generated requests (valid and
invalid bodies, paths, headers) against a real ``voting serve`` process on the test database
and Redis, with the proof of work required and console OTP senders (so that every route can
answer normally). The check: no answer is a 5xx.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hypothesis_settings
from hypothesis.errors import Unsatisfiable
from schemathesis.generation import GenerationMode

from tests.support.servers import free_port, server_env, wait_http
from voting.settings import Settings

MAX_EXAMPLES = 25  # per operation and kind of data: about 20 s in all here


@pytest.fixture(scope="module")
def api_url(settings: Settings, live_server: Any) -> Iterator[str]:
    """A server with every identity channel able to answer (and an open round around)."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "voting.cli", "serve", "--public"],
        env=server_env(
            settings,
            port,
            VOTING_RUN_PERSISTER="false",
            VOTING_CHALLENGE_REQUIRED="true",
            VOTING_EMAIL_SENDER="console",
            VOTING_SMS_SENDER="console",
        ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz")
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="module")
def public_schema(api_url: str) -> Any:
    return schemathesis.openapi.from_url(f"{api_url}/schema/openapi.json").include(
        path_regex=r"^/api/v1/"
    )


def test_public_api_never_answers_5xx(public_schema: Any, live_server: Any) -> None:
    """Each public operation gets MAX_EXAMPLES requests fitting its schema, as many not fitting
    it, and (when it has a ``round_id``) as many aimed at the open round; collects every 5xx."""
    failures: list[str] = []
    operations = [result.ok() for result in public_schema.get_all_operations()]
    assert len(operations) >= 10  # every public route is in the schema
    runs = []
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            runs.append(operation.as_strategy(generation_mode=mode))
        if "{round_id}" in operation.path:
            runs.append(operation.as_strategy(path_parameters={"round_id": live_server.round_id}))

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
            response = case.call(timeout=10)
            if response.status_code >= 500:
                failures.append(
                    f"{case.method} {case.formatted_path} -> {response.status_code}: "
                    f"{response.text[:200]} (body {case.body!r:.200})"
                )

        try:
            exercise()
        except Unsatisfiable:
            pass  # nothing of this operation can break its schema (e.g. GET /rounds)
    assert not failures, "\n".join(failures[:20])
