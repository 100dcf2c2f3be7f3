"""The public voting page in a real browser (headless Chromium from the system, via Playwright).

Needs the ``live_server`` fixture (tests/conftest.py): an object with ``base_url`` (the public app,
e.g. ``http://127.0.0.1:PORT``) and ``round_id`` (an open round holding the 28 candidates of
``shared/data/shortlist-sample.csv``, ``min_choices`` 1, ``max_choices`` 16), in identity mode
``device`` with the proof of work required: the page solves real ALTCHA challenges with the
vendored widget. Other rounds (code and email modes) are made here through the admin API.

Every test gets a fresh browser context, so a fresh localStorage and cookie jar: a new voter.
"""

from __future__ import annotations

import csv
import io
import re
import zipfile
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.support.app import ADMIN_PASSWORD, SAMPLE_CSV, unique_slug
from tests.support.browser import fresh_page

SAMPLE_PHOTOS = SAMPLE_CSV.with_name("shortlist-sample-photos.zip")
CANDIDATES = 28
MAX_CHOICES = 16
TIMEOUT_MS = 15_000


@pytest.fixture
def browser_page(_browser: Browser) -> Iterator[Page]:
    """A phone-sized page (see :func:`fresh_page`)."""
    with fresh_page(_browser, 390, 844, TIMEOUT_MS) as page:
        yield page


def open_round(page: Page, live_server: Any, round_id: int | None = None) -> None:
    page.goto(f"{live_server.base_url}/?round={round_id or live_server.round_id}")
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
    # aria-disabled before the tap (Playwright then calls it disabled); a tap still explains
    expect(extra).to_have_attribute("aria-disabled", "true")
    extra.click(force=True)
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

    shown = page.locator("#receipt").inner_text().strip()
    assert len(shown) == 16 and shown.count("-") == 3  # 13 symbols in groups of four
    for name in names:
        expect(page.locator("#voted")).to_contain_text(name)
    stored = page.evaluate(f"localStorage.getItem('receipt_{live_server.round_id}')")
    assert stored == shown.replace("-", "")
    assert page.evaluate(f"localStorage.getItem('voter_token_device_{live_server.round_id}')")
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


# ---------- identity modes ----------


def _admin_round(
    live_server: Any, identity_mode: str, codes: int = 0, **rules: Any
) -> dict[str, Any]:
    """An open round of the sample shortlist made through the live server's admin API (plain
    httpx: these tests run inside sync Playwright, where no asyncio fixture can be set up)."""
    with httpx.Client(base_url=f"{live_server.base_url}/admin/api/v1", timeout=30) as http:
        r = http.post("/login", json={"username": "admin", "password": ADMIN_PASSWORD})
        assert r.status_code == 200, r.text
        http.headers["Authorization"] = f"Bearer {r.json()['token']}"
        r = http.post(
            "/rounds",
            json={
                "slug": unique_slug(identity_mode),
                "title": "Test",
                "identity_mode": identity_mode,
                **rules,
            },
        )
        assert r.status_code == 201, r.text
        rnd: dict[str, Any] = r.json()
        r = http.post(
            f"/rounds/{rnd['id']}/candidates/import",
            content=SAMPLE_CSV.read_bytes(),
            headers={"Content-Type": "text/csv"},
        )
        assert r.status_code == 200, r.text
        if codes:
            r = http.post(f"/rounds/{rnd['id']}/codes", json={"count": codes})
            assert r.status_code == 201, r.text
            rnd["codes"] = [row["code"] for row in csv.DictReader(io.StringIO(r.text))]
        assert http.post(f"/rounds/{rnd['id']}/open").status_code == 200
    return rnd


@pytest.fixture(scope="module")
def code_round(live_server: Any) -> dict[str, Any]:
    """An open round in code mode with 3 codes (``codes``)."""
    return _admin_round(live_server, "code", codes=3)


@pytest.fixture(scope="module")
def email_round(live_server: Any) -> dict[str, Any]:
    """An open round in email mode (the live server has no email sender configured)."""
    return _admin_round(live_server, "email")


