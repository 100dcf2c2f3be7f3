"""Delivery of the public page through the app (real Redis and Postgres): compression of text
answers and not of photos or ZIPs, content-hashed static files with an immutable cache, the
pages' ETags, the import map under the CSP, the deep links with their share tags and their
404s, and the service worker's script."""

from __future__ import annotations

import base64
import hashlib
import html
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from voting.app import STATIC
from voting.http.assets import IMMUTABLE_CACHE, SHORT_CACHE, Assets, hashed_name
from voting.http.compression import compressible
from voting.http.page import NOT_FOUND_CANDIDATE, NOT_FOUND_ROUND, Pages

DATA = Path(__file__).resolve().parents[2] / "data"
ADMIN = "/admin/api/v1/rounds"
BR = {"Accept-Encoding": "br"}
GZIP = {"Accept-Encoding": "gzip"}


class Head(HTMLParser):
    """The ``<meta>`` and ``<link>`` tags, the scripts and the title of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.meta: dict[str, str] = {}
        self.links: dict[str, str] = {}
        self.scripts: list[dict[str, str]] = []
        self.script_text: list[str] = []
        self.title = ""
        self._in: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "meta" and ("property" in a or "name" in a):
            self.meta[a.get("property") or a["name"]] = a.get("content", "")
        elif tag == "link":
            self.links[a["rel"]] = a["href"]
        elif tag == "script":
            self.scripts.append(a)
        self._in = tag

    def handle_endtag(self, tag: str) -> None:
        self._in = None

    def handle_data(self, data: str) -> None:
        if self._in == "title":
            self.title += data
        elif self._in == "script" and data.strip():
            self.script_text.append(data)


def head_of(text: str) -> Head:
    parser = Head()
    parser.feed(text)
    return parser


@pytest.fixture(scope="module")
def assets() -> Assets:
    return Assets.load(STATIC)


# -- compression ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "kind"),
    [
        ("/", "text/html"),
        ("/kiem-tra", "text/html"),
        ("/static/style.css", "text/css"),
        ("/static/js/main.js", "text/javascript"),
        ("/static/vendor/altcha.min.js", "text/javascript"),
        ("/sw.js", "text/javascript"),
        ("/schema/openapi.json", "application/vnd.oai.openapi+json"),
    ],
)
@pytest.mark.parametrize("encoding", ["br", "gzip"])
async def test_text_answers_are_compressed(client, path, kind, encoding):
    plain = await client.get(path, headers={"Accept-Encoding": "identity"})
    assert plain.status_code == 200
    assert "content-encoding" not in plain.headers
    r = await client.get(path, headers={"Accept-Encoding": encoding})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith(kind)
    assert r.headers["content-encoding"] == encoding
    assert "accept-encoding" in r.headers["vary"].lower()
    sent = int(r.headers["content-length"]) if "content-length" in r.headers else None
    assert sent is None or sent < len(plain.content)
    # httpx decoded it: the same bytes as the plain answer (the page's nonce aside)
    if path != "/":
        assert r.content == plain.content


async def test_round_json_is_compressed_and_decodes_to_the_same_document(client, make_round):
    rnd = await make_round()
    path = f"/api/v1/rounds/{rnd['id']}"
    r = await client.get(path, headers=BR)
    assert r.headers["content-encoding"] == "br"
    assert int(r.headers["content-length"]) < len(r.content) / 2
    assert r.json()["id"] == rnd["id"] and r.json()["slug"] == rnd["slug"]


async def test_a_small_answer_and_the_ballot_route_are_not_compressed(client, make_round):
    rnd = await make_round()
    r = await client.get("/healthz", headers=BR)
    assert "content-encoding" not in r.headers
    # the hot path bypasses the middleware: even its errors go out as they are
    r = await client.post(
        f"/api/v1/rounds/{rnd['id']}/ballots",
        content=b"{",
        headers={**BR, "Content-Type": "application/json"},
    )
    assert r.status_code in (400, 401)
    assert "content-encoding" not in r.headers


async def test_photos_and_zip_archives_are_not_compressed_again(client, admin_headers, make_round):
    rnd = await make_round(status="draft")
    zipped = (DATA / "shortlist-sample-photos.zip").read_bytes()
    r = await client.post(
        f"{ADMIN}/{rnd['id']}/photos",
        content=zipped,
        headers={**admin_headers, "Content-Type": "application/zip"},
    )
    assert r.status_code == 200, r.text
    assert (
        await client.post(f"{ADMIN}/{rnd['id']}/open", headers=admin_headers)
    ).status_code == 200
    detail = (await client.get(f"/api/v1/rounds/{rnd['id']}")).json()
    photo_url = detail["candidates"][0]["photo_url"]
    for size in ("card", "profile"):
        r = await client.get(f"{photo_url}&size={size}", headers={"Accept-Encoding": "br, gzip"})
        assert r.status_code == 200
        assert r.headers["content-type"] == "image/webp"
        assert "content-encoding" not in r.headers
        assert r.content[:4] == b"RIFF" and r.content[8:12] == b"WEBP"
        assert int(r.headers["content-length"]) == len(r.content) > 500


@pytest.mark.parametrize(
    ("content_type", "expected"),
    [
        ("text/html; charset=utf-8", True),
        ("application/json", True),
        ("application/problem+json", True),
        ("text/javascript", True),
        ("image/svg+xml", True),
        ("image/webp", False),
        ("application/zip", False),
        ("application/pdf", False),
        ("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", False),
        ("text/event-stream", False),
        (None, False),
    ],
)
def test_which_types_are_compressed(content_type, expected):
    assert compressible(content_type) is expected


# -- hashed static files ----------------------------------------------------------------------


async def test_hashed_urls_are_immutable_and_plain_ones_short_lived(client, assets):
    for path in ("style.css", "js/main.js", "js/api.js", "vendor/altcha.min.js"):
        body = (STATIC / path).read_bytes()
        digest = hashlib.sha256(body).hexdigest()[:10]
        url = f"/static/{hashed_name(path, digest)}"
        assert assets.url(path) == url
        r = await client.get(url)
        assert r.status_code == 200, url
        assert r.headers["cache-control"] == IMMUTABLE_CACHE
        assert r.content == body
        etag = r.headers["etag"]
        assert etag == f'W/"{digest}"'
        again = await client.get(url, headers={"If-None-Match": etag})
        assert again.status_code == 304 and again.content == b""
        plain = await client.get(f"/static/{path}")
        assert plain.status_code == 200 and plain.content == body
        assert plain.headers["cache-control"] == SHORT_CACHE


@pytest.mark.parametrize(
    "path",
    [
        "/static/js/main.0000000000.js",  # a hash that is no file's
        "/static/no-such-file.js",
        "/static/../settings.py",
        "/static/%2e%2e/app.py",
        "/static/sw.js",  # served at /sw.js only
        "/static/index.html",  # the page has its own route
    ],
)
async def test_unknown_static_files_are_404(client, path):
    r = await client.get(path)
    assert r.status_code == 404
    assert r.headers["content-type"].startswith("application/json")


def test_the_hash_is_of_the_bytes_and_names_keep_their_suffix():
    assert hashed_name("js/api.js", "abcdef0123") == "js/api.abcdef0123.js"
    assert hashed_name("vendor/altcha.min.js", "abcdef0123") == "vendor/altcha.min.abcdef0123.js"
    assert hashed_name("LICENSE", "abcdef0123") == "LICENSE.abcdef0123"


async def test_the_page_names_hashed_files_and_maps_every_module(client, assets):
    r = await client.get("/")
    assert r.status_code == 200
    head = head_of(r.text)
    assert head.links["stylesheet"] == assets.url("style.css")
    modules = [s["src"] for s in head.scripts if s.get("type") == "module"]
    assert modules == [assets.url("js/offline.js"), assets.url("js/main.js")]
    (map_text,) = head.script_text
    imports = json.loads(map_text)["imports"]
    for file in sorted((STATIC / "js").glob("*.js")):
        logical = f"js/{file.name}"
        assert imports[f"/static/{logical}"] == assets.url(logical)
    assert imports["/static/vendor/altcha.min.js"] == assets.url("vendor/altcha.min.js")
    assert not any("swagger" in k for k in imports)
    # the import map is an inline script: the policy allows exactly it by its hash
    digest = base64.b64encode(hashlib.sha256(map_text.encode()).digest()).decode()
    script_src = next(
        d for d in r.headers["content-security-policy"].split("; ") if d.startswith("script-src")
    )
    assert script_src == f"script-src 'self' 'sha256-{digest}'"
    assert "{{" not in r.text
    # no module is loaded on first paint but through the map (ALTCHA is imported on demand)
    assert "altcha" not in r.text.split('<script type="importmap">')[0]


async def test_receipt_page_uses_the_map_too(client, assets):
    r = await client.get("/kiem-tra")
    head = head_of(r.text)
    assert [s["src"] for s in head.scripts if s.get("src")] == [assets.url("js/check.js")]
    assert r.headers["cache-control"] == "no-cache"
    etag = r.headers["etag"]
    again = await client.get("/kiem-tra", headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert again.headers["content-security-policy"] == r.headers["content-security-policy"]


async def test_the_page_revalidates_with_the_nonce_of_the_copy_it_has(client):
    first = await client.get("/")
    assert first.headers["cache-control"] == "no-cache"
    etag = first.headers["etag"]
    nonce = re.search(r'name="csp-nonce" content="([^"]+)"', first.text).group(1)
    assert etag.endswith(f'-{nonce}"')
    again = await client.get("/", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
    assert again.headers["etag"] == etag
    assert f"'nonce-{nonce}'" in again.headers["content-security-policy"]
    # another well-formed nonce is that client's copy's own: 304 with it (only to itself)
    other = etag.replace(nonce, "x" * 22)
    r = await client.get("/", headers={"If-None-Match": other})
    assert (
        r.status_code == 304
        and "'nonce-xxxxxxxxxxxxxxxxxxxxxx'" in r.headers["content-security-policy"]
    )
    # a stale page's tag, or a malformed one, gets the whole page with a fresh nonce
    for tag in ('W/"0000-' + nonce + '"', etag[:-2] + '!"', "garbage", etag.replace(nonce, "x;y")):
        r = await client.get("/", headers={"If-None-Match": tag})
        assert r.status_code == 200, tag
        assert f"'nonce-{nonce}'" not in r.headers["content-security-policy"]


# -- deep links -------------------------------------------------------------------------------


async def test_a_candidate_link_carries_its_share_tags(client, admin_headers, make_round):
    rnd = await make_round(status="draft")
    zipped = (DATA / "shortlist-sample-photos.zip").read_bytes()
    r = await client.post(
        f"{ADMIN}/{rnd['id']}/photos",
        content=zipped,
        headers={**admin_headers, "Content-Type": "application/zip"},
    )
    assert r.status_code == 200, r.text
    # a draft is not public: its links are 404 like any unknown round
    r = await client.get(f"/r/{rnd['slug']}/DH01")
    assert r.status_code == 404
    assert html.escape(NOT_FOUND_ROUND, quote=False) in r.text or NOT_FOUND_ROUND in r.text
    assert (
        await client.post(f"{ADMIN}/{rnd['id']}/open", headers=admin_headers)
    ).status_code == 200

    detail = (await client.get(f"/api/v1/rounds/{rnd['id']}")).json()
    assert detail["slug"] == rnd["slug"]
    dh01 = next(c for c in detail["candidates"] if c["code"] == "DH01")
    r = await client.get(f"/r/{rnd['slug']}/DH01", headers=BR)
    assert r.status_code == 200
    assert r.headers["content-encoding"] == "br"
    head = head_of(r.text)
    base = str(client.base_url).rstrip("/")
    url = f"{base}/r/{rnd['slug']}/DH01"
    assert head.meta["og:url"] == url and head.links["canonical"] == url
    assert head.meta["og:title"] == f"{dh01['full_name']} – {rnd['title']}"
    assert head.title == head.meta["og:title"]
    assert dh01["position"] in head.meta["og:description"]
    assert 20 < len(head.meta["og:description"]) <= 200
    assert head.meta["og:type"] == "profile"
    assert head.meta["twitter:card"] == "summary_large_image"
    image = head.meta["og:image"]
    assert image == f"{base}{dh01['photo_url']}&size=profile"
    assert (head.meta["og:image:width"], head.meta["og:image:height"]) == ("480", "600")
    photo = await client.get(image.removeprefix(base))
    assert photo.status_code == 200 and photo.headers["content-type"] == "image/webp"
    assert "robots" not in head.meta
    assert "page-notice" not in r.text

    # the round's own link
    r = await client.get(f"/r/{rnd['slug']}")
    assert r.status_code == 200
    head = head_of(r.text)
    assert head.meta["og:title"] == rnd["title"]
    assert head.meta["og:url"] == f"{base}/r/{rnd['slug']}"
    assert head.meta["twitter:card"] == "summary"


async def test_a_configured_public_url_makes_the_absolute_urls(settings, make_round):
    from litestar.testing import AsyncTestClient

    from voting.app import create_app

    rnd = await make_round()
    public = "https://binhchon.example.vn/cong/"
    async with AsyncTestClient(app=create_app(settings.replace(public_url=public))) as c:
        r = await c.get(f"/r/{rnd['slug']}/DH02")
    head = head_of(r.text)
    assert head.meta["og:url"] == f"{public}r/{rnd['slug']}/DH02"
    assert head.links["canonical"] == f"{public}r/{rnd['slug']}/DH02"


@pytest.mark.parametrize(
    "tail",
    [
        "no-such-round",
        "no-such-round/DH01",
        "UPPER",  # not a slug
        "a" * 81,
        "%00",
        "x%20y/DH01",
        "b%C3%ACnh-ch%E1%BB%8Dn",
    ],
)
async def test_unknown_round_links_load_the_page_with_a_404(client, tail):
    r = await client.get(f"/r/{tail}")
    assert r.status_code == 404
    assert r.headers["content-type"].startswith("text/html")
    assert NOT_FOUND_ROUND in html.unescape(r.text)
    head = head_of(r.text)
    assert head.meta["robots"] == "noindex"
    assert head.title.startswith("Không tìm thấy")
    # the page itself still loads: its modules are there
    assert any(s.get("src", "").startswith("/static/js/main.") for s in head.scripts)


@pytest.mark.parametrize("code", ["ZZ99", "dh01", "007", "a" * 40, "%00", "x y"])
async def test_unknown_candidate_codes_are_404_on_the_rounds_page(client, make_round, code):
    rnd = await make_round()
    r = await client.get(f"/r/{rnd['slug']}/{code}")
    assert r.status_code == 404
    assert NOT_FOUND_CANDIDATE in html.unescape(r.text)
    head = head_of(r.text)
    assert head.meta["og:title"] == rnd["title"]  # the round is known: its tags
    assert head.meta["robots"] == "noindex"


async def test_rounds_list_and_detail_name_the_slug(client, make_round):
    rnd = await make_round()
    listed = {x["id"]: x for x in (await client.get("/api/v1/rounds")).json()}
    assert listed[rnd["id"]]["slug"] == rnd["slug"]


# -- the service worker -----------------------------------------------------------------------


async def test_the_service_worker_script_is_served_from_the_root(client, assets):
    r = await client.get("/sw.js")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/javascript")
    assert r.headers["cache-control"] == "no-cache"
    assert r.headers["service-worker-allowed"] == "/"
    text = r.text
    assert "__VERSION__" not in text and "__PRECACHE__" not in text
    version = re.search(r'const VERSION = "([0-9a-f]{12})";', text).group(1)
    precache = json.loads(re.search(r"const PRECACHE = (\[.*?\]);", text, re.S).group(1))
    assert precache[0] == "/"
    assert assets.url("style.css") in precache and assets.url("js/main.js") in precache
    assert assets.url("vendor/altcha.min.js") not in precache
    assert all(u == "/" or re.search(r"\.[0-9a-f]{10}\.(js|css)$", u) for u in precache)
    assert len(version) == 12


def test_a_new_deploy_gets_a_new_version_and_cache(tmp_path):
    for name in ("index.html", "kiem-tra.html", "sw.js", "style.css"):
        (tmp_path / name).write_bytes((STATIC / name).read_bytes())
    (tmp_path / "js").mkdir()
    for file in (STATIC / "js").glob("*.js"):
        (tmp_path / "js" / file.name).write_bytes(file.read_bytes())
    before = Pages.build(tmp_path, Assets.load(tmp_path))
    same = Pages.build(tmp_path, Assets.load(tmp_path))
    assert same.version == before.version and same.service_worker == before.service_worker
    (tmp_path / "js" / "api.js").write_text((STATIC / "js" / "api.js").read_text() + "\n// v2\n")
    after = Pages.build(tmp_path, Assets.load(tmp_path))
    assert after.version != before.version
    assert after.service_worker != before.service_worker
    assert "voting-shell-${VERSION}" in after.service_worker.decode()
