/* The receipt check page (/kiem-tra): asks GET /api/v1/receipts/{tracker} and says, in
 * Vietnamese, where the ballot is. `?ma=` pre-fills and checks at once (the receipt screen
 * links here with it). */

import { api, NetworkError } from './api.js';
import { $, el } from './dom.js';

/** Reasons a quarantine rule gives, as voters read them (codes of voting.core.quarantine). */
const REASONS = {
  network_share: 'một mạng gửi nhiều phiếu vượt xa mức bình thường trong thời gian ngắn',
  identical_lists: 'nhiều phiếu giống hệt nhau từ cùng một mạng trong vài phút',
  fast_redeem: 'phiếu được gửi nhanh hơn thời gian một người cần để đọc trang',
  credential_farm: 'nhiều phiếu từ cùng một mạng với thời gian đều đặn bất thường',
};

const DECISIONS = {
  pending: 'Ban tổ chức đang xem xét nhóm phiếu này.',
  count: 'Sau khi xem xét, Ban tổ chức quyết định tính các phiếu của nhóm này.',
  void: 'Sau khi xem xét, Ban tổ chức quyết định không tính các phiếu của nhóm này.',
};

/** ``7K3QZ9M2PXC4N`` → ``7K3Q-Z9M2-PXC4-N``. */
const grouped = (t) => t.replace(/(.{4})(?=.)/g, '$1-');

function show(kind, title, ...lines) {
  const box = $('check-result');
  box.className = `check-result check-${kind}`;
  box.replaceChildren(el('p', { className: 'check-title' }, title), ...lines.map((l) => el('p', {}, l)));
}

function answer(data) {
  const code = grouped(data.receipt.length === 13 ? data.receipt : '');
  const which = code ? `Mã ${code}: ` : '';
  if (data.status === 'recorded') {
    const epoch = data.epoch ? ` Phiếu nằm trong lô niêm phong số ${data.epoch}, có trong danh sách cam kết công khai của đợt bình chọn.` : '';
    const counted = data.quarantine ? ' Phiếu từng được tạm giữ để xem xét và đã được quyết định tính.' : '';
    show('ok', `${which}phiếu đã được ghi nhận.`, `Phiếu của bạn đã được lưu và được tính vào kết quả.${counted}${epoch}`);
  } else if (data.status === 'pending') {
    show('ok', `${which}phiếu đang được ghi nhận.`, 'Phiếu đã được nhận và sẽ được lưu vào cơ sở dữ liệu trong vài giây. Bạn có thể kiểm tra lại sau.');
  } else if (data.status === 'quarantined') {
    const q = data.quarantine || {};
    const why = REASONS[q.reason] || 'một dấu hiệu bất thường đã công bố trong thể lệ';
    show('warn', `${which}phiếu đang được tạm giữ để xem xét.`, `Lý do: ${why}.`, DECISIONS[q.decision] || DECISIONS.pending);
  } else {
    show('bad', `${which}không tìm thấy phiếu.`, 'Hãy kiểm tra lại từng ký tự của mã. Nếu bạn chắc chắn đã gửi phiếu và nhận được mã này, hãy báo cho Ban tổ chức kèm mã biên nhận.');
  }
}

async function check(value) {
  const typed = value.trim();
  if (!typed) {
    show('bad', 'Bạn chưa nhập mã biên nhận.');
    $('check-code').focus();
    return;
  }
  show('busy', 'Đang kiểm tra…');
  let result;
  try {
    result = await api(`/receipts/${encodeURIComponent(typed)}`);
  } catch (e) {
    if (!(e instanceof NetworkError)) throw e;
    show('bad', 'Không kết nối được máy chủ.', 'Hãy kiểm tra kết nối mạng rồi thử lại.');
    return;
  }
  if (result.ok) {
    answer(result.data);
  } else if (result.error.code === 'receipt_invalid') {
    show('bad', 'Mã biên nhận không hợp lệ.', 'Mã có 13 ký tự gồm chữ số và chữ cái (không có I, L, O, U). Có thể một ký tự bị gõ nhầm: hãy đối chiếu lại.');
    $('check-code').focus();
  } else if (result.error.code === 'rate_limited') {
    const wait = result.error.retryAfter || 60;
    show('bad', 'Bạn đã kiểm tra quá nhiều lần.', `Hãy thử lại sau khoảng ${wait} giây.`);
  } else {
    show('bad', 'Máy chủ đang bận.', 'Hãy thử lại sau ít phút.');
  }
}

const form = $('check-form');
form.addEventListener('submit', (event) => {
  event.preventDefault();
  const value = $('check-code').value;
  const url = new URL(window.location.href);
  url.searchParams.set('ma', value.trim());
  window.history.replaceState(null, '', url);
  check(value);
});
const initial = new URLSearchParams(window.location.search).get('ma');
if (initial) {
  $('check-code').value = initial;
  check(initial);
}
