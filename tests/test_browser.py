"""The public voting page in a real browser (headless Chromium from the system, via Playwright).

Needs the ``live_server`` fixture (tests/conftest.py): an object with ``base_url`` (the public app,
e.g. ``http://127.0.0.1:PORT``) and ``round_id`` (an open round holding the 28 candidates of
``shared/data/shortlist-sample.csv``, ``min_choices`` 1, ``max_choices`` 16).

Every test gets a fresh browser context, so a fresh localStorage and cookie jar: a new voter.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, Playwright, expect, sync_playwright

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
CANDIDATES = 28
MAX_CHOICES = 16
TIMEOUT_MS = 15_000


@pytest.fixture(scope="module")
def _playwright() -> Iterator[Playwright]:
    if shutil.which("chromium") is None:
        if os.environ.get("CI"):  # CI installs it (.ci/run): a missing browser is a failure there
            pytest.fail("chromium is not installed; .ci/run should have installed it")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    with sync_playwright() as pw:
        yield pw


@pytest.fixture(scope="module")
def _browser(_playwright: Playwright) -> Iterator[Browser]:
    browser = _playwright.chromium.launch(
        executable_path=shutil.which("chromium"), args=CHROMIUM_ARGS, headless=True
    )
    yield browser
    browser.close()


@pytest.fixture
def browser_page(_browser: Browser) -> Iterator[Page]:
    """A page in a new browser context (phone-sized); fails the test on an uncaught JS error."""
    context = _browser.new_context(viewport={"width": 390, "height": 844}, locale="vi-VN")
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield page
    context.close()
    if errors:
        pytest.fail(f"JavaScript errors on the page: {errors}")


def open_round(page: Page, live_server: Any) -> None:
    page.goto(f"{live_server.base_url}/?round={live_server.round_id}")
    expect(page.locator("[data-candidate-id]")).to_have_count(CANDIDATES, timeout=TIMEOUT_MS)


def choose(page: Page, count: int) -> list[str]:
    """Tick the first ``count`` candidates; return their names."""
    names = []
    for i in range(count):
        card = page.locator("[data-candidate-id]").nth(i)
        card.locator("input[name=choice]").check()
        names.append(card.locator(".card-name").inner_text().strip())
    return names


def cast(page: Page, count: int) -> list[str]:
    names = choose(page, count)
    expect(page.locator("#cast")).to_be_enabled()
    page.locator("#cast").click()
    dialog = page.locator("#confirm-dialog")
    expect(dialog).to_be_visible()
    for name in names:
        expect(dialog).to_contain_text(name)
    page.locator("#confirm").click()
    expect(page.locator("#voted")).to_be_visible(timeout=TIMEOUT_MS)
    expect(page.locator("#receipt")).to_be_visible()
    return names


@pytest.mark.browser
def test_page_lists_all_candidates(browser_page: Page, live_server: Any) -> None:
    page = browser_page
    open_round(page, live_server)
    cards = page.locator("[data-candidate-id]")
    expect(cards.locator("input[name=choice]")).to_have_count(CANDIDATES)
    ids = {cards.nth(i).get_attribute("data-candidate-id") for i in range(CANDIDATES)}
    assert len(ids) == CANDIDATES
    expect(page.locator("html")).to_have_attribute("lang", "vi")
    expect(page.locator("#counter")).to_have_text(f"Đã chọn 0/{MAX_CHOICES}")
    expect(page.locator("#cast")).to_be_disabled()
    # mobile: no horizontal scroll at 360 px
    page.set_viewport_size({"width": 360, "height": 740})
    assert page.evaluate("document.documentElement.scrollWidth") <= 360


@pytest.mark.browser
def test_cannot_choose_more_than_max(browser_page: Page, live_server: Any) -> None:
    page = browser_page
    open_round(page, live_server)
    choose(page, MAX_CHOICES)
    expect(page.locator("#counter")).to_contain_text(f"{MAX_CHOICES}/{MAX_CHOICES}")

    extra = page.locator("[data-candidate-id]").nth(MAX_CHOICES).locator("input[name=choice]")
    extra.click()
    expect(extra).not_to_be_checked()
    expect(page.locator("#counter")).to_contain_text(f"{MAX_CHOICES}/{MAX_CHOICES}")
    expect(page.locator("input[name=choice]:checked")).to_have_count(MAX_CHOICES)
    expect(page.locator("#message")).to_be_visible()
    expect(page.locator("#message")).to_have_attribute("data-code", "too_many_choices")
    expect(page.locator("#cast")).to_be_enabled()

    # unticking one makes room again
    page.locator("input[name=choice]").first.uncheck()
    expect(page.locator("#counter")).to_contain_text(f"{MAX_CHOICES - 1}/{MAX_CHOICES}")
    extra.check()
    expect(page.locator("#counter")).to_contain_text(f"{MAX_CHOICES}/{MAX_CHOICES}")


@pytest.mark.browser
def test_casting_shows_a_receipt(browser_page: Page, live_server: Any) -> None:
    page = browser_page
    open_round(page, live_server)
    names = cast(page, 3)

    receipt = page.locator("#receipt").inner_text().strip()
    assert receipt
    for name in names:
        expect(page.locator("#voted")).to_contain_text(name)
    expect(page.locator("#ballot-id")).not_to_be_empty()
    stored = page.evaluate(f"localStorage.getItem('receipt_{live_server.round_id}')")
    assert stored == receipt
    assert page.evaluate("localStorage.getItem('voter_token')")
    expect(page.locator("#votebar")).to_be_hidden()


@pytest.mark.browser
def test_reload_shows_already_voted(browser_page: Page, live_server: Any) -> None:
    page = browser_page
    open_round(page, live_server)
    cast(page, 3)
    receipt = page.locator("#receipt").inner_text().strip()

    page.reload()
    expect(page.locator("[data-candidate-id]")).to_have_count(CANDIDATES)
    voted = page.locator("#voted")
    expect(voted).to_be_visible()
    expect(voted).to_contain_text("Bạn đã bình chọn")
    expect(page.locator("#receipt")).to_have_text(receipt)
    expect(page.locator("#votebar")).to_be_hidden()
    expect(page.locator("input[name=choice]:visible")).to_have_count(0)


@pytest.mark.browser
def test_achievements_are_shown_on_demand(browser_page: Page, live_server: Any) -> None:
    page = browser_page
    open_round(page, live_server)
    card = page.locator("[data-candidate-id]").nth(1)
    candidate_id = card.get_attribute("data-candidate-id")
    name = card.locator(".card-name").inner_text().strip()

    response = page.request.get(
        f"{live_server.base_url}/api/v1/rounds/{live_server.round_id}/candidates/{candidate_id}"
    )
    assert response.ok
    lines = [ln.strip() for ln in response.json()["achievements"].splitlines() if ln.strip()]
    assert len(lines) > 1

    card.get_by_role("button", name="Xem thành tích").click()
    dialog = page.locator("#profile-dialog")
    expect(dialog).to_be_visible()
    expect(dialog.locator("#profile-name")).to_have_text(name)
    achievements = dialog.locator("#profile-achievements")
    expect(achievements).to_contain_text(lines[0][:60])
    # line breaks are kept: one paragraph per line
    expect(achievements.locator("p")).to_have_count(len(lines))

    dialog.locator("#profile-close").click()
    expect(dialog).to_be_hidden()
