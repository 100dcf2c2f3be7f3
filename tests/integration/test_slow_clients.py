"""Slow clients (slowloris): a connection whose request head or body comes too slowly is closed
within its timeout while other clients are answered at once, by the app server itself
(``VOTING_HEADER_TIMEOUT``, ``VOTING_BODY_TIMEOUT``) and by ``infra/nginx.conf`` in front of it.

Each slow connection drips one byte every :data:`DRIP` seconds, forever: a request head that
never ends, or a ``Content-Length`` body that would take minutes. Before these timeouts every
one of them was held for as long as the client liked."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.support.servers import (
    REPO,
    VotingProcess,
    free_port,
    running,
    server_env,
    spawn,
    stop_process,
    wait_http,
)

HEADER_TIMEOUT = 2  # seconds, VOTING_HEADER_TIMEOUT of the app under test
BODY_TIMEOUT = 3  # seconds, VOTING_BODY_TIMEOUT
DRIP = 0.25  # seconds between two bytes of a slow client
MARGIN = 2.5  # seconds past a timeout a busy 2-core machine may take to close
NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)

SLOW_HEAD = b"GET /healthz HTTP/1.1\r\nHost: voting.test\r\nX-Slow: "
BODY_HEAD = (
    b"POST /api/v1/voters HTTP/1.1\r\nHost: voting.test\r\nContent-Type: application/json\r\n"
    b"Content-Length: 600\r\n\r\n"
)


@dataclass
class Held:
    """How long the server kept one slow connection open, and what it answered."""

    seconds: float  # from the connection's opening (heads) or the end of its head (bodies)
    answer: bytes
    answered: float  # seconds to the answer's first byte (infinite without one)

    @property
    def status(self) -> int | None:
        m = re.match(rb"HTTP/1\.1 (\d{3}) ", self.answer)
        return int(m.group(1)) if m else None


async def hold(port: int, head: bytes, *, drip: bool = True, limit: float) -> Held:
    """Open a connection, send ``head``, then (``drip``) one byte every :data:`DRIP` s until the
    server closes it; give up after ``limit`` s (``seconds`` is then infinite)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    opened = time.monotonic()
    writer.write(head)
    await writer.drain()

    async def dripping() -> None:
        with contextlib.suppress(OSError):
            while True:
                await asyncio.sleep(DRIP)
                writer.write(b"a")
                await writer.drain()

    feeder = asyncio.create_task(dripping() if drip else asyncio.sleep(limit))
    answer = b""
    seconds = answered = float("inf")
    try:
        async with asyncio.timeout(limit):
            with contextlib.suppress(OSError):  # a reset is a close too
                while chunk := await reader.read(65536):
                    if not answer:
                        answered = time.monotonic() - opened
                    answer += chunk
            seconds = time.monotonic() - opened
    except TimeoutError:
        pass
    finally:
        feeder.cancel()
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    return Held(seconds, answer, answered)


