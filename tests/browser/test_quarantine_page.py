"""The public page shows a round's detection rules and, with its results, the ballots each
rule set aside (real browser, the live server of tests/conftest.py)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.support.app import ADMIN_PASSWORD, SAMPLE_CSV, unique_slug
from tests.support.browser import fresh_page

TIMEOUT_MS = 15_000


@pytest.fixture
def browser_page(_browser: Browser) -> Iterator[Page]:
    with fresh_page(_browser, 390, 844, TIMEOUT_MS) as page:
        yield page


def closed_round_with_a_hasty_ballot(base_url: str) -> int:
    """A code-mode round whose ``fast_redeem`` rule flags ballots cast within 30 s of their
    credential: one such ballot and then the close (the full pass sets it aside)."""
    with httpx.Client(base_url=base_url, timeout=30) as http:
        r = http.post("/admin/api/v1/login", json={"username": "admin", "password": ADMIN_PASSWORD})
        admin = {"Authorization": f"Bearer {r.json()['token']}"}
        body = {
            "slug": unique_slug("quarantine"),
            "title": "Tạm giữ",
            "identity_mode": "code",
            "detection": {"fast_redeem_seconds": 30},
        }
        rnd = http.post("/admin/api/v1/rounds", json=body, headers=admin).json()
        rid = rnd["id"]
        r = http.post(
            f"/admin/api/v1/rounds/{rid}/candidates/import",
            content=SAMPLE_CSV.read_bytes(),
            headers={**admin, "Content-Type": "text/csv"},
        )
        ids = [c["id"] for c in r.json()["candidates"]]
        r = http.post(f"/admin/api/v1/rounds/{rid}/codes", json={"count": 1}, headers=admin)
        code = next(csv.DictReader(io.StringIO(r.text)))["code"]
        assert http.post(f"/admin/api/v1/rounds/{rid}/open", headers=admin).status_code == 200
        token = http.post("/api/v1/voters", json={"code": code, "round_id": rid}).json()
        r = http.post(
            f"/api/v1/rounds/{rid}/ballots",
            json={"choices": ids[:2]},
            headers={"Authorization": f"Bearer {token['voter_token']}"},
        )
        assert r.status_code == 201, r.text
        r = http.post(f"/admin/api/v1/rounds/{rid}/close?wait=true", headers=admin)
        assert r.json()["final_at"] is not None, r.text
    return int(rid)


@pytest.mark.browser
def test_rules_and_set_aside_ballots_are_shown_in_vietnamese(
    browser_page: Page, live_server: Any
) -> None:
    rid = closed_round_with_a_hasty_ballot(live_server.base_url)
    page = browser_page
    page.goto(f"{live_server.base_url}/?round={rid}")
    rules = page.locator("#round-detection")
    expect(rules).to_be_visible()
    rules.get_by_text("Quy tắc phát hiện phiếu bất thường").click()
    expect(rules).to_contain_text("phiếu được gửi chưa đầy 30 giây sau khi cấp mã xác thực")
    expect(rules).to_contain_text("trong 10 phút, một mạng gửi từ 150 phiếu trở lên")
    results = page.locator("#results-body")
    expect(results).to_contain_text("Tổng số phiếu: 0")
    note = results.locator(".quarantine-note")
    expect(note).to_contain_text("1 phiếu bị đánh dấu theo quy tắc phát hiện")
    row = note.locator("[data-quarantine-reason=fast_redeem]")
    expect(row).to_contain_text("Gửi phiếu quá nhanh")
    expect(row).to_contain_text("chờ xem xét")
    expect(row.locator("td").nth(1)).to_have_text("1")
