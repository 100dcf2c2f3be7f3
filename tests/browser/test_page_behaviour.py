"""The citizen's page in a real browser (Debian Chromium): the 16-of-28 choice, the keyboard,
the profile's address and share button, the receipt screen, a pause while the page is open,
results first, failed loads with a retry, the framed page and each identity mode's step; axe
finds nothing in each state. Screenshots of each state go to tests/artifacts/.

Most tests use the live server of tests/conftest.py (device mode, proof of work required);
the framed page and the OTP step use a second ``voting serve`` of this module that a portal
page on ``localhost`` (another site, on loopback) may frame, and that mails codes to its log
(``VOTING_EMAIL_SENDER=console``)."""

from __future__ import annotations

import re
import struct
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, Route, expect

from tests.browser.test_browser import (
    CANDIDATES,
    MAX_CHOICES,
    TIMEOUT_MS,
    _admin_round,
    cast,
    choose,
    open_round,
)
from tests.support.app import ADMIN_PASSWORD
from tests.support.browser import AXE, axe_violations, fresh_page
from tests.support.servers import VotingProcess, free_port, server_env
from voting.settings import Settings

RESEND_SECONDS = 3


@pytest.fixture
def phone(_browser: Browser) -> Iterator[Page]:
    with fresh_page(_browser, 360, 740, TIMEOUT_MS) as page:
        yield page


@pytest.fixture
def laptop(_browser: Browser) -> Iterator[Page]:
    with fresh_page(_browser, 1280, 800, TIMEOUT_MS) as page:
        yield page


def no_violations(page: Page) -> None:
    found = axe_violations(page)
    assert found == [], found


def shot(page: Page, name: str) -> None:
    page.screenshot(path=f"tests/artifacts/page-{name}.png")


class Admin:
    """The admin API of a server, logged in (plain httpx: sync Playwright runs no asyncio)."""

    def __init__(self, base_url: str) -> None:
        self.http = httpx.Client(base_url=base_url, timeout=30)
        r = self.http.post(
            "/admin/api/v1/login", json={"username": "admin", "password": ADMIN_PASSWORD}
        )
        assert r.status_code == 200, r.text
        self.http.headers["Authorization"] = f"Bearer {r.json()['token']}"

    def post(self, path: str, **kw: Any) -> httpx.Response:
        return self.http.post(f"/admin/api/v1{path}", **kw)

    def close(self) -> None:
        self.http.close()


@pytest.fixture(scope="module")
def admin(live_server: Any) -> Iterator[Admin]:
    a = Admin(live_server.base_url)
    yield a
    a.close()


def code_ballots(base_url: str, rnd: dict[str, Any], ballots: list[list[int]]) -> None:
    """Cast ``ballots`` (lists of candidate indexes in the shortlist) with the round's codes."""
    detail = httpx.get(f"{base_url}/api/v1/rounds/{rnd['id']}", timeout=30).json()
    ids = [c["id"] for c in detail["candidates"]]
    for code, picks in zip(rnd["codes"], ballots, strict=False):
        r = httpx.post(
            f"{base_url}/api/v1/voters", json={"code": code, "round_id": rnd["id"]}, timeout=30
        )
        assert r.status_code == 201, r.text
        r = httpx.post(
            f"{base_url}/api/v1/rounds/{rnd['id']}/ballots",
            json={"choices": [ids[i] for i in picks]},
            headers={"Authorization": f"Bearer {r.json()['voter_token']}"},
            timeout=30,
        )
        assert r.status_code == 201, r.text


# ---------- the 16-of-28 choice, the profile, its address ----------


