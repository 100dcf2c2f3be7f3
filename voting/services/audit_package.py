"""Building a round's audit package from the record (format: :mod:`voting.core.audit_package`).

The package is given only once the round's results are **official** (closed, counted and
published by an admin): from then on no tie decision or quarantine decision can change, so
every copy anyone downloads is byte-identical for the same record, and a copy that differs
shows the record changed. Before that, :class:`Conflict` ``audit_not_ready``. The
commitments themselves are public from the opening (``GET /rounds/{id}/commitments``).

Everything is read in one REPEATABLE READ transaction (one snapshot of the record).
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

import msgspec
from redis.asyncio import Redis
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from voting.core import audit_package as fmt
from voting.core.errors import Conflict
from voting.core.rounds import Round
from voting.record import audit, commitments, quarantine, queries, tables
from voting.services.results import round_results

README = """\
GÓI KIỂM TRA ĐỢT BÌNH CHỌN / AUDIT PACKAGE OF A VOTING ROUND

Tiếng Việt
----------
Gói này cho phép bất kỳ ai tự kiểm tra kết quả đợt bình chọn mà không cần phần mềm của
chúng tôi, chỉ cần Python 3.9 trở lên:

    python3 verify.py package.zip

(thay package.zip bằng tên tệp đã tải về). Nếu bạn đã lưu danh sách cam kết
(commitments) trong lúc bình chọn đang diễn ra, thêm:

    python3 verify.py package.zip --commitments da-luu.json

Chương trình tính lại mọi gốc Merkle và chuỗi băm của các cam kết, đếm lại phiếu từ danh
sách lựa chọn của từng lô niêm phong (trừ các nhóm phiếu bị tạm giữ không được tính), so
với kết quả đã công bố, kiểm tra nhật ký thao tác và cho biết các cam kết đã lưu không bị
thay đổi. Dòng cuối là VERIFIED khi mọi kiểm tra đều đạt, NOT VERIFIED kèm dòng FAILED nêu
rõ chỗ sai (lô nào, ứng viên nào). Danh sách mã biên nhận và danh sách lựa chọn của mỗi lô
được sắp xếp riêng, nên không ai nối được mã biên nhận với lựa chọn; người giữ mã biên nhận
tìm thấy mã của mình trong tệp epochs/NNNN.json.

English
-------
This package lets anyone check the round's result without our software, with Python 3.9
or later only:

    python3 verify.py package.zip

(package.zip: the file you downloaded). If you saved the list of commitments while the
vote was running, add:

    python3 verify.py package.zip --commitments saved.json

It recomputes every Merkle root and the hash chain of the commitments, recounts the
ballots from each sealed epoch's choice lists (minus the quarantined groups not counted),
compares them with the published results, checks the audit log, and proves the saved
commitments unchanged. The last line says VERIFIED when every check passes, else NOT
VERIFIED after FAILED lines naming what is wrong (which epoch, which candidate). Each
epoch's trackers and choice lists are sorted separately, so nobody can link a tracker to
its choices; a voter finds their tracker in epochs/NNNN.json.

Files: round.json (rules, candidates), commitments.json, epochs/NNNN.json, results.json,
quarantine.json, audit-head.json, verify.py, README.txt.
"""


def verifier_source() -> bytes:
    """The standalone verifier shipped as ``verify.py`` (``voting/core/verify_standalone.py``)."""
    return resources.files("voting.core").joinpath("verify_standalone.py").read_bytes()


def _when(value: Any) -> str | None:
    return None if value is None else value.isoformat()


def round_document(rnd: Round, rules_hash: str) -> dict[str, Any]:
    """``round.json``'s ``round``: the settings and history of ``rnd`` (see the format)."""
    return {
        "id": rnd.id,
        "slug": rnd.slug,
        "title": rnd.title,
        "status": rnd.status,
        "min_choices": rnd.min_choices,
        "max_choices": rnd.max_choices,
        "winners": rnd.winners,
        "results_visibility": rnd.results_visibility,
        "identity_mode": rnd.identity_mode,
        "fields": list(rnd.fields),
        "tie_break": rnd.tie_break,
        "field_minimum": rnd.field_minimum,
        "detection": dict(rnd.detection),
        "rules_hash": rules_hash,
        "draw_commitment": rnd.draw_commitment,
        "draw_seed": rnd.draw_seed if rnd.status == "closed" else None,
        "opens_at": _when(rnd.opens_at),
        "closes_at": _when(rnd.closes_at),
        "closed_at": _when(rnd.closed_at),
        "final_at": _when(rnd.final_at),
        "official_at": _when(rnd.official_at),
    }


