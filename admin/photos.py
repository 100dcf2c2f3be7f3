"""Admin routes for candidate photos (rules in :mod:`voting.core.photos`, changes in
:mod:`voting.services.photos`).

* ``POST /rounds/{round_id}/candidates/{candidate_id}/photo``: one photo, as a multipart
  ``file`` part or the raw image body (``image/*`` or ``application/octet-stream``).
* ``POST /rounds/{round_id}/photos``: a ZIP archive (multipart ``file`` or the raw body) of
  photos named ``CODE.jpg|png|webp`` by candidate code; all stored or, when any entry is bad,
  none (400 ``invalid_photos`` with ``errors[{name, message}]``).
* ``DELETE`` and ``GET`` (a preview, drafts included) of one candidate's photo.

Changes are allowed until the round is closed (409 ``round_closed``) and each writes an
audit event.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

import msgspec
from litestar import Request, Response, delete, get, post
from litestar.exceptions import HTTPException
from litestar.openapi.spec import (
    OpenAPIFormat,
    OpenAPIMediaType,
    OpenAPIType,
    Operation,
    RequestBody,
    Schema,
)
from litestar.params import FromPath, HeaderParameter, QueryParameter

from admin.auth import AdminDep, writer
from voting.core.errors import Invalid
from voting.core.photos import DEFAULT_SIZE, MAX_PHOTO_BYTES, MAX_ZIP_BYTES, MEDIA_TYPE, SizeName
from voting.http.answers import answers
from voting.http.photos import PRIVATE, PhotoOperation, photo_response
from voting.services.container import ServicesDep
from voting.services.photos import PhotoSet

#: Room for the multipart framing around the file.
MULTIPART_SLACK = 64_000
ZIP_TYPES = ("application/zip", "application/x-zip-compressed", "application/x-zip")
RAW = "application/octet-stream"


class PhotoOut(PhotoSet, frozen=True, kw_only=True):
    """A stored photo: the candidate, the photo's version, its sizes
    (``{size, width, height, bytes}``) and its public URL (served once the round is out of
    draft)."""

    round_id: int
    photo_url: str


class PhotosOut(msgspec.Struct):
    """An archive stored: how many photos and each of them."""

    round_id: int
    stored: int
    photos: list[PhotoOut]


def _binary_body(*media_types: str) -> RequestBody:
    binary = Schema(type=OpenAPIType.STRING, format=OpenAPIFormat.BINARY)
    form = Schema(type=OpenAPIType.OBJECT, properties={"file": binary}, required=["file"])
    content = {"multipart/form-data": OpenAPIMediaType(schema=form)}
    content.update({m: OpenAPIMediaType(schema=binary) for m in media_types})
    return RequestBody(content=content, required=True)


@dataclass
class PhotoUploadOperation(Operation):
    """The body of a photo upload: multipart ``file`` or the image itself."""

    def __post_init__(self) -> None:
        self.request_body = _binary_body("image/jpeg", "image/png", "image/webp", RAW)


@dataclass
class ZipUploadOperation(Operation):
    """The body of a photo archive: multipart ``file`` or the ZIP itself."""

    def __post_init__(self) -> None:
        self.request_body = _binary_body(*ZIP_TYPES, RAW)


async def _upload(request: Request[Any, Any, Any], accepts: Any, what: str) -> bytes:
    """The uploaded file: the multipart ``file`` part, or the body when ``accepts(media
    type)``; 415 for another media type, 400 ``malformed`` for a form without a file."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype == "multipart/form-data":
        form = await request.form()
        upload = form.get("file")
        if upload is None or not hasattr(upload, "read"):
            raise Invalid("malformed", "the multipart body needs a 'file' part with the file")
        return bytes(await upload.read())
    if accepts(ctype):
        return await request.body()
    raise HTTPException(status_code=415, detail=f"send {what}, or multipart/form-data")


def _photo_out(round_id: int, p: PhotoSet) -> PhotoOut:
    url = f"/api/v1/rounds/{round_id}/candidates/{p.candidate_id}/photo?v={p.version}"
    return PhotoOut(**msgspec.structs.asdict(p), round_id=round_id, photo_url=url)


