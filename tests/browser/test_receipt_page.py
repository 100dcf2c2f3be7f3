"""The receipt check page (/kiem-tra) in a real browser: reached from the receipt screen,
forgiving to type into, clear about each status, accessible."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.browser.test_browser import TIMEOUT_MS, cast, open_round
from tests.support.browser import axe_violations, fresh_page
from voting.core.tracker import new_tracker


@pytest.fixture
def phone(_browser: Browser) -> Iterator[Page]:
    with fresh_page(_browser, 360, 740, TIMEOUT_MS) as page:
        yield page


@pytest.mark.browser
def test_the_receipt_screen_links_to_a_check_that_finds_the_ballot(
    phone: Page, live_server: Any
) -> None:
    open_round(phone, live_server)
    cast(phone, 2)
    shown = phone.locator("#receipt").inner_text().strip()
    phone.locator("#check-receipt").click()
    expect(phone).to_have_url(f"{live_server.base_url}/kiem-tra?ma={shown.replace('-', '')}")
    result = phone.locator("#check-result")
    expect(result).to_contain_text(shown)
    text = result.inner_text()
    assert "phiếu đã được ghi nhận" in text or "phiếu đang được ghi nhận" in text
    assert axe_violations(phone) == []
    phone.screenshot(path="tests/artifacts/receipt-check-phone.png", full_page=True)


@pytest.mark.browser
def test_typed_receipts_typos_and_strangers(phone: Page, live_server: Any) -> None:
    phone.goto(f"{live_server.base_url}/kiem-tra")
    expect(phone.locator("h1")).to_have_text("Kiểm tra phiếu bình chọn")
    assert axe_violations(phone) == []
    field, result = phone.locator("#check-code"), phone.locator("#check-result")

    tracker = new_tracker()
    field.fill(tracker.lower())
    phone.locator("#check-form button").click()
    expect(result).to_contain_text("không tìm thấy phiếu")
    assert "ma=" in phone.url

    typo = tracker[:-1] + ("0" if tracker[-1] != "0" else "1")
    field.fill(typo)
    field.press("Enter")
    expect(result).to_contain_text("Mã biên nhận không hợp lệ")
    expect(field).to_be_focused()

    field.fill("")
    field.press("Enter")
    expect(result).to_contain_text("Bạn chưa nhập mã biên nhận")
    assert axe_violations(phone) == []
