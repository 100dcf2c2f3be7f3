"""The committee report and the voting-code cards, typeset without any store: Vietnamese text
as extracted from the PDF, the tie and the committee's decision, the reconciliation verdict,
the fonts used, page 1 as a picture, the cards' QR codes."""

from __future__ import annotations

from datetime import UTC, date, datetime

import msgspec

from admin.cards import code_cards_pdf, round_address
from admin.report import ReportInput, report_pdf
from tests.support.pdf import first_page_png, ink, pdf_fonts, pdf_pages, pdf_text, qr_texts
from voting.core.reconciliation import Reconciliation
from voting.core.results import DecisionOut, build_results
from voting.core.rounds import Candidate, FinalTally, Round
from voting.identity.codes import format_code, generate

OPENED = datetime(2026, 12, 1, 1, 0, tzinfo=UTC)  # 08:00 in Vietnam
CLOSED = datetime(2026, 12, 5, 10, 30, tzinfo=UTC)  # 17:30 in Vietnam
NOW = datetime(2026, 12, 5, 11, 5, tzinfo=UTC)  # 18:05 in Vietnam
NAMES = [
    ("DH01", "Đặng Thị Mỹ Lữ", "Giáo dục"),
    ("DH02", "Nguyễn Văn Ất", "Kinh doanh"),
    ("DH03", "Trần Thị Ngọc Ánh", "Hoạt động xã hội"),
    ("DH04", "Lê Quốc Hưng", "Nghiên cứu khoa học"),
    ("DH05", "Hoàng Minh Đức", "Thể dục - thể thao"),
]
#: three seats: DH01 and DH02 certain, DH03 and DH04 tied at rank 3 for the last one
TALLY = {1: 40, 2: 31, 3: 20, 4: 20, 5: 3}


def candidates() -> list[Candidate]:
    return [
        Candidate(
            id=i,
            round_id=7,
            code=code,
            full_name=name,
            gender="Nữ",
            birth_year=1985,
            position="Chuyên viên",
            workplace="Sở Giáo dục",
            nominated_by="Chi bộ",
            field=field,
            summary="",
        )
        for i, (code, name, field) in enumerate(NAMES, start=1)
    ]


def closed_round(final: bool = True, **changes: object) -> Round:
    values: dict[str, object] = {
        "id": 7,
        "slug": "guong-dien-hinh-2026",
        "title": "Bình chọn gương điển hình tiêu biểu năm 2026",
        "description": "",
        "status": "closed",
        "min_choices": 1,
        "max_choices": 3,
        "winners": 3,
        "results_visibility": "after_close",
        "identity_mode": "code",
        "fields": [f for _, _, f in NAMES],
        "opens_at": OPENED,
        "closes_at": CLOSED,
        "created_at": OPENED,
        "closed_at": CLOSED,
        "final_at": CLOSED if final else None,
        "final_tally": FinalTally(TALLY, 57) if final else None,
    }
    values.update(changes)
    return Round(**values)  # type: ignore[arg-type]


def report_input(
    tally: dict[int, int] = TALLY,
    decision: DecisionOut | None = None,
    postgres_ballots: int = 57,
    final: bool = True,
) -> ReportInput:
    rnd = closed_round(final)
    pg_tally = {**tally}
    if postgres_ballots != 57:
        pg_tally[1] = tally[1] - (57 - postgres_ballots)
    return ReportInput(
        round=rnd,
        results=build_results(rnd, candidates(), tally, 57, final=final),
        reconciliation=Reconciliation(tally, 57, pg_tally, postgres_ballots, {}, 0),
        refusals={"duplicate_voter": 0},
        refused_at_door=[("Đã bình chọn rồi", 3)],
        events=[("round_open", OPENED), ("round_pause", OPENED), ("round_close", CLOSED)],
        generated_at=NOW,
        generated_by="admin",
        organisation="Đảng bộ Khối các cơ quan và doanh nghiệp tỉnh",
        decision=decision,
    )


