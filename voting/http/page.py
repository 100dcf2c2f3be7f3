"""The public page's HTML routes: ``/``, the deep links ``/r/<round-slug>`` and
``/r/<round-slug>/<candidate-code>``, the receipt check page ``/kiem-tra`` and the service
worker ``/sw.js``.

Each page is prepared once at start-up (:class:`PageTemplate`): its ``/static`` URLs become
content-hashed ones (:mod:`voting.http.assets`), its import map is filled in, and the import
map's SHA-256 goes into the page's Content-Security-Policy (an inline
``<script type="importmap">`` is a script). Per answer only the ALTCHA stylesheet's nonce, the
title, the share tags and a notice are put in.

A deep link answers the same page with the round's or the candidate's Open Graph and Twitter
tags (``og:title``, ``og:description``, ``og:image`` the candidate's photo, absolute, in the
``profile`` size, ``og:url``, ``twitter:card``) and a canonical link, so a link shared on Zalo
or Facebook shows who it is about; the page's script opens that round and profile from
``location.pathname``. An unknown slug or code, or a round in draft, answers the page with
status 404 and a Vietnamese notice, never 5xx. Absolute URLs start at ``VOTING_PUBLIC_URL``
when set, else at the request's own origin.

The pages are ``Cache-Control: no-cache`` with a weak ETag. The index page's ETag carries its
nonce (``W/"<digest>-<nonce>"``): a browser that revalidates a copy still current gets 304 with
the policy of that copy's nonce, so its cached ``<meta name="csp-nonce">`` keeps working.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from litestar import Request, Response, get
from litestar.params import FromPath

from voting.core.photos import SIZES
from voting.core.rounds import Candidate, Round
from voting.core.shortlist import CODE_PATTERN
from voting.http.assets import Assets, etag_matches
from voting.http.headers import policy
from voting.record import queries
from voting.services.container import Services, ServicesDep

SITE_NAME = "Bình chọn gương điển hình tiêu biểu"
SITE_DESCRIPTION = "Bình chọn gương điển hình tiêu biểu trong học tập, lao động và sáng tạo."
#: A round's slug as the admin API accepts it (admin/api.py ``SLUG``).
SLUG_PATTERN = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
MAX_SLUG = 80
#: Characters of a candidate's summary in ``og:description``.
MAX_DESCRIPTION = 200
#: ``secrets.token_urlsafe(16)``: 22 characters of the URL-safe base64 alphabet.
NONCE_PATTERN = re.compile(r"[A-Za-z0-9_-]{22}")
_STATIC_ATTR = re.compile(r'(href|src)="/static/([^"?#]+)"')
_ETAG_WITH_NONCE = re.compile(r'^(?:W/)?"([0-9a-f]+)-([A-Za-z0-9_-]+)"$')
#: Hex digits of the service worker's version (names its caches).
VERSION_LENGTH = 12
#: The share image's size (``og:image:width`` / ``height``).
OG_IMAGE = SIZES["profile"]

NOT_FOUND_ROUND = (
    "Không tìm thấy đợt bình chọn này. Đường liên kết có thể bị sai, hoặc đợt bình chọn "
    "chưa được công bố. Mời bạn xem các đợt bình chọn đang có bên dưới."
)
NOT_FOUND_CANDIDATE = (
    "Không tìm thấy gương điển hình có mã này trong đợt bình chọn. Đường liên kết có thể bị "
    "sai. Mời bạn xem danh sách gương điển hình của đợt bên dưới."
)


def script_hash(text: str) -> str:
    """The CSP source of an inline script's text: ``sha256-<base64 of its SHA-256>``."""
    return "sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()


