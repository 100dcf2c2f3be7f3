"""The admin console in a real browser (Debian's Chromium via Playwright), as the department's
staff would use it: log in, create a round, upload a broken then a good shortlist, open it,
watch the dashboard while ballots arrive, pause, resume, close; an observer who cannot change
anything; axe-core finds no violation on any page. Screenshots go to ``tests/artifacts``.

Runs its own ``voting serve`` with the persister, on a database and key prefix of its own.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TypeVar

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.support.app import ADMIN_PASSWORD, OBSERVER_PASSWORD, SAMPLE_CSV
from tests.support.browser import axe_violations, fresh_page
from tests.support.pdf import pdf_text
from tests.support.servers import Backends, own_service

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
TIMEOUT_MS = 15_000
T = TypeVar("T")


class Console:
    def __init__(self, url: str) -> None:
        self.url = url


@pytest.fixture(scope="module")
def console(backends: Backends) -> Iterator[Console]:
    users = [("admin", ADMIN_PASSWORD, "admin"), ("observer", OBSERVER_PASSWORD, "observer")]
    with own_service(backends, "console", users, VOTING_RUN_PERSISTER="true") as url:
        yield Console(url)


@pytest.fixture
def page(_browser: Browser) -> Iterator[Page]:
    """A laptop-sized page (see :func:`fresh_page`)."""
    with fresh_page(_browser, 1366, 768, TIMEOUT_MS) as page:
        yield page


def accessible(page: Page, name: str) -> None:
    """No axe-core violation on the page as it is; a screenshot ``name``.png."""
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"console-{name}.png"), full_page=True)
    violations = axe_violations(page)
    assert violations == [], f"{name}: {violations}"


def log_in(page: Page, console: Console, user: str, password: str) -> None:
    page.goto(f"{console.url}/admin")
    expect(page).to_have_url(f"{console.url}/admin/login?next=/admin")
    expect(page.get_by_text("Phiên đăng nhập đã hết hạn")).to_have_count(0)
    page.get_by_label("Tên đăng nhập").fill(user)
    page.get_by_label("Mật khẩu").fill(password)
    page.get_by_role("button", name="Đăng nhập").click()
    expect(page.get_by_role("heading", name="Vòng bình chọn")).to_be_visible()


def cast_ballots(console: Console, round_id: int, count: int) -> None:
    """``count`` voters of the round cast a ballot each through the public API (no proof of
    work here); then the first tries again (refused: already voted) and one sends a ballot
    that is not one (refused: malformed)."""
    with httpx.Client(base_url=console.url, timeout=30) as http:
        candidates = http.get(f"/api/v1/rounds/{round_id}").json()["candidates"]
        tokens = []
        for i in range(count):
            token = http.post("/api/v1/voters", json={"round_id": round_id}).json()["voter_token"]
            tokens.append(token)
            choices = [candidates[(i + k) % len(candidates)]["id"] for k in range(3)]
            r = http.post(
                f"/api/v1/rounds/{round_id}/ballots",
                json={"choices": choices},
                headers={"Authorization": f"Bearer {token}"},
            )
            assert r.status_code == 201, r.text
        for body, status in (({"choices": [candidates[0]["id"]]}, 409), ({"choices": "x"}, 400)):
            r = http.post(
                f"/api/v1/rounds/{round_id}/ballots",
                json=body,
                headers={"Authorization": f"Bearer {tokens[0]}"},
            )
            assert r.status_code == status, r.text


@pytest.mark.browser
def test_an_admin_runs_a_round_from_the_browser(page: Page, console: Console, tmp_path: Path):
    page.goto(f"{console.url}/admin/login")
    accessible(page, "login")
    page.get_by_label("Tên đăng nhập").fill("admin")
    page.get_by_label("Mật khẩu").fill("wrong-password")
    page.get_by_role("button", name="Đăng nhập").click()
    expect(page.get_by_role("alert")).to_have_text("Sai tên đăng nhập hoặc mật khẩu.")
    accessible(page, "login-error")
    page.get_by_label("Mật khẩu").fill(ADMIN_PASSWORD)
    page.get_by_role("button", name="Đăng nhập").click()
    expect(page.get_by_role("heading", name="Vòng bình chọn")).to_be_visible()
    accessible(page, "rounds-empty")

    # create a round: a mistake first, said next to its field
    page.get_by_role("link", name="Tạo vòng mới").click()
    accessible(page, "round-new")
    page.get_by_label("Mã vòng (dùng trong đường dẫn)").fill("guong-mat-2026")
    page.get_by_label("Tên vòng").fill("Gương mặt tiêu biểu năm 2026")
    page.get_by_label("Số người chọn tối thiểu").fill("20")
    page.get_by_role("button", name="Tạo vòng").click()
    expect(page.locator("#max_choices-error")).to_be_visible()
    expect(page.get_by_label("Số người chọn tối đa")).to_have_attribute("aria-invalid", "true")
    accessible(page, "round-new-error")
    page.get_by_label("Số người chọn tối thiểu").fill("1")
    page.get_by_label("Tự động đóng lúc (không bắt buộc)").fill("2030-12-31T17:00")
    page.get_by_role("button", name="Tạo vòng").click()
    expect(page.get_by_role("heading", name="Gương mặt tiêu biểu năm 2026")).to_be_visible()
    expect(page.get_by_text("31/12/2030 17:00")).to_be_visible()

    # a broken shortlist: its errors in a table, nothing imported
    broken = tmp_path / "ds-loi.csv"
    text = SAMPLE_CSV.read_text(encoding="utf-8")
    broken.write_text(text.replace("DH02", "DH01", 1), encoding="utf-8")
    page.get_by_label("Tệp CSV danh sách đề cử (UTF-8, theo mẫu)").set_input_files(str(broken))
    page.get_by_role("button", name="Nhập danh sách").click()
    expect(page.get_by_text("Tệp bị từ chối")).to_be_visible()
    expect(page.locator("#shortlist-result table")).to_contain_text("bị trùng")
    expect(page.get_by_role("heading", name="Danh sách đề cử (0 người)")).to_be_visible()
    accessible(page, "shortlist-error")
    page.get_by_label("Tệp CSV danh sách đề cử (UTF-8, theo mẫu)").set_input_files(str(SAMPLE_CSV))
    page.get_by_role("button", name="Nhập danh sách").click()
    expect(page.get_by_text("Đã nhập 28 người từ tệp.")).to_be_visible()
    expect(page.get_by_role("heading", name="Danh sách đề cử (28 người)")).to_be_visible()
    # photos: a bad archive is refused entry by entry, then the sample photos
    page.get_by_label("Ảnh chân dung: tệp ZIP", exact=False).set_input_files(
        str(SAMPLE_CSV.with_name("photos-bad.zip"))
    )
    page.get_by_role("button", name="Tải ảnh lên").click()
    result = page.locator("#photos-result")
    expect(result).to_contain_text("Ảnh bị từ chối, không ảnh nào được lưu")
    expect(result).to_contain_text("Không phải ảnh JPEG, PNG hay WebP.")
    expect(result).to_contain_text("vượt giới hạn 50 megapixel")
    expect(result).to_contain_text("Không có người được đề cử nào mang mã")
    expect(result).to_contain_text("Đường dẫn vượt ra ngoài thư mục")
    accessible(page, "photos-error")
    page.get_by_label("Ảnh chân dung: tệp ZIP", exact=False).set_input_files(
        str(SAMPLE_CSV.with_name("shortlist-sample-photos.zip"))
    )
    page.get_by_role("button", name="Tải ảnh lên").click()
    expect(page.get_by_text("Đã lưu 28 ảnh.")).to_be_visible(timeout=30_000)
    expect(page.locator("img.thumb")).to_have_count(28)
    assert page.locator("img.thumb").first.evaluate("i => i.complete && i.naturalWidth > 0")
    accessible(page, "round-draft")
    round_id = int(page.url.split("/rounds/")[1].split("?")[0])

    # the cards as voters will see them, before the round opens
    page.get_by_role("link", name="Xem trước danh sách như cử tri sẽ thấy").click()
    expect(page.locator("li.card")).to_have_count(28)
    expect(page.locator("li.card img")).to_have_count(28)
    accessible(page, "preview")
    page.go_back()
    # one candidate's page (photo and profile), and a tablet's width
    page.get_by_role("link", name="Nguyễn Thị Minh Thư").click()
    expect(page.get_by_role("heading", name="Nguyễn Thị Minh Thư (DH01)")).to_be_visible()
    expect(page.locator("img.portrait")).to_be_visible()
    accessible(page, "candidate")
    page.go_back()
    page.set_viewport_size({"width": 768, "height": 1024})
    assert page.evaluate("document.documentElement.scrollWidth") <= 768
    page.set_viewport_size({"width": 1366, "height": 768})

    # open, behind a confirmation that says what happens
    messages: list[str] = []
    page.on("dialog", lambda d: (messages.append(d.message), d.accept()))
    page.get_by_role("button", name="Mở vòng").click()
    expect(page.locator(".heading .status")).to_have_text("Đang mở")
    assert "cử tri bắt đầu gửi phiếu" in messages[-1]
    expect(page.locator("[data-countdown]")).to_contain_text("còn")

    # the dashboard follows the ballots by itself
    page.get_by_role("link", name="Theo dõi trực tiếp").click()
    expect(page.locator('[data-stat="accepted"]')).to_have_text("0")
    cast_ballots(console, round_id, 12)
    expect(page.locator('[data-stat="accepted"]')).to_have_text("12", timeout=12_000)
    expect(page.locator('[data-stat="persisted"]')).to_have_text("12", timeout=12_000)
    expect(page.locator('[data-stat="credentials"]')).to_have_text("12", timeout=12_000)
    expect(page.locator('[data-refusal="Đã bình chọn rồi"]')).to_have_text("1")
    expect(page.locator('[data-refusal="Phiếu không hợp lệ"]')).to_have_text("1")
    expect(page.locator("#chart canvas")).to_be_visible()
    # the chart and the turnout table are redrawn with the figures
    expect(page.locator("#turnout tbody td.num")).to_have_text("12", timeout=12_000)
    page.get_by_role("button", name="Hiện kết quả tạm thời").click()
    expect(page.locator("#tally table")).to_be_visible()
    accessible(page, "dashboard")

    # pause, resume, close
    page.get_by_role("link", name="Quy định và danh sách").click()
    page.get_by_role("button", name="Tạm dừng").click()
    expect(page.locator(".heading .status")).to_have_text("Tạm dừng")
    page.get_by_role("button", name="Tiếp tục").click()
    expect(page.locator(".heading .status")).to_have_text("Đang mở")
    page.get_by_role("button", name="Đóng vòng").click()
    expect(page.locator(".heading .status")).to_have_text("Đã đóng")
    # the count runs in the background; the page follows it until it is final
    expect(page.locator('[data-close-state="final"]')).to_have_text(
        "Đã kiểm đếm xong: kết quả chính thức", timeout=15_000
    )
    assert "Sau khi đóng, không nhận thêm phiếu" in messages[-1]
    accessible(page, "round-closed")

    # results: 14 candidates have votes, 14 have none and tie for the 2 seats left
    page.get_by_role("link", name="Kết quả").click()
    expect(page.get_by_role("heading", name="Đồng hạng ở vị trí cuối")).to_be_visible()
    expect(page.locator("#tie")).to_contain_text("14 người cùng hạng 15 tranh 2 suất còn lại")
    page.get_by_role("button", name="Công bố kết quả chính thức").click()
    expect(page.locator("#publish-result")).to_contain_text("Cần ghi quyết định")
    boxes = page.locator("#decision input[name=chosen]")
    boxes.nth(0).check()
    page.get_by_label("Căn cứ, lý do").fill("Theo Quy chế bình chọn, Điều 7.")
    page.get_by_role("button", name="Ghi quyết định").click()
    expect(page.locator("#chosen-error")).to_be_visible()  # one chosen for two seats
    accessible(page, "results-decision-error")
    page.locator("#decision input[name=chosen]").nth(1).check()
    page.get_by_role("button", name="Ghi quyết định").click()
    expect(
        page.get_by_role("heading", name="Quyết định của Ban Thường vụ Đảng ủy Khối")
    ).to_be_visible()
    expect(page.locator("table.data")).to_contain_text(
        "Trúng cử (theo quyết định của Ban Thường vụ)"
    )
    page.get_by_role("button", name="Công bố kết quả chính thức").click()
    expect(page.get_by_text("Kết quả chính thức, công bố lúc")).to_be_visible()
    accessible(page, "results-official")
    with httpx.Client(base_url=console.url, timeout=30) as http:
        public = http.get(f"/api/v1/rounds/{round_id}/results").json()
    assert public["official"] is True and len(public["elected"]) == 16
    # the committee report, downloaded from the results page
    with page.expect_download() as download:
        page.get_by_role("link", name="Tải báo cáo Ban Thường vụ (PDF)").click()
    text = pdf_text(Path(download.value.path()).read_bytes())
    assert "Gương mặt tiêu biểu năm 2026" in text and "NGƯỜI LẬP BIỂU" in text
    assert "Theo Quy chế bình chọn, Điều 7." in text

    # log out: the session ends
    page.get_by_role("button", name="Đăng xuất").click()
    expect(page.get_by_role("heading", name="Đăng nhập trang quản trị")).to_be_visible()
    page.goto(f"{console.url}/admin/rounds")
    expect(page.get_by_role("heading", name="Đăng nhập trang quản trị")).to_be_visible()
    expect(page).to_have_url(f"{console.url}/admin/login?next=/admin/rounds")

    # the public page marks the results official and the committee's choice as such
    page.goto(f"{console.url}/?round={round_id}")
    results = page.locator("#results-body")
    expect(results).to_contain_text("Kết quả chính thức")
    expect(results).to_contain_text("Quyết định của Ban Thường vụ Đảng ủy Khối")
    expect(results.locator(".mark-winner")).to_have_count(16)
    expect(results.get_by_text("Trúng chọn (theo quyết định)")).to_have_count(2)


@pytest.mark.browser
def test_an_observer_reads_but_cannot_change(page: Page, console: Console) -> None:
    log_in(page, console, "observer", OBSERVER_PASSWORD)
    expect(page.get_by_role("link", name="Tạo vòng mới")).to_have_count(0)
    expect(page.get_by_role("link", name="Tài khoản quản trị")).to_have_count(0)
    rounds = page.locator("table.data tbody a")
    if rounds.count():
        rounds.first.click()
        expect(page.get_by_role("button", name="Mở vòng")).to_have_count(0)
        expect(page.get_by_role("button", name="Đóng vòng")).to_have_count(0)
        expect(page.get_by_role("link", name="Sửa quy định")).to_have_count(0)
    accessible(page, "observer")
    # a change sent anyway is refused
    status = page.evaluate(
        """async () => (await fetch('/admin/api/v1/rounds', {method: 'POST',
            headers: {'Content-Type': 'application/json'},
            body: JSON.stringify({slug: 'quan-sat', title: 'x'})})).status"""
    )
    assert status == 403


@pytest.mark.browser
def test_audit_log_and_accounts_pages(page: Page, console: Console) -> None:
    log_in(page, console, "admin", ADMIN_PASSWORD)
    page.get_by_role("link", name="Nhật ký thao tác").click()
    expect(page.get_by_role("heading", name="Nhật ký thao tác")).to_be_visible()
    page.get_by_label("Thao tác").select_option(label="Đăng nhập")
    page.get_by_role("button", name="Lọc").click()
    expect(page.locator("table.data tbody tr").first).to_contain_text("Đăng nhập")
    accessible(page, "audit")
    page.get_by_role("link", name="Tài khoản quản trị").click()
    page.get_by_label("Tên đăng nhập").fill("can_bo_tuyen_giao")
    page.get_by_label("Mật khẩu (ít nhất 8 ký tự)").fill("mat-khau-tam-1")
    page.get_by_role("button", name="Tạo tài khoản").click()
    expect(page.locator("table.data")).to_contain_text("can_bo_tuyen_giao")
    accessible(page, "accounts")


@pytest.mark.browser
def test_voting_codes_are_made_and_downloaded_once(page: Page, console: Console) -> None:
    log_in(page, console, "admin", ADMIN_PASSWORD)
    page.get_by_role("link", name="Tạo vòng mới").click()
    page.get_by_label("Mã vòng (dùng trong đường dẫn)").fill("chi-bo-2026")
    page.get_by_label("Tên vòng").fill("Bình chọn trong các chi bộ")
    page.get_by_label("Cách xác thực cử tri").select_option("code")
    page.get_by_role("button", name="Tạo vòng").click()
    page.get_by_label("Tệp CSV danh sách đề cử (UTF-8, theo mẫu)").set_input_files(str(SAMPLE_CSV))
    page.get_by_role("button", name="Nhập danh sách").click()
    expect(page.get_by_text("Đã nhập 28 người từ tệp.")).to_be_visible()
    page.get_by_role("link", name="Mã bình chọn").click()
    expect(page.locator('[data-stat="issued"]')).to_have_text("0")
    accessible(page, "codes")
    page.get_by_label("Số mã cần tạo (1–10000)").fill("12")
    with page.expect_download() as download:
        page.get_by_role("button", name="Tạo và tải về").click()
    expect(page.locator("#codes-result")).to_contain_text("Đã tạo 12 mã")
    text = pdf_text(Path(download.value.path()).read_bytes())
    assert "Bình chọn trong các chi bộ" in text
    page.reload()
    expect(page.locator('[data-stat="issued"]')).to_have_text("12")
    page.get_by_label("Số mã cần tạo (1–10000)").fill("0")
    page.get_by_role("button", name="Tạo và tải về").click()
    expect(page.locator("#codes-result")).to_have_text("Số mã phải là số nguyên từ 1 đến 10.000.")
    page.get_by_label("Bảng tính (CSV)").check()
    page.get_by_label("Số mã cần tạo (1–10000)").fill("3")
    with page.expect_download() as download:
        page.get_by_role("button", name="Tạo và tải về").click()
    lines = Path(download.value.path()).read_text(encoding="utf-8-sig").splitlines()
    assert len(lines) == 4  # a header and 3 codes