@pytest.mark.browser
def test_a_full_ballot_says_so_on_every_other_card_before_the_tap(
    phone: Page, live_server: Any
) -> None:
    page = phone
    open_round(page, live_server)
    cards = page.locator("[data-candidate-id]")
    first = cards.nth(0)
    expect(first.locator(".choose-word")).to_have_text("Chọn")
    choose(page, MAX_CHOICES)
    expect(first.locator(".choose-word")).to_have_text("Đã chọn")
    expect(first.locator("input[name=choice]")).not_to_have_attribute("aria-disabled", "true")
    free = cards.nth(MAX_CHOICES)
    expect(free).to_have_class(re.compile(r"\bis-full\b"))
    expect(free.locator(".choose-word")).to_have_text(f"Đã đủ {MAX_CHOICES}")
    box = free.locator("input[name=choice]")
    expect(box).to_have_attribute("aria-disabled", "true")
    expect(box).to_have_attribute("aria-describedby", re.compile(r"\bfull-note\b"))
    expect(page.locator("#full-note")).to_contain_text(f"đủ {MAX_CHOICES}")
    expect(page.locator("#counter-hint")).to_contain_text("Đã đủ")
    no_violations(page)
    free.scroll_into_view_if_needed()
    shot(page, "full-phone")
    # unticking one frees the others again
    first.locator("input[name=choice]").uncheck()
    expect(free.locator(".choose-word")).to_have_text("Chọn")
    expect(box).not_to_have_attribute("aria-disabled", "true")
    # cards are compact: the summary is cut to two lines (the profile has the rest)
    summary = first.locator(".summary")
    assert summary.evaluate("(e) => e.scrollHeight > e.clientHeight + 2")
    height = page.evaluate("document.documentElement.scrollHeight")
    print(f"page height at 360 px: {height}px")


@pytest.mark.browser
def test_the_profile_opens_on_its_name_keeps_the_counter_and_has_an_address(
    phone: Page, live_server: Any
) -> None:
    page = phone
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    open_round(page, live_server)
    detail = httpx.get(f"{live_server.base_url}/api/v1/rounds/{live_server.round_id}").json()
    choose(page, 2)
    card = page.locator("[data-candidate-id]").nth(2)
    code = card.locator(".tag-code").inner_text().strip()
    opener = card.get_by_role("button", name="Xem thành tích")
    opener.click()
    dialog = page.locator("#profile-dialog")
    expect(dialog).to_be_visible()
    expect(page.locator("#profile-name")).to_be_focused()
    expect(page.locator("#profile-counter")).to_have_text(f"Đã chọn 2/{MAX_CHOICES}")
    expect(page.locator("#profile-counter")).to_be_in_viewport()
    page.locator("#profile-choose").click()
    expect(page.locator("#profile-counter")).to_have_text(f"Đã chọn 3/{MAX_CHOICES}")
    assert page.evaluate("location.pathname") == f"/r/{detail['slug']}/{code}"
    expect(page.locator("#profile-achievements p").first).to_be_visible()
    no_violations(page)
    shot(page, "profile-phone")

    page.locator("#profile-share").click()
    expect(page.locator("#profile-share-status")).to_have_text("Đã chép liên kết.")
    copied = page.evaluate("() => navigator.clipboard.readText()")
    assert copied == f"{live_server.base_url}/r/{detail['slug']}/{code}"

    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    expect(opener).to_be_focused()
    # back where it was opened
    page.wait_for_function(f"() => location.search === '?round={live_server.round_id}'")
    assert page.evaluate("location.pathname") == "/"
    # forward opens it again, back closes it
    page.go_forward()
    expect(dialog).to_be_visible()
    expect(page.locator("#profile-name")).to_have_text(card.locator(".card-name").inner_text())
    page.go_back()
    expect(dialog).to_be_hidden()
    assert page.evaluate("document.activeElement !== document.body")


@pytest.mark.browser
def test_a_candidate_link_opens_the_round_and_the_profile(phone: Page, live_server: Any) -> None:
    page = phone
    detail = httpx.get(f"{live_server.base_url}/api/v1/rounds/{live_server.round_id}").json()
    third = detail["candidates"][2]
    page.goto(f"{live_server.base_url}/r/{detail['slug']}/{third['code'].lower()}")
    dialog = page.locator("#profile-dialog")
    expect(dialog).to_be_visible()
    expect(page.locator("#profile-name")).to_have_text(third["full_name"])
    expect(page.locator("#profile-name")).to_be_focused()
    expect(page.locator("#round-title")).to_have_text(detail["title"])
    no_violations(page)
    page.locator("#profile-close").click()
    expect(dialog).to_be_hidden()
    # the address goes back to the round's (history.replaceState after the dialog's close)
    expect(page).to_have_url(f"{live_server.base_url}/r/{detail['slug']}")
    # the card's button has the focus, not the body
    expect(page.locator(f"button[data-action=profile][data-id='{third['id']}']")).to_be_focused()
    # a round that does not exist says so
    page.goto(f"{live_server.base_url}/r/khong-co-dot-nay")
    expect(page.locator("#round-title")).to_have_text("Không tìm thấy đợt bình chọn")
    no_violations(page)