@pytest.mark.browser
def test_device_mode_solves_the_proof_of_work_with_the_vendored_widget(
    browser_page: Page, live_server: Any
) -> None:
    page = browser_page
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    open_round(page, live_server)
    panel = page.locator("#identity")
    expect(panel).to_have_attribute("data-mode", "device")
    choose(page, 1)  # the widget is imported when the voter starts voting
    expect(page.locator("altcha-widget")).to_have_count(1)
    # a function, not an expression: Playwright evaluates expressions with eval, which the CSP
    # refuses
    page.wait_for_function(
        f"() => Boolean(localStorage.getItem('voter_token_device_{live_server.round_id}'))",
        timeout=60_000,
    )
    # the panel keeps its place (solving must not move the list) and says the work is done
    expect(page.locator("#identity-status")).to_have_attribute("data-state", "ok")
    expect(page.locator("#identity-status")).to_contain_text("Thiết bị đã được xác minh")
    # the content-hashed file of the import map
    assert any(
        re.fullmatch(rf"{live_server.base_url}/static/vendor/altcha\.min\.[0-9a-f]{{10}}\.js", u)
        for u in requests
    )
    # the challenge is asked for this round, and the credential is bound to it
    assert f"{live_server.base_url}/api/v1/challenge?round_id={live_server.round_id}" in requests
    # everything came from our own origin (no CDN); the widget's workers are data:/blob: URLs
    foreign = [u for u in requests if not u.startswith((live_server.base_url, "data:", "blob:"))]
    assert not foreign, foreign
    cast(page, 2)


@pytest.mark.browser
def test_the_rules_section_says_how_ties_and_fields_are_settled(
    browser_page: Page, live_server: Any
) -> None:
    rnd = _admin_round(live_server, "device", tie_break="draw", field_minimum=1, winners=16)
    page = browser_page
    open_round(page, live_server, rnd["id"])
    detail = httpx.get(f"{live_server.base_url}/api/v1/rounds/{rnd['id']}", timeout=30).json()
    trust = page.locator("#round-trust")
    expect(trust).to_be_visible()
    trust.locator("summary").click()
    expect(trust).to_contain_text("hệ thống bốc thăm công khai")
    expect(trust).to_contain_text("số bí mật chỉ được công bố sau khi đợt bình chọn kết thúc")
    expect(trust.locator("[data-rule=draw]")).to_contain_text(detail["draw_commitment"])
    expect(trust.locator("[data-rule=field-minimum]")).to_contain_text("ít nhất 1 người trúng chọn")
    expect(trust.locator("[data-rule=commitments]")).to_contain_text(
        "Số phiếu theo từng lô vì thế được công khai ngay trong khi bình chọn"
    )
    expect(trust.locator("[data-rule=hash]")).to_contain_text(detail["rules_hash"])
    href = trust.locator("[data-rule=hash] a").get_attribute("href")
    assert href == f"/api/v1/rounds/{rnd['id']}/rules"
    page.set_viewport_size({"width": 360, "height": 740})
    assert page.evaluate("document.documentElement.scrollWidth") <= 360


@pytest.mark.browser
def test_code_mode_asks_for_the_code(browser_page: Page, live_server: Any, code_round: Any) -> None:
    page = browser_page
    open_round(page, live_server, code_round["id"])
    expect(page.locator("#identity")).to_have_attribute("data-mode", "code")
    expect(page.locator("altcha-widget")).to_have_count(0)
    choose(page, 2)
    expect(page.locator("#cast")).to_be_disabled()  # no code yet
    code_input = page.locator("#voter-code")
    good = code_round["codes"][0]
    typo = good[:-2] + ("Z" if good[-2] != "Z" else "Y") + good[-1]
    code_input.fill(typo)
    page.locator("#voter-code-submit").click()
    expect(page.locator("#message")).to_have_attribute("data-code", "code_invalid")
    expect(page.locator("#identity-status")).to_have_attribute("data-state", "error")
    code_input.fill(good.lower().replace("-", " "))
    page.locator("#voter-code-submit").click()
    expect(page.locator("#identity-status")).to_contain_text("Mã bình chọn hợp lệ")
    expect(page.locator("#identity-code")).to_be_hidden()
    token = page.evaluate(f"localStorage.getItem('voter_token_code_{code_round['id']}')")
    assert token
    expect(page.locator("#cast")).to_be_enabled()
    page.locator("#cast").click()
    page.locator("#confirm").click()
    expect(page.locator("#voted")).to_be_visible()
    expect(page.locator("#receipt")).not_to_be_empty()
    expect(page.locator("#identity")).to_be_hidden()


