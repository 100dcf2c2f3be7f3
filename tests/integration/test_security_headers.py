"""Security headers on every kind of answer, the frame policy per side, HSTS and ``Secure``
cookies by the bind host (the page's real behaviour under the CSP is in tests/browser/)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from tests.support.app import ADMIN_PASSWORD
from voting.app import create_app
from voting.http.headers import BASE_POLICY
from voting.settings import Settings, SettingsError, is_loopback

PUBLIC_ANCESTORS = "frame-ancestors 'self'"
ADMIN_ANCESTORS = "frame-ancestors 'none'"


def directives(csp: str) -> dict[str, str]:
    """``"a x; b y"`` → ``{"a": "a x", "b": "b y"}``."""
    parts = [p.strip() for p in csp.split(";") if p.strip()]
    return {p.split()[0]: p for p in parts}


def assert_security_headers(r: Any, ancestors: str, *, hsts: bool = False) -> dict[str, str]:
    """Every header of the hardening issue is on the answer ``r``; returns the CSP's directives."""
    h = r.headers
    assert h["x-content-type-options"] == "nosniff"
    assert h["referrer-policy"] == "no-referrer"
    csp = directives(h["content-security-policy"])
    assert csp["frame-ancestors"] == ancestors
    for directive in BASE_POLICY:
        name = directive.split()[0]
        if name == "script-src":  # the pages add the hash of their import map
            assert re.fullmatch(r"script-src 'self'( 'sha256-[A-Za-z0-9+/]{43}=')*", csp[name])
        elif name != "style-src":  # the page adds its nonce there
            assert csp[name] == directive
    assert "'unsafe-inline'" not in h["content-security-policy"]
    assert "'unsafe-eval'" not in h["content-security-policy"]
    frame_options = {PUBLIC_ANCESTORS: "SAMEORIGIN", ADMIN_ANCESTORS: "DENY"}.get(ancestors)
    assert h.get("x-frame-options") == frame_options
    if hsts:
        assert h["strict-transport-security"] == "max-age=31536000"
    else:
        assert "strict-transport-security" not in h
    return csp


async def test_public_page_has_the_headers_and_a_fresh_style_nonce(client):
    first, second = await client.get("/"), await client.get("/")
    assert first.status_code == 200
    csp = assert_security_headers(first, PUBLIC_ANCESTORS)
    nonce = re.fullmatch(r"style-src 'self' 'nonce-([A-Za-z0-9_-]{22})'", csp["style-src"])
    assert nonce, csp["style-src"]
    assert f'<meta name="csp-nonce" content="{nonce.group(1)}">' in first.text
    assert "{{csp_nonce}}" not in first.text
    assert second.headers["content-security-policy"] != first.headers["content-security-policy"]


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/api/v1/rounds", 200),  # an API answer
        ("/api/v1/rounds/999999999", 404),  # an error answer of a handler
        ("/api/v1/no-such-route", 404),  # no route at all
        ("/static/style.css", 200),  # a static file
        ("/static/vendor/altcha.min.js", 200),
        ("/static/no-such-file.js", 404),
        ("/healthz", 200),
        ("/schema", 200),  # the API docs and their files
        ("/schema/openapi.json", 200),
        ("/static/vendor/swagger-ui/swagger-ui-bundle.js", 200),
    ],
)
async def test_public_side_answers_have_the_headers(client, path, status):
    r = await client.get(path)
    assert r.status_code == status, r.text
    csp = assert_security_headers(r, PUBLIC_ANCESTORS)
    assert csp["style-src"] == "style-src 'self'"


async def test_a_rejected_method_has_the_headers(client):
    r = await client.delete("/api/v1/rounds")
    assert r.status_code == 405
    assert_security_headers(r, PUBLIC_ANCESTORS)


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("get", "/admin/api/v1/rounds", 200),
        ("get", "/admin/api/v1/rounds/999999999", 404),
        ("get", "/admin/api/v1/no-such-route", 404),
        ("post", "/admin/api/v1/rounds", 400),  # malformed body
    ],
)
async def test_admin_answers_are_never_framed(client, admin_headers, method, path, status):
    r = await getattr(client, method)(path, headers=admin_headers)
    assert r.status_code == status, r.text
    assert_security_headers(r, ADMIN_ANCESTORS)


@asynccontextmanager
async def app_client(settings: Settings, **changes: Any) -> AsyncIterator[Any]:
    """A client with an empty cookie jar on an app of ``settings`` with ``changes``."""
    async with AsyncTestClient(app=create_app(settings.replace(**changes))) as c:
        yield c


async def test_admin_unauthenticated_answer_is_never_framed(settings):
    async with app_client(settings) as c:
        r = await c.get("/admin/api/v1/rounds")
    assert r.status_code == 401
    assert_security_headers(r, ADMIN_ANCESTORS)