@pytest.mark.browser
def test_failed_achievements_offer_a_retry(phone: Page, live_server: Any) -> None:
    page = phone
    open_round(page, live_server)
    failures = {"left": 1}

    def flaky(route: Route) -> None:
        if failures["left"]:
            failures["left"] -= 1
            route.abort()
        else:
            route.continue_()

    page.route(re.compile(r".*/api/v1/rounds/\d+/candidates/\d+$"), flaky)
    page.locator("[data-candidate-id]").nth(0).get_by_role("button", name="Xem thành tích").click()
    retry = page.locator("#profile-achievements").get_by_role("button", name="Thử lại")
    expect(retry).to_be_visible()
    expect(page.locator("#profile-achievements")).to_contain_text("Không tải được thành tích")
    no_violations(page)
    retry.click()
    expect(page.locator("#profile-achievements p").first).not_to_contain_text("Không tải được")
    expect(retry).to_have_count(0)
    expect(page.locator("#profile-name")).to_be_focused()  # not lost to the body


# ---------- keyboard ----------


@pytest.mark.browser
def test_from_any_card_the_send_button_is_three_keys_away(laptop: Page, live_server: Any) -> None:
    page = laptop
    open_round(page, live_server)
    choose(page, 1)
    card = page.locator("[data-candidate-id]").nth(5)
    card.get_by_role("button", name="Xem thành tích").focus()
    page.keyboard.press("Tab")  # its choose box
    expect(card.locator("input[name=choice]")).to_be_focused()
    page.keyboard.press("Tab")  # the jump, visible when focused
    jump = card.get_by_role("button", name="Đến nút gửi phiếu")
    expect(jump).to_be_focused()
    expect(jump).to_be_visible()
    page.keyboard.press("Enter")
    expect(page.locator("#cast")).to_be_focused()
    # anywhere: Ctrl+Enter
    page.locator("#search").focus()
    page.keyboard.press("Control+Enter")
    expect(page.locator("#cast")).to_be_focused()
    expect(page.locator("#keyboard-tip")).to_contain_text("Ctrl")
    no_violations(page)
    page.wait_for_function(
        f"() => Boolean(localStorage.getItem('voter_token_device_{live_server.round_id}'))",
        timeout=60_000,
    )
    page.keyboard.press("Enter")  # the confirm step
    expect(page.locator("#confirm-dialog")).to_be_visible()
    no_violations(page)
    shot(page, "confirm-laptop")
    page.locator("#confirm").press("Enter")
    expect(page.locator("#voted")).to_be_visible()
    expect(page.locator("#voted-title")).to_be_focused()  # not lost to the body


# ---------- the receipt ----------


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