async def build_audit_package(
    engine: AsyncEngine, redis: Redis, prefix: str, round_id: int
) -> bytes:
    """The audit package (ZIP bytes) of ``round_id``. Raises ``round_not_found`` (also for a
    draft); :class:`Conflict` ``audit_not_ready`` until its results are official."""
    async with engine.connect() as conn:
        await conn.execution_options(isolation_level="REPEATABLE READ")
        rnd = await queries.get_public_round(conn, round_id)
        if not rnd.final or rnd.official_at is None:
            raise Conflict(
                "audit_not_ready",
                "the audit package is given once the round is closed, counted and its results "
                "published as official; its commitments are public meanwhile",
            )
        cands = await queries.list_candidates(conn, round_id)
        rules_hash = await commitments.round_rules_hash(conn, round_id)
        rules = await commitments.rules_document(conn, round_id)
        chain = await commitments.list_commitments(conn, round_id)
        found = {e.seq: e for e in await commitments.epochs(conn, round_id)}
        # every epoch committed has its file (empty when its ballots are gone), and ballots
        # marked with a seq nobody committed get theirs too: the verifier names both
        epochs = [found.pop(c.seq, commitments.Epoch(c.seq, [], [])) for c in chain if c.seq]
        epochs += found.values()
        groups = await quarantine.quarantine_groups(conn, round_id)
        a = tables.audit_events
        events = (
            await conn.execute(
                select(a.c.id, a.c.action, a.c.created_at, a.c.hash)
                .where(a.c.round_id == round_id)
                .order_by(a.c.id)
            )
        ).all()
        last = int(events[-1][0]) if events else None
        checked = await audit.check(conn, up_to=last) if last is not None else None
        results = await round_results(engine, redis, prefix, rnd)
    files = {
        fmt.ROUND: {
            "round": round_document(rnd, rules_hash),
            "candidates": [
                {"id": c.id, "code": c.code, "full_name": c.full_name, "field": c.field}
                for c in cands
            ],
            "rules": rules,
        },
        fmt.COMMITMENTS: commitments_document(round_id, chain),
        fmt.RESULTS: json.loads(msgspec.json.encode(results)),
        fmt.QUARANTINE: {
            "round_id": round_id,
            "groups": [
                {
                    "reason": g.reason,
                    "decision": g.decision,
                    "counted": g.counted,
                    "count": len(g.trackers),
                    "trackers": g.trackers,
                    **({} if g.choices is None else {"choices": g.choices}),
                }
                for g in groups
            ],
        },
        fmt.AUDIT_HEAD: {
            "round_id": round_id,
            "events_checked": 0 if checked is None else checked.events,
            "intact": checked is None or checked.ok,
            "broken_at": None if checked is None else checked.broken_at,
            "head": None if checked is None else checked.head,
            "round_events": [
                {"id": int(i), "action": action, "created_at": when.isoformat(), "hash": h}
                for i, action, when, h in events
            ],
        },
        **{
            fmt.epoch_name(e.seq): {
                "round_id": round_id,
                "seq": e.seq,
                "count": len(e.trackers),
                "trackers": e.trackers,
                "choices": e.choices,
            }
            for e in epochs
        },
    }
    out = {name: fmt.json_bytes(value) for name, value in files.items()}
    out[fmt.VERIFIER] = verifier_source()
    out[fmt.README] = README.encode()
    return fmt.zip_bytes(out)


def commitments_document(round_id: int, chain: list[Any]) -> dict[str, Any]:
    """The answer of ``GET /rounds/{id}/commitments`` and ``commitments.json``:
    ``{"round_id", "commitments": [each commitment's published form, by seq]}``."""
    return {"round_id": round_id, "commitments": [c.as_json() for c in chain]}


async def round_commitments(engine: AsyncEngine, round_id: int) -> dict[str, Any]:
    """:func:`commitments_document` of a published round; ``round_not_found`` otherwise."""
    async with engine.connect() as conn:
        await queries.get_public_round(conn, round_id)
        return commitments_document(round_id, await commitments.list_commitments(conn, round_id))
