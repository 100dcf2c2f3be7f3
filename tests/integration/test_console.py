"""The admin console's pages over HTTP (as htmx sends them): login, rounds, the shortlist,
the lifecycle; the same rules and records as the JSON API. The browser tests drive the same
pages in chromium."""

from __future__ import annotations

import re
import zipfile
from typing import Any

from litestar.testing import AsyncTestClient

from tests.support.app import ADMIN_PASSWORD, OBSERVER_PASSWORD, SAMPLE_CSV, unique_slug

HX = {"HX-Request": "true"}


async def console_login(client: AsyncTestClient[Any], name: str, password: str) -> dict[str, str]:
    """Log in through the console's form; the headers of an htmx request of that session."""
    r = await client.post(
        "/admin/login",
        data={"username": name, "password": password, "next": "/admin"},
        headers=HX,
    )
    assert r.status_code == 200, r.text
    assert r.headers.get("hx-redirect") == "/admin"
    token = re.search(r"admin_session=([^;]+)", r.headers["set-cookie"])
    assert token is not None
    page = await client.get("/admin/rounds", headers={"Cookie": f"admin_session={token[1]}"})
    csrf = re.search(r'"X-CSRF-Token": "([^"]+)"', page.text)
    assert csrf is not None
    return {"Cookie": f"admin_session={token[1]}", "X-CSRF-Token": csrf[1], **HX}


