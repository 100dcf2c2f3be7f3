"""The console's photo uploads: a ZIP of photos named by candidate code on the round's page,
and one candidate's photo on their page, through the same service as the admin API
(:class:`voting.services.photos.Photos`); refusals in Vietnamese, entry by entry."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from litestar import Response, post
from litestar.datastructures import UploadFile
from litestar.enums import RequestEncodingType
from litestar.params import Body, FromPath
from litestar.plugins.htmx import ClientRedirect

from admin.auth import Admin, AdminDep, writer
from admin.console.access import message_of, page
from voting.core.errors import DomainError
from voting.core.photos import MAX_PHOTO_BYTES, MAX_ZIP_BYTES
from voting.services.container import Services, ServicesDep

UploadBody = Annotated[dict[str, Any], Body(media_type=RequestEncodingType.MULTI_PART)]
_PHOTO_MESSAGES = (
    (r"^not a JPEG, PNG or WebP image.*$", "Không phải ảnh JPEG, PNG hay WebP."),
    (r"^the image is damaged.*$", "Ảnh bị hỏng, không đọc được."),
    (r"^the file is empty$", "Tệp trống."),
    (r"^the file is (.*); at most (.*) .*$", r"Tệp nặng \1; tối đa \2."),
    (r"^the file is over (.*)$", r"Tệp nặng quá \1."),
    (
        r"^the image is (\d+)×(\d+) pixels \(([\d.]+) megapixels\); at most (\d+) megapixels.*$",
        r"Ảnh \1×\2 điểm (\3 megapixel), vượt giới hạn \4 megapixel.",
    ),
    (
        r"^the image is (\d+)×(\d+) pixels; a photo needs at least (\d+)×(\d+)$",
        r"Ảnh chỉ có \1×\2 điểm; cần ít nhất \3×\4.",
    ),
    (r"^the image has too many pixels.*$", "Ảnh có quá nhiều điểm ảnh."),
    (r"^an absolute path is not allowed.*$", "Không chấp nhận đường dẫn tuyệt đối trong tệp nén."),
    (r"^the path leaves the archive's folder.*$", "Đường dẫn vượt ra ngoài thư mục của tệp nén."),
    (
        r"^no candidate of this round has the code (.*)$",
        r"Không có người được đề cử nào mang mã \1.",
    ),
    (r"^encrypted entries are not accepted$", "Không chấp nhận tệp bị mã hóa."),
    (r"^a second photo of (\S+).*$", r"Có hai ảnh cho mã \1; chỉ gửi một ảnh."),
    (r"^the entry.*$", "Mục này trong tệp nén bị hỏng hoặc nén theo cách không hỗ trợ."),
    (r"^the body is not a readable ZIP archive$", "Tệp không phải tệp nén ZIP đọc được."),
    (r"^the archive.*$", "Tệp nén quá lớn hoặc có quá nhiều mục."),
)
PHOTO_MESSAGES = [(re.compile(p), t) for p, t in _PHOTO_MESSAGES]


def photo_message(message: str) -> str:
    """A photo refusal in Vietnamese (the English text when no translation fits)."""
    text = message.removeprefix("the photo was refused: ")
    for pattern, template in PHOTO_MESSAGES:
        if pattern.match(text):
            return pattern.sub(template, text)
    return text


def _entries(exc: DomainError) -> list[dict[str, str]]:
    details = exc.details or {}
    if exc.code == "invalid_photos":
        return [
            {"name": str(e.get("name", "")), "message": photo_message(str(e.get("message", "")))}
            for e in details.get("errors", [])
        ]
    if exc.code in ("invalid_photo", "invalid_zip"):
        return [{"name": "", "message": photo_message(exc.message)}]
    return [{"name": "", "message": message_of(exc)}]


async def _upload(
    services: Services,
    admin: Admin,
    round_id: int,
    data: dict[str, Any],
    missing: str,
    store: Callable[[bytes], Awaitable[str]],
) -> Response[Any]:
    """The uploaded ``file`` given to ``store`` (which answers where to go next); a missing
    file (``missing`` said) or a refusal in place, entry by entry."""
    upload = data.get("file")
    raw = await upload.read() if isinstance(upload, UploadFile) else b""
    if not raw:
        return page("photos_result.html", admin, errors=[{"name": "", "message": missing}])
    try:
        target = await store(raw)
    except DomainError as exc:
        return page("photos_result.html", admin, errors=_entries(exc))
    services.forget(round_id)
    return ClientRedirect(redirect_to=target)


@post(
    "/rounds/{round_id:int}/photos",
    include_in_schema=False,
    guards=[writer],
    status_code=200,
    request_max_body_size=MAX_ZIP_BYTES + 64_000,
)
async def upload_photos(
    services: ServicesDep, admin: AdminDep, round_id: FromPath[int], data: UploadBody
) -> Response[Any]:
    """Store the photos of a ZIP (as ``POST /admin/api/v1/rounds/{id}/photos``): all or none."""

    async def store(raw: bytes) -> str:
        stored = await services.photos.load_zip(admin.username, round_id, raw)
        return f"/admin/rounds/{round_id}?photos={len(stored)}"

    return await _upload(services, admin, round_id, data, "Hãy chọn một tệp ZIP.", store)


@post(
    "/rounds/{round_id:int}/candidates/{candidate_id:int}/photo",
    include_in_schema=False,
    guards=[writer],
    status_code=200,
    request_max_body_size=MAX_PHOTO_BYTES + 64_000,
)
async def upload_photo(
    services: ServicesDep,
    admin: AdminDep,
    round_id: FromPath[int],
    candidate_id: FromPath[int],
    data: UploadBody,
) -> Response[Any]:
    """Set one candidate's photo (as ``POST .../candidates/{id}/photo``)."""

    async def store(raw: bytes) -> str:
        await services.photos.set_photo(admin.username, round_id, candidate_id, raw)
        return f"/admin/rounds/{round_id}/candidates/{candidate_id}/edit?photo=1"

    return await _upload(services, admin, round_id, data, "Hãy chọn một ảnh.", store)


ROUTES = [upload_photos, upload_photo]
