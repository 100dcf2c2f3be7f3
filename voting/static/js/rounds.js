/* The round shown: which one (?round=), the list of rounds (#round-nav), its title, status,
 * schedule and rules (#round-info), and the refresh of its status while the page is open. */
import { api } from './api.js';
import { syncCards } from './candidates.js';
import { $, el, formatDate, text } from './dom.js';
import { startIdentity } from './identity.js';
import { showError, STATUS_LABELS } from './messages.js';
import { loadResults } from './results.js';
import { renderRules } from './rules.js';
import { state } from './state.js';
import { updateBar } from './votebar.js';

const STATUS_REFRESH_MS = 30000;

/* The published rounds (GET /rounds), for the navigation. */
let rounds = [];
/* When the status was last fetched (ms since the epoch). */
let lastStatusCheck = 0;

function roundsFrom(data) {
  if (Array.isArray(data)) return data;
  if (data && Array.isArray(data.rounds)) return data.rounds;
  if (data && Array.isArray(data.items)) return data.items;
  return [];
}

function pickRoundId(published) {
  const param = new URLSearchParams(window.location.search).get('round');
  if (param && /^\d+$/.test(param.trim())) return parseInt(param.trim(), 10);
  const open = published.find((r) => r.status === 'open');
  if (open) return open.id;
  return published.length ? published[0].id : null;
}

/** Fill #round-nav with the published rounds (hidden when there are fewer than two). */
function renderRoundNav(currentId) {
  const nav = $('round-nav');
  const list = $('round-list');
  list.textContent = '';
  if (rounds.length < 2) {
    nav.hidden = true;
    return;
  }
  for (const r of rounds) {
    const link = el('a', { href: `?round=${encodeURIComponent(r.id)}` },
      el('span', { className: 'round-nav-title', text: r.title }),
      el('span', { className: `status-badge status-${r.status}`, text: STATUS_LABELS[r.status] || r.status }));
    if (r.id === currentId) link.setAttribute('aria-current', 'page');
    list.append(el('li', null, link));
  }
  nav.hidden = false;
}

/** Show a problem instead of the round (no round, not found, not loaded); `withRetry` adds a reload button. */
function showPageProblem(title, detail, withRetry) {
  const info = $('round-info');
  info.setAttribute('aria-busy', 'false');
  $('round-title').textContent = title;
  $('round-status').hidden = true;
  $('round-schedule').hidden = true;
  $('round-rules').hidden = true;
  $('round-trust').hidden = true;
  const notice = $('round-notice');
  notice.textContent = detail || '';
  if (withRetry) {
    notice.append(' ', el('button', {
      type: 'button', className: 'btn btn-secondary btn-small', text: 'Tải lại trang',
      onclick: () => window.location.reload(),
    }));
  }
  notice.hidden = !detail && !withRetry;
  $('vote').hidden = true;
  $('voted').hidden = true;
  $('results').hidden = true;
  $('votebar').hidden = true;
}

