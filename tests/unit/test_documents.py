"""Voting-code cards typeset without any store: every code, the address and a QR code that
reads it, as extracted from the PDF and seen on page 1."""

from __future__ import annotations

from datetime import UTC, datetime

from admin.cards import code_cards_pdf, round_address
from tests.support.pdf import first_page_png, pdf_pages, pdf_text, qr_texts
from voting.core.rounds import Round
from voting.identity.codes import format_code, generate

NOW = datetime(2026, 12, 5, 11, 5, tzinfo=UTC)


def a_round() -> Round:
    return Round(
        id=7,
        slug="guong-dien-hinh-2026",
        title="Bình chọn gương điển hình tiêu biểu năm 2026",
        description="",
        status="open",
        min_choices=1,
        max_choices=3,
        winners=3,
        results_visibility="after_close",
        identity_mode="code",
        fields=["Giáo dục"],
        opens_at=None,
        closes_at=None,
        created_at=NOW,
        closed_at=None,
        final_at=None,
    )


def test_code_cards_show_every_code_the_address_and_a_qr_that_reads_it():
    codes = [generate() for _ in range(12)]
    address = round_address("https://binhchon.example.vn/", 7)
    assert address == "https://binhchon.example.vn/?round=7"
    pdf = code_cards_pdf(
        codes, a_round(), organisation="Đảng bộ Khối", address=address, created=NOW
    )
    assert pdf_pages(pdf) == 2
    text = pdf_text(pdf)
    for code in codes:
        assert format_code(code) in text
    assert text.count(address) == 12
    assert text.count("Chọn tối đa 3 gương điển hình, rồi bấm “Gửi phiếu bình chọn”.") == 12
    assert "Mỗi mã chỉ dùng được một lần." in text
    page = first_page_png(pdf, "unit-code-cards-page1")
    assert qr_texts(page) == [address] * 10