async def test_pages_need_a_session_and_send_to_the_login(client):
    client.cookies.clear()
    r = await client.get("/admin/rounds", follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"].startswith("/admin/login?next=/admin/rounds")
    r = await client.post("/admin/rounds/new", data={"slug": "x"}, headers=HX)
    assert r.headers.get("hx-redirect", "").startswith("/admin/login")
    r = await client.get("/admin/login")
    assert r.status_code == 200 and "Đăng nhập trang quản trị" in r.text
    assert r.headers["content-type"].startswith("text/html")


async def test_wrong_password_and_bad_names_are_said_in_vietnamese(client, admin_users):
    for name in ("admin", "no-such-user", "bad name\u0000"):
        r = await client.post(
            "/admin/login", data={"username": name, "password": "wrong-one"}, headers=HX
        )
        assert r.status_code == 200
        assert "Sai tên đăng nhập hoặc mật khẩu." in r.text
        assert "set-cookie" not in r.headers


async def test_create_a_round_with_errors_next_to_fields_then_import_and_open(
    client, admin_users, services
):
    hx = await console_login(client, "admin", ADMIN_PASSWORD)
    slug = unique_slug("console")
    form = {
        "slug": slug, "title": "Gương mặt tiêu biểu", "description": "", "min_choices": "5",
        "max_choices": "3", "winners": "16", "identity_mode": "device",
        "results_visibility": "after_close", "opens_at": "2026-12-20T08:00",
        "closes_at": "2026-12-19T08:00", "fields": "Kinh doanh\nGiáo dục",
    }  # fmt: skip
    r = await client.post("/admin/rounds/new", data=form, headers=hx)
    assert r.status_code == 200
    assert "không nhỏ hơn số lựa chọn tối thiểu" in r.text  # next to max_choices
    assert 'id="max_choices-error"' in r.text
    rounds = await client.get("/admin/api/v1/rounds", headers={"Cookie": hx["Cookie"]})
    assert all(x["slug"] != slug for x in rounds.json())  # nothing created
    r = await client.post("/admin/rounds/new", data={**form, "max_choices": "16"}, headers=hx)
    assert 'id="closes_at-error"' in r.text
    r = await client.post(
        "/admin/rounds/new",
        data={**form, "max_choices": "16", "closes_at": "2026-12-21T17:30", "slug": "Bad Slug"},
        headers=hx,
    )
    assert 'id="slug-error"' in r.text
    r = await client.post(
        "/admin/rounds/new",
        data={**form, "max_choices": "16", "closes_at": "2026-12-21T17:30",
              "fields": "\n".join([
                  "Xây dựng Đảng, đoàn thể", "Quản lý hành chính - nhà nước",
                  "Văn hóa - văn nghệ, truyền thông", "Thể dục - thể thao", "Kinh doanh",
                  "Lao động sản xuất", "Giáo dục", "Nghiên cứu khoa học", "Hoạt động xã hội",
              ])},
        headers=hx,
    )  # fmt: skip
    round_id = int(r.headers["hx-redirect"].rsplit("/", 1)[1])
    detail = (await client.get(f"/admin/api/v1/rounds/{round_id}", headers=hx)).json()
    # entered in Vietnam time (UTC+7), stored in UTC
    assert detail["opens_at"].startswith("2026-12-20T01:00:00")
    assert detail["closes_at"].startswith("2026-12-21T10:30:00")
    page = await client.get(f"/admin/rounds/{round_id}", headers={"Cookie": hx["Cookie"]})
    assert "20/12/2026 08:00" in page.text and "Bản nháp" in page.text
    # a broken CSV: a Vietnamese table of errors, nothing imported
    bad = SAMPLE_CSV.read_text(encoding="utf-8").replace("DH02", "DH01", 1).encode()
    r = await client.post(
        f"/admin/rounds/{round_id}/shortlist",
        files={"file": ("ds.csv", bad, "text/csv")},
        headers=hx,
    )
    assert "Tệp bị từ chối" in r.text and "bị trùng" in r.text
    page = await client.get(f"/admin/rounds/{round_id}", headers={"Cookie": hx["Cookie"]})
    assert "Danh sách đề cử (0 người)" in page.text
    r = await client.post(
        f"/admin/rounds/{round_id}/shortlist",
        files={"file": ("ds.csv", SAMPLE_CSV.read_bytes(), "text/csv")},
        headers=hx,
    )
    assert r.headers["hx-redirect"] == f"/admin/rounds/{round_id}?imported=28"
    # open: the round takes ballots
    r = await client.post(f"/admin/rounds/{round_id}/status/open", headers=hx)
    assert r.headers["hx-redirect"] == f"/admin/rounds/{round_id}"
    page = await client.get(f"/admin/rounds/{round_id}", headers={"Cookie": hx["Cookie"]})
    assert "Đang mở" in page.text and "Sau khi đóng, không nhận thêm phiếu" in page.text
    # a second open is refused in place, in Vietnamese
    r = await client.post(f"/admin/rounds/{round_id}/status/open", headers=hx)
    assert "không cho phép thao tác này" in r.text
    # a change without the CSRF token is refused
    r = await client.post(
        f"/admin/rounds/{round_id}/status/pause",
        headers={"Cookie": hx["Cookie"], **HX},
    )
    assert "Phiên làm việc không hợp lệ" in r.text  # said in place (htmx swaps 2xx only)
    detail = (await client.get(f"/admin/api/v1/rounds/{round_id}", headers=hx)).json()
    assert detail["status"] == "open"


async def test_observer_sees_no_writing_controls(client, admin_users, make_round):
    rnd = await make_round(status="draft")
    hx = await console_login(client, "observer", OBSERVER_PASSWORD)
    page = await client.get(f"/admin/rounds/{rnd['id']}", headers={"Cookie": hx["Cookie"]})
    assert page.status_code == 200
    assert "Sửa quy định" not in page.text and "Nhập danh sách" not in page.text
    assert "Mở vòng" not in page.text
    listing = await client.get("/admin/rounds", headers={"Cookie": hx["Cookie"]})
    assert "Tạo vòng mới" not in listing.text
    r = await client.post(f"/admin/rounds/{rnd['id']}/status/open", headers=hx)
    assert "chỉ được xem" in r.text
    detail = (await client.get(f"/admin/api/v1/rounds/{rnd['id']}", headers=hx)).json()
    assert detail["status"] == "draft"


async def test_audit_log_filters_and_exports(client, admin_users, make_round):
    rnd = await make_round(status="open")
    hx = await console_login(client, "admin", ADMIN_PASSWORD)
    cookie = {"Cookie": hx["Cookie"]}
    page = await client.get(f"/admin/audit?round_id={rnd['id']}", headers=cookie)
    assert page.status_code == 200
    assert "Nhập danh sách đề cử" in page.text and "Mở vòng" in page.text
    assert "Đăng nhập" not in page.text.split("<tbody>")[1]  # logins have no round
    page = await client.get("/admin/audit?action=login&actor=admin", headers=cookie)
    assert page.text.split("<tbody>")[1].count("<tr>") >= 1
    assert "Mở vòng" not in page.text.split("<tbody>")[1]
    r = await client.get(f"/admin/audit.csv?round_id={rnd['id']}", headers=cookie)
    assert r.status_code == 200 and r.content.startswith("\ufeff".encode())
    lines = r.content.decode("utf-8-sig").splitlines()
    assert lines[0] == "Thời điểm,Người thực hiện,Thao tác,Mã thao tác,Vòng,Chi tiết"
    assert any(",round_open," in line for line in lines[1:])
    # nonsense filters show nothing rather than fail
    r = await client.get("/admin/audit?round_id=abc&action=%00", headers=cookie)
    assert r.status_code == 200


async def test_accounts_are_managed_by_admins_only(client, admin_users):
    hx = await console_login(client, "admin", ADMIN_PASSWORD)
    name = unique_slug("acct").replace("-", "_")[:40]
    r = await client.post(
        "/admin/users",
        data={"username": name, "role": "observer", "password": "short"},
        headers=hx,
    )
    assert "Mật khẩu cần ít nhất 8 ký tự." in r.text
    r = await client.post(
        "/admin/users",
        data={"username": name, "role": "observer", "password": "long-enough-1"},
        headers=hx,
    )
    assert r.headers["hx-redirect"] == "/admin/users"
    r = await client.post(
        "/admin/users",
        data={"username": name, "role": "observer", "password": "long-enough-1"},
        headers=hx,
    )
    assert "Tên đăng nhập này đã có." in r.text
    other = await console_login(client, name, "long-enough-1")
    r = await client.post(f"/admin/users/{name}/role", data={"role": "admin"}, headers=hx)
    assert "Đã đổi vai trò" in r.text
    # the changed user's session has ended
    r = await client.get(
        "/admin/rounds", headers={"Cookie": other["Cookie"]}, follow_redirects=False
    )
    assert r.status_code == 303
    r = await client.post("/admin/users/admin/disable", data={}, headers=hx)
    assert "Không thể tự đổi vai trò" in r.text
    r = await client.post(f"/admin/users/{name}/delete", data={}, headers=hx)
    assert f"Đã xóa {name}." in r.text
    r = await client.post("/admin/users/nobody-here/disable", data={}, headers=hx)
    assert "Không tìm thấy tài khoản." in r.text
    # an observer gets a Vietnamese 403 page, not JSON
    obs = await console_login(client, "observer", OBSERVER_PASSWORD)
    r = await client.get("/admin/users", headers={"Cookie": obs["Cookie"]})
    assert r.status_code == 403 and r.headers["content-type"].startswith("text/html")
    assert "chỉ được xem" in r.text
    r = await client.get("/admin/rounds/987654", headers={"Cookie": obs["Cookie"]})
    assert r.status_code == 404 and "Không tìm thấy vòng bình chọn." in r.text


async def test_one_candidate_is_edited_in_draft_only(
    client, admin_users, make_round, admin_headers
):
    rnd = await make_round(status="draft")
    cid = rnd["candidate_ids"][0]
    detail = (await client.get(f"/admin/api/v1/rounds/{rnd['id']}", headers=admin_headers)).json()
    cand = next(c for c in detail["candidates"] if c["id"] == cid)
    profile = {k: cand[k] for k in ("code", "full_name", "gender", "birth_year", "position",
                                    "workplace", "nominated_by", "field", "summary",
                                    "achievements")}  # fmt: skip
    url = f"/admin/api/v1/rounds/{rnd['id']}/candidates/{cid}"
    r = await client.put(
        url, json={**profile, "gender": "X", "birth_year": 1850}, headers=admin_headers
    )
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_candidate"
    assert {e["column"] for e in r.json()["error"]["errors"]} == {"gender", "birth_year"}
    other_code = next(c["code"] for c in detail["candidates"] if c["id"] != cid)
    r = await client.put(url, json={**profile, "code": other_code}, headers=admin_headers)
    assert r.status_code == 409 and r.json()["error"]["code"] == "code_taken"
    r = await client.put(
        url, json={**profile, "full_name": "Nguyễn Văn  Mới "}, headers=admin_headers
    )
    assert r.status_code == 200 and r.json()["full_name"] == "Nguyễn Văn  Mới"
    # the console's form, errors in Vietnamese next to the field
    hx = await console_login(client, "admin", ADMIN_PASSWORD)
    form = {**{k: str(v) for k, v in profile.items()}, "birth_year": "năm"}
    r = await client.post(f"/admin/rounds/{rnd['id']}/candidates/{cid}/edit", data=form, headers=hx)
    assert 'id="c-birth_year-error"' in r.text and "Năm sinh" in r.text
    form["birth_year"] = "1990"
    r = await client.post(f"/admin/rounds/{rnd['id']}/candidates/{cid}/edit", data=form, headers=hx)
    assert r.headers["hx-redirect"] == f"/admin/rounds/{rnd['id']}"
    await client.post(f"/admin/api/v1/rounds/{rnd['id']}/open", headers=admin_headers)
    r = await client.put(url, json=profile, headers=admin_headers)
    assert r.status_code == 409 and r.json()["error"]["code"] == "round_not_draft"


async def test_the_login_limit_is_said_in_vietnamese(backends, admin_users):
    from litestar.testing import AsyncTestClient as Client

    from tests.support.app import make_settings
    from voting.app import create_app

    settings = make_settings(
        backends,
        redis_prefix=f"{backends.prefix}:console-limit",
        login_rate=2,
        login_burst=2,
        login_period=60,
    )
    async with Client(app=create_app(settings)) as limited:
        texts = []
        for _ in range(3):
            r = await limited.post(
                "/admin/login", data={"username": "admin", "password": "wrong-pass"}, headers=HX
            )
            texts.append(r.text)
        assert "Sai tên đăng nhập hoặc mật khẩu." in texts[0]
        assert "Đăng nhập sai quá nhiều lần. Vui lòng thử lại sau" in texts[2]
        r = await limited.post(
            "/admin/login", data={"username": "admin", "password": ADMIN_PASSWORD}, headers=HX
        )
        assert "hx-redirect" not in r.headers  # still limited: no session


async def test_photos_are_uploaded_from_the_console(client, admin_users, make_round):
    rnd = await make_round(status="draft")
    hx = await console_login(client, "admin", ADMIN_PASSWORD)
    photos = SAMPLE_CSV.with_name("shortlist-sample-photos.zip")
    bad = SAMPLE_CSV.with_name("photos-bad.zip")
    r = await client.post(
        f"/admin/rounds/{rnd['id']}/photos",
        files={"file": ("anh.zip", bad.read_bytes(), "application/zip")},
        headers=hx,
    )
    assert "không ảnh nào được lưu" in r.text and "megapixel" in r.text
    r = await client.post(f"/admin/rounds/{rnd['id']}/photos", data={}, headers=hx)
    assert "Hãy chọn một tệp ZIP." in r.text
    r = await client.post(
        f"/admin/rounds/{rnd['id']}/photos",
        files={"file": ("anh.zip", photos.read_bytes(), "application/zip")},
        headers=hx,
    )
    assert r.headers["hx-redirect"] == f"/admin/rounds/{rnd['id']}?photos=28"
    cid = rnd["candidate_ids"][0]
    with zipfile.ZipFile(photos) as z:
        one = z.read(next(n for n in z.namelist() if n.upper().startswith("DH02")))
    r = await client.post(
        f"/admin/rounds/{rnd['id']}/candidates/{cid}/photo",
        files={"file": ("x.jpg", b"not an image", "image/jpeg")},
        headers=hx,
    )
    assert "Không phải ảnh JPEG, PNG hay WebP." in r.text
    r = await client.post(
        f"/admin/rounds/{rnd['id']}/candidates/{cid}/photo",
        files={"file": ("x.jpg", one, "image/jpeg")},
        headers=hx,
    )
    assert r.headers["hx-redirect"].endswith(f"/candidates/{cid}/edit?photo=1")
    page = await client.get(f"/admin/rounds/{rnd['id']}/preview", headers={"Cookie": hx["Cookie"]})
    assert page.text.count('class="card"') == 28 and page.text.count("<img") == 28
