"""Logs: ``VOTING_LOG_FORMAT=json`` makes every line of every process one JSON object (the
app's, granian's and the standard library's records alike), secrets never appear, and a bad
format is refused by name."""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys
import time

import httpx
import pytest
import structlog

from tests.support.servers import free_port, run_voting, server_env, stop_process, wait_http
from voting import logs


def json_lines(text: str) -> list[dict]:
    """Every non-empty line of ``text`` parsed as a JSON object (fails on any other line)."""
    records = [json.loads(line) for line in text.splitlines() if line.strip()]
    for record in records:
        assert isinstance(record, dict)
        assert {"event", "level", "logger", "timestamp"} <= record.keys(), record
    return records


async def test_serve_with_workers_writes_only_json_and_no_secret(settings):
    port = free_port()
    env = server_env(
        settings,
        port,
        VOTING_RUN_PERSISTER="false",
        VOTING_LOG_FORMAT="json",
        VOTING_LOG_LEVEL="debug",
    )
    proc = subprocess.Popen(  # noqa: ASYNC220 - one process, started once
        [sys.executable, "-m", "voting.cli", "serve", "--workers", "2"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        await asyncio.to_thread(wait_http, f"http://127.0.0.1:{port}/healthz")
        async with httpx.AsyncClient(timeout=10) as http:
            assert (await http.get(f"http://127.0.0.1:{port}/api/v1/rounds")).status_code == 200
    finally:
        stop_process(proc)  # type: ignore[arg-type]
    out, err = proc.communicate(timeout=10)
    text = (out + err).decode()
    records = json_lines(text)
    loggers = {r["logger"] for r in records}
    assert "_granian" in loggers  # granian's own records, through the same formatter
    assert any("Spawning worker-2" in r["event"] for r in records)
    for secret in (*settings.keys.secret_keys, settings.keys.identity_key):
        assert secret not in text


async def test_stdlib_warnings_of_the_persister_process_are_json(settings):
    down = free_port()  # nothing listens: every Redis call of the persister fails
    proc = subprocess.Popen(  # noqa: ASYNC220 - one process, started once
        [sys.executable, "-m", "voting.cli", "persister"],
        env=server_env(
            settings,
            free_port(),
            VOTING_REDIS_URL=f"redis://127.0.0.1:{down}/0",
            VOTING_REDIS_TIMEOUT="0.5",
            VOTING_LOG_FORMAT="json",
        ),
        stderr=subprocess.PIPE,
    )
    try:
        await asyncio.sleep(4)
    finally:
        proc.kill()  # its records so far are whole lines; how it stops is not tested here
    _, err = proc.communicate(timeout=10)
    records = json_lines(err.decode())
    warnings = [r for r in records if r["logger"].startswith("voting.")]
    assert warnings and all(r["level"] == "warning" for r in warnings)
    assert any("Error 111 connecting" in r["event"] for r in warnings)


def test_a_bad_log_format_is_refused_by_name(settings):
    done = run_voting(settings, "migrate", VOTING_LOG_FORMAT="xml")
    assert done.returncode == 2
    assert "VOTING_LOG_FORMAT must be one of text, json, got 'xml'" in done.stderr


@pytest.fixture
def restore_logging():
    """Put the root logger and structlog back as they were after a test that configures
    them."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    structlog.reset_defaults()


def test_json_records_carry_exceptions_and_hide_secret_values(capsys, restore_logging):
    logs.configure("json", "info")
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("voting.test").exception("it failed")
    structlog.get_logger("voting.test").warning(
        "login", username="ana", password="hunter2", voter_token="t0k", round_id=7
    )
    logging.getLogger("voting.test").debug("below the level")
    records = json_lines(capsys.readouterr().err)
    assert len(records) == 2
    failed, login = records
    assert failed["level"] == "error" and "ValueError: boom" in failed["exception"]
    assert login["password"] == login["voter_token"] == logs.REDACTED
    assert (login["username"], login["round_id"], login["event"]) == ("ana", 7, "login")


def test_text_records_are_one_readable_line(capsys, restore_logging):
    logs.configure("text", "info")
    logging.getLogger("voting.test").warning("backlog %d", 12)
    line = capsys.readouterr().err.strip()
    assert "backlog 12" in line and "warning" in line and "voting.test" in line
    assert not line.startswith("{")
    with pytest.raises(ValueError, match="text or json"):
        logs.formatter("xml")


def test_timestamps_are_utc_iso(capsys, restore_logging):
    logs.configure("json", "info")
    logging.getLogger("voting.test").info("now")
    (record,) = json_lines(capsys.readouterr().err)
    assert record["timestamp"].endswith("Z")
    assert record["timestamp"][:4] == time.strftime("%Y", time.gmtime())