@pytest.mark.browser
def test_code_used_on_another_device_is_already_voted(
    browser_page: Page, live_server: Any, code_round: Any
) -> None:
    page = browser_page
    open_round(page, live_server, code_round["id"])
    page.locator("#voter-code").fill(code_round["codes"][1])
    page.locator("#voter-code-submit").click()
    expect(page.locator("#identity-status")).to_contain_text("hợp lệ")
    cast(page, 1)
    # the same code on a fresh device: one code, one ballot
    other = page.context.browser.new_context(locale="vi-VN")  # type: ignore[union-attr]
    try:
        second = other.new_page()
        second.set_default_timeout(TIMEOUT_MS)
        open_round(second, live_server, code_round["id"])
        second.locator("#voter-code").fill(code_round["codes"][1])
        second.locator("#voter-code-submit").click()
        expect(second.locator("#identity-status")).to_contain_text("hợp lệ")
        choose(second, 1)
        second.locator("#cast").click()
        second.locator("#confirm").click()
        expect(second.locator("#message")).to_have_attribute("data-code", "already_voted")
        expect(second.locator("#voted")).to_be_visible()
    finally:
        other.close()


@pytest.mark.browser
def test_email_mode_asks_consent_before_using_the_address(
    browser_page: Page, live_server: Any, email_round: Any
) -> None:
    page = browser_page
    open_round(page, live_server, email_round["id"])
    expect(page.locator("#identity")).to_have_attribute("data-mode", "email")
    expect(page.locator("#otp-address-label")).to_have_text("Địa chỉ email")
    page.locator("#otp-address").fill("cu.tri@example.org")
    send = page.locator("#otp-send")
    expect(send).to_be_disabled()  # no consent, no use of the address
    expect(page.locator("#otp-consent-text")).to_contain_text("đồng ý")
    page.locator("#otp-consent").check()
    expect(send).to_be_enabled()
    send.click()
    # the live server has no email sender: the answer is explained, nothing is kept
    expect(page.locator("#message")).to_have_attribute("data-code", "otp_unavailable")
    choose(page, 1)
    expect(page.locator("#cast")).to_be_disabled()


@pytest.mark.browser
def test_privacy_notice(browser_page: Page, live_server: Any) -> None:
    page = browser_page
    open_round(page, live_server)
    notice = page.locator("#privacy")
    expect(notice).to_contain_text("Thông báo về xử lý dữ liệu cá nhân")
    notice.locator("summary").click()
    for text in ("91/2025/QH15", "356/2025/NĐ-CP", "13/2023/NĐ-CP", "Địa chỉ IP", "mã băm"):
        expect(notice).to_contain_text(text)
    expect(page.locator("#privacy-retention")).to_have_text("30")
    expect(page.locator("#privacy-ipv4")).to_have_text("24")


# ---------- under the Content-Security-Policy ----------

#: Reports every CSP violation of the page as a console message (before any script of the page).
REPORT_VIOLATIONS = """
document.addEventListener('securitypolicyviolation', (e) => {
  console.log('csp-violation ' + JSON.stringify({
    directive: e.violatedDirective, blocked: e.blockedURI, source: e.sourceFile, line: e.lineNumber,
  }));
});
"""


def csp_violations(page: Page) -> list[str]:
    """A list filled with the page's CSP violations: its reports and Chromium's own messages."""
    found: list[str] = []
    page.add_init_script(REPORT_VIOLATIONS)

    def on_console(message: Any) -> None:
        text = message.text
        if text.startswith("csp-violation") or "Content Security Policy" in text:
            found.append(text)

    page.on("console", on_console)
    return found


@pytest.mark.browser
def test_voting_breaks_no_rule_of_the_csp(browser_page: Page, live_server: Any) -> None:
    page = browser_page
    violations = csp_violations(page)
    response = page.goto(f"{live_server.base_url}/?round={live_server.round_id}")
    assert response is not None
    assert "nonce-" in response.headers["content-security-policy"]
    expect(page.locator("[data-candidate-id]")).to_have_count(CANDIDATES)
    choose(page, 1)  # the widget is imported when the voter starts voting
    # the widget solves the proof of work in blob: workers, its stylesheet carries the nonce
    page.wait_for_function(
        f"() => Boolean(localStorage.getItem('voter_token_device_{live_server.round_id}'))",
        timeout=60_000,
    )
    assert page.evaluate("() => document.getElementById('altcha-css').nonce.length") > 0
    page.locator("[data-candidate-id]").first.get_by_role("button", name="Xem thành tích").click()
    expect(page.locator("#profile-achievements p").first).to_be_visible()
    page.locator("#profile-close").click()
    cast(page, 3)
    page.reload()
    expect(page.locator("#voted")).to_be_visible()
    assert violations == []
    # the check itself works: an inline style is refused and reported
    with page.expect_console_message(lambda m: m.text.startswith("csp-violation")):
        page.evaluate(
            "() => document.head.append(Object.assign(document.createElement('style'),"
            " {textContent: 'p {}'}))"
        )
    assert any("style-src" in v for v in violations), violations


