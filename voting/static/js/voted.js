/* This device's ballot in the round: what is remembered of it (localStorage), and the #voted
 * panel with the receipt: its tracker (XXXX-XXXX-XXXX-X) linked to /kiem-tra?ma=, a copy
 * button (Clipboard API, else a selection and execCommand), "download as an image" (a PNG
 * drawn on a canvas: the round's title, the tracker, the date, and the choices only when the
 * voter ticks it) and "send to myself" (the Web Share API, else a mailto: link with the
 * tracker and the check link). After casting, the focus moves to the panel's heading. */
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
  $('receipt-send').href = receiptMailto();
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
    $('voted-title').focus({ preventScroll: true });
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

/* The tracker as stored (no hyphens), and the absolute address that checks it. */
function trackerAndLink() {
  const tracker = $('receipt').textContent.replaceAll('-', '');
  const link = new URL(`/kiem-tra?ma=${encodeURIComponent(tracker)}`, window.location.origin).href;
  return { tracker, shown: $('receipt').textContent, link };
}

/* Lines of `value` that fit `width` on `ctx` (words kept whole). */
function wrap(ctx, value, width) {
  const lines = [];
  let line = '';
  for (const word of text(value).split(/\s+/).filter(Boolean)) {
    const next = line ? `${line} ${word}` : word;
    if (ctx.measureText(next).width > width && line) {
      lines.push(line);
      line = word;
    } else {
      line = next;
    }
  }
  if (line) lines.push(line);
  return lines;
}

/** The receipt as a PNG canvas: title, tracker, date, check link, and the choices when `withChoices`. */
export function receiptCanvas(withChoices) {
  const { shown, link } = trackerAndLink();
  const v = state.voted || {};
  const names = withChoices ? votedChoices().map((id) => (state.byId.get(id) || {}).full_name).filter(Boolean) : [];
  const scale = 2;
  const width = 720;
  const canvas = document.createElement('canvas');
  const probe = canvas.getContext('2d');
  probe.font = '600 26px system-ui, sans-serif';
  const titleLines = wrap(probe, state.round ? state.round.title : '', width - 80);
  const height = 360 + titleLines.length * 34 + (names.length ? 50 + names.length * 28 : 0);
  canvas.width = width * scale;
  canvas.height = height * scale;
  const ctx = canvas.getContext('2d');
  ctx.scale(scale, scale);
  ctx.fillStyle = '#ffffff';
  ctx.fillRect(0, 0, width, height);
  ctx.fillStyle = '#9f1d1d';
  ctx.fillRect(0, 0, width, 12);
  let y = 60;
  ctx.fillStyle = '#5b6168';
  ctx.font = '16px system-ui, sans-serif';
  ctx.fillText('BIÊN NHẬN PHIẾU BÌNH CHỌN', 40, y);
  y += 40;
  ctx.fillStyle = '#1d2125';
  ctx.font = '600 26px system-ui, sans-serif';
  for (const line of titleLines) {
    ctx.fillText(line, 40, y);
    y += 34;
  }
  y += 24;
  ctx.font = '16px system-ui, sans-serif';
  ctx.fillStyle = '#5b6168';
  ctx.fillText('Mã biên nhận', 40, y);
  y += 52;
  ctx.fillStyle = '#1d2125';
  ctx.font = '700 44px ui-monospace, monospace';
  ctx.fillText(shown, 40, y);
  y += 44;
  ctx.font = '18px system-ui, sans-serif';
  ctx.fillText(v.cast_at ? `Thời điểm gửi: ${formatDate(v.cast_at)}` : `Lưu lúc: ${formatDate(new Date().toISOString())}`, 40, y);
  y += 34;
  ctx.fillStyle = '#5b6168';
  ctx.font = '16px system-ui, sans-serif';
  ctx.fillText(`Kiểm tra tại: ${link}`, 40, y);
  y += 26;
  ctx.fillText('Mã này không cho biết bạn đã chọn ai.', 40, y);
  if (names.length) {
    y += 44;
    ctx.fillStyle = '#1d2125';
    ctx.font = '600 18px system-ui, sans-serif';
    ctx.fillText('Các gương điển hình tôi đã chọn:', 40, y);
    ctx.font = '17px system-ui, sans-serif';
    names.forEach((name, i) => {
      y += 28;
      ctx.fillText(`${i + 1}. ${name}`, 56, y);
    });
  }
  return canvas;
}

/** Click handler of #receipt-image: download the receipt as a PNG (bien-nhan-<tracker>.png). */
export function downloadReceiptImage() {
  const canvas = receiptCanvas($('receipt-with-choices').checked);
  const { tracker } = trackerAndLink();
  const status = $('receipt-tools-status');
  canvas.toBlob((blob) => {
    if (!blob) {
      status.textContent = 'Không tạo được ảnh biên nhận. Hãy chụp màn hình hoặc chép mã.';
      return;
    }
    const url = URL.createObjectURL(blob);
    const a = el('a', { href: url, download: `bien-nhan-${tracker}.png` });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
    status.textContent = 'Đã tạo ảnh biên nhận. Hãy lưu ảnh vào máy.';
  }, 'image/png');
}

/** The mailto: address that sends the tracker and the check link to oneself. */
export function receiptMailto() {
  const { shown, link } = trackerAndLink();
  const title = state.round ? state.round.title : 'Bình chọn gương điển hình tiêu biểu';
  const subject = `Biên nhận phiếu bình chọn: ${title}`;
  const body = `Mã biên nhận phiếu bình chọn của tôi: ${shown}\nKiểm tra phiếu: ${link}\n`;
  return `mailto:?subject=${encodeURIComponent(subject)}&body=${encodeURIComponent(body)}`;
}

/**
 * Click handler of #receipt-send (a mailto: link, see renderVoted): share the tracker and link
 * with the Web Share API when present; otherwise the link opens a mail draft to oneself.
 */
export async function sendReceipt(event) {
  if (typeof navigator.share !== 'function') return;  // the mailto: link does it
  event.preventDefault();
  const { shown, link } = trackerAndLink();
  const status = $('receipt-tools-status');
  try {
    await navigator.share({ title: 'Biên nhận phiếu bình chọn', text: `Mã biên nhận: ${shown}`, url: link });
    status.textContent = 'Đã gửi.';
  } catch (err) {
    if (err && err.name === 'AbortError') return;
    window.location.href = receiptMailto();
  }
}
