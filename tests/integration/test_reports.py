"""The voting-code cards through the admin API, on real Redis and Postgres: the cards' codes,
address and QR codes (page 1 as a picture in ``tests/artifacts/``), the error paths and
roles."""

from __future__ import annotations

import csv
import io

from tests.support.pdf import first_page_png, pdf_pages, pdf_text, qr_texts
from tests.support.voters import error_code


async def test_code_cards_pdf(client, admin_headers, make_round):
    rnd = await make_round(identity_mode="code", max_choices=5)
    url = f"/admin/api/v1/rounds/{rnd['id']}/codes"
    r = await client.post(f"{url}?format=pdf", json={"count": 12}, headers=admin_headers)
    assert r.status_code == 201, r.text
    assert r.headers["content-type"] == "application/pdf"
    assert r.headers["cache-control"] == "no-store"
    assert r.headers["content-disposition"].endswith('.pdf"')
    assert pdf_pages(r.content) == 2
    text = pdf_text(r.content)
    codes = [w for w in text.split() if len(w) == 13 and w[4] == "-" and w[9] == "-"]
    assert len(set(codes)) == 12
    address = f"http://testserver.local/?round={rnd['id']}"  # no VOTING_PUBLIC_URL in tests
    assert text.count(address) == 12
    assert "Chọn tối đa 5 gương điển hình" in text
    page = first_page_png(r.content, "code-cards-page1")
    assert qr_texts(page) == [address] * 10
    # the printed codes are the round's: each gives a credential
    for code in (codes[0], codes[-1]):
        r = await client.post("/api/v1/voters", json={"code": code, "round_id": rnd["id"]})
        assert r.status_code == 201, r.text
    client.cookies.clear()
    r = await client.get(url, headers=admin_headers)
    assert (r.json()["issued"], r.json()["redeemed"]) == (12, 2)
    # the CSV download is unchanged
    r = await client.post(url, json={"count": 2}, headers=admin_headers)
    assert r.status_code == 201 and r.headers["content-type"].startswith("text/csv")
    assert len(list(csv.DictReader(io.StringIO(r.text)))) == 2


async def test_code_cards_errors_and_roles(client, admin_headers, observer_headers, make_round):
    code_round = await make_round(identity_mode="code")
    url = f"/admin/api/v1/rounds/{code_round['id']}/codes"
    r = await client.post(f"{url}?format=pdf", json={"count": 1}, headers=observer_headers)
    assert r.status_code == 403
    assert error_code(r) == "forbidden"
    r = await client.post(f"{url}?format=xlsx", json={"count": 1}, headers=admin_headers)
    assert r.status_code == 400
    r = await client.post(f"{url}?format=pdf", json={"count": 0}, headers=admin_headers)
    assert r.status_code == 400
    device = await make_round()
    r = await client.post(
        f"/admin/api/v1/rounds/{device['id']}/codes?format=pdf",
        json={"count": 1},
        headers=admin_headers,
    )
    assert r.status_code == 409
    assert error_code(r) == "mode_mismatch"
    r = await client.get(url, headers=admin_headers)
    assert r.json()["issued"] == 0  # nothing was made by the refused requests
