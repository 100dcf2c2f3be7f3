"""Prometheus metrics: what each process counts, summed over granian's workers, served on the
metrics port only (never on the public one), and the persister's backlog gauges."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.support.servers import free_port, server_env, stop_process, wait_http
from voting.live.keys import RoundKeys
from voting.services.backlog_gauges import BacklogGauges, entry_age

BALLOTS_PATH = "/api/v1/rounds/{round_id}/ballots"


def scrape(url: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """``GET url`` parsed: (sample name, its labels) → value."""
    text = httpx.get(url, timeout=10).raise_for_status().text
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: dict, name: str, **labels: str) -> float:
    """The sum of the samples called ``name`` whose labels include ``labels``."""
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= ls)


async def test_two_workers_are_summed_on_the_metrics_port(settings, make_round, services, tmp_path):
    rnd = await make_round()
    port, metrics_port = free_port(), free_port()
    directory = tmp_path / "prometheus"
    directory.mkdir()
    (directory / "counter_1.db").write_bytes(b"left by a dead process")  # must be cleaned
    proc = subprocess.Popen(  # noqa: ASYNC220 - one process, started once
        [sys.executable, "-m", "voting.cli", "serve", "--workers", "2"],
        env=server_env(
            settings,
            port,
            VOTING_RUN_PERSISTER="false",
            VOTING_METRICS_PORT=str(metrics_port),
            PROMETHEUS_MULTIPROC_DIR=str(directory),
        ),
    )
    base = f"http://127.0.0.1:{port}"
    try:
        await asyncio.to_thread(wait_http, f"{base}/healthz", alive=lambda: proc.poll() is None)
        url = f"{base}/api/v1/rounds/{rnd['id']}/ballots"
        tokens = [services.signers.issue_voter() for _ in range(30)]
        choice = {"choices": rnd["candidate_ids"][:2]}
        # a client per request: new connections, spread over both workers by the kernel
        for token in tokens:
            async with httpx.AsyncClient(timeout=10) as http:
                auth = {"Authorization": f"Bearer {token}"}
                assert (await http.post(url, json=choice, headers=auth)).status_code == 201
        async with httpx.AsyncClient(timeout=10) as http:
            auth = {"Authorization": f"Bearer {tokens[0]}"}
            for _ in range(3):
                assert (await http.post(url, json=choice, headers=auth)).status_code == 409
            bad = await http.post(url, json={"choices": "x"}, headers=auth)
            assert bad.status_code == 400
            assert (await http.get(f"{base}/metrics")).status_code == 404  # not public
        samples = await asyncio.to_thread(scrape, f"http://127.0.0.1:{metrics_port}/metrics")
    finally:
        stop_process(proc)  # type: ignore[arg-type]
    round_label = str(rnd["id"])
    assert value(samples, "voting_ballots_accepted_total", round=round_label) == 30
    assert value(samples, "voting_ballots_refused_total", code="already_voted") == 3
    assert value(samples, "voting_ballots_refused_total", code="malformed") == 1
    # the script ran for the 30 accepted and the 3 repeated ballots, not for the malformed one
    assert value(samples, "voting_script_duration_seconds_count") == 33
    posts = value(
        samples, "voting_request_duration_seconds_count", method="POST", path=BALLOTS_PATH
    )
    assert posts == 34
    by_status = value(
        samples,
        "voting_request_duration_seconds_count",
        method="POST",
        path=BALLOTS_PATH,
        status_code="409",
        app_name="public+admin",
    )
    assert by_status == 3
    assert value(samples, "voting_request_duration_seconds_count", path="unrouted") == 1
    raw = f"/api/v1/rounds/{rnd['id']}/ballots"
    assert not [k for k in samples if ("path", raw) in k[1]]  # route templates, not raw paths
    assert not (directory / "counter_1.db").exists()
    pids = {p.stem.rsplit("_", 1)[1] for p in directory.glob("counter_*.db")}
    assert len(pids - {str(proc.pid)}) == 2  # each worker's own files, in the one directory


async def test_the_persister_process_serves_its_backlog(settings, make_round, services):
    rnd = await make_round()
    metrics_port = free_port()
    proc = subprocess.Popen(  # noqa: ASYNC220 - one process, started once
        [sys.executable, "-m", "voting.cli", "persister"],
        env=server_env(settings, free_port(), VOTING_METRICS_PORT=str(metrics_port)),
    )
    url = f"http://127.0.0.1:{metrics_port}/metrics"
    try:
        await asyncio.to_thread(wait_http, url, alive=lambda: proc.poll() is None)
        deadline = time.monotonic() + 30
        while True:  # sampled every 5 s once the persister runs
            samples = await asyncio.to_thread(scrape, url)
            if ("voting_backlog_ballots", frozenset({("round", str(rnd["id"]))})) in samples:
                break
            assert time.monotonic() < deadline, "no backlog gauge for the open round"
            await asyncio.sleep(0.5)
    finally:
        assert stop_process(proc) == 0  # type: ignore[arg-type]
    assert value(samples, "voting_backlog_ballots", round=str(rnd["id"])) == 0
    assert value(samples, "voting_persister_lag_seconds", round=str(rnd["id"])) == 0
    assert ("voting_ballots_persisted_total", frozenset()) in samples


async def test_backlog_and_lag_come_from_the_stream(make_round, services):
    rnd = await make_round()
    keys = RoundKeys(services.settings.redis.prefix, rnd["id"])
    gauges = BacklogGauges(services.engine, services.redis, keys.prefix)
    now_ms = int(time.time() * 1000)
    ids = [
        await services.redis.xadd(keys.stream, {"probe": "1"}, id=f"{now_ms - 3000}-{i}")
        for i in range(4)
    ]
    try:
        length, lag = (await gauges.sample())[rnd["id"]]
        assert length == 4
        assert 3.0 <= lag < 10.0
    finally:
        await services.redis.xdel(keys.stream, *ids)
    assert (await gauges.sample())[rnd["id"]] == (0, 0.0)


def test_entry_age_is_never_negative():
    assert entry_age("1000-0", 4000.0) == 3.0
    assert entry_age("5000-3", 4000.0) == 0.0  # a server clock ahead of ours


async def test_a_metrics_port_in_use_is_a_clear_error(settings, tmp_path: Path):
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        done = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "voting.cli", "persister"],
            env=server_env(settings, free_port(), VOTING_METRICS_PORT=str(taken)),
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 2
    assert f"error: cannot serve metrics on 127.0.0.1:{taken}" in done.stderr
    assert "Traceback" not in done.stderr


async def test_a_request_that_fails_before_answering_counts_as_500_and_methods_are_bounded():
    import pytest
    from prometheus_client import REGISTRY

    from voting.http.observe import observe_requests

    async def failing(scope, receive, send):
        scope["path_template"] = "/boom/{n}"
        raise RuntimeError("boom")

    async def answering(scope, receive, send):
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        pass

    def count(**labels: str) -> float:
        return REGISTRY.get_sample_value("voting_request_duration_seconds_count", labels) or 0.0

    labels = {"method": "GET", "path": "/boom/{n}", "status_code": "500", "app_name": "test"}
    before = count(**labels)
    with pytest.raises(RuntimeError):
        await observe_requests(failing, "test")({"type": "http", "method": "GET"}, receive, send)
    assert count(**labels) == before + 1
    odd = {"method": "other", "path": "unrouted", "status_code": "204", "app_name": "test"}
    before = count(**odd)
    app = observe_requests(answering, "test")
    await app({"type": "http", "method": "BREW"}, receive, send)
    await app({"type": "http", "method": "PROPFIND"}, receive, send)
    assert count(**odd) == before + 2
