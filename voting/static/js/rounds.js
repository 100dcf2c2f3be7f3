/* The round shown: which one (/r/<slug>, ?round=<id>, else the open one), the list of rounds
 * (#round-nav), its title, status, schedule, rules and what its identity mode guarantees
 * (#round-info), and the refresh of its status while the page is open (every 15 s while
 * visible, on return to the tab, and before the confirm step). */
import { api } from './api.js';
import { syncCards } from './candidates.js';
import { $, el, formatDate, text } from './dom.js';
import { parseLocation } from './links.js';
import { startIdentity } from './identity.js';
import { showError, STATUS_LABELS } from './messages.js';
import { renderDetectionRules } from './quarantine.js';
import { loadResults, placeResults } from './results.js';
import { renderRules } from './rules.js';
import { roundMode, state } from './state.js';
import { updateBar } from './votebar.js';

/** How often the status is fetched again while the page is visible (ms; GET /rounds is cached 5 s). */
export const STATUS_REFRESH_MS = 15000;

/* What each identity mode guarantees (the summary) and does not (the detail), in plain words
 * (README "Identity modes"). */
const IDENTITY_GUARANTEES = {
  device: ['Cách xác thực: mỗi trình duyệt một phiếu',
    'Trình duyệt tự giải một phép tính nhỏ, không cần thông tin cá nhân. Cách này không phân biệt được người: '
    + 'cùng một người dùng trình duyệt khác, thiết bị khác hoặc cửa sổ ẩn danh vẫn có thể gửi thêm phiếu. '
    + 'Hệ thống chỉ hạn chế số phiếu từ cùng một mạng và tạm giữ các nhóm phiếu bất thường để Ban tổ chức xem xét.'],
  code: ['Cách xác thực: mỗi mã bình chọn một phiếu',
    'Ban tổ chức phát mã cho từng người được mời. Mã đã dùng thì không dùng lại được, dù trên thiết bị nào. '
    + 'Hệ thống không biết ai đang cầm mã: hãy giữ mã của bạn cẩn thận.'],
  email: ['Cách xác thực: mỗi địa chỉ email một phiếu',
    'Các cách viết khác nhau của cùng một hộp thư được tính là một. Hệ thống không biết chủ hộp thư là ai: '
    + 'một người có nhiều hộp thư vẫn có thể gửi nhiều phiếu.'],
  phone: ['Cách xác thực: mỗi số điện thoại di động một phiếu',
    'Hệ thống không biết chủ thuê bao là ai: một người có nhiều số điện thoại vẫn có thể gửi nhiều phiếu.'],
};

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
  const { slug } = parseLocation();
  if (slug) {
    const bySlug = published.find((r) => r.slug === slug);
    return bySlug ? bySlug.id : -1;  // -1: no such round, said as "not found"
  }
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
    const link = el('a', { href: `/?round=${encodeURIComponent(r.id)}` },
      el('span', { className: 'round-nav-title', text: r.title }),
      el('span', { className: `status-badge status-${r.status}`, text: STATUS_LABELS[r.status] || r.status }));
    if (r.id === currentId) link.setAttribute('aria-current', 'page');
    list.append(el('li', null, link));
  }
  nav.hidden = false;
}

/** Show a problem instead of the round (no round, not found, not loaded); `withRetry` adds a reload button. */
function showPageProblem(title, detail, withRetry) {
  renderRoundNav(null);
  const info = $('round-info');
  info.setAttribute('aria-busy', 'false');
  $('round-title').textContent = title;
  $('round-status').hidden = true;
  $('round-schedule').hidden = true;
  $('round-rules').hidden = true;
  $('round-detection').hidden = true;
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
  // closed: the results come next, and the rules of choosing no longer concern the reader
  rules.hidden = r.status === 'closed';
  if (typeof r.description === 'string' && r.description.trim()) {
    rules.prepend(el('span', { className: 'round-description', text: r.description.trim() }));
  }
  const identity = $('round-identity');
  const [guarantee, limits] = IDENTITY_GUARANTEES[roundMode()];
  $('round-identity-summary').textContent = guarantee;
  $('round-identity-detail').textContent = limits;
  identity.dataset.mode = roundMode();
  identity.hidden = r.status === 'closed';
  renderRules(r);

  renderDetectionRules(r);

  const notice = $('round-notice');
  let note = '';
  if (!state.voted) {
    if (r.status === 'paused') {
      note = 'Đợt bình chọn đang tạm dừng: tạm thời chưa nhận phiếu. Bạn vẫn có thể xem hồ sơ và chọn trước; nút gửi phiếu sẽ mở lại khi đợt bình chọn tiếp tục (trang tự cập nhật).';
    } else if (r.status === 'draft') {
      note = 'Đợt bình chọn chưa mở.';
    }
  }
  notice.textContent = note;
  notice.hidden = !note;
  notice.dataset.status = note ? r.status : '';
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
  if (roundId === -1) {
    showPageProblem('Không tìm thấy đợt bình chọn',
      'Địa chỉ này không ứng với đợt bình chọn nào đã công bố. Vui lòng kiểm tra lại liên kết.', false);
    return null;
  }
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
  // drawn with the round, not before its detail came: the list must not push a loading panel
  renderRoundNav(roundId);
  return detail.data;
}

/**
 * Fetch the rounds' status again (at most every 15 s unless `force`); when the current round's
 * status changed, redraw what depends on it. Resolves to the current status (the old one when
 * the server could not be asked).
 */
export async function refreshStatus(force) {
  if (!state.round) return null;
  const now = Date.now();
  if (!force && now - lastStatusCheck < STATUS_REFRESH_MS - 500) return state.round.status;
  lastStatusCheck = now;
  try {
    const res = await api('/rounds');
    if (!res.ok) return state.round.status;
    rounds = roundsFrom(res.data);
    const fresh = rounds.find((r) => r.id === state.round.id);
    if (!fresh) return state.round.status;
    const changed = fresh.status !== state.round.status;
    Object.assign(state.round, fresh);
    renderRoundNav(state.round.id);
    if (changed) redrawForStatus();
  } catch (_) {
    /* offline: keep what we have */
  }
  return state.round.status;
}

/* Redraw what depends on the round's status. */
function redrawForStatus() {
  renderRoundInfo();
  syncCards();
  startIdentity();
  updateBar();
  placeResults();
  loadResults();
}

/**
 * Take `status` as the round's status (the ballot box said so, fresher than the cached list)
 * and redraw what depends on it.
 */
export function applyStatus(status) {
  if (!state.round || !STATUS_LABELS[status] || state.round.status === status) return;
  state.round.status = status;
  redrawForStatus();
}

/** Refresh the status every STATUS_REFRESH_MS while the page is visible (and on return to it). */
export function watchStatus() {
  setInterval(() => {
    if (document.visibilityState === 'visible') refreshStatus(false);
  }, STATUS_REFRESH_MS);
  document.addEventListener('visibilitychange', () => {
    if (document.visibilityState === 'visible') refreshStatus(false);
  });
}