@post(
    "/rounds/{round_id:int}/candidates/{candidate_id:int}/photo",
    summary="Set a candidate's photo (JPEG, PNG or WebP)",
    status_code=200,
    request_max_body_size=MAX_PHOTO_BYTES + MULTIPART_SLACK,
    operation_class=PhotoUploadOperation,
    guards=[writer],
    responses=answers(409, 413, 415),
)
async def set_photo(
    request: Request[Any, Any, Any],
    services: ServicesDep,
    admin: AdminDep,
    round_id: FromPath[int],
    candidate_id: FromPath[int],
) -> PhotoOut:
    """Check, re-encode and store one photo, replacing the candidate's. Body: multipart
    ``file``, or the image as ``image/*`` / ``application/octet-stream`` (the content decides
    the format). Errors: 400 ``invalid_photo`` (not JPEG/PNG/WebP, over 20 MB or 50
    megapixels, under 192×192 pixels, damaged), ``malformed``; 404 ``round_not_found``,
    ``candidate_not_found``; 409 ``round_closed``; 413; 415."""
    data = await _upload(
        request, lambda t: t.startswith("image/") or t == RAW, "the image as image/*"
    )
    stored = await services.photos.set_photo(admin.username, round_id, candidate_id, data)
    services.forget(round_id)
    return _photo_out(round_id, stored)


@post(
    "/rounds/{round_id:int}/photos",
    summary="Load candidates' photos from a ZIP archive named by candidate code",
    status_code=200,
    request_max_body_size=MAX_ZIP_BYTES + MULTIPART_SLACK,
    operation_class=ZipUploadOperation,
    guards=[writer],
    responses=answers(409, 413, 415),
)
async def load_photos(
    request: Request[Any, Any, Any],
    services: ServicesDep,
    admin: AdminDep,
    round_id: FromPath[int],
) -> PhotosOut:
    """Store every photo of a ZIP archive whose entries are named ``CODE.jpg``, ``.jpeg``,
    ``.png`` or ``.webp`` by candidate code (in its root or a folder; other candidates' photos
    are left as they are). All or nothing: 400 ``invalid_photos`` with ``errors[{name,
    message}]`` naming every refused entry (a name that is no candidate's code, a path with
    ``..`` or an absolute one, not an image, a decompression bomb, too large, two photos of
    one code), ``invalid_zip`` (not a ZIP, over 100 MB, 200 entries or 300 MB unpacked, no
    photo); 404 ``round_not_found``; 409 ``round_closed``, ``candidates_changed``; 413;
    415."""
    data = await _upload(request, lambda t: t in (*ZIP_TYPES, RAW), "application/zip")
    stored = await services.photos.load_zip(admin.username, round_id, data)
    services.forget(round_id)
    return PhotosOut(
        round_id=round_id,
        stored=len(stored),
        photos=[_photo_out(round_id, p) for p in stored],
    )


@delete(
    "/rounds/{round_id:int}/candidates/{candidate_id:int}/photo",
    summary="Delete a candidate's photo",
    status_code=204,
    guards=[writer],
    responses=answers(409),
)
async def delete_photo(
    services: ServicesDep, admin: AdminDep, round_id: FromPath[int], candidate_id: FromPath[int]
) -> None:
    """The candidate shows initials again. 404 ``round_not_found``, ``candidate_not_found``,
    ``photo_not_found``; 409 ``round_closed``."""
    await services.photos.delete_photo(admin.username, round_id, candidate_id)
    services.forget(round_id)


@get(
    "/rounds/{round_id:int}/candidates/{candidate_id:int}/photo",
    summary="A candidate's photo (drafts included)",
    media_type=MEDIA_TYPE,
    operation_class=PhotoOperation,
)
async def admin_photo(
    services: ServicesDep,
    round_id: FromPath[int],
    candidate_id: FromPath[int],
    size: Annotated[SizeName, QueryParameter()] = DEFAULT_SIZE,
    if_none_match: Annotated[str | None, HeaderParameter(name="If-None-Match")] = None,
) -> Response[bytes]:
    """One size of the photo (WebP), ``private, no-cache`` with its ETag (304 on
    ``If-None-Match``). 404 ``round_not_found``, ``photo_not_found``."""
    photo = await services.photos.find(round_id, candidate_id, size, public=False)
    return photo_response(photo, PRIVATE, if_none_match)


ROUTES = [set_photo, load_photos, delete_photo, admin_photo]
