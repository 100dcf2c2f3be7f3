"""The public page's static files under ``/static``, with content-hashed names.

At start-up :meth:`Assets.load` reads every file of ``voting/static`` once and names each by
the first 10 hex digits of the SHA-256 of its bytes: ``js/api.js`` is also served as
``js/api.<hash>.js``. A hashed URL never changes meaning, so it is answered with
``Cache-Control: public, max-age=31536000, immutable``; the plain URL (what an old page or a
bookmark names) keeps working with a short cache (:data:`SHORT_CACHE`). Both carry a weak
``ETag`` (weak: the compression middleware may re-encode the bytes) and answer 304 to a
matching ``If-None-Match``.

ES modules import each other by relative names (``./api.js``): the page carries an import map
(:meth:`Assets.import_map`) that sends each plain module URL to its hashed one, so the modules
of one page are always of one version and a deploy that changes one file changes only that
file's URL. (No ``<link rel="modulepreload">``: measured with Lighthouse's mobile
simulation, preloading the 16 modules delayed the first paint by 0.7 s for no gain in the
largest one.)

The files are held in memory (about 2.4 MB with the API docs' Swagger UI): static files change
only with a deploy, which restarts the process.
"""

from __future__ import annotations

import hashlib
import json
import mimetypes
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from litestar import Request, Response, Router, get
from litestar.exceptions import NotFoundException
from litestar.params import FromPath

#: ``Cache-Control`` of a content-hashed URL: its bytes never change.
IMMUTABLE_CACHE = "public, max-age=31536000, immutable"
#: ``Cache-Control`` of a plain URL: its bytes change with a deploy.
SHORT_CACHE = "public, max-age=300"
#: Hex digits of the SHA-256 in a hashed name.
HASH_LENGTH = 10
#: Files that are not served under ``/static`` (the service worker is served at ``/sw.js``,
#: its scope the whole site; the HTML pages have their own routes).
NOT_STATIC = frozenset({"sw.js", "index.html", "kiem-tra.html"})

mimetypes.add_type("text/javascript", ".js")
mimetypes.add_type("image/webp", ".webp")


@dataclass(frozen=True)
class Asset:
    """One static file: ``body`` (bytes), ``media_type``, ``digest`` (the hex SHA-256 prefix
    of its name), ``path`` (its logical path under ``/static``, e.g. ``js/api.js``) and
    ``hashed`` (its hashed path, e.g. ``js/api.1a2b3c4d5e.js``)."""

    path: str
    hashed: str
    body: bytes
    media_type: str
    digest: str

    @property
    def etag(self) -> str:
        """The weak ETag of the file's bytes."""
        return f'W/"{self.digest}"'


def hashed_name(path: str, digest: str) -> str:
    """``js/api.js`` → ``js/api.<digest>.js`` (a name without a suffix gets ``.<digest>``)."""
    head, dot, suffix = path.rpartition(".")
    if not dot or "/" in suffix:
        return f"{path}.{digest}"
    return f"{head}.{digest}.{suffix}"


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """Whether an ``If-None-Match`` header names ``etag`` (weak comparison, RFC 9110 §13.1.2:
    ``W/`` prefixes are ignored; ``*`` matches)."""
    if not if_none_match:
        return False
    wanted = etag.removeprefix("W/")
    for tag in if_none_match.split(","):
        tag = tag.strip()
        if tag == "*" or tag.removeprefix("W/") == wanted:
            return True
    return False


class Assets:
    """The static files of one directory by logical and by hashed path (see the module)."""

    def __init__(self, files: Iterable[Asset], prefix: str = "/static") -> None:
        self.prefix = prefix
        self.by_path: dict[str, Asset] = {}
        self.by_hashed: dict[str, Asset] = {}
        for asset in files:
            self.by_path[asset.path] = asset
            self.by_hashed[asset.hashed] = asset
        digest = hashlib.sha256()
        for path in sorted(self.by_path):
            digest.update(f"{path}\0{self.by_path[path].digest}\n".encode())
        #: the hash of every file's name and hash: changes with any file
        self.version = digest.hexdigest()[:HASH_LENGTH]

    @classmethod
    def load(cls, directory: Path, *, only: Iterable[str] = ()) -> Assets:
        """Read every file under ``directory`` (or only under its subfolders ``only``, e.g.
        ``("docs", "vendor/swagger-ui")``), but :data:`NOT_STATIC`."""
        roots = [directory / part for part in only] or [directory]
        files = []
        for root in roots:
            for file in sorted(root.rglob("*")):
                rel = file.relative_to(directory).as_posix()
                if not file.is_file() or rel in NOT_STATIC:
                    continue
                body = file.read_bytes()
                digest = hashlib.sha256(body).hexdigest()[:HASH_LENGTH]
                # Litestar adds "; charset=utf-8" to text/* itself
                media_type = mimetypes.guess_type(file.name)[0] or "application/octet-stream"
                files.append(Asset(rel, hashed_name(rel, digest), body, media_type, digest))
        return cls(files)

    def url(self, path: str) -> str:
        """The hashed URL of the logical ``path`` (``js/main.js`` → ``/static/js/main.<h>.js``);
        KeyError if there is no such file."""
        return f"{self.prefix}/{self.by_path[path].hashed}"

    def urls(self) -> list[str]:
        """Every hashed URL, sorted."""
        return sorted(f"{self.prefix}/{hashed}" for hashed in self.by_hashed)

    def import_map(self, folders: Iterable[str] = ("js/", "vendor/")) -> str:
        """The page's import map (JSON text): each JavaScript module of ``folders`` by plain
        URL → hashed URL. Import maps apply to the URL a relative specifier resolves to, so
        ``import './api.js'`` in ``/static/js/main.<h>.js`` loads ``/static/js/api.<h>.js``."""
        folders = tuple(folders)
        imports = {
            f"{self.prefix}/{a.path}": f"{self.prefix}/{a.hashed}"
            for a in sorted(self.by_path.values(), key=lambda a: a.path)
            # the folders' own modules, not those of their subfolders (Swagger UI's scripts)
            if a.path.endswith(".js") and a.path.startswith(folders) and a.path.count("/") == 1
        }
        return json.dumps({"imports": imports}, separators=(",", ":"), sort_keys=True)

    def answer(self, path: str, if_none_match: str | None) -> Response[bytes]:
        """The answer to ``GET {prefix}/{path}``: the file (hashed: immutable; plain: short
        cache) or 304; :class:`NotFoundException` (404 ``not_found``) for no such file."""
        asset = self.by_hashed.get(path)
        cache = IMMUTABLE_CACHE
        if asset is None:
            asset = self.by_path.get(path)
            cache = SHORT_CACHE
        if asset is None:
            raise NotFoundException(detail="no such file")
        headers = {"Cache-Control": cache, "ETag": asset.etag}
        if etag_matches(if_none_match, asset.etag):
            return Response(b"", status_code=304, headers=headers, media_type=asset.media_type)
        return Response(asset.body, headers=headers, media_type=asset.media_type)


def assets_router(assets: Assets) -> Router:
    """A router of ``GET {assets.prefix}/{path}`` answered by :meth:`Assets.answer`."""

    @get("/{path:path}", include_in_schema=False, sync_to_thread=False)
    def static_file(request: Request[Any, Any, Any], path: FromPath[str]) -> Response[bytes]:
        return assets.answer(path.lstrip("/"), request.headers.get("if-none-match"))

    return Router(assets.prefix, route_handlers=[static_file])