@pytest.mark.browser
def test_the_receipt_screen_copies_downloads_and_sends(phone: Page, live_server: Any) -> None:
    page = phone
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    open_round(page, live_server)
    cast(page, 2)
    expect(page.locator("#voted-title")).to_be_focused()
    shown = page.locator("#receipt").inner_text().strip()
    assert re.fullmatch(r"[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]", shown)
    tracker = shown.replace("-", "")
    expect(page.locator("#check-receipt")).to_have_attribute("href", f"/kiem-tra?ma={tracker}")
    no_violations(page)
    shot(page, "receipt-phone")

    page.locator("#copy-receipt").click()
    expect(page.locator("#copy-receipt")).to_have_text("Đã sao chép")
    assert page.evaluate("() => navigator.clipboard.readText()") == tracker

    with page.expect_download() as info:
        page.locator("#receipt-image").click()
    download = info.value
    assert download.suggested_filename == f"bien-nhan-{tracker}.png"
    plain = png_size(Path(download.path()).read_bytes())
    page.locator("#receipt-with-choices").check()
    with page.expect_download() as info:
        page.locator("#receipt-image").click()
    with_choices = png_size(Path(info.value.path()).read_bytes())
    assert plain[0] == with_choices[0] and with_choices[1] > plain[1]  # two more lines

    href = page.locator("#receipt-send").get_attribute("href") or ""
    assert href.startswith("mailto:?subject=")
    body = httpx.QueryParams(href.split("?", 1)[1])["body"]
    assert shown in body and f"{live_server.base_url}/kiem-tra?ma={tracker}" in body


# ---------- a pause while the page is open ----------


@pytest.mark.browser
def test_a_pause_is_said_before_the_confirm_step_and_on_a_refused_ballot(
    phone: Page, live_server: Any, admin: Admin
) -> None:
    rnd = _admin_round(live_server, "code", codes=1)
    page = phone
    open_round(page, live_server, rnd["id"])
    page.locator("#voter-code").fill(rnd["codes"][0])
    page.locator("#voter-code-submit").click()
    expect(page.locator("#identity-status")).to_contain_text("hợp lệ")
    choose(page, 2)
    assert admin.post(f"/rounds/{rnd['id']}/pause").status_code == 200
    page.wait_for_timeout(5_500)  # the public round list is cached 5 s
    page.locator("#cast").click()
    expect(page.locator("#confirm-dialog")).to_be_hidden()
    expect(page.locator("#message")).to_contain_text("đang tạm dừng")
    notice = page.locator("#round-notice")
    expect(notice).to_have_attribute("data-status", "paused")
    expect(notice).to_contain_text("Đợt bình chọn đang tạm dừng")
    expect(page.locator("#cast")).to_be_disabled()
    expect(page.locator("#counter-hint")).to_have_text("Tạm dừng nhận phiếu")
    no_violations(page)
    shot(page, "paused-phone")

    # resumed: the page notices it by itself (it asks every 15 s while visible)
    assert admin.post(f"/rounds/{rnd['id']}/resume").status_code == 200
    expect(page.locator("#cast")).to_be_enabled(timeout=25_000)
    expect(notice).to_be_hidden()
    page.locator("#cast").click()
    expect(page.locator("#confirm-dialog")).to_be_visible()
    # paused between the confirm step and the send: the refusal says paused
    assert admin.post(f"/rounds/{rnd['id']}/pause").status_code == 200
    page.locator("#confirm").click()
    expect(page.locator("#message")).to_have_attribute("data-code", "round_not_open")
    expect(page.locator("#message")).to_contain_text("đang tạm dừng")
    expect(page.locator("#voted")).to_be_hidden()
    assert admin.post(f"/rounds/{rnd['id']}/resume").status_code == 200


# ---------- results first ----------