class PageTemplate:
    """One HTML page of ``voting/static`` prepared at start-up (see the module).

    The source may hold ``{{import_map}}`` (filled in here), ``{{csp_nonce}}``, ``{{title}}``
    and ``{{meta}}`` (per answer, :meth:`render`).
    """

    def __init__(self, source: str, assets: Assets) -> None:
        import_map = assets.import_map()

        def hashed(match: re.Match[str]) -> str:
            path = match.group(2)
            url = assets.url(path) if path in assets.by_path else f"/static/{path}"
            return f'{match.group(1)}="{url}"'

        text = _STATIC_ATTR.sub(hashed, source)
        text = text.replace("{{import_map}}", import_map)
        self.text = text
        #: the CSP sources of the page's inline scripts
        self.script_hashes = (script_hash(import_map),)
        self.digest = hashlib.sha256(text.encode()).hexdigest()[:16]

    def render(
        self, *, nonce: str = "", title: str = SITE_NAME, meta: str = "", notice: str = ""
    ) -> bytes:
        """The page with the answer's nonce, ``title`` (escaped here), ``meta`` (HTML of the
        head's tags) and ``notice`` (HTML put right after the site header)."""
        text = self.text.replace("{{csp_nonce}}", nonce)
        text = text.replace("{{title}}", html.escape(title, quote=False))
        text = text.replace("{{meta}}", meta)
        if notice:
            text = text.replace("</header>", "</header>\n" + notice, 1)
        return text.encode()


@dataclass(frozen=True)
class Share:
    """What a deep link's tags say: ``title``, ``description``, ``url`` (absolute,
    canonical), ``image`` (absolute URL or None), ``kind`` (``og:type``)."""

    title: str
    description: str
    url: str
    image: str | None = None
    kind: str = "website"

    def meta(self) -> str:
        """The head's tags: description, canonical link, Open Graph and Twitter card."""
        e = html.escape
        tags = [
            f'<meta name="description" content="{e(self.description)}">',
            f'<link rel="canonical" href="{e(self.url)}">',
            f'<meta property="og:type" content="{e(self.kind)}">',
            f'<meta property="og:site_name" content="{e(SITE_NAME)}">',
            '<meta property="og:locale" content="vi_VN">',
            f'<meta property="og:title" content="{e(self.title)}">',
            f'<meta property="og:description" content="{e(self.description)}">',
            f'<meta property="og:url" content="{e(self.url)}">',
        ]
        if self.image:
            tags += [
                f'<meta property="og:image" content="{e(self.image)}">',
                '<meta property="og:image:type" content="image/webp">',
                f'<meta property="og:image:width" content="{OG_IMAGE.width}">',
                f'<meta property="og:image:height" content="{OG_IMAGE.height}">',
                f'<meta property="og:image:alt" content="{e(self.title)}">',
                '<meta name="twitter:card" content="summary_large_image">',
                f'<meta name="twitter:image" content="{e(self.image)}">',
            ]
        else:
            tags.append('<meta name="twitter:card" content="summary">')
        tags += [
            f'<meta name="twitter:title" content="{e(self.title)}">',
            f'<meta name="twitter:description" content="{e(self.description)}">',
        ]
        return "\n  ".join(tags)


@dataclass(frozen=True)
class Pages:
    """The prepared pages and the service worker's script, made once by :meth:`build`."""

    index: PageTemplate
    receipt: PageTemplate
    service_worker: bytes
    version: str

    @classmethod
    def build(cls, static: Path, assets: Assets) -> Pages:
        """Prepare ``index.html``, ``kiem-tra.html`` and ``sw.js`` of ``static``."""
        index = PageTemplate((static / "index.html").read_text("utf-8"), assets)
        receipt = PageTemplate((static / "kiem-tra.html").read_text("utf-8"), assets)
        version = hashlib.sha256(
            f"{assets.version}\0{index.digest}\0{receipt.digest}".encode()
        ).hexdigest()[:VERSION_LENGTH]
        shell = ["/", *precached(assets)]
        worker = (
            (static / "sw.js")
            .read_text("utf-8")
            .replace('"__VERSION__"', json.dumps(version))
            .replace('["__PRECACHE__"]', json.dumps(shell, indent=2))
        )
        return cls(index, receipt, worker.encode(), version)