def test_report_in_vietnamese_with_a_tie_and_no_decision():
    pdf = report_pdf(report_input())
    text = pdf_text(pdf)
    for phrase in [
        "ĐẢNG BỘ KHỐI CÁC CƠ QUAN VÀ DOANH NGHIỆP TỈNH",
        "ĐẢNG CỘNG SẢN VIỆT NAM",
        "ngày 05 tháng 12 năm 2026",
        "BÁO CÁO KẾT QUẢ BÌNH CHỌN",
        "Bình chọn gương điển hình tiêu biểu năm 2026",
        "Số lựa chọn trên mỗi phiếu từ 1 đến 3 gương điển hình",
        "Số gương điển hình được chọn 3",
        "Mã bình chọn dùng một lần do Ban Tổ chức phát",
        "Thời điểm mở thực tế 08:00 ngày 01/12/2026",
        "Số lần tạm dừng 1",
        "Thời điểm kết thúc thực tế 17:30 ngày 05/12/2026",
        "Phiếu được kiểm (tính vào kết quả) 57",
        "Trùng người bình chọn (phát hiện khi lưu vào cơ sở dữ liệu) 0",
        "Bị từ chối khi gửi: Đã bình chọn rồi 3",
        "Phiếu bị từ chối khi gửi không được tiếp nhận",
        "Hạng Mã Họ và tên Lĩnh vực Số phiếu Tỷ lệ Kết quả",
        "1 DH01 Đặng Thị Mỹ Lữ Giáo dục 40 70,2% Trúng cử",
        "3 DH04 Lê Quốc Hưng Nghiên cứu khoa học 20 35,1% Đồng hạng",
        "Đặng Thị Mỹ Lữ (DH01, Giáo dục): 40 phiếu",
        "Có 2 gương điển hình cùng đạt 20 phiếu, đồng hạng 3, trong khi chỉ còn 1 suất",
        "Quyết định của Ban Thường vụ: Chưa có quyết định.",
        "KHỚP (đối soát lúc 18:05 ngày 05/12/2026)",
        "lúc 18:05 ngày 05/12/2026 (giờ Việt Nam), tài khoản lập: admin",
        "NGƯỜI LẬP BIỂU",
        "T/M BAN THƯỜNG VỤ",
    ]:
        assert phrase in text, phrase
    assert "CHƯA CHÍNH THỨC" not in text
    assert pdf_fonts(pdf) <= {
        "LibertinusSerif-Regular",
        "LibertinusSerif-Bold",
        "LibertinusSerif-Italic",
        "LibertinusSerif-BoldItalic",
    }
    page = first_page_png(pdf, "unit-report-page1")
    assert page.width > 1000 and 0.005 < ink(page) < 0.5


def test_report_with_the_committees_decision():
    decision = DecisionOut(
        chosen=[4],
        decided_by="Ban Thường vụ Đảng ủy Khối",
        reason="Có nhiều đóng góp trong nghiên cứu khoa học ứng dụng",
        decided_on=date(2026, 12, 6),
        recorded_by="admin",
        recorded_at=datetime(2026, 12, 6, 2, 0, tzinfo=UTC),
    )
    text = pdf_text(report_pdf(report_input(decision=decision)))
    assert "Quyết định của Ban Thường vụ: chọn" in text
    assert "Lê Quốc Hưng (DH04, Nghiên cứu khoa học): 20 phiếu" in text
    assert "Người (cơ quan) quyết định Ban Thường vụ Đảng ủy Khối" in text
    assert "Lý do Có nhiều đóng góp trong nghiên cứu khoa học ứng dụng" in text
    assert "Ngày quyết định 06/12/2026" in text
    assert "Chưa có quyết định" not in text


def test_report_without_a_tie():
    tally = {**TALLY, 4: 19}
    text = pdf_text(report_pdf(report_input(tally=tally)))
    assert "Không có trường hợp đồng hạng ở suất cuối cùng" in text
    assert "Đồng hạng" not in text and "Chưa có quyết định" not in text
    assert "3 DH03 Trần Thị Ngọc Ánh Hoạt động xã hội 20 35,1% Trúng cử" in text


