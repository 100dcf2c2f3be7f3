/* The rules fixed before opening (#round-trust): what settles a tie at the last seats, the
 * field minimum, the hash of the frozen rules and of the draw's seed, and that commitments are
 * published during the vote. Plain words for voters; the definitions are voting/core/seats.py. */
import { $, el } from './dom.js';

const TIE_BREAK_TEXT = {
  committee: 'Nếu nhiều người bằng phiếu nhau tranh các suất cuối cùng, Ban Thường vụ quyết định '
    + 'người được chọn. Quyết định được ghi lại và công bố rõ là quyết định, không phải số phiếu.',
  draw: 'Nếu nhiều người bằng phiếu nhau tranh các suất cuối cùng, hệ thống bốc thăm công khai. '
    + 'Khi mở đợt bình chọn, hệ thống tạo một số bí mật ngẫu nhiên và công bố ngay mã băm SHA-256 '
    + 'của nó (bên dưới); số bí mật chỉ được công bố sau khi đợt bình chọn kết thúc, nên không ai '
    + 'biết trước hay thay đổi được kết quả bốc thăm. Mỗi người đồng phiếu nhận một mã là mã băm '
    + 'SHA-256 của chuỗi “số bí mật:mã người”; ai có mã nhỏ hơn đứng trước và nhận các suất còn lại. '
    + 'Ai cũng tự kiểm tra lại được.',
  field_balance: 'Nếu nhiều người bằng phiếu nhau tranh các suất cuối cùng, các suất đó lần lượt '
    + 'dành cho người thuộc lĩnh vực đang có ít người trúng chọn nhất. Phần nào quy tắc này không '
    + 'tự phân định được thì Ban Thường vụ quyết định.',
};

function hash(value) {
  return el('code', { className: 'hash', text: value });
}

/** Fill #round-trust from the round detail (hidden when the round carries none of it). */
export function renderRules(r) {
  const box = $('round-trust');
  if (!box) return;
  const list = $('round-trust-list');
  list.textContent = '';
  const tieBreak = TIE_BREAK_TEXT[r.tie_break] || TIE_BREAK_TEXT.committee;
  list.append(el('li', null, el('strong', { text: 'Khi bằng phiếu ở suất cuối: ' }), tieBreak));
  if (r.tie_break === 'draw' && r.draw_commitment) {
    const item = el('li', { dataset: { rule: 'draw' } },
      el('strong', { text: 'Mã băm của số bốc thăm (công bố từ khi mở): ' }), hash(r.draw_commitment));
    if (r.draw_seed) item.append('. Số bốc thăm (công bố sau khi kết thúc): ', hash(r.draw_seed));
    else item.append('. Số bốc thăm sẽ được công bố khi đợt bình chọn kết thúc.');
    list.append(item);
  }
  if (Number.isInteger(r.field_minimum) && r.field_minimum > 0) {
    list.append(el('li', { dataset: { rule: 'field-minimum' } },
      el('strong', { text: 'Cân đối lĩnh vực: ' }),
      `mỗi lĩnh vực có người được đề cử phải có ít nhất ${r.field_minimum} người trúng chọn `
      + '(lĩnh vực có ít người hơn: tất cả những người đó). Nếu một lĩnh vực còn thiếu, người nhiều '
      + 'phiếu nhất của lĩnh vực đó thay người trúng chọn ít phiếu nhất của lĩnh vực đang có nhiều '
      + 'hơn số tối thiểu; lặp lại cho đến khi đủ hoặc không thể thay thêm. Kết quả ghi rõ ai trúng '
      + 'chọn theo quy định này.'));
  }
  list.append(el('li', { dataset: { rule: 'commitments' } },
    el('strong', { text: 'Cam kết trong khi bình chọn: ' }),
    'phiếu được gom thành từng lô (khoảng mỗi phút); sau mỗi lô, hệ thống công bố một cam kết (mã băm) '
    + 'của các phiếu trong lô đó, kèm số phiếu của lô. Nhờ vậy không ai sửa, thêm hay bớt phiếu về sau '
    + 'mà không bị phát hiện. Số phiếu theo từng lô vì thế được công khai ngay trong khi bình chọn '
    + '(số liệu này đằng nào cũng công khai khi có kết quả), nhưng không cho biết ai chọn ai.'));
  if (r.rules_hash) {
    list.append(el('li', { dataset: { rule: 'hash' } },
      el('strong', { text: 'Mã băm của toàn bộ quy định (SHA-256, cố định khi mở): ' }),
      hash(r.rules_hash),
      '. Quy định này không thể thay đổi sau khi mở; ai cũng tải được ',
      el('a', { href: `/api/v1/rounds/${encodeURIComponent(r.id)}/rules`, text: 'bản quy định (JSON)' }),
      ' để tự kiểm tra mã.'));
  }
  box.hidden = false;
}