@pytest.mark.browser
def test_api_docs_render_from_our_own_files(browser_page: Page, live_server: Any) -> None:
    page = browser_page
    violations = csp_violations(page)
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    page.goto(f"{live_server.base_url}/schema")
    operations = page.locator(".opblock")
    expect(operations.first).to_be_visible(timeout=TIMEOUT_MS)
    ballots = page.locator(".opblock-summary-path", has_text="/api/v1/rounds/{round_id}/ballots")
    expect(ballots.first).to_be_visible()
    assert operations.count() > 20
    expect(page.locator(".info .title")).to_contain_text("Voting service")
    assert f"{live_server.base_url}/static/vendor/swagger-ui/swagger-ui-bundle.js" in requests
    assert f"{live_server.base_url}/schema/openapi.json" in requests
    foreign = [u for u in requests if not u.startswith((live_server.base_url, "data:"))]
    assert not foreign, foreign
    assert violations == []


# ---------- photos ----------


@pytest.fixture(scope="module")
def photo_round(live_server: Any) -> dict[str, Any]:
    """An open round of the sample whose DH01 and DH02 have photos (DH03 and the rest none)."""
    rnd = _admin_round(live_server, "device")
    buf = io.BytesIO()
    with zipfile.ZipFile(SAMPLE_PHOTOS) as sample, zipfile.ZipFile(buf, "w") as z:
        z.writestr("DH01.jpg", sample.read("DH01.jpg"))
        z.writestr("DH02.png", sample.read("DH03.png"))
    with httpx.Client(base_url=f"{live_server.base_url}/admin/api/v1", timeout=30) as http:
        r = http.post("/login", json={"username": "admin", "password": ADMIN_PASSWORD})
        http.headers["Authorization"] = f"Bearer {r.json()['token']}"
        r = http.post(
            f"/rounds/{rnd['id']}/photos",
            content=buf.getvalue(),
            headers={"Content-Type": "application/zip"},
        )
        assert r.status_code == 200, r.text
    return rnd


@pytest.mark.browser
def test_cards_show_photos_and_initials_without_one(
    browser_page: Page, live_server: Any, photo_round: Any
) -> None:
    page = browser_page
    violations = csp_violations(page)
    open_round(page, live_server, photo_round["id"])
    cards = page.locator("[data-candidate-id]")
    first = cards.nth(0)
    name = first.locator(".card-name").inner_text().strip()
    img = first.locator(".avatar img")
    expect(img).to_have_attribute("alt", f"Ảnh của {name}")
    expect(img).to_have_attribute("loading", "lazy")
    assert (img.get_attribute("width"), img.get_attribute("height")) == ("192", "192")
    assert "size=card" in (img.get_attribute("src") or "")
    img.scroll_into_view_if_needed()
    assert (img.get_attribute("srcset") or "").endswith("size=card 192w")
    assert img.get_attribute("sizes") == "56px"
    # a srcset's w descriptor scales naturalWidth to the drawn size: the 192 px WebP is
    # decoded at 192 / (192 / 56) px
    page.wait_for_function(
        "(el) => el.complete && el.naturalWidth === 56 && el.currentSrc.includes('size=card')",
        arg=img.element_handle(),
    )
    box = img.bounding_box()
    assert box is not None and round(box["width"]) == 56  # the card's circle (style.css)
    expect(cards.nth(1).locator(".avatar img")).to_have_count(1)
    third = cards.nth(2).locator(".avatar")
    expect(third.locator("img")).to_have_count(0)
    expect(third).to_have_class("avatar avatar-initials")
    expect(third).to_have_attribute("aria-hidden", "true")

    first.get_by_role("button", name="Xem thành tích").click()
    profile = page.locator("#profile-avatar img")
    expect(profile).to_have_attribute("alt", f"Ảnh của {name}")
    assert "size=profile" in (profile.get_attribute("src") or "")
    assert (profile.get_attribute("srcset") or "").endswith("size=profile 480w")
    page.wait_for_function(
        "(el) => el.complete && el.naturalWidth === 96 && el.currentSrc.includes('size=profile')",
        arg=profile.element_handle(),
    )
    page.locator("#profile-close").click()
    cards.nth(2).get_by_role("button", name="Xem thành tích").click()
    expect(page.locator("#profile-avatar img")).to_have_count(0)  # initials again
    expect(page.locator("#profile-avatar")).not_to_be_empty()
    assert violations == []
