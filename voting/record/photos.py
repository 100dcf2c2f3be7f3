"""Candidate photos in the record (``candidate_photos``): store, find, delete.

Every function takes the caller's connection (the caller owns the transaction). Photos are
keyed by round and candidate code (see :data:`voting.record.tables.candidate_photos`).
"""

from __future__ import annotations

from collections.abc import Mapping

import msgspec
from sqlalchemy import and_, delete, select
from sqlalchemy.ext.asyncio import AsyncConnection

from voting.core.errors import valid_id
from voting.core.photos import Photo
from voting.record import tables


class StoredPhoto(msgspec.Struct, frozen=True):
    """One size of a candidate's photo as served: ``data`` (bytes of ``media_type``),
    ``sha256`` (hex of ``data``) and the photo's ``version``."""

    data: bytes
    media_type: str
    sha256: str
    version: str


async def store_photos(conn: AsyncConnection, round_id: int, photos: Mapping[str, Photo]) -> None:
    """Replace the photos of the candidate codes in ``photos`` (code → :class:`Photo`) with
    theirs, every size."""
    if not photos:
        return
    p = tables.candidate_photos
    await conn.execute(delete(p).where(p.c.round_id == round_id, p.c.code.in_(list(photos))))
    await conn.execute(
        p.insert(),
        [
            {
                "round_id": round_id,
                "code": code,
                "size": r.size,
                "media_type": r.media_type,
                "width": r.width,
                "height": r.height,
                "data": r.data,
                "sha256": r.sha256,
                "version": photo.version,
            }
            for code, photo in photos.items()
            for r in photo.renditions
        ],
    )


async def delete_photo(conn: AsyncConnection, round_id: int, code: str) -> bool:
    """Delete every size of the photo of candidate ``code``; whether there was one."""
    p = tables.candidate_photos
    done = await conn.execute(delete(p).where(p.c.round_id == round_id, p.c.code == code))
    return bool(done.rowcount)


async def drop_orphans(conn: AsyncConnection, round_id: int) -> int:
    """Delete the photos of codes no candidate of the round has (after a new shortlist);
    how many rows went."""
    p, c = tables.candidate_photos, tables.candidates
    codes = select(c.c.code).where(c.c.round_id == round_id)
    done = await conn.execute(delete(p).where(p.c.round_id == round_id, p.c.code.not_in(codes)))
    return int(done.rowcount or 0)


async def find_photo(
    conn: AsyncConnection, round_id: int, candidate_id: int, size: str
) -> StoredPhoto | None:
    """The ``size`` of the photo of candidate ``candidate_id`` of ``round_id``; None when the
    candidate is not in the round or has no photo."""
    if not valid_id(candidate_id):
        return None
    p, c = tables.candidate_photos, tables.candidates
    row = (
        await conn.execute(
            select(p.c.data, p.c.media_type, p.c.sha256, p.c.version)
            .select_from(c.join(p, and_(p.c.round_id == c.c.round_id, p.c.code == c.c.code)))
            .where(c.c.round_id == round_id, c.c.id == candidate_id, p.c.size == size)
        )
    ).first()
    if row is None:
        return None
    return StoredPhoto(data=bytes(row[0]), media_type=row[1], sha256=row[2], version=row[3])
