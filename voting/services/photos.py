"""Candidate photos: set one, load a ZIP archive of them, delete one (admin changes), and
find one to serve.

The rules of what is accepted are in :mod:`voting.core.photos`. Decoding and encoding run in
one worker thread per process (Pillow releases the GIL while it works), so a big archive
never blocks the event loop that serves ballots and two uploads never hold two decoded
images in memory at once.

Photos may change while a round is in draft, open or paused, never once it is closed
(409 ``round_closed``): a photo is not part of a round's rules or of any ballot, and a wrong
photo found during the vote must be fixable; every change writes an audit event with the
new photo's version. A change is checked and rendered completely before the transaction
that stores it, which locks the round row and checks the status again (a close in between
wins).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import msgspec
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from voting.core.errors import Conflict, NotFound
from voting.core.photos import Photo, check_photo, read_photo_zip
from voting.core.rounds import Candidate, Round
from voting.record import photos as stored
from voting.record import queries
from voting.record.audit import audit
from voting.record.photos import StoredPhoto

T = TypeVar("T")


class PhotoSet(msgspec.Struct, frozen=True):
    """A stored photo: the candidate, the photo's ``version`` and its renditions'
    ``{size, width, height, bytes}`` (pixels, bytes)."""

    candidate_id: int
    code: str
    version: str
    sizes: list[dict[str, Any]]


def _photo_set(candidate: Candidate, photo: Photo) -> PhotoSet:
    return PhotoSet(
        candidate_id=candidate.id,
        code=candidate.code,
        version=photo.version,
        sizes=[
            {"size": r.size, "width": r.width, "height": r.height, "bytes": len(r.data)}
            for r in photo.renditions
        ],
    )


def _source(photo: Photo) -> dict[str, Any]:
    return {
        "format": photo.format,
        "width": photo.width,
        "height": photo.height,
        "bytes": photo.bytes,
        "version": photo.version,
    }


def _changeable(rnd: Round) -> None:
    if rnd.status == "closed":
        raise Conflict("round_closed", "the round is closed; its photos can no longer change")


class PhotoService:
    """Candidate photos over the record (see the module)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._worker = ThreadPoolExecutor(1, thread_name_prefix="photos")

    def close(self) -> None:
        """Stop the worker thread (pending renders are dropped)."""
        self._worker.shutdown(wait=False, cancel_futures=True)

    async def _render(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._worker, functools.partial(fn, *args))

    async def _locked(self, conn: AsyncConnection, round_id: int) -> Round:
        rnd = await queries.get_round(conn, round_id, for_update=True)
        _changeable(rnd)
        return rnd

    async def set_photo(
        self, actor: str, round_id: int, candidate_id: int, data: bytes
    ) -> PhotoSet:
        """Check and store ``data`` (the uploaded file's bytes) as the photo of one candidate,
        replacing any. Raises ``round_not_found``, ``candidate_not_found``, :class:`Conflict`
        ``round_closed``, :class:`voting.core.errors.Invalid` ``invalid_photo``."""
        async with self.engine.connect() as conn:
            _changeable(await queries.get_round(conn, round_id))
            await queries.get_candidate(conn, round_id, candidate_id)
        photo = await self._render(check_photo, data)
        async with self.engine.begin() as conn:
            await self._locked(conn, round_id)
            candidate = await queries.get_candidate(conn, round_id, candidate_id)
            await stored.store_photos(conn, round_id, {candidate.code: photo})
            await audit(
                conn,
                actor,
                "photo_set",
                round_id,
                {"candidate_id": candidate.id, "code": candidate.code, **_source(photo)},
            )
        return _photo_set(candidate, photo)

    async def load_zip(self, actor: str, round_id: int, data: bytes) -> list[PhotoSet]:
        """Check every photo of a ZIP archive (``data``) named by candidate code and store them
        all, or none. Raises ``round_not_found``, :class:`Conflict` ``round_closed`` or
        ``candidates_changed`` (the shortlist was imported again meanwhile),
        :class:`voting.core.errors.Invalid` ``invalid_zip`` / ``invalid_photos``."""
        async with self.engine.connect() as conn:
            _changeable(await queries.get_round(conn, round_id))
            codes = [c.code for c in await queries.list_candidates(conn, round_id)]
        photos = await self._render(read_photo_zip, data, codes)
        async with self.engine.begin() as conn:
            await self._locked(conn, round_id)
            by_code = {c.code: c for c in await queries.list_candidates(conn, round_id)}
            if not set(photos) <= set(by_code):
                raise Conflict(
                    "candidates_changed",
                    "the shortlist changed while the photos were checked; send the archive again",
                )
            await stored.store_photos(conn, round_id, photos)
            await audit(
                conn,
                actor,
                "photos_load",
                round_id,
                {
                    "count": len(photos),
                    "photos": {code: _source(p) for code, p in sorted(photos.items())},
                },
            )
        return [_photo_set(by_code[code], photos[code]) for code in sorted(photos)]

    async def delete_photo(self, actor: str, round_id: int, candidate_id: int) -> None:
        """Delete one candidate's photo. Raises ``round_not_found``, ``candidate_not_found``,
        :class:`NotFound` ``photo_not_found``, :class:`Conflict` ``round_closed``."""
        async with self.engine.begin() as conn:
            await self._locked(conn, round_id)
            candidate = await queries.get_candidate(conn, round_id, candidate_id)
            if not await stored.delete_photo(conn, round_id, candidate.code):
                raise NotFound("photo_not_found", "this candidate has no photo")
            await audit(
                conn,
                actor,
                "photo_delete",
                round_id,
                {"candidate_id": candidate.id, "code": candidate.code},
            )

    async def find(
        self, round_id: int, candidate_id: int, size: str, *, public: bool
    ) -> StoredPhoto:
        """One size of a candidate's photo; with ``public``, only of a published round.
        Raises ``round_not_found``, :class:`NotFound` ``photo_not_found`` (no such candidate
        in the round, or no photo)."""
        async with self.engine.connect() as conn:
            if public:
                await queries.get_public_round(conn, round_id)
            else:
                await queries.get_round(conn, round_id)
            found = await stored.find_photo(conn, round_id, candidate_id, size)
        if found is None:
            raise NotFound("photo_not_found", "this candidate has no photo")
        return found
