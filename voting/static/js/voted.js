/* This device's ballot in the round: what is remembered of it (localStorage), and the #voted
 * panel with the receipt. */
import { applyFilters, syncCards } from './candidates.js';
import { $, el, formatDate, text } from './dom.js';
import { renderIdentity } from './identity.js';
import { showInfo } from './messages.js';
import { renderRoundInfo } from './rounds.js';
import { state, votedChoices } from './state.js';
import { ballotKey, local, receiptKey, selectionKey, session } from './store.js';
import { updateBar } from './votebar.js';

/** What this device remembers of its ballot in round `roundId` (see state.voted), or null. */
export function loadVoted(roundId) {
  const receipt = local.get(receiptKey(roundId));
  let details = null;
  try {
    details = JSON.parse(local.get(ballotKey(roundId)) || 'null');
  } catch (_) {
    details = null;
  }
  if (!details || typeof details !== 'object') details = null;
  if (!receipt && !details) return null;
  return {
    receipt: receipt || (details && typeof details.receipt === 'string' ? details.receipt : null),
    ballot_id: details ? details.ballot_id : null,
    cast_at: details ? details.cast_at : null,
    choices: details && Array.isArray(details.choices) ? details.choices : [],
    names: details && Array.isArray(details.names) ? details.names : [],
  };
}

/**
 * Show the #voted panel for state.voted and lock the list: `how` is 'cast' (just sent),
 * 'already' (the server says this voter has voted) or 'load' (remembered, on page load).
 */
export function renderVoted(how) {
  const v = state.voted;
  const panel = $('voted');
  $('voted-title').textContent = how === 'already' ? 'Bạn đã bình chọn trong đợt này' : 'Bạn đã bình chọn';
  let lead;
  if (how === 'cast') lead = 'Phiếu bình chọn của bạn đã được ghi nhận. Cảm ơn bạn đã tham gia!';
  else if (v.receipt) lead = 'Thiết bị này đã gửi phiếu trong đợt bình chọn này. Mỗi người chỉ được gửi một phiếu.';
  else lead = 'Mỗi người chỉ được gửi một phiếu. Biên nhận được lưu trên thiết bị đã dùng để bình chọn.';
  $('voted-lead').textContent = lead;

  const receipt = text(v.receipt);
  const tracker = /^[0-9A-Z]{13}$/.test(receipt);  // older receipts were long signed codes
  $('receipt').textContent = tracker ? receipt.replace(/(.{4})(?=.)/g, '$1-') : receipt;
  $('receipt').classList.toggle('receipt-long', !tracker);
  $('receipt-block').hidden = !v.receipt;
  $('check-receipt').href = `/kiem-tra?ma=${encodeURIComponent(receipt)}`;
  $('cast-at').textContent = formatDate(v.cast_at);
  $('voted-time-row').hidden = !v.cast_at;

  const list = $('voted-choices');
  list.textContent = '';
  const ids = votedChoices();
  const names = ids.length
    ? ids.map((id, i) => {
      const c = state.byId.get(id);
      return c ? { code: c.code, name: c.full_name } : { code: '', name: v.names[i] || `#${id}` };
    })
    : v.names.map((name) => ({ code: '', name }));
  for (const item of names) {
    list.append(el('li', null,
      item.code ? el('span', { className: 'tag tag-code', text: item.code }) : null,
      item.code ? ' ' : null, item.name));
  }
  $('voted-choices-block').hidden = names.length === 0;
  panel.hidden = false;
  renderIdentity();
  $('vote-title').textContent = 'Danh sách gương điển hình';
  renderRoundInfo();
  syncCards();
  applyFilters();
  updateBar();
  if (how !== 'load') {
    panel.scrollIntoView({ block: 'start', behavior: 'smooth' });
    panel.focus({ preventScroll: true });
  }
}

/**
 * Remember `voted` as this device's ballot in the current round, forget the selection, and
 * show the ballot (`how` as for renderVoted).
 */
export function recordVoted(voted, how) {
  const roundId = state.round.id;
  local.set(ballotKey(roundId), JSON.stringify(voted));
  session.remove(selectionKey(roundId));
  state.selected.clear();
  state.voted = voted;
  renderVoted(how);
}

/** Click handler of #copy-receipt: copy the receipt, or select it for a manual copy. */
export async function copyReceipt() {
  const value = $('receipt').textContent.replaceAll('-', '');
  const button = $('copy-receipt');
  let ok = false;
  try {
    if (navigator.clipboard && window.isSecureContext) {
      await navigator.clipboard.writeText(value);
      ok = true;
    }
  } catch (_) {
    ok = false;
  }
  if (!ok) {
    const range = document.createRange();
    range.selectNodeContents($('receipt'));
    const selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
    try {
      ok = document.execCommand('copy');
    } catch (_) {
      ok = false;
    }
  }
  if (ok) {
    button.textContent = 'Đã sao chép';
    showInfo('Đã sao chép mã biên nhận.');
    setTimeout(() => { button.textContent = 'Sao chép'; }, 2000);
  } else {
    showInfo('Không sao chép tự động được. Mã biên nhận đã được bôi đen, bạn hãy sao chép thủ công.');
  }
}