def test_report_of_a_count_that_does_not_reconcile_is_marked_provisional():
    text = pdf_text(report_pdf(report_input(postgres_ballots=55, final=False)))
    assert "KẾT QUẢ CHƯA CHÍNH THỨC" in text
    assert "KHÔNG KHỚP" in text
    assert "Số phiếu lưu trong cơ sở dữ liệu (PostgreSQL) 55" in text
    assert "Số gương điển hình có số phiếu chênh lệch 1" in text
    assert "Thời điểm chốt kết quả chính thức Chưa chốt" in text


def test_report_text_is_data_not_markup():
    rnd = closed_round(title='#set page(fill: red) *x* $y$ #"a" \\ ]')
    inp = report_input()
    inp = ReportInput(**{**inp.__dict__, "round": rnd})
    assert '#set page(fill: red) *x* $y$ #"a" \\ ]' in pdf_text(report_pdf(inp))


def test_code_cards_show_every_code_the_address_and_a_qr_that_reads_it():
    codes = [generate() for _ in range(12)]
    address = round_address("https://binhchon.example.vn/", 7)
    assert address == "https://binhchon.example.vn/?round=7"
    pdf = code_cards_pdf(
        codes, closed_round(), organisation="Đảng bộ Khối", address=address, created=NOW
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


SEED = "9e" * 32


def test_report_says_which_rule_decided_which_seat():
    from voting.core.rules import draw_commitment
    from voting.core.seats import draw_number

    rnd = closed_round(
        tie_break="draw",
        draw_seed=SEED,
        draw_commitment=draw_commitment(SEED),
        rules_hash="ab" * 32,
        field_minimum=1,
    )
    # DH01, DH02 certain; DH03 and DH04 tied: the draw decides; then each of the 5 fields
    # needs a winner with only 3 seats: nobody can give, two fields stay short
    inp = ReportInput(
        **{
            **report_input().__dict__,
            "round": rnd,
            "results": build_results(rnd, candidates(), TALLY, 57, final=True),
        }
    )
    first = min(("DH03", "DH04"), key=lambda code: draw_number(SEED, code))
    text = pdf_text(report_pdf(inp)).replace("\u200b", "")
    assert "Quy tắc khi đồng phiếu ở suất cuối Bốc thăm công khai" in text
    assert "Số người trúng chọn tối thiểu mỗi lĩnh vực 1" in text
    assert SEED in text.replace("\n", "") and draw_commitment(SEED) in text.replace("\n", "")
    assert f"{first} " in text and "Trúng cử (bốc thăm)" in text
    assert "Chưa có quyết định" not in text
    assert "còn thiếu" in text


def test_report_names_who_entered_by_the_field_minimum():
    # DH02 moved to DH01's field: the top 3 hold two of Giáo dục and none of two other fields
    cands = [c if c.id != 2 else msgspec.structs.replace(c, field="Giáo dục") for c in candidates()]
    tally = {1: 40, 2: 31, 3: 20, 4: 19, 5: 3}
    rnd = closed_round(field_minimum=1, final_tally=FinalTally(tally, 57))
    inp = ReportInput(
        **{
            **report_input(tally=tally).__dict__,
            "round": rnd,
            "results": build_results(rnd, cands, tally, 57, final=True),
        }
    )
    text = " ".join(pdf_text(report_pdf(inp)).split())
    assert (
        "Lê Quốc Hưng (DH04, Nghiên cứu khoa học): 19 phiếu vào thay "
        "Nguyễn Văn Ất (DH02, Giáo dục): 31 phiếu"
    ) in text
    assert "Trúng cử (theo số tối thiểu mỗi lĩnh vực)" in text
    assert "Nhường suất (theo số tối thiểu mỗi lĩnh vực)" in text
    assert "còn thiếu: Thể dục - thể thao" in text
