"""Delivery of the public page in a real browser on a real server: what the browser receives
(compressed, hashed, cached for a year), the ALTCHA widget imported only when the voter starts
voting, the deep links, and the service worker: an offline reload shows the round with the
offline banner, a ballot is neither sent nor queued while offline, and a new deploy replaces
the worker's caches."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, Response, expect

from tests.browser.test_browser import CANDIDATES, TIMEOUT_MS, cast
from tests.support.browser import axe_violations, fresh_page
from tests.support.servers import VotingProcess, free_port, server_env, spawn
from voting.http.assets import IMMUTABLE_CACHE
from voting.http.page import NOT_FOUND_CANDIDATE, NOT_FOUND_ROUND

HASHED = re.compile(r"/static/.+\.[0-9a-f]{10}\.(?:js|css)$")
READY = "() => document.documentElement.hasAttribute('data-offline-ready')"
CACHES = "async () => (await caches.keys()).sort()"


@pytest.fixture
def phone(_browser: Browser) -> Iterator[Page]:
    with fresh_page(_browser, 360, 740, TIMEOUT_MS) as page:
        yield page


def load(page: Page, url: str) -> None:
    page.goto(url)
    expect(page.locator("[data-candidate-id]")).to_have_count(CANDIDATES, timeout=TIMEOUT_MS)


def slug_of(page: Page, live_server: Any) -> str:
    r = page.request.get(f"{live_server.base_url}/api/v1/rounds/{live_server.round_id}")
    return str(r.json()["slug"])


@pytest.mark.browser
def test_first_load_is_compressed_hashed_and_without_the_widget(
    phone: Page, live_server: Any
) -> None:
    responses: list[Response] = []
    phone.on("response", lambda r: responses.append(r))
    load(phone, f"{live_server.base_url}/?round={live_server.round_id}")
    phone.wait_for_load_state("networkidle")
    by_path = {re.sub(r"^https?://[^/]+", "", r.url): r for r in responses}

    document = by_path[f"/?round={live_server.round_id}"]
    assert document.headers["content-encoding"] == "br"
    assert document.headers["cache-control"] == "no-cache"
    assert document.headers["etag"].startswith('W/"')

    statics = {p: r for p, r in by_path.items() if p.startswith("/static/")}
    assert any(p.endswith(".css") for p in statics) and any(p.endswith(".js") for p in statics)
    for path, r in statics.items():
        assert HASHED.search(path), f"{path} is not content-hashed"
        assert r.headers["cache-control"] == IMMUTABLE_CACHE, path
        assert r.headers["content-encoding"] == "br", path
    detail = by_path[f"/api/v1/rounds/{live_server.round_id}"]
    assert detail.headers["content-encoding"] == "br"

    # the 111 KiB widget is not part of the first load, nor its proof of work
    assert not any("altcha" in p or "/challenge" in p for p in by_path), sorted(by_path)
    expect(phone.locator("altcha-widget")).to_have_count(0)
    # what came over the wire before photos, compressed
    sizes = phone.evaluate(
        """() => performance.getEntriesByType('resource').concat(
                performance.getEntriesByType('navigation'))
              .filter(e => !/\\/photo(\\?|$)/.test(e.name))
              .map(e => e.transferSize)"""
    )
    assert 0 < sum(sizes) <= 120 * 1024, sizes


@pytest.mark.browser
def test_the_widget_is_imported_when_the_voter_starts_voting(phone: Page, live_server: Any) -> None:
    requests: list[str] = []
    phone.on("request", lambda r: requests.append(r.url))
    load(phone, f"{live_server.base_url}/?round={live_server.round_id}")
    phone.wait_for_timeout(500)
    assert not any("altcha" in u for u in requests)
    phone.locator("[data-candidate-id] input[name=choice]").first.check()
    expect(phone.locator("altcha-widget")).to_have_count(1)
    altcha = [u for u in requests if "/static/vendor/altcha" in u]
    assert altcha and all(HASHED.search(u) for u in altcha), altcha
    assert f"{live_server.base_url}/api/v1/challenge?round_id={live_server.round_id}" in requests
    phone.wait_for_function(
        f"() => Boolean(localStorage.getItem('voter_token_device_{live_server.round_id}'))",
        timeout=60_000,
    )


@pytest.mark.browser
def test_a_candidate_link_has_its_share_tags_and_an_unknown_one_a_404(
    phone: Page, live_server: Any
) -> None:
    slug = slug_of(phone, live_server)
    response = phone.goto(f"{live_server.base_url}/r/{slug}/DH02")
    assert response is not None and response.status == 200
    expect(phone.locator("[data-candidate-id]")).to_have_count(CANDIDATES)

    def meta(name: str) -> str | None:
        attr = "name" if name.startswith("twitter:") else "property"
        return phone.locator(f'meta[{attr}="{name}"]').get_attribute("content")

    url = f"{live_server.base_url}/r/{slug}/DH02"
    assert meta("og:url") == url
    assert phone.locator('link[rel="canonical"]').get_attribute("href") == url
    detail = phone.request.get(f"{live_server.base_url}/api/v1/rounds/{live_server.round_id}")
    dh02 = next(c for c in detail.json()["candidates"] if c["code"] == "DH02")
    assert meta("og:title") == f"{dh02['full_name']} – Test round"
    assert meta("og:description")
    assert meta("twitter:card") in ("summary", "summary_large_image")
    expect(phone.locator("#page-notice")).to_have_count(0)

    response = phone.goto(f"{live_server.base_url}/r/{slug}/ZZ99")
    assert response is not None and response.status == 404
    expect(phone.locator("#page-notice")).to_have_text(NOT_FOUND_CANDIDATE)
    expect(phone.locator("[data-candidate-id]")).to_have_count(CANDIDATES)

    response = phone.goto(f"{live_server.base_url}/r/khong-co-dot-nay")
    assert response is not None and response.status == 404
    expect(phone.locator("#page-notice")).to_have_text(NOT_FOUND_ROUND)
    assert axe_violations(phone) == []


@pytest.mark.browser
def test_offline_reload_shows_the_round_and_blocks_voting(phone: Page, live_server: Any) -> None:
    load(phone, f"{live_server.base_url}/?round={live_server.round_id}")
    phone.wait_for_function(READY, timeout=30_000)
    assert phone.evaluate("() => Boolean(navigator.serviceWorker.controller)")
    names = phone.evaluate(CACHES)
    assert len(names) == 3 and all(n.startswith("voting-") for n in names), names
    title = phone.locator("#round-title").inner_text()

    posts: list[str] = []
    phone.context.on("request", lambda r: posts.append(r.url) if r.method != "GET" else None)
    phone.context.set_offline(True)
    phone.reload()
    expect(phone.locator("[data-candidate-id]")).to_have_count(CANDIDATES, timeout=TIMEOUT_MS)
    expect(phone.locator("#round-title")).to_have_text(title)
    banner = phone.locator("#offline-banner")
    expect(banner).to_be_visible()
    expect(banner).to_contain_text("Bạn đang ngoại tuyến")
    assert axe_violations(phone) == []

    phone.locator("[data-candidate-id] input[name=choice]").first.check()
    expect(phone.locator("#cast")).to_be_enabled()
    phone.locator("#cast").click()
    expect(banner).to_contain_text("Không có kết nối mạng nên chưa gửi được.")
    expect(phone.locator("#confirm-dialog")).to_be_hidden()
    phone.screenshot(path="tests/artifacts/offline-phone.png", full_page=False)

    # back online: the banner goes, and nothing was queued to be sent behind the voter's back
    phone.context.set_offline(False)
    expect(banner).to_be_hidden()
    phone.wait_for_timeout(1500)
    assert not [u for u in posts if "/ballots" in u or "/voters" in u], posts


def _copy_of_the_code(tmp: Path) -> Path:
    """A copy of the repository's ``voting`` package with one module changed: a new deploy."""
    repo = Path(__file__).resolve().parents[2]
    shutil.copytree(repo / "voting", tmp / "voting", ignore=shutil.ignore_patterns("__pycache__"))
    api = tmp / "voting" / "static" / "js" / "api.js"
    api.write_text(api.read_text("utf-8") + "\n/* the next deploy */\n", "utf-8")
    return tmp