@pytest.mark.browser
@pytest.mark.parametrize("size", ["phone", "laptop"])
def test_a_closed_round_opens_on_its_results(
    request: pytest.FixtureRequest, live_server: Any, admin: Admin, size: str
) -> None:
    page: Page = request.getfixturevalue(size)
    rnd = _admin_round(live_server, "code", codes=3, winners=2)
    code_ballots(live_server.base_url, rnd, [[0, 1], [0, 1], [0, 2]])
    assert admin.post(f"/rounds/{rnd['id']}/close?wait=true").status_code == 200
    # cast by a script within a second of their codes: set aside by fast_redeem, then counted
    r = admin.post(
        f"/rounds/{rnd['id']}/quarantine/fast_redeem",
        json={"decision": "count", "note": "Phiếu thử nghiệm của kiểm thử"},
    )
    assert r.status_code == 200, r.text
    page.wait_for_timeout(5_500)  # the public round is cached 5 s
    page.goto(f"{live_server.base_url}/?round={rnd['id']}")
    results = page.locator("#results")
    cards = results.locator(".winner-card")
    expect(cards).to_have_count(2)
    # the first panel after the round's own is the results, above the list
    first = page.evaluate(
        "() => { let n = document.getElementById('round-info').nextElementSibling;"
        " while (n && n.hidden) n = n.nextElementSibling; return n && n.id; }"
    )
    assert first == "results"
    top = results.bounding_box()
    assert top is not None and top["y"] < 800
    names = cards.locator(".winner-name").all_inner_texts()
    detail = httpx.get(f"{live_server.base_url}/api/v1/rounds/{rnd['id']}").json()
    assert names == [detail["candidates"][0]["full_name"], detail["candidates"][1]["full_name"]]
    expect(results.locator(".results-table:not(.quarantine-table) tbody tr")).to_have_count(
        CANDIDATES
    )
    expect(results.locator(".quarantine-note")).to_contain_text("quyết định tính")
    expect(results).to_contain_text("Tổng số phiếu: 3")
    expect(results.locator(f"a[href='/api/v1/rounds/{rnd['id']}/commitments']")).to_be_visible()
    expect(results.locator("a[href$='/audit']")).to_have_count(0)  # not official yet
    expect(results).to_contain_text("Gói kiểm tra để đếm lại phiếu sẽ có khi")
    to_list = page.get_by_role("link", name="Xem danh sách ứng viên")
    expect(to_list).to_be_visible()
    no_violations(page)
    shot(page, f"results-{size}")

    assert admin.post(f"/rounds/{rnd['id']}/official").status_code == 200
    page.wait_for_timeout(5_500)  # cached answers
    page.reload()
    audit = results.locator(f"a[href='/api/v1/rounds/{rnd['id']}/audit']")
    expect(audit).to_be_visible()
    assert httpx.get(f"{live_server.base_url}/api/v1/rounds/{rnd['id']}/audit").status_code == 200
    expect(results).to_contain_text("Kết quả chính thức")
    no_violations(page)
    to_list.click()
    expect(page.locator("#vote")).to_be_in_viewport()


@pytest.mark.browser
def test_failed_results_offer_a_retry(phone: Page, live_server: Any, admin: Admin) -> None:
    rnd = _admin_round(live_server, "code", codes=1, winners=2)
    assert admin.post(f"/rounds/{rnd['id']}/close?wait=true").status_code == 200
    page = phone
    failures = {"left": 1}

    def flaky(route: Route) -> None:
        if failures["left"]:
            failures["left"] -= 1
            route.fulfill(status=503, json={"error": {"code": "unavailable", "message": "x"}})
        else:
            route.continue_()

    page.route(re.compile(r".*/api/v1/rounds/\d+/results$"), flaky)
    page.goto(f"{live_server.base_url}/?round={rnd['id']}")
    retry = page.locator("#results-body").get_by_role("button", name="Thử lại")
    expect(retry).to_be_visible()
    expect(page.locator("#results-body")).to_contain_text("Không tải được kết quả")
    no_violations(page)
    retry.click()
    expect(page.locator("#results-body")).to_contain_text("Tổng số phiếu: 0")
    expect(page.locator("#results-title")).to_be_focused()  # not lost to the body


# ---------- a page of its own: framed, and the OTP step ----------