/** Fill #round-info from the current round: title, status badge, schedule, rules, notice. */
export function renderRoundInfo() {
  const r = state.round;
  $('round-info').setAttribute('aria-busy', 'false');
  $('round-title').textContent = r.title || 'Đợt bình chọn';
  document.title = `${r.title || 'Đợt bình chọn'} – Bình chọn gương điển hình tiêu biểu`;

  const badge = $('round-status');
  badge.textContent = STATUS_LABELS[r.status] || text(r.status);
  badge.className = `status-badge status-${r.status}`;
  badge.hidden = false;

  const schedule = $('round-schedule');
  const parts = [];
  if (r.opens_at) parts.push(`Bắt đầu: ${formatDate(r.opens_at)}`);
  if (r.closes_at) parts.push(`Kết thúc: ${formatDate(r.closes_at)}`);
  schedule.textContent = parts.join(' · ');
  schedule.hidden = parts.length === 0;

  const min = r.min_choices;
  const max = r.max_choices;
  let rule;
  if (min === max) rule = `Mỗi phiếu chọn đúng ${max} gương điển hình.`;
  else if (min <= 1) rule = `Mỗi phiếu chọn tối đa ${max} gương điển hình.`;
  else rule = `Mỗi phiếu chọn từ ${min} đến ${max} gương điển hình.`;
  if (r.winners) rule += ` ${r.winners} người có số phiếu cao nhất sẽ được tuyên dương.`;
  rule += ' Mỗi người chỉ gửi một phiếu.';
  const rules = $('round-rules');
  rules.textContent = rule;
  rules.hidden = false;
  if (typeof r.description === 'string' && r.description.trim()) {
    rules.prepend(el('span', { className: 'round-description', text: r.description.trim() }));
  }
  renderRules(r);

  const notice = $('round-notice');
  let note = '';
  if (!state.voted) {
    if (r.status === 'paused') {
      note = 'Đợt bình chọn đang tạm dừng. Bạn vẫn có thể xem và chọn trước; nút gửi phiếu sẽ mở lại khi đợt bình chọn tiếp tục.';
    } else if (r.status === 'closed') {
      note = 'Đợt bình chọn đã kết thúc, không nhận thêm phiếu.';
    } else if (r.status === 'draft') {
      note = 'Đợt bình chọn chưa mở.';
    }
  }
  notice.textContent = note;
  notice.hidden = !note;
}

/**
 * Load the round to show (?round=, else the open round, else the first) with its candidates,
 * and draw the round list. Resolves to the round, or to null when it showed a problem instead.
 */
export async function loadRound() {
  let res;
  try {
    res = await api('/rounds');
  } catch (_) {
    showPageProblem('Không tải được đợt bình chọn', '', true);
    showError('network');
    return null;
  }
  if (!res.ok) {
    showPageProblem('Không tải được đợt bình chọn', '', true);
    showError(res.error);
    return null;
  }
  rounds = roundsFrom(res.data);
  const roundId = pickRoundId(rounds);
  renderRoundNav(roundId);
  if (roundId === null) {
    showPageProblem('Chưa có đợt bình chọn nào',
      'Hiện chưa có đợt bình chọn nào được công bố. Vui lòng quay lại sau.', false);
    return null;
  }

  let detail;
  try {
    detail = await api(`/rounds/${roundId}`);
  } catch (_) {
    showPageProblem('Không tải được đợt bình chọn', '', true);
    showError('network');
    return null;
  }
  if (!detail.ok || !detail.data) {
    const code = detail.error && detail.error.code === 'not_found' ? 'round_not_found' : (detail.error || {}).code;
    if (code === 'round_not_found') {
      showPageProblem('Không tìm thấy đợt bình chọn',
        rounds.length > 1 ? 'Vui lòng chọn một đợt bình chọn trong danh sách ở trên.' : '', false);
    } else {
      showPageProblem('Không tải được đợt bình chọn', '', true);
    }
    showError(detail.error ? { ...detail.error, code: code || 'unknown' } : 'unknown');
    return null;
  }
  lastStatusCheck = Date.now();
  return detail.data;
}

/**
 * Fetch the rounds' status again (at most every 30 s unless `force`); when the current round's
 * status changed, redraw what depends on it.
 */
export async function refreshStatus(force) {
  if (!state.round) return;
  const now = Date.now();
  if (!force && now - lastStatusCheck < STATUS_REFRESH_MS) return;
  lastStatusCheck = now;
  try {
    const res = await api('/rounds');
    if (!res.ok) return;
    rounds = roundsFrom(res.data);
    const fresh = rounds.find((r) => r.id === state.round.id);
    if (!fresh) return;
    const changed = fresh.status !== state.round.status;
    Object.assign(state.round, fresh);
    renderRoundNav(state.round.id);
    if (changed) {
      renderRoundInfo();
      syncCards();
      startIdentity();
      updateBar();
      loadResults();
    }
  } catch (_) {
    /* offline: keep what we have */
  }
}