class Deployed(VotingProcess):
    """``voting serve --public`` run from ``cwd`` (a copy of the code)."""

    def __init__(self, cwd: Path, *args: Any) -> None:
        super().__init__(*args)
        self.cwd = cwd

    def start(self) -> None:
        with open(self.log, "ab") as out:
            self.process = spawn(
                [sys.executable, "-m", "voting.cli", *self.args],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.cwd,
            )


@pytest.mark.browser
def test_a_new_deploy_replaces_the_workers_caches(
    phone: Page, live_server: Any, settings: Any, tmp_path: Path
) -> None:
    port = free_port()
    env = server_env(
        settings, port, VOTING_RUN_PERSISTER="false", VOTING_CHALLENGE_REQUIRED="false"
    )
    log = settings.server.data_dir / "deploy.log"
    repo = Path(__file__).resolve().parents[2]
    first = Deployed(repo, "deploy-1", ["serve", "--public"], env, log, port)
    second = Deployed(
        _copy_of_the_code(tmp_path), "deploy-2", ["serve", "--public"], env, log, port
    )
    url = f"{first.url}/?round={live_server.round_id}"
    first.start()
    try:
        first.wait_healthy(30.0)
        load(phone, url)
        phone.wait_for_function(READY, timeout=30_000)
        before = phone.evaluate(CACHES)
        old_api = phone.evaluate(
            "() => performance.getEntriesByType('resource').map(e => e.name)"
            ".find(n => /\\/static\\/js\\/api\\./.test(n))"
        )
    finally:
        first.stop()
    second.start()
    try:
        second.wait_healthy(30.0)
        phone.evaluate(
            """async () => {
                const r = await navigator.serviceWorker.getRegistration();
                await r.update();
            }"""
        )
        deadline = time.monotonic() + 30
        after = phone.evaluate(CACHES)
        while set(after) & set(before) and time.monotonic() < deadline:
            phone.wait_for_timeout(200)  # the new worker installs, then activates
            after = phone.evaluate(CACHES)
        assert len(after) >= 1 and not set(after) & set(before), (before, after)
        # the new shell names the new module; offline, the new version is what loads
        load(phone, url)
        phone.wait_for_function(READY, timeout=30_000)
        phone.context.set_offline(True)
        phone.reload()
        expect(phone.locator("[data-candidate-id]")).to_have_count(CANDIDATES)
        new_api = phone.evaluate(
            "() => performance.getEntriesByType('resource').map(e => e.name)"
            ".find(n => /\\/static\\/js\\/api\\./.test(n))"
        )
        assert old_api and new_api and new_api != old_api, (old_api, new_api)
        phone.context.set_offline(False)
    finally:
        second.stop()


@pytest.mark.browser
def test_the_worker_keeps_no_credential_ballot_or_receipt(phone: Page, live_server: Any) -> None:
    load(phone, f"{live_server.base_url}/?round={live_server.round_id}")
    phone.wait_for_function(READY, timeout=30_000)
    cast(phone, 2)  # through the worker now in control: challenge, voters, ballots
    shown = phone.locator("#receipt").inner_text().strip().replace("-", "")
    phone.goto(f"{live_server.base_url}/kiem-tra?ma={shown}")
    expect(phone.locator("#check-result")).to_contain_text("phiếu")
    phone.goto(f"{live_server.base_url}/?round={live_server.round_id}")
    kept = phone.evaluate(
        """async () => {
            const out = [];
            for (const name of await caches.keys()) {
                const cache = await caches.open(name);
                for (const r of await cache.keys()) out.push(r.method + ' ' + r.url);
            }
            return out;
        }"""
    )
    assert any("/api/v1/rounds/" in u for u in kept), kept
    assert all(u.startswith("GET ") for u in kept), kept
    never = ("/ballots", "/voters", "/challenge", "/receipts", "/kiem-tra", "/admin")
    assert not [u for u in kept if any(n in u for n in never)], kept
