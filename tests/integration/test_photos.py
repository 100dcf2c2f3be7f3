"""Candidate photos through the API: admin uploads (one photo, a ZIP by candidate code),
deletion, the audit log, and public serving with cache headers, ETag and 304."""

from __future__ import annotations

import io
import logging
import zipfile
from pathlib import Path
from typing import Any

from PIL import Image
from sqlalchemy import select

from tests.support.app import SAMPLE_CSV
from voting.record import tables

DATA = Path(__file__).resolve().parents[2] / "data"
SAMPLE_ZIP = DATA / "shortlist-sample-photos.zip"
BAD_ZIP = DATA / "photos-bad.zip"
ADMIN = "/admin/api/v1/rounds"


def error(r) -> dict[str, Any]:
    return r.json()["error"]


def sample(name: str) -> bytes:
    with zipfile.ZipFile(SAMPLE_ZIP) as z:
        return z.read(name)


def bad(name: str) -> bytes:
    with zipfile.ZipFile(BAD_ZIP) as z:
        return z.read(name)


def zip_of(entries: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in entries.items():
            z.writestr(name, data)
    return buf.getvalue()


async def stored_rows(services, round_id: int) -> list[tuple[str, str, str]]:
    """(code, size, version) of every stored photo row of the round."""
    p = tables.candidate_photos
    async with services.engine.connect() as conn:
        rows = await conn.execute(
            select(p.c.code, p.c.size, p.c.version)
            .where(p.c.round_id == round_id)
            .order_by(p.c.code, p.c.size)
        )
        return [tuple(r) for r in rows]


async def audit_actions(services, round_id: int) -> list[tuple[str, dict[str, Any]]]:
    a = tables.audit_events
    async with services.engine.connect() as conn:
        rows = await conn.execute(
            select(a.c.action, a.c.details).where(a.c.round_id == round_id).order_by(a.c.id)
        )
        return [(action, details) for action, details in rows if "photo" in action]


async def codes_of(client, headers, round_id: int) -> dict[str, int]:
    r = await client.get(f"{ADMIN}/{round_id}", headers=headers)
    return {c["code"]: c["id"] for c in r.json()["candidates"]}


async def post_zip(client, headers, round_id: int, data: bytes, ctype: str = "application/zip"):
    return await client.post(
        f"{ADMIN}/{round_id}/photos", content=data, headers={**headers, "Content-Type": ctype}
    )


async def test_every_sample_photo_is_stored_reencoded_without_exif(
    client, admin_headers, make_round, services
):
    rnd = await make_round(status="draft")
    codes = await codes_of(client, admin_headers, rnd["id"])
    r = await post_zip(client, admin_headers, rnd["id"], SAMPLE_ZIP.read_bytes())
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["stored"] == 28 and [p["code"] for p in body["photos"]] == sorted(codes)
    rows = await stored_rows(services, rnd["id"])
    assert len(rows) == 56 and {size for _, size, _ in rows} == {"card", "profile"}
    for code, cid in codes.items():
        for size, dims in (("card", (192, 192)), ("profile", (480, 600))):
            r = await client.get(
                f"{ADMIN}/{rnd['id']}/candidates/{cid}/photo",
                params={"size": size},
                headers=admin_headers,
            )
            assert r.status_code == 200, (code, r.text)
            assert r.headers["content-type"] == "image/webp"
            assert r.headers["cache-control"] == "private, no-cache"
            im = Image.open(io.BytesIO(r.content))
            assert (im.format, im.size) == ("WEBP", dims)
            assert len(im.getexif()) == 0 and not im.getexif().get_ifd(0x8825)
            assert not {"exif", "icc_profile", "xmp"} & set(im.info)
            assert b"ExampleCam" not in r.content  # the samples' EXIF Make
    # the admin view tells which candidates have one, and its version
    detail = (await client.get(f"{ADMIN}/{rnd['id']}", headers=admin_headers)).json()
    assert all(c["has_photo"] and len(c["photo_version"]) == 16 for c in detail["candidates"])
    ((action, details),) = await audit_actions(services, rnd["id"])
    assert action == "photos_load" and details["count"] == 28
    assert details["photos"]["DH01"]["format"] == "JPEG"


async def test_a_bad_archive_is_refused_whole_and_changes_nothing(
    client, admin_headers, make_round, services, caplog
):
    caplog.set_level(logging.DEBUG)
    rnd = await make_round(status="draft")
    codes = await codes_of(client, admin_headers, rnd["id"])
    before = await client.post(
        f"{ADMIN}/{rnd['id']}/candidates/{codes['DH01']}/photo",
        content=sample("DH01.jpg"),
        headers={**admin_headers, "Content-Type": "image/jpeg"},
    )
    assert before.status_code == 200, before.text
    rows = await stored_rows(services, rnd["id"])
    # the bad archive, and the same with good photos of other candidates beside it
    mixed = zip_of(
        {
            **{n: bad(n) for n in ("DH01.jpg", "XX99.png", "DH02.jpg")},
            "DH03.png": sample("DH03.png"),
        }
    )
    for data in (BAD_ZIP.read_bytes(), mixed):
        r = await post_zip(client, admin_headers, rnd["id"], data)
        assert r.status_code == 400, r.text
        assert error(r)["code"] == "invalid_photos"
        assert "nothing was stored" in error(r)["message"]
        errors = {e["name"]: e["message"] for e in error(r)["errors"]}
        assert "not a JPEG, PNG or WebP image" in errors["DH01.jpg"]
        assert "no candidate of this round has the code 'XX99'" in errors["XX99.png"]
        assert "decompression bomb" in errors["DH02.jpg"]
        assert "DH03.png" not in errors
    assert (
        "leaves the archive's folder"
        in {
            e["name"]: e["message"]
            for e in error(await post_zip(client, admin_headers, rnd["id"], BAD_ZIP.read_bytes()))[
                "errors"
            ]
        }["../escape.jpg"]
    )
    assert await stored_rows(services, rnd["id"]) == rows  # DH01 as before, DH03 not stored
    assert [a for a, _ in await audit_actions(services, rnd["id"])] == ["photo_set"]
    assert [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR] == []


async def test_each_bad_file_uploaded_alone_is_refused_with_its_message(
    client, admin_headers, make_round, services, caplog
):
    caplog.set_level(logging.DEBUG)
    rnd = await make_round(status="draft")
    cid = rnd["candidate_ids"][1]
    url = f"{ADMIN}/{rnd['id']}/candidates/{cid}/photo"
    cases = [
        (bad("DH01.jpg"), "image/jpeg", "not a JPEG, PNG or WebP image"),
        (bad("XX99.png"), "image/png", "not a JPEG, PNG or WebP image"),
        (bad("DH02.jpg"), "image/jpeg", "12000×9000 pixels (108.0 megapixels)"),
        (b"", "image/jpeg", "the file is empty"),
        (sample("DH01.jpg")[:2000], "application/octet-stream", "damaged"),
    ]
    for data, ctype, message in cases:
        r = await client.post(url, content=data, headers={**admin_headers, "Content-Type": ctype})
        assert r.status_code == 400, r.text
        assert error(r)["code"] == "invalid_photo"
        assert message in error(r)["message"]
    # the bomb as a multipart upload too
    r = await client.post(
        url, files={"file": ("DH02.jpg", bad("DH02.jpg"), "image/jpeg")}, headers=admin_headers
    )
    assert r.status_code == 400 and "decompression bomb" in error(r)["message"]
    assert await stored_rows(services, rnd["id"]) == []
    assert await audit_actions(services, rnd["id"]) == []
    # no traceback, no error logged: a refusal is an answer, not a failure
    assert [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR] == []
    assert not any("Traceback" in r.getMessage() for r in caplog.records)


async def test_zip_path_traversal_and_absolute_names_are_refused(
    client, admin_headers, make_round, services
):
    rnd = await make_round(status="draft")
    good = sample("DH05.jpg")
    data = zip_of(
        {
            "../DH01.jpg": good,
            "photos/../../DH02.jpg": good,
            "/tmp/DH03.jpg": good,
            "..\\DH04.jpg": good,
            "photos/DH05.jpg": good,
        }
    )
    r = await post_zip(client, admin_headers, rnd["id"], data, "application/x-zip-compressed")
    assert r.status_code == 400, r.text
    errors = {e["name"]: e["message"] for e in error(r)["errors"]}
    assert set(errors) == {"../DH01.jpg", "photos/../../DH02.jpg", "/tmp/DH03.jpg", "..\\DH04.jpg"}
    assert "absolute path" in errors["/tmp/DH03.jpg"]
    assert await stored_rows(services, rnd["id"]) == []  # photos/DH05.jpg was fine: not stored


async def test_upload_bodies_and_archive_errors(client, admin_headers, make_round, services):
    rnd = await make_round(status="draft")
    cid = rnd["candidate_ids"][0]
    url = f"{ADMIN}/{rnd['id']}/candidates/{cid}/photo"
    r = await client.post(
        url, files={"file": ("x.webp", sample("DH04.webp"), "image/webp")}, headers=admin_headers
    )
    assert r.status_code == 200, r.text
    assert r.json()["sizes"] == [
        {"size": "card", "width": 192, "height": 192, "bytes": r.json()["sizes"][0]["bytes"]},
        {"size": "profile", "width": 480, "height": 600, "bytes": r.json()["sizes"][1]["bytes"]},
    ]
    r = await client.post(
        url, content=b"{}", headers={**admin_headers, "Content-Type": "application/json"}
    )
    assert r.status_code == 415
    r = await client.post(
        url, data={"other": "x"}, files={"nofile": ("a", b"a")}, headers=admin_headers
    )
    assert r.status_code == 400 and error(r)["code"] == "malformed"
    r = await post_zip(client, admin_headers, rnd["id"], sample("DH01.jpg"))
    assert r.status_code == 400 and error(r)["code"] == "invalid_zip"
    r = await post_zip(client, admin_headers, rnd["id"], SAMPLE_ZIP.read_bytes(), "text/plain")
    assert r.status_code == 415
    r = await client.post(
        f"{ADMIN}/{rnd['id']}/photos",
        files={"file": ("photos.zip", zip_of({"DH02.png": sample("DH03.png")}), "application/zip")},
        headers=admin_headers,
    )
    assert r.status_code == 200 and r.json()["stored"] == 1
    r = await client.post(
        f"{ADMIN}/{rnd['id']}/candidates/99999999/photo",
        content=sample("DH01.jpg"),
        headers={**admin_headers, "Content-Type": "image/jpeg"},
    )
    assert r.status_code == 404 and error(r)["code"] == "candidate_not_found"
    r = await client.post(
        f"{ADMIN}/99999999/photos",
        content=SAMPLE_ZIP.read_bytes(),
        headers={**admin_headers, "Content-Type": "application/zip"},
    )
    assert r.status_code == 404 and error(r)["code"] == "round_not_found"
    r = await client.post(
        url, content=b"\0" * 20_100_000, headers={**admin_headers, "Content-Type": "image/png"}
    )
    assert r.status_code == 413
    assert [code for code, _, _ in await stored_rows(services, rnd["id"])] == ["DH01"] * 2 + [
        "DH02"
    ] * 2


async def test_observer_cannot_change_photos(
    client, admin_headers, observer_headers, make_round, services
):
    rnd = await make_round(status="draft")
    cid = rnd["candidate_ids"][0]
    url = f"{ADMIN}/{rnd['id']}/candidates/{cid}/photo"
    r = await client.post(
        url, content=sample("DH01.jpg"), headers={**observer_headers, "Content-Type": "image/jpeg"}
    )
    assert r.status_code == 403 and error(r)["code"] == "forbidden"
    r = await post_zip(client, observer_headers, rnd["id"], SAMPLE_ZIP.read_bytes())
    assert r.status_code == 403
    assert await stored_rows(services, rnd["id"]) == []
    r = await client.post(
        url, content=sample("DH01.jpg"), headers={**admin_headers, "Content-Type": "image/jpeg"}
    )
    assert r.status_code == 200
    r = await client.delete(url, headers=observer_headers)
    assert r.status_code == 403
    assert len(await stored_rows(services, rnd["id"])) == 2
    r = await client.get(url, headers=observer_headers)  # reading is allowed
    assert r.status_code == 200


async def test_public_photo_url_cache_headers_etag_and_304(
    client, admin_headers, make_round, services
):
    rnd = await make_round(status="open")
    codes = await codes_of(client, admin_headers, rnd["id"])
    r = await post_zip(
        client,
        admin_headers,
        rnd["id"],
        zip_of({"DH01.jpg": sample("DH01.jpg"), "DH02.png": sample("DH03.png")}),
    )
    assert r.status_code == 200, r.text  # while open: allowed, and audited
    versions = {p["code"]: p["version"] for p in r.json()["photos"]}
    detail = (await client.get(f"/api/v1/rounds/{rnd['id']}")).json()
    urls = {c["code"]: c["photo_url"] for c in detail["candidates"]}
    cid = codes["DH01"]
    assert urls["DH01"] == f"/api/v1/rounds/{rnd['id']}/candidates/{cid}/photo?v={versions['DH01']}"
    assert urls["DH02"].endswith(f"?v={versions['DH02']}")
    assert all(urls[c] is None for c in codes if c not in ("DH01", "DH02"))
    one = (await client.get(f"/api/v1/rounds/{rnd['id']}/candidates/{cid}")).json()
    assert one["photo_url"] == urls["DH01"]

    r = await client.get(urls["DH01"])
    assert r.status_code == 200
    assert r.headers["content-type"] == "image/webp"
    assert r.headers["cache-control"] == "public, max-age=31536000, immutable"
    etag = r.headers["etag"]
    assert etag.startswith('"') and etag.endswith('"') and not etag.startswith("W/")
    assert Image.open(io.BytesIO(r.content)).size == (480, 600)
    card = await client.get(urls["DH01"] + "&size=card")
    assert card.status_code == 200 and Image.open(io.BytesIO(card.content)).size == (192, 192)
    assert card.headers["etag"] != etag

    for value in (etag, f"W/{etag}", f'"nope", {etag}', "*"):
        r = await client.get(urls["DH01"], headers={"If-None-Match": value})
        assert r.status_code == 304, value
        assert r.content == b""
        assert r.headers["etag"] == etag
        assert r.headers["cache-control"] == "public, max-age=31536000, immutable"
    r = await client.get(urls["DH01"], headers={"If-None-Match": '"other"'})
    assert r.status_code == 200 and r.content

    plain = f"/api/v1/rounds/{rnd['id']}/candidates/{cid}/photo"
    for url in (plain, plain + "?v=0000000000000000"):  # no version, or an old one
        r = await client.get(url)
        assert r.status_code == 200 and r.headers["cache-control"] == "public, max-age=300"
        assert r.headers["etag"] == etag
    r = await client.get(plain + "?size=huge")
    assert r.status_code == 400 and error(r)["code"] == "malformed"
    r = await client.get(f"/api/v1/rounds/{rnd['id']}/candidates/{codes['DH03']}/photo")
    assert r.status_code == 404 and error(r)["code"] == "photo_not_found"
    r = await client.get(f"/api/v1/rounds/{rnd['id']}/candidates/99999999/photo")
    assert r.status_code == 404 and error(r)["code"] == "photo_not_found"

    # a new photo: a new version and ETag; the old versioned URL is no longer immutable
    r = await client.post(
        f"{ADMIN}/{rnd['id']}/candidates/{cid}/photo",
        content=sample("DH06.jpg"),
        headers={**admin_headers, "Content-Type": "image/jpeg"},
    )
    assert r.status_code == 200 and r.json()["version"] != versions["DH01"]
    assert r.json()["photo_url"].endswith(f"?v={r.json()['version']}")
    old = await client.get(urls["DH01"], headers={"If-None-Match": etag})
    assert old.status_code == 200 and old.headers["etag"] != etag
    assert old.headers["cache-control"] == "public, max-age=300"
    detail = (await client.get(f"/api/v1/rounds/{rnd['id']}")).json()
    assert detail["candidates"][0]["photo_url"] == r.json()["photo_url"]

    # deletion: initials again; a second delete finds nothing
    r = await client.delete(f"{ADMIN}/{rnd['id']}/candidates/{cid}/photo", headers=admin_headers)
    assert r.status_code == 204
    detail = (await client.get(f"/api/v1/rounds/{rnd['id']}")).json()
    assert detail["candidates"][0]["photo_url"] is None
    r = await client.get(plain)
    assert r.status_code == 404
    r = await client.delete(f"{ADMIN}/{rnd['id']}/candidates/{cid}/photo", headers=admin_headers)
    assert r.status_code == 404 and error(r)["code"] == "photo_not_found"
    actions = [a for a, _ in await audit_actions(services, rnd["id"])]
    assert actions == ["photos_load", "photo_set", "photo_delete"]


async def test_draft_photos_are_not_public_and_closed_rounds_keep_theirs(
    client, admin_headers, make_round, services
):
    draft = await make_round(status="draft")
    cid = draft["candidate_ids"][0]
    url = f"{ADMIN}/{draft['id']}/candidates/{cid}/photo"
    r = await client.post(
        url, content=sample("DH01.jpg"), headers={**admin_headers, "Content-Type": "image/jpeg"}
    )
    assert r.status_code == 200
    r = await client.get(f"/api/v1/rounds/{draft['id']}/candidates/{cid}/photo")
    assert r.status_code == 404 and error(r)["code"] == "round_not_found"
    r = await client.get(url, headers=admin_headers)
    assert r.status_code == 200
    r2 = await client.get(url, headers={**admin_headers, "If-None-Match": r.headers["etag"]})
    assert r2.status_code == 304

    closed = await make_round(status="closed")
    cid = closed["candidate_ids"][0]
    url = f"{ADMIN}/{closed['id']}/candidates/{cid}/photo"
    r = await client.post(
        url, content=sample("DH01.jpg"), headers={**admin_headers, "Content-Type": "image/jpeg"}
    )
    assert r.status_code == 409 and error(r)["code"] == "round_closed"
    r = await post_zip(client, admin_headers, closed["id"], SAMPLE_ZIP.read_bytes())
    assert r.status_code == 409 and error(r)["code"] == "round_closed"
    r = await client.delete(url, headers=admin_headers)
    assert r.status_code == 409
    assert await stored_rows(services, closed["id"]) == []


async def test_photos_stay_with_their_codes_when_the_shortlist_is_imported_again(
    client, admin_headers, make_round, services
):
    rnd = await make_round(status="draft")
    r = await post_zip(
        client,
        admin_headers,
        rnd["id"],
        zip_of({"DH01.jpg": sample("DH01.jpg"), "DH02.jpg": sample("DH02.jpg")}),
    )
    assert r.status_code == 200
    csv_bytes = SAMPLE_CSV.read_bytes()
    import_url = f"{ADMIN}/{rnd['id']}/candidates/import"
    headers = {**admin_headers, "Content-Type": "text/csv"}
    assert (await client.post(import_url, content=csv_bytes, headers=headers)).status_code == 200
    detail = (await client.get(f"{ADMIN}/{rnd['id']}", headers=admin_headers)).json()
    assert [c["code"] for c in detail["candidates"] if c["has_photo"]] == ["DH01", "DH02"]
    # a shortlist without DH01: its photo goes, DH02's stays
    import csv as csvlib

    rows = list(csvlib.reader(io.StringIO(csv_bytes.decode("utf-8-sig"))))
    out = io.StringIO()
    csvlib.writer(out, lineterminator="\n").writerows(
        [rows[0], *[r for r in rows[1:] if r[0] != "DH01"]]
    )
    assert (
        await client.post(import_url, content=out.getvalue().encode(), headers=headers)
    ).status_code == 200
    assert {code for code, _, _ in await stored_rows(services, rnd["id"])} == {"DH02"}


async def test_the_demo_round_shows_the_sample_photos(client, settings, services):
    from voting.cli import _demo_round, demo_photos

    assert demo_photos(Path("data/shortlist-sample.csv")) == Path(
        "data/shortlist-sample-photos.zip"
    )
    round_id = await _demo_round(settings, SAMPLE_CSV.read_bytes(), SAMPLE_ZIP.read_bytes())
    assert len(await stored_rows(services, round_id)) == 56
    detail = (await client.get(f"/api/v1/rounds/{round_id}")).json()
    assert detail["status"] == "open"
    assert all(c["photo_url"] for c in detail["candidates"])
    r = await client.get(detail["candidates"][0]["photo_url"] + "&size=card")
    assert r.status_code == 200 and r.headers["content-type"] == "image/webp"