async def patient(port: int) -> int:
    """A slow client within the limits: its head in four parts over 1.2 s (under
    HEADER_TIMEOUT), then its small body in three parts over 1.6 s (under BODY_TIMEOUT); the
    status of the answer."""
    body = b"{}"
    head = (
        b"POST /api/v1/voters HTTP/1.1\r\nHost: voting.test\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body)
    )
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for i in range(4):
            writer.write(head[i * len(head) // 4 : (i + 1) * len(head) // 4])
            await writer.drain()
            await asyncio.sleep(0.3)
        for part in (b"", b"{", b"}"):
            await asyncio.sleep(0.8 if part else 0)
            writer.write(part)
            await writer.drain()
        answer = await asyncio.wait_for(reader.read(65536), 10)
    finally:
        writer.close()
    m = re.match(rb"HTTP/1\.1 (\d{3}) ", answer)
    assert m, answer
    return int(m.group(1))


async def meanwhile(url: str, until: asyncio.Event) -> list[float]:
    """``GET url`` every 0.1 s until ``until`` is set: each answer's seconds (all must be 200)."""
    took = []
    async with httpx.AsyncClient(timeout=10) as http:
        while not until.is_set():
            started = time.monotonic()
            r = await http.get(url)
            took.append(time.monotonic() - started)
            assert r.status_code == 200, r.text
            await asyncio.sleep(0.1)
    return took


def summary(held: list[Held]) -> str:
    closed = sorted(h.seconds for h in held)
    return f"{len(held)} held, closed after {closed[0]:.2f}..{closed[-1]:.2f} s"


@pytest.fixture(scope="module")
def app_server(settings, tmp_path_factory) -> Iterator[VotingProcess]:
    """``voting serve`` with short header and body timeouts."""
    port = free_port()
    env = server_env(
        settings,
        port,
        VOTING_HEADER_TIMEOUT=str(HEADER_TIMEOUT),
        VOTING_BODY_TIMEOUT=str(BODY_TIMEOUT),
        VOTING_RUN_PERSISTER="false",
    )
    log = tmp_path_factory.mktemp("slow") / "serve.log"
    with running(VotingProcess("serve", ["serve", "--public"], env, log, port)) as proc:
        yield proc


async def test_the_app_server_closes_slow_heads_and_bodies(app_server):
    port = app_server.port
    assert port is not None
    limit = BODY_TIMEOUT + MARGIN + 3
    done = asyncio.Event()
    probe = asyncio.create_task(meanwhile(f"{app_server.url}/healthz", done))
    heads = [hold(port, SLOW_HEAD, limit=limit) for _ in range(100)]
    silent = [hold(port, b"", drip=False, limit=limit) for _ in range(20)]
    bodies = [hold(port, BODY_HEAD, limit=limit) for _ in range(100)]
    started = time.monotonic()
    held_heads, held_silent, held_bodies, status = await asyncio.gather(
        asyncio.gather(*heads), asyncio.gather(*silent), asyncio.gather(*bodies), patient(port)
    )
    done.set()
    took = await probe
    print(
        f"slow heads: {summary(held_heads)}; silent: {summary(held_silent)}; slow bodies: "
        f"{summary(held_bodies)}; /healthz meanwhile: {len(took)} answers, slowest "
        f"{max(took):.3f} s; all in {time.monotonic() - started:.1f} s"
    )
    for held in held_heads + held_silent:  # closed (no answer is owed to half a head)
        assert HEADER_TIMEOUT - 0.5 <= held.seconds <= HEADER_TIMEOUT + MARGIN, held
    for held in held_bodies:  # answered 408, then closed
        assert BODY_TIMEOUT - 0.5 <= held.seconds <= BODY_TIMEOUT + MARGIN, held
        assert held.status == 408 and b'"request_timeout"' in held.answer, held.answer
        assert b"connection: close" in held.answer.lower()
        assert b"content-security-policy: " in held.answer.lower()  # as every answer
    assert 201 <= status < 500 and status != 408  # the patient client was served
    assert len(took) >= 10 and max(took) < 1.0  # everyone else was answered at once


async def test_an_answer_to_an_unread_body_closes_the_connection(app_server):
    """A route that does not read the body (here 405) answers at once and closes: the rest of
    a slow body is not waited for."""
    head = BODY_HEAD.replace(b"POST /api/v1/voters", b"POST /healthz")
    held = await hold(app_server.port or 0, head, limit=BODY_TIMEOUT + MARGIN)
    assert held.status == 405 and held.seconds < 1.0, held
    assert b"connection: close" in held.answer.lower()


# -- infra/nginx.conf in front of the app --------------------------------------------------------

NGINX_TIMEOUT = 10  # seconds, client_header_timeout and client_body_timeout of infra/nginx.conf
PER_ADDRESS = 64  # limit_conn of infra/nginx.conf


def nginx_config(folder: Path, listen: int, app_port: int) -> Path:
    """A main nginx.conf in ``folder`` that includes infra/nginx.conf as shipped, but for its
    listen and upstream addresses."""
    shipped = (REPO / "infra" / "nginx.conf").read_text()
    for setting in (
        f"client_header_timeout {NGINX_TIMEOUT}s;",
        f"client_body_timeout {NGINX_TIMEOUT}s;",
        f"limit_conn voting_per_address {PER_ADDRESS};",
    ):
        assert setting in shipped, setting
    site = shipped.replace("server 127.0.0.1:8000;", f"server 127.0.0.1:{app_port};")
    site = site.replace("listen 8080;", f"listen 127.0.0.1:{listen};")
    (folder / "voting.conf").write_text(site)
    temp = " ".join(
        f"{kind}_temp_path {folder / kind};" for kind in ("client_body", "proxy", "fastcgi")
    )
    temp += f" uwsgi_temp_path {folder / 'uwsgi'}; scgi_temp_path {folder / 'scgi'};"
    user = "user root root;" if os.geteuid() == 0 else ""  # workers read this private folder
    main = folder / "nginx.conf"
    main.write_text(
        f"{user} worker_processes 1; daemon off; pid {folder / 'nginx.pid'};\n"
        f"error_log {folder / 'error.log'} warn;\n"
        "events { worker_connections 1024; }\n"
        f"http {{ access_log off; {temp} include {folder / 'voting.conf'}; }}\n"
    )
    return main


@pytest.fixture(scope="module")
def nginx(app_server, tmp_path_factory) -> Iterator[int]:
    """nginx with infra/nginx.conf in front of the app; its port."""
    if NGINX is None:
        if os.environ.get("CI"):  # CI installs it (.ci/run): a missing nginx is a failure there
            pytest.fail("nginx is not installed")
        pytest.skip("nginx is not installed (apt-get install nginx)")
    folder = tmp_path_factory.mktemp("nginx")
    port = free_port()
    with running_nginx(folder, nginx_config(folder, port, app_server.port), port):
        yield port


@contextlib.contextmanager
def running_nginx(folder: Path, main: Path, port: int) -> Iterator[None]:
    """Check ``main`` with ``nginx -t``, run nginx on it until exit, wait for ``/healthz``
    through it on ``port``."""
    assert NGINX is not None
    check = subprocess.run([NGINX, "-t", "-p", str(folder), "-c", str(main)], capture_output=True)
    assert check.returncode == 0, check.stderr.decode()
    proc = spawn([NGINX, "-p", str(folder), "-c", str(main)], stderr=subprocess.PIPE)
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz", 15, alive=lambda: proc.poll() is None)
        yield
    finally:
        stop_process(proc, 10)
        if proc.stderr is not None:
            proc.stderr.close()


async def test_nginx_closes_slow_heads_and_stalled_bodies(nginx):
    limit = NGINX_TIMEOUT + MARGIN + 3
    done = asyncio.Event()
    probe = asyncio.create_task(meanwhile(f"http://127.0.0.1:{nginx}/healthz", done))
    heads = [hold(nginx, SLOW_HEAD, limit=limit) for _ in range(100)]
    silent = [hold(nginx, b"", drip=False, limit=limit) for _ in range(20)]
    # nginx's client_body_timeout is between two reads: these bodies stop after 10 bytes
    stalled = [hold(nginx, BODY_HEAD + b"0123456789", drip=False, limit=limit) for _ in range(50)]
    held_heads, held_silent, held_stalled = await asyncio.gather(
        asyncio.gather(*heads), asyncio.gather(*silent), asyncio.gather(*stalled)
    )
    done.set()
    took = await probe
    print(
        f"nginx: slow heads: {summary(held_heads)}; silent: {summary(held_silent)}; stalled "
        f"bodies: {summary(held_stalled)}; /healthz meanwhile: {len(took)} answers, slowest "
        f"{max(took):.3f} s"
    )
    for held in held_heads + held_silent + held_stalled:
        assert NGINX_TIMEOUT - 0.5 <= held.seconds <= NGINX_TIMEOUT + MARGIN, held
    assert len(took) >= 10 and max(took) < 1.0


async def test_nginx_limits_open_requests_per_address(nginx):
    """Slow bodies count against ``limit_conn``: past 64 from one address nginx answers 503 at
    once; the 64 others get no answer, not even the app's 408: nginx holds them and the app
    sees none before its body is complete."""
    limit = BODY_TIMEOUT + 2.0
    held = await asyncio.gather(
        *(hold(nginx, BODY_HEAD, limit=limit) for _ in range(PER_ADDRESS + 16))
    )
    refused = [h for h in held if h.status == 503]
    waiting = [h for h in held if not h.answer]
    assert len(refused) == 16 and all(h.answered < 1.0 for h in refused)
    assert len(waiting) == PER_ADDRESS
