"""Voting-code cards: a printable PDF of one-time codes to cut out and hand out through the
party cells (identity mode ``code``).

A4 pages of 2 × 5 cards (95 × 55.6 mm, dashed cut lines). Each card names the issuer and the
round, shows its code in large monospaced type (``ABCD-EFGH-JKM``), how to vote, and the
round's address as text and as a QR code (template ``admin/templates/cards.typ``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from admin.documents import qr_svg, typeset
from voting.core.rounds import RoundRecord
from voting.identity.codes import format_code

CARDS_PER_PAGE = 10


def round_address(public_url: str, round_id: int) -> str:
    """The public page opened on one round: ``https://x.vn/`` → ``https://x.vn/?round=7``
    (``public_url`` ends in ``/``, as :data:`voting.settings` keeps it)."""
    return f"{public_url}?round={round_id}"


def _choose(low: int, high: int) -> str:
    if low == high:
        return f"Chọn đúng {low} gương điển hình"
    if low <= 1:
        return f"Chọn tối đa {high} gương điển hình"
    return f"Chọn từ {low} đến {high} gương điển hình"


def code_cards_pdf(
    codes: Sequence[str],
    rnd: RoundRecord,
    *,
    organisation: str,
    address: str,
    created: datetime,
) -> bytes:
    """The PDF of one card per code of ``codes`` (normalised codes, as
    :meth:`voting.identity.codes.RoundCodes.create` returns them; printed grouped by four),
    for the round ``rnd``, issued by ``organisation``, voting at ``address`` (an absolute URL,
    printed and encoded in the QR code). ``created``: an aware datetime. 10 cards a page;
    about 3 ms a page."""
    data = {
        "organisation": organisation,
        "title": rnd.title,
        "url": address,
        "qr": qr_svg(address),
        "steps": [
            "Truy cập địa chỉ dưới đây hoặc quét mã QR.",
            "Nhập mã bình chọn in trên thẻ này.",
            f"{_choose(rnd.min_choices, rnd.max_choices)}, rồi bấm “Gửi phiếu bình chọn”.",
        ],
        "note": "Mỗi mã chỉ dùng được một lần. Vui lòng giữ kín mã.",
        "codes": [format_code(c) for c in codes],
    }
    return typeset("cards.typ", data, created=created)