def precached(assets: Assets) -> list[str]:
    """The hashed URLs the service worker fetches when it installs: the page's stylesheet and
    modules (not the vendored ALTCHA widget, 111 KiB, fetched when a voter needs it, nor the
    API docs)."""
    return [
        assets.url(path)
        for path in sorted(assets.by_path)
        if path == "style.css" or (path.startswith("js/") and path.endswith(".js"))
    ]


def base_url(services: Services, request: Request[Any, Any, Any]) -> str:
    """The public page's address ending in ``/``: ``VOTING_PUBLIC_URL``, else the origin the
    request came to."""
    configured = services.settings.server.public_url
    if configured:
        return configured
    return str(request.base_url).rstrip("/") + "/"


def _summary(text: str) -> str:
    flat = " ".join(text.split())
    if len(flat) <= MAX_DESCRIPTION:
        return flat
    return flat[: MAX_DESCRIPTION - 1].rsplit(" ", 1)[0] + "…"


def round_share(base: str, rnd: Round) -> Share:
    """The tags of ``/r/<slug>``."""
    description = _summary(rnd.description) or SITE_DESCRIPTION
    return Share(rnd.title, description, f"{base}r/{quote(rnd.slug)}")


def candidate_share(base: str, rnd: Round, c: Candidate) -> Share:
    """The tags of ``/r/<slug>/<code>``: the candidate's name, position and workplace, the
    summary, and the photo (``profile`` size) when there is one."""
    photo = (
        f"{base}api/v1/rounds/{rnd.id}/candidates/{c.id}/photo?v={c.photo_version}&size=profile"
        if c.photo_version
        else None
    )
    lead = ", ".join(part for part in (c.position, c.workplace) if part)
    description = _summary(" ".join(part for part in (f"{lead}." if lead else "", c.summary)))
    return Share(
        f"{c.full_name} – {rnd.title}",
        description or rnd.title,
        f"{base}r/{quote(rnd.slug)}/{quote(c.code)}",
        image=photo,
        kind="profile",
    )


def _notice(text: str) -> str:
    return f'<div class="wrap"><p class="notice" role="alert" id="page-notice">{text}</p></div>'


def _html(body: bytes, status: int, csp: str, etag: str | None = None) -> Response[bytes]:
    headers = {"Cache-Control": "no-cache", "Content-Security-Policy": csp}
    if etag is not None:
        headers["ETag"] = etag
    return Response(body, status_code=status, media_type="text/html", headers=headers)


def index_answer(
    services: Services,
    request: Request[Any, Any, Any],
    pages: Pages,
    *,
    share: Share | None = None,
    notice: str = "",
    status: int = 200,
) -> Response[bytes]:
    """The index page with ``share``'s tags (the site's own by default) and ``notice``; 304
    when ``If-None-Match`` names a copy still current (with that copy's nonce)."""
    ancestors = services.settings.server.frame_ancestors
    page = pages.index
    if share is None:
        share = Share(SITE_NAME, SITE_DESCRIPTION, base_url(services, request))
    meta = share.meta()
    if status != 200:
        meta += '\n  <meta name="robots" content="noindex">'
    title = share.title if status == 200 else f"Không tìm thấy – {SITE_NAME}"
    digest = hashlib.sha256(
        f"{page.digest}\0{status}\0{title}\0{meta}\0{notice}".encode()
    ).hexdigest()[:16]
    if status == 200:
        for tag in (request.headers.get("if-none-match") or "").split(","):
            match = _ETAG_WITH_NONCE.match(tag.strip())
            if match and match.group(1) == digest and NONCE_PATTERN.fullmatch(match.group(2)):
                nonce = match.group(2)
                csp = policy(ancestors, style_nonce=nonce, script_hashes=page.script_hashes)
                return _html(b"", 304, csp, f'W/"{digest}-{nonce}"')
    nonce = secrets.token_urlsafe(16)
    csp = policy(ancestors, style_nonce=nonce, script_hashes=page.script_hashes)
    body = page.render(nonce=nonce, title=title, meta=meta, notice=notice)
    return _html(body, status, csp, f'W/"{digest}-{nonce}"' if status == 200 else None)