async def test_frame_ancestors_from_the_setting_on_the_public_side_only(settings, admin_users):
    ancestors = "'self' https://bloc.example.vn"
    async with app_client(settings, frame_ancestors=ancestors) as c:
        for path in ("/", "/api/v1/rounds", "/static/style.css", "/schema"):
            r = await c.get(path)
            assert r.status_code == 200
            # X-Frame-Options cannot name another origin: only the CSP speaks
            assert_security_headers(r, f"frame-ancestors {ancestors}")
        r = await c.post(
            "/admin/api/v1/login", json={"username": "admin", "password": ADMIN_PASSWORD}
        )
        assert_security_headers(r, ADMIN_ANCESTORS)


def test_frame_ancestors_setting_is_checked(tmp_path):
    env = {"VOTING_DATA_DIR": str(tmp_path)}
    s = Settings.from_env({**env, "VOTING_FRAME_ANCESTORS": "'self', https://bloc.example.vn"})
    assert s.server.frame_ancestors == "'self' https://bloc.example.vn"
    assert Settings.from_env(env).server.frame_ancestors == "'self'"
    for bad, why in [
        ("'none' https://a.example", "cannot be combined"),
        ("https://a.example; script-src *", "is not a CSP source"),
        ("'unsafe-inline'", "is not a CSP source"),
        (",", "no source given"),
    ]:
        with pytest.raises(SettingsError, match=f"VOTING_FRAME_ANCESTORS: .*{why}"):
            Settings.from_env({**env, "VOTING_FRAME_ANCESTORS": bad})


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.1.2.3", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("10.0.0.5", False),
        ("vote.example.vn", False),
    ],
)
def test_loopback_hosts(host, loopback):
    assert is_loopback(host) is loopback


def test_cookie_secure_default_follows_the_host_and_can_be_overridden(tmp_path):
    def secure(**env: str) -> bool:
        return Settings.from_env({"VOTING_DATA_DIR": str(tmp_path), **env}).server.secure

    assert secure() is False  # default host 127.0.0.1
    assert secure(VOTING_HOST="0.0.0.0") is True
    assert secure(VOTING_HOST="0.0.0.0", VOTING_COOKIE_SECURE="false") is False
    assert secure(VOTING_HOST="127.0.0.1", VOTING_COOKIE_SECURE="true") is True
    with pytest.raises(SettingsError, match="VOTING_COOKIE_SECURE must be a boolean"):
        secure(VOTING_COOKIE_SECURE="maybe")


def _cookie(r: Any, name: str) -> str:
    [cookie] = [c for c in r.headers.get_list("set-cookie") if c.startswith(f"{name}=")]
    return cookie.lower()


async def _cookies(c: Any) -> tuple[Any, Any]:
    """The voter cookie's and the admin session cookie's answers."""
    voter = await c.post("/api/v1/voters", json={})
    assert voter.status_code == 201, voter.text
    login = await c.post(
        "/admin/api/v1/login", json={"username": "admin", "password": ADMIN_PASSWORD}
    )
    assert login.status_code == 200, login.text
    return voter, login


@pytest.mark.parametrize(
    ("changes", "secure"),
    [
        ({"host": "0.0.0.0"}, True),  # off loopback: Secure by default, and HSTS
        ({"host": "127.0.0.1"}, False),
        ({"host": "0.0.0.0", "cookie_secure": False}, False),
        ({"host": "127.0.0.1", "cookie_secure": True}, True),
    ],
)
async def test_cookies_are_secure_unless_on_loopback(settings, admin_users, changes, secure):
    async with app_client(settings, **changes) as c:
        voter, login = await _cookies(c)
        for r, name in ((voter, "voter"), (login, "admin_session")):
            cookie = _cookie(r, name)
            assert "httponly" in cookie
            assert ("; secure" in cookie) is secure, cookie
        assert_security_headers(voter, PUBLIC_ANCESTORS, hsts=secure)
        assert_security_headers(login, ADMIN_ANCESTORS, hsts=secure)
        r = await c.get("/api/v1/no-such-route")
        assert_security_headers(r, PUBLIC_ANCESTORS, hsts=secure)


async def test_admin_only_app_serves_the_docs_files_and_nothing_public(settings):
    async with AsyncTestClient(app=create_app(settings, public=False)) as c:
        for path in (
            "/schema",
            "/static/docs/swagger-init.js",
            "/static/vendor/swagger-ui/swagger-ui.css",
        ):
            r = await c.get(path)
            assert r.status_code == 200, path
            assert_security_headers(r, PUBLIC_ANCESTORS)
        for path in ("/", "/static/style.css", "/static/vendor/altcha.min.js"):
            assert (await c.get(path)).status_code == 404, path