class _Portal(BaseHTTPRequestHandler):
    """The bloc's portal: one page that frames ours (``server.target``)."""

    def do_GET(self) -> None:  # noqa: N802 (the standard library's name)
        body = (
            '<!doctype html><html lang="vi"><title>Cổng thông tin</title>'
            f'<iframe title="Bình chọn" src="{self.server.target}"'  # type: ignore[attr-defined]
            ' width="360" height="700"></iframe>'
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def page_server(settings: Settings, live_server: Any) -> Iterator[SimpleNamespace]:
    """A second ``voting serve`` on the same stores: framable by ``portal`` (the same port on
    ``localhost``: another origin and another site than 127.0.0.1, both loopback so no
    private-network rule of Chromium is in play), codes mailed to its log, resend interval
    RESEND_SECONDS."""
    port = free_port()
    # a real server on loopback (a page Playwright made up would be a "public" page to
    # Chromium's local network access checks, and could not frame a loopback one)
    portal_server = ThreadingHTTPServer(("127.0.0.1", 0), _Portal)
    portal_server.target = f"http://127.0.0.1:{port}/?round={live_server.round_id}"  # type: ignore[attr-defined]
    threading.Thread(target=portal_server.serve_forever, daemon=True).start()
    portal = f"http://localhost:{portal_server.server_address[1]}"
    log = settings.server.data_dir / "page-server.log"
    env = server_env(
        settings,
        port,
        VOTING_RUN_PERSISTER="false",
        VOTING_CHALLENGE_REQUIRED="true",
        VOTING_FRAME_ANCESTORS=f"'self' {portal}",
        VOTING_EMAIL_SENDER="console",
        VOTING_OTP_RESEND_INTERVAL=str(RESEND_SECONDS),
    )
    proc = VotingProcess("page-server", ["serve"], env, log, port)
    proc.start()
    try:
        proc.wait_healthy(30.0)
        yield SimpleNamespace(
            base_url=proc.url, portal=portal, log=log, round_id=live_server.round_id
        )
    finally:
        proc.stop()
        portal_server.shutdown()
        portal_server.server_close()


@pytest.mark.browser
def test_a_framed_page_hands_voting_to_a_window_of_its_own(phone: Page, page_server: Any) -> None:
    page = phone
    voters: list[str] = []
    target = f"{page_server.base_url}/?round={page_server.round_id}"
    page.on(
        "request",
        lambda r: voters.append(r.url) if r.method == "POST" and "/api/v1/voters" in r.url else 0,
    )
    page.goto(f"{page_server.portal}/portal.html")
    frame = page.frame_locator("iframe")
    expect(frame.locator("[data-candidate-id]")).to_have_count(CANDIDATES)
    link = frame.locator("#framed-open")
    expect(link).to_be_visible()
    expect(link).to_have_attribute("target", "_blank")
    expect(link).to_have_attribute("rel", "noopener")
    expect(link).to_have_attribute("href", target)
    expect(frame.locator("#identity")).to_be_hidden()
    expect(frame.locator("#votebar")).to_be_hidden()
    expect(frame.locator("input[name=choice]:visible")).to_have_count(0)
    expect(frame.locator("altcha-widget")).to_have_count(0)
    expect(frame.locator("#keyboard-tip")).to_be_hidden()
    shot(page, "framed-phone")
    # reading stays in the frame
    frame.locator("[data-candidate-id]").nth(0).get_by_role("button", name="Xem thành tích").click()
    expect(frame.locator("#profile-achievements p").first).to_be_visible()
    frame.locator("#profile-close").click()
    page.wait_for_timeout(1_000)
    assert voters == []  # no credential minted in the frame
    inner = next(f for f in page.frames if f.url.startswith(page_server.base_url))
    inner.evaluate(AXE.read_text(encoding="utf-8") + "\n;0")
    found = inner.evaluate(
        "async () => { const r = await axe.run(document, {runOnly: "
        "['wcag2a','wcag2aa','wcag21a','wcag21aa']}); return r.violations.map(v => v.id); }"
    )
    assert found == []


def _last_code(log: Any, after: int) -> str:
    text = log.read_text(encoding="utf-8", errors="replace")[after:]
    found = re.findall(r"console email to [^:]+: Mã xác thực của bạn là: (\d{6})", text)
    assert found, text[-2000:]
    return str(found[-1])


@pytest.mark.browser
def test_email_mode_walks_through_consent_the_code_and_a_resend_countdown(
    phone: Page, page_server: Any
) -> None:
    rnd = _admin_round(page_server, "email")
    page = phone
    page.goto(f"{page_server.base_url}/?round={rnd['id']}")
    expect(page.locator("#identity")).to_have_attribute("data-mode", "email")
    expect(page.locator("#round-identity-summary")).to_have_text(
        "Cách xác thực: mỗi địa chỉ email một phiếu"
    )
    address = page.locator("#otp-address")
    address.fill("khong-hop-le")
    page.locator("#otp-consent").check()
    offset = page_server.log.stat().st_size
    page.locator("#otp-send").click()
    expect(page.locator("#message")).to_have_attribute("data-code", "email_invalid")
    expect(page.locator("#identity-status")).to_have_attribute("data-state", "error")
    address.fill("cu.tri+buoc@example.org")
    page.locator("#otp-send").click()
    expect(page.locator("#otp-step2")).to_be_visible()
    expect(page.locator("#message")).to_be_hidden()  # the earlier error went with the sending
    send = page.locator("#otp-send")
    expect(send).to_be_disabled()
    expect(send).to_contain_text("Gửi lại mã sau")
    expect(page.locator("#otp-code")).to_be_focused()
    no_violations(page)
    shot(page, "otp-phone")
    expect(send).to_be_enabled(timeout=(RESEND_SECONDS + 3) * 1000)
    expect(send).to_have_text("Gửi lại mã")
    page.wait_for_timeout(500)
    code = _last_code(page_server.log, offset)
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    page.locator("#otp-code").fill(wrong)
    page.locator("#otp-verify").click()
    expect(page.locator("#message")).to_contain_text("Bạn còn")
    page.locator("#otp-code").fill(code)
    page.locator("#otp-verify").click()
    expect(page.locator("#identity-status")).to_contain_text("Email đã được xác thực")
    cast(page, 1)


@pytest.mark.browser
def test_code_mode_reads_the_code_as_typed_and_says_what_it_guarantees(
    phone: Page, live_server: Any, code_round_for_page: dict[str, Any]
) -> None:
    page = phone
    open_round(page, live_server, code_round_for_page["id"])
    expect(page.locator("#round-identity-summary")).to_have_text(
        "Cách xác thực: mỗi mã bình chọn một phiếu"
    )
    field = page.locator("#voter-code")
    expect(field).to_have_attribute("autocomplete", "one-time-code")
    expect(field).to_have_attribute("inputmode", "text")
    expect(page.locator("#voter-code-format")).to_contain_text("XXXX-XXXX-XXX")
    good = code_round_for_page["codes"][0]
    plain = good.replace("-", "")
    # typed loosely: lower case, spaces, O for 0 and I or L for 1
    loose = " ".join(plain.lower()).replace("0", "o").replace("1", "l")
    field.press_sequentially(loose)
    expect(field).to_have_value(good)
    no_violations(page)
    shot(page, "code-phone")
    page.locator("#voter-code-submit").click()
    expect(page.locator("#identity-status")).to_contain_text("Mã bình chọn hợp lệ")


@pytest.fixture(scope="module")
def code_round_for_page(live_server: Any) -> dict[str, Any]:
    return _admin_round(live_server, "code", codes=2)


@pytest.mark.browser
def test_device_mode_says_a_new_browser_can_vote_again(phone: Page, live_server: Any) -> None:
    page = phone
    open_round(page, live_server)
    identity = page.locator("#round-identity")
    expect(identity.locator("summary")).to_have_text("Cách xác thực: mỗi trình duyệt một phiếu")
    identity.locator("summary").click()
    expect(identity).to_contain_text("cửa sổ ẩn danh vẫn có thể gửi thêm phiếu")
    no_violations(page)


@pytest.mark.browser
def test_an_open_round_with_live_results_shows_them_first_and_still_votes(
    phone: Page, live_server: Any
) -> None:
    rnd = _admin_round(live_server, "code", codes=1, results_visibility="live")
    page = phone
    open_round(page, live_server, rnd["id"])
    results = page.locator("#results")
    expect(results).to_have_class(re.compile(r"\bresults-first\b"))
    expect(results).to_contain_text("Kết quả tạm thời")
    box = results.bounding_box()
    vote = page.locator("#vote").bounding_box()
    assert box is not None and vote is not None and box["y"] < vote["y"]
    no_violations(page)
    page.locator("#voter-code").fill(rnd["codes"][0])
    page.locator("#voter-code-submit").click()
    expect(page.locator("#identity-status")).to_contain_text("hợp lệ")
    cast(page, 1)