def page_routes(pages: Pages) -> list[Any]:
    """The handlers of ``/``, ``/r/{slug}``, ``/r/{slug}/{code}``, ``/kiem-tra`` and
    ``/sw.js`` over the prepared ``pages``."""

    @get("/", include_in_schema=False)
    async def index(services: ServicesDep, request: Request[Any, Any, Any]) -> Response[bytes]:
        """The public voting page (``?round=<id>`` picks a round)."""
        return index_answer(services, request, pages)

    async def deep_link(
        services: Services, request: Request[Any, Any, Any], slug: str, code: str | None
    ) -> Response[bytes]:
        rnd = candidate = None
        if len(slug) <= MAX_SLUG and SLUG_PATTERN.fullmatch(slug):
            async with services.engine.connect() as conn:
                rnd = await queries.find_public_round_by_slug(conn, slug)
                if rnd is not None and code is not None and CODE_PATTERN.fullmatch(code):
                    candidate = await queries.find_candidate_by_code(conn, rnd.id, code)
        if rnd is None:
            return index_answer(
                services, request, pages, notice=_notice(NOT_FOUND_ROUND), status=404
            )
        base = base_url(services, request)
        if code is None:
            return index_answer(services, request, pages, share=round_share(base, rnd))
        if candidate is None:
            return index_answer(
                services,
                request,
                pages,
                share=round_share(base, rnd),
                notice=_notice(NOT_FOUND_CANDIDATE),
                status=404,
            )
        return index_answer(services, request, pages, share=candidate_share(base, rnd, candidate))

    @get("/r/{slug:str}", include_in_schema=False)
    async def round_link(
        services: ServicesDep, request: Request[Any, Any, Any], slug: FromPath[str]
    ) -> Response[bytes]:
        """A round's link: the page with its share tags; 404 with a notice for an unknown
        round or one in draft."""
        return await deep_link(services, request, slug, None)

    @get("/r/{slug:str}/{code:str}", include_in_schema=False)
    async def candidate_link(
        services: ServicesDep,
        request: Request[Any, Any, Any],
        slug: FromPath[str],
        code: FromPath[str],
    ) -> Response[bytes]:
        """One candidate's link: the page with the candidate's share tags; 404 with a notice
        for an unknown round (or one in draft) or an unknown candidate code."""
        return await deep_link(services, request, slug, code)

    @get("/kiem-tra", include_in_schema=False)
    async def receipt_page(
        services: ServicesDep, request: Request[Any, Any, Any]
    ) -> Response[bytes]:
        """The public receipt check page (``?ma=`` a tracker pre-fills it); the API it calls
        is ``GET /api/v1/receipts/{tracker}``."""
        page = pages.receipt
        csp = policy(services.settings.server.frame_ancestors, script_hashes=page.script_hashes)
        etag = f'W/"{page.digest}"'
        if etag_matches(request.headers.get("if-none-match"), etag):
            return _html(b"", 304, csp, etag)
        return _html(page.render(title="Kiểm tra phiếu bình chọn"), 200, csp, etag)

    @get("/sw.js", include_in_schema=False, sync_to_thread=False)
    def service_worker() -> Response[bytes]:
        """The service worker (``voting/static/sw.js`` with this deploy's version and
        precache list), scope ``/``, always revalidated: a deploy changes its bytes, and the
        browser installs the new one."""
        return Response(
            pages.service_worker,
            media_type="text/javascript",
            headers={"Cache-Control": "no-cache", "Service-Worker-Allowed": "/"},
        )

    return [index, round_link, candidate_link, receipt_page, service_worker]
