/* Public voting page: browse the shortlist, choose, cast one ballot, see the results.
 *
 * Plain ES2019+. Every piece of text that comes from the API is put in the page with
 * textContent (never innerHTML), so candidate data cannot inject markup.
 *
 * Voter credentials follow the round's identity mode (round.identity_mode):
 * - device: the ALTCHA widget (vendored in /static/vendor, loaded only when needed, never from
 *   a CDN) solves the proof of work from /api/v1/challenge while the voter reads the list; the
 *   payload is exchanged at once for a credential kept in localStorage ('voter_token');
 * - code: the voter types the one-time code the organisers handed out;
 * - email / phone: after consenting to the privacy notice, the voter gets a 6-digit code.
 * Credentials of the code, email and phone modes are kept per round.
 */
'use strict';

(() => {
  const API = '/api/v1';
  const MAX_COOLDOWN_SECONDS = 300;
  const STATUS_REFRESH_MS = 30000;

  const STATUS_LABELS = {
    draft: 'Chưa mở',
    open: 'Đang mở',
    paused: 'Tạm dừng',
    closed: 'Đã kết thúc',
  };

  const retryText = (ctx) => (ctx.retryAfter ? `${ctx.retryAfter} giây` : 'ít phút');

  /* Every error code of the API (and of this page) and what the voter reads for it. */
  const ERROR_MESSAGES = {
    malformed: 'Phiếu bình chọn không hợp lệ. Vui lòng tải lại trang rồi thử lại.',
    too_many_choices: (ctx) =>
      `Bạn chỉ được chọn tối đa ${ctx.max} gương điển hình. Hãy bỏ chọn bớt trước khi chọn người khác.`,
    too_few_choices: (ctx) => `Bạn cần chọn ít nhất ${ctx.min} gương điển hình.`,
    duplicate_choice:
      'Phiếu có gương điển hình bị chọn trùng. Vui lòng tải lại trang rồi chọn lại.',
    unknown_candidate:
      'Phiếu có gương điển hình không thuộc đợt bình chọn này. Vui lòng tải lại trang rồi chọn lại.',
    voter_token_required:
      'Chưa có mã xác thực người bình chọn. Hệ thống vừa cấp mã mới, vui lòng bấm “Gửi phiếu bình chọn” lại.',
    voter_token_invalid:
      'Mã xác thực người bình chọn không hợp lệ hoặc đã hết hạn. Hệ thống vừa cấp mã mới, vui lòng bấm “Gửi phiếu bình chọn” lại.',
    round_not_found: 'Không tìm thấy đợt bình chọn này.',
    already_voted: (ctx) =>
      ctx.ballotId
        ? `Bạn đã bình chọn trong đợt này (mã phiếu ${ctx.ballotId}).`
        : 'Bạn đã bình chọn trong đợt này.',
    round_not_open: (ctx) =>
      ctx.status && ctx.status !== 'open' && STATUS_LABELS[ctx.status]
        ? `Đợt bình chọn hiện không nhận phiếu (trạng thái: ${STATUS_LABELS[ctx.status].toLowerCase()}).`
        : 'Đợt bình chọn hiện không nhận phiếu.',
    payload_too_large: 'Dữ liệu gửi lên quá lớn. Vui lòng tải lại trang rồi thử lại.',
    rate_limited: (ctx) =>
      `Có quá nhiều lượt gửi từ mạng của bạn. Vui lòng thử lại sau ${retryText(ctx)}.`,
    unavailable: (ctx) =>
      `Hệ thống đang quá tải hoặc bảo trì. Vui lòng thử lại sau ${retryText(ctx)}.`,
    results_hidden: 'Kết quả sẽ được công bố sau khi kết thúc bình chọn.',
    challenge_required: 'Cần hoàn tất bước xác minh thiết bị trước khi bình chọn. Vui lòng tải lại trang.',
    challenge_invalid: 'Bước xác minh thiết bị không hợp lệ. Vui lòng tải lại trang rồi thử lại.',
    challenge_expired: 'Phiên xác minh thiết bị đã hết hạn. Vui lòng tải lại trang rồi thử lại.',
    challenge_used: 'Phiên xác minh thiết bị đã được dùng. Vui lòng tải lại trang rồi thử lại.',
    challenge_failed: 'Không hoàn tất được bước xác minh thiết bị. Vui lòng tải lại trang rồi thử lại.',
    altcha_unavailable: 'Không tải được công cụ xác minh thiết bị. Vui lòng tải lại trang.',
    code_required: 'Hãy nhập mã bình chọn của bạn trước khi gửi phiếu.',
    code_invalid: 'Mã bình chọn không đúng (có thể gõ nhầm một ký tự). Vui lòng kiểm tra lại.',
    code_unknown: 'Mã bình chọn không có trong đợt bình chọn này. Vui lòng kiểm tra lại.',
    otp_required: 'Hãy xác thực email hoặc số điện thoại trước khi gửi phiếu.',
    email_invalid: 'Địa chỉ email không hợp lệ.',
    phone_invalid: 'Số điện thoại không hợp lệ. Vui lòng nhập số di động Việt Nam, ví dụ 0912 345 678.',
    consent_required: 'Bạn cần đồng ý với Thông báo về xử lý dữ liệu cá nhân trước khi nhận mã.',
    otp_expired: 'Mã xác thực đã hết hạn hoặc đã được dùng. Vui lòng yêu cầu mã mới.',
    otp_invalid: (ctx) =>
      (typeof ctx.attemptsLeft === 'number'
        ? `Mã xác thực không đúng. Bạn còn ${ctx.attemptsLeft} lần thử.`
        : 'Mã xác thực không đúng.'),
    otp_locked: (ctx) =>
      `Bạn đã nhập sai mã quá nhiều lần. Vui lòng yêu cầu mã mới sau ${retryText(ctx)}.`,
    otp_unavailable: 'Hệ thống hiện chưa gửi được mã xác thực qua kênh này. Vui lòng liên hệ Ban tổ chức.',
    otp_send_failed: (ctx) => `Chưa gửi được mã xác thực. Vui lòng thử lại sau ${retryText(ctx)}.`,
    mode_mismatch: 'Cách xác thực không khớp với đợt bình chọn này. Vui lòng tải lại trang.',
    network: 'Không kết nối được máy chủ, vui lòng thử lại.',
    not_found: 'Không tìm thấy dữ liệu yêu cầu.',
    internal: 'Máy chủ gặp sự cố. Vui lòng thử lại sau ít phút.',
    unknown: 'Đã xảy ra lỗi. Vui lòng thử lại.',
  };

  const state = {
    rounds: [],
    round: null,
    candidates: [],
    byId: new Map(),
    cards: new Map(),
    selected: new Set(),
    voted: null,
    sending: false,
    pending: null,
    cooldownUntil: 0,
    cooldownTimer: null,
    achievements: new Map(),
    profileId: null,
    profileOpener: null,
    lastStatusCheck: 0,
    deviceToken: null,
    altcha: null,
    widget: null,
  };

  const $ = (id) => document.getElementById(id);

  /* ---------- small helpers ---------- */

  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    if (props) {
      for (const [key, value] of Object.entries(props)) {
        if (value === undefined || value === null || value === false) continue;
        if (key === 'className') node.className = value;
        else if (key === 'text') node.textContent = String(value);
        else if (key === 'dataset') Object.assign(node.dataset, value);
        else if (key in node && typeof value !== 'string') node[key] = value;
        else node.setAttribute(key, value === true ? '' : String(value));
      }
    }
    for (const child of children) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function srOnly(text) {
    return el('span', { className: 'sr-only', text });
  }

  function text(value) {
    return value === null || value === undefined ? '' : String(value);
  }

  function fold(value) {
    return text(value)
      .normalize('NFD')
      .replace(/[\u0300-\u036f]/g, '')
      .replace(/đ/g, 'd')
      .replace(/Đ/g, 'D')
      .toLowerCase();
  }

  function initials(name) {
    const words = text(name).trim().split(/\s+/).filter(Boolean);
    if (words.length === 0) return '?';
    const first = Array.from(words[0])[0];
    if (words.length === 1) return first.toLocaleUpperCase('vi');
    const last = Array.from(words[words.length - 1])[0];
    return (first + last).toLocaleUpperCase('vi');
  }

  const numberFormat = new Intl.NumberFormat('vi-VN');
  function formatNumber(n) {
    return typeof n === 'number' ? numberFormat.format(n) : text(n);
  }

  const DATE_OPTIONS = {
    hour: '2-digit', minute: '2-digit', day: '2-digit', month: '2-digit', year: 'numeric',
  };
  let dateFormat;
  try {
    dateFormat = new Intl.DateTimeFormat('vi-VN', { ...DATE_OPTIONS, timeZone: 'Asia/Ho_Chi_Minh' });
  } catch (_) {
    dateFormat = new Intl.DateTimeFormat('vi-VN', DATE_OPTIONS);
  }
  function formatDate(iso) {
    if (!iso) return '';
    const d = new Date(iso);
    return Number.isNaN(d.getTime()) ? text(iso) : dateFormat.format(d);
  }

  function uuid() {
    const c = window.crypto;
    if (c && typeof c.randomUUID === 'function') return c.randomUUID();
    const b = c.getRandomValues(new Uint8Array(16));
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    const h = Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
    return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
  }

  /* localStorage / sessionStorage that never throw (private mode, storage disabled). */
  function makeStore(kind) {
    const memory = new Map();
    const backend = () => {
      try {
        return window[kind];
      } catch (_) {
        return null;
      }
    };
    return {
      get(key) {
        try {
          const s = backend();
          if (s) return s.getItem(key);
        } catch (_) { /* fall through */ }
        return memory.has(key) ? memory.get(key) : null;
      },
      set(key, value) {
        memory.set(key, value);
        try {
          const s = backend();
          if (s) s.setItem(key, value);
        } catch (_) { /* memory only */ }
      },
      remove(key) {
        memory.delete(key);
        try {
          const s = backend();
          if (s) s.removeItem(key);
        } catch (_) { /* memory only */ }
      },
    };
  }
  const local = makeStore('localStorage');
  const session = makeStore('sessionStorage');

  /* ---------- API ---------- */

  class NetworkError extends Error {}
  class ApiFailure extends Error {
    constructor(error) {
      super(error.code);
      this.error = error;
    }
  }

  function parseRetryAfter(value) {
    if (!value) return null;
    const trimmed = value.trim();
    if (/^\d+$/.test(trimmed)) return Math.max(1, parseInt(trimmed, 10));
    const when = Date.parse(trimmed);
    if (Number.isNaN(when)) return null;
    return Math.max(1, Math.ceil((when - Date.now()) / 1000));
  }

  function fallbackCode(status) {
    if (status === 413) return 'payload_too_large';
    if (status === 429) return 'rate_limited';
    if (status === 503) return 'unavailable';
    if (status === 404) return 'not_found';
    if (status >= 500) return 'internal';
    return 'unknown';
  }

  function normalizeError(response, data) {
    const body = data && typeof data === 'object' ? data : {};
    const e = body.error && typeof body.error === 'object' ? body.error : {};
    return {
      status: response.status,
      code: typeof e.code === 'string' && e.code ? e.code : fallbackCode(response.status),
      serverMessage: typeof e.message === 'string' ? e.message : '',
      ballotId: e.ballot_id !== undefined ? e.ballot_id : body.ballot_id,
      retryAfter: parseRetryAfter(response.headers.get('Retry-After')),
      attemptsLeft: typeof e.attempts_left === 'number' ? e.attempts_left : undefined,
      identityMode: typeof e.identity_mode === 'string' ? e.identity_mode : undefined,
    };
  }

  async function api(path, options = {}) {
    const init = {
      method: options.method || 'GET',
      headers: { Accept: 'application/json', ...(options.headers || {}) },
      credentials: 'same-origin',
      cache: 'no-store',
    };
    if (options.body !== undefined) {
      init.body = JSON.stringify(options.body);
      init.headers['Content-Type'] = 'application/json';
    }
    let response;
    let raw;
    try {
      response = await fetch(API + path, init);
      raw = await response.text();
    } catch (err) {
      throw new NetworkError(String(err));
    }
    let data = null;
    if (raw) {
      try {
        data = JSON.parse(raw);
      } catch (_) {
        data = null;
      }
    }
    return {
      ok: response.ok,
      status: response.status,
      data,
      error: response.ok ? null : normalizeError(response, data),
    };
  }

  /* ---------- messages ---------- */

  function messageFor(code, ctx = {}) {
    const round = state.round || {};
    const full = {
      min: round.min_choices,
      max: round.max_choices,
      status: round.status,
      ...ctx,
    };
    const entry = ERROR_MESSAGES[code];
    if (typeof entry === 'function') return entry(full);
    if (typeof entry === 'string') return entry;
    return `${ERROR_MESSAGES.unknown} (mã lỗi: ${code})`;
  }

  function showMessage(textValue, kind, code) {
    const box = $('message');
    $('message-text').textContent = textValue;
    box.dataset.code = code || '';
    box.className = `message message-shown message-${kind}`;
    $('message-close').hidden = false;
  }

  function showError(error) {
    const code = typeof error === 'string' ? error : error.code;
    const ctx = typeof error === 'string' ? {} : error;
    showMessage(messageFor(code, ctx), 'error', code);
  }

  function showInfo(textValue) {
    showMessage(textValue, 'info', '');
  }

  function hideMessage() {
    const box = $('message');
    box.className = 'message';
    $('message-text').textContent = '';
    $('message-close').hidden = true;
    box.dataset.code = '';
  }

  /* ---------- rounds ---------- */

  function roundsFrom(data) {
    if (Array.isArray(data)) return data;
    if (data && Array.isArray(data.rounds)) return data.rounds;
    if (data && Array.isArray(data.items)) return data.items;
    return [];
  }

  function pickRoundId(rounds) {
    const param = new URLSearchParams(window.location.search).get('round');
    if (param && /^\d+$/.test(param.trim())) return parseInt(param.trim(), 10);
    const open = rounds.find((r) => r.status === 'open');
    if (open) return open.id;
    return rounds.length ? rounds[0].id : null;
  }

  function renderRoundNav(currentId) {
    const nav = $('round-nav');
    const list = $('round-list');
    list.textContent = '';
    if (state.rounds.length < 2) {
      nav.hidden = true;
      return;
    }
    for (const r of state.rounds) {
      const link = el('a', { href: `?round=${encodeURIComponent(r.id)}` },
        el('span', { className: 'round-nav-title', text: r.title }),
        el('span', { className: `status-badge status-${r.status}`, text: STATUS_LABELS[r.status] || r.status }));
      if (r.id === currentId) link.setAttribute('aria-current', 'page');
      list.append(el('li', null, link));
    }
    nav.hidden = false;
  }

  function showPageProblem(title, detail, withRetry) {
    const info = $('round-info');
    info.setAttribute('aria-busy', 'false');
    $('round-title').textContent = title;
    $('round-status').hidden = true;
    $('round-schedule').hidden = true;
    $('round-rules').hidden = true;
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

  function renderRoundInfo() {
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

  /* ---------- candidates ---------- */

  function avatar(candidate, large) {
    const box = el('div', { className: large ? 'avatar avatar-lg' : 'avatar', 'aria-hidden': 'true' });
    fillAvatar(box, candidate);
    return box;
  }

  function fillAvatar(box, candidate) {
    box.textContent = '';
    const showInitials = () => {
      box.textContent = initials(candidate.full_name);
      box.classList.add('avatar-initials');
    };
    const url = typeof candidate.photo_url === 'string' ? candidate.photo_url.trim() : '';
    if (url && !/^\s*(javascript|data|vbscript):/i.test(url)) {
      box.classList.remove('avatar-initials');
      const img = el('img', { alt: '', loading: 'lazy', decoding: 'async' });
      img.addEventListener('error', showInitials, { once: true });
      img.src = url;
      box.append(img);
    } else {
      showInitials();
    }
  }

  function buildCard(c) {
    const nameId = `cand-name-${c.id}`;
    const input = el('input', {
      type: 'checkbox', name: 'choice', value: String(c.id), 'aria-describedby': nameId,
    });
    const card = el('li', { className: 'card', dataset: { candidateId: String(c.id) } },
      el('div', { className: 'card-top' },
        avatar(c, false),
        el('div', { className: 'card-id' },
          el('p', { className: 'card-tags' },
            el('span', { className: 'tag tag-code', text: c.code }),
            c.field ? el('span', { className: 'tag', text: c.field }) : null),
          el('h3', { className: 'card-name', id: nameId, text: c.full_name }),
          c.position ? el('p', { className: 'card-role', text: c.position }) : null,
          c.workplace ? el('p', { className: 'card-work', text: c.workplace }) : null)),
      c.summary ? el('p', { className: 'summary', text: c.summary }) : null,
      el('div', { className: 'card-actions' },
        el('button', {
          type: 'button', className: 'btn btn-link', 'aria-haspopup': 'dialog',
          dataset: { action: 'profile', id: String(c.id) },
        }, 'Xem thành tích', srOnly(` của ${c.full_name}`)),
        el('span', { className: 'voted-mark', text: 'Bạn đã chọn' }),
        el('label', { className: 'choose' }, input,
          el('span', { className: 'choose-text' }, 'Chọn', srOnly(` ${c.full_name}`)))));
    return { card, input };
  }

  function renderCandidates() {
    const list = $('candidates');
    list.textContent = '';
    state.cards.clear();
    const frag = document.createDocumentFragment();
    for (const c of state.candidates) {
      const built = buildCard(c);
      built.haystack = fold(`${c.code} ${c.full_name} ${c.workplace} ${c.position}`);
      state.cards.set(c.id, built);
      frag.append(built.card);
    }
    list.append(frag);

    const select = $('field-filter');
    while (select.options.length > 1) select.remove(1);
    const counts = new Map();
    for (const c of state.candidates) {
      if (c.field) counts.set(c.field, (counts.get(c.field) || 0) + 1);
    }
    const fields = Array.from(counts.keys()).sort((a, b) => a.localeCompare(b, 'vi'));
    for (const f of fields) {
      select.append(el('option', { value: f, text: `${f} (${counts.get(f)})` }));
    }
  }

  function applyFilters() {
    const terms = fold($('search').value).split(/\s+/).filter(Boolean);
    const field = $('field-filter').value;
    const onlyChosen = $('only-chosen').checked;
    let shown = 0;
    for (const c of state.candidates) {
      const entry = state.cards.get(c.id);
      const match = (!field || c.field === field)
        && terms.every((t) => entry.haystack.includes(t))
        && (!onlyChosen || isMarked(c.id));
      entry.card.hidden = !match;
      if (match) shown += 1;
    }
    const total = state.candidates.length;
    $('filter-count').textContent = shown === total
      ? `${total} gương điển hình`
      : `Hiển thị ${shown}/${total} gương điển hình`;
    $('no-match').hidden = shown !== 0 || total === 0;
  }

  function isMarked(id) {
    if (state.voted) return votedChoices().includes(id);
    return state.selected.has(id);
  }

  function canSelect() {
    const r = state.round;
    return Boolean(r) && !state.voted && !state.sending && (r.status === 'open' || r.status === 'paused');
  }

  function syncCards() {
    const selectable = canSelect();
    const readOnly = Boolean(state.voted) || !state.round
      || !(state.round.status === 'open' || state.round.status === 'paused');
    $('vote').classList.toggle('readonly', readOnly);
    const marked = new Set(state.voted ? votedChoices() : state.selected);
    for (const [id, entry] of state.cards) {
      const on = marked.has(id);
      entry.input.checked = !state.voted && on;
      entry.input.disabled = !selectable;
      entry.card.classList.toggle('is-selected', !state.voted && on);
      entry.card.classList.toggle('is-voted', Boolean(state.voted) && on);
    }
  }

  function orderedSelection() {
    return state.candidates.filter((c) => state.selected.has(c.id)).map((c) => c.id);
  }

  function saveSelection() {
    if (!state.round) return;
    session.set(`selection_${state.round.id}`, JSON.stringify(orderedSelection()));
  }

  function restoreSelection() {
    state.selected.clear();
    let saved = [];
    try {
      saved = JSON.parse(session.get(`selection_${state.round.id}`) || '[]');
    } catch (_) {
      saved = [];
    }
    if (!Array.isArray(saved)) return;
    for (const id of saved) {
      if (state.byId.has(id) && state.selected.size < state.round.max_choices) state.selected.add(id);
    }
  }

  /* Select or unselect one candidate; returns whether the wish was applied. */
  function setChosen(id, want) {
    if (!state.byId.has(id)) return false;
    if (want && !state.selected.has(id)) {
      if (!canSelect()) return false;
      if (state.selected.size >= state.round.max_choices) {
        showError('too_many_choices');
        return false;
      }
      state.selected.add(id);
    } else if (!want && state.selected.has(id)) {
      if (!canSelect()) return false;
      state.selected.delete(id);
      if ($('message').dataset.code === 'too_many_choices') hideMessage();
    }
    const entry = state.cards.get(id);
    if (entry) {
      entry.input.checked = state.selected.has(id);
      entry.card.classList.toggle('is-selected', state.selected.has(id));
    }
    saveSelection();
    updateBar();
    return true;
  }

  /* ---------- the sticky bar ---------- */

  function cooldownLeft() {
    return Math.max(0, Math.ceil((state.cooldownUntil - Date.now()) / 1000));
  }

  function castBlocker() {
    const r = state.round;
    if (!r) return 'Chưa tải được đợt bình chọn';
    if (state.voted) return 'Bạn đã bình chọn';
    if (r.status !== 'open') return 'Đợt bình chọn không nhận phiếu lúc này';
    const n = state.selected.size;
    if (n < r.min_choices) return `Hãy chọn ít nhất ${r.min_choices} gương điển hình`;
    if (n > r.max_choices) return `Chỉ được chọn tối đa ${r.max_choices} gương điển hình`;
    if (state.sending) return 'Đang gửi phiếu';
    if (cooldownLeft() > 0) return `Vui lòng chờ ${cooldownLeft()} giây`;
    const mode = roundMode();
    if (mode !== 'device' && !currentToken()) {
      return mode === 'code' ? 'Hãy nhập mã bình chọn trước' : 'Hãy xác thực trước khi gửi phiếu';
    }
    return '';
  }

  function updateBar() {
    const r = state.round;
    const bar = $('votebar');
    const show = Boolean(r) && !state.voted && (r.status === 'open' || r.status === 'paused');
    bar.hidden = !show;
    if (!r) return;
    const n = state.selected.size;
    $('counter').textContent = `Đã chọn ${n}/${r.max_choices}`;
    const hint = $('counter-hint');
    const blocker = castBlocker();
    let hintText = r.min_choices > 1 ? `Tối thiểu ${r.min_choices}` : '';
    if (r.status === 'paused') hintText = 'Tạm dừng nhận phiếu';
    else if (n >= r.max_choices) hintText = 'Đã đủ tối đa';
    hint.textContent = hintText;
    const cast = $('cast');
    cast.disabled = Boolean(blocker);
    if (state.sending) cast.textContent = 'Đang gửi…';
    else if (cooldownLeft() > 0) cast.textContent = `Thử lại sau ${cooldownLeft()} giây`;
    else cast.textContent = 'Gửi phiếu bình chọn';
    cast.title = blocker;
    if (state.profileId !== null) syncProfileChoose();
  }

  function startCooldown(seconds) {
    if (!seconds) return;
    state.cooldownUntil = Date.now() + Math.min(seconds, MAX_COOLDOWN_SECONDS) * 1000;
    clearInterval(state.cooldownTimer);
    state.cooldownTimer = setInterval(() => {
      if (cooldownLeft() === 0) {
        clearInterval(state.cooldownTimer);
        state.cooldownTimer = null;
      }
      updateBar();
    }, 1000);
    updateBar();
  }

  /* ---------- dialogs ---------- */

  function openDialog(dialog) {
    if (dialog.open) return;
    if (typeof dialog.showModal === 'function') dialog.showModal();
    else dialog.setAttribute('open', '');
  }

  function closeDialog(dialog) {
    if (!dialog.open) return;
    if (typeof dialog.close === 'function') dialog.close();
    else dialog.removeAttribute('open');
  }

  function closeOnBackdrop(dialog) {
    dialog.addEventListener('click', (event) => {
      if (event.target === dialog && !state.sending) closeDialog(dialog);
    });
  }

  /* ---------- profile (achievements) ---------- */

  function syncProfileChoose() {
    const button = $('profile-choose');
    const id = state.profileId;
    if (id === null || !canSelect()) {
      button.hidden = true;
      return;
    }
    button.hidden = false;
    const chosen = state.selected.has(id);
    const full = !chosen && state.selected.size >= state.round.max_choices;
    button.setAttribute('aria-pressed', chosen ? 'true' : 'false');
    button.disabled = full;
    button.textContent = chosen
      ? 'Bỏ chọn'
      : (full ? `Đã đủ ${state.round.max_choices}` : 'Chọn');
  }

  function renderAchievements(value) {
    const box = $('profile-achievements');
    box.textContent = '';
    const lines = text(value).split(/\r?\n/).map((l) => l.trim()).filter(Boolean);
    if (lines.length === 0) {
      box.append(el('p', { className: 'muted', text: 'Chưa có thông tin thành tích.' }));
      return;
    }
    for (const line of lines) box.append(el('p', { text: line }));
  }

  async function openProfile(id, opener) {
    const c = state.byId.get(id);
    if (!c) return;
    state.profileId = id;
    state.profileOpener = opener || null;
    fillAvatar($('profile-avatar'), c);
    $('profile-code').textContent = text(c.code);
    const fieldTag = $('profile-field');
    fieldTag.textContent = text(c.field);
    fieldTag.hidden = !c.field;
    $('profile-name').textContent = text(c.full_name);
    $('profile-position').textContent = [c.position, c.workplace].filter(Boolean).join(' – ');
    const facts = $('profile-facts');
    facts.textContent = '';
    const rows = [
      ['Giới tính', c.gender],
      ['Năm sinh', c.birth_year],
      ['Đơn vị giới thiệu', c.nominated_by],
    ];
    for (const [label, value] of rows) {
      if (value === null || value === undefined || value === '') continue;
      facts.append(el('div', null, el('dt', { text: label }), el('dd', { text: value })));
    }
    $('profile-summary').textContent = text(c.summary);
    syncProfileChoose();

    const box = $('profile-achievements');
    const dialog = $('profile-dialog');
    openDialog(dialog);
    dialog.querySelector('.dialog-inner').scrollTop = 0;

    if (state.achievements.has(id)) {
      renderAchievements(state.achievements.get(id));
      return;
    }
    box.textContent = '';
    box.append(el('p', { className: 'muted', text: 'Đang tải thành tích…' }));
    box.setAttribute('aria-busy', 'true');
    try {
      const res = await api(`/rounds/${state.round.id}/candidates/${id}`);
      if (state.profileId !== id) return;
      if (res.ok && res.data) {
        const value = text(res.data.achievements);
        state.achievements.set(id, value);
        renderAchievements(value);
      } else {
        box.textContent = '';
        box.append(el('p', { className: 'error-text', text: messageFor(res.error.code, res.error) }));
      }
    } catch (err) {
      if (state.profileId !== id) return;
      box.textContent = '';
      box.append(el('p', {
        className: 'error-text',
        text: messageFor(err instanceof NetworkError ? 'network' : 'unknown'),
      }));
    } finally {
      box.setAttribute('aria-busy', 'false');
    }
  }

  /* ---------- casting ---------- */

  /* ---------- voter identity ---------- */

  const IDENTITY_LEADS = {
    device: 'Để chống gửi phiếu tự động, trình duyệt của bạn tự giải một phép tính nhỏ trong vài giây, '
      + 'trong lúc bạn xem danh sách. Bạn không cần nhập thông tin cá nhân nào.',
    code: 'Đợt bình chọn này dùng mã bình chọn một lần do Ban tổ chức phát. Hãy nhập mã của bạn để gửi phiếu.',
    email: 'Đợt bình chọn này xác thực bằng email: hệ thống gửi một mã gồm 6 chữ số đến hộp thư của bạn.',
    phone: 'Đợt bình chọn này xác thực bằng số điện thoại di động: hệ thống gửi một mã gồm 6 chữ số qua SMS.',
  };
  const IDENTITY_DONE = {
    device: 'Thiết bị đã được xác minh. Bạn có thể gửi phiếu.',
    code: 'Mã bình chọn hợp lệ. Bạn có thể gửi phiếu.',
    email: 'Email đã được xác thực. Bạn có thể gửi phiếu.',
    phone: 'Số điện thoại đã được xác thực. Bạn có thể gửi phiếu.',
  };
  const CHALLENGE_RETRY = new Set(['challenge_used', 'challenge_expired', 'challenge_invalid']);

  function roundMode() {
    const mode = state.round && state.round.identity_mode;
    return typeof mode === 'string' && IDENTITY_LEADS[mode] ? mode : 'device';
  }

  function tokenKey() {
    const mode = roundMode();
    return mode === 'device' ? 'voter_token' : `voter_token_${mode}_${state.round.id}`;
  }

  function currentToken() {
    return state.round ? local.get(tokenKey()) : null;
  }

  function identityNeeded() {
    const r = state.round;
    return Boolean(r) && !state.voted && (r.status === 'open' || r.status === 'paused');
  }

  function setIdentityStatus(textValue, kind) {
    const box = $('identity-status');
    box.textContent = textValue || '';
    box.dataset.state = kind || '';
  }

  function renderIdentity() {
    const panel = $('identity');
    const mode = roundMode();
    const token = currentToken();
    const show = identityNeeded() && !(mode === 'device' && token);
    panel.hidden = !show;
    panel.dataset.mode = mode;
    if (!show) return;
    $('identity-lead').textContent = IDENTITY_LEADS[mode];
    $('identity-device').hidden = mode !== 'device';
    $('identity-code').hidden = mode !== 'code' || Boolean(token);
    const otp = mode === 'email' || mode === 'phone';
    $('identity-otp').hidden = !otp || Boolean(token);
    if (otp) {
      const address = $('otp-address');
      $('otp-address-label').textContent = mode === 'email' ? 'Địa chỉ email' : 'Số điện thoại di động';
      address.type = mode === 'email' ? 'email' : 'tel';
      address.autocomplete = mode === 'email' ? 'email' : 'tel';
      address.inputMode = mode === 'email' ? 'email' : 'tel';
      address.placeholder = mode === 'email' ? 'ten@example.com' : '0912 345 678';
      $('otp-send').disabled = !$('otp-consent').checked;
    }
    if (token) setIdentityStatus(IDENTITY_DONE[mode], 'ok');
  }

  function storeToken(res) {
    const token = res.data && res.data.voter_token;
    if (typeof token !== 'string' || !token) throw new ApiFailure({ code: 'unknown', status: res.status });
    local.set(tokenKey(), token);
    return token;
  }

  function loadScript(src) {
    return new Promise((resolve, reject) => {
      const script = document.createElement('script');
      script.type = 'module';
      script.src = src;
      script.addEventListener('load', resolve, { once: true });
      script.addEventListener('error', () => reject(new ApiFailure({ code: 'altcha_unavailable' })), { once: true });
      document.head.append(script);
    });
  }

  /* The ALTCHA widget and its Vietnamese strings, from our own static files. */
  function loadAltcha() {
    if (!state.altcha) {
      state.altcha = loadScript('/static/vendor/altcha.min.js')
        .then(() => loadScript('/static/vendor/altcha.i18n.vi.js'))
        .then(() => customElements.whenDefined('altcha-widget'));
      state.altcha.catch(() => { state.altcha = null; });
    }
    return state.altcha;
  }

  async function mountWidget() {
    await loadAltcha();
    if (state.widget && document.contains(state.widget)) return state.widget;
    const widget = document.createElement('altcha-widget');
    widget.setAttribute('challenge', `${API}/challenge`);
    widget.setAttribute('auto', 'off');
    widget.setAttribute('language', 'vi');
    widget.setAttribute('name', 'altcha');
    const box = $('altcha-box');
    box.textContent = '';
    box.append(widget);
    await new Promise((resolve) => setTimeout(resolve, 0));
    if (typeof widget.configure === 'function') {
      // no pointer/scroll collection: the proof of work is all we need
      await widget.configure({ humanInteractionSignature: false, language: 'vi' });
    }
    state.widget = widget;
    return widget;
  }

  /* Solve a challenge with the widget and exchange it for a device credential. */
  async function obtainDeviceToken() {
    const widget = await mountWidget();
    setIdentityStatus('Đang xác minh thiết bị…', '');
    for (let attempt = 0; attempt < 3; attempt += 1) {
      if (attempt > 0 && typeof widget.reset === 'function') widget.reset();
      let result = null;
      try {
        result = await widget.verify();
      } catch (_) {
        result = null;
      }
      if (!result || typeof result.payload !== 'string') throw new ApiFailure({ code: 'challenge_failed' });
      const res = await api('/voters', { method: 'POST', body: { altcha: result.payload } });
      if (res.ok) return storeToken(res);
      if (!CHALLENGE_RETRY.has(res.error.code)) throw new ApiFailure(res.error);
    }
    throw new ApiFailure({ code: 'challenge_failed' });
  }

  /* Start (once) the device verification; resolves to the credential. */
  function deviceToken() {
    if (!state.deviceToken) {
      state.deviceToken = obtainDeviceToken().then((token) => {
        setIdentityStatus(IDENTITY_DONE.device, 'ok');
        renderIdentity();
        updateBar();
        return token;
      }, (err) => {
        state.deviceToken = null;
        const error = err instanceof ApiFailure ? err.error : { code: err instanceof NetworkError ? 'network' : 'challenge_failed' };
        setIdentityStatus(messageFor(error.code, error), 'error');
        if (error.code === 'rate_limited' || error.code === 'unavailable') startCooldown(error.retryAfter);
        throw err;
      });
    }
    return state.deviceToken;
  }

  async function ensureToken() {
    const saved = currentToken();
    if (saved) return saved;
    const mode = roundMode();
    if (mode === 'device') return deviceToken();
    throw new ApiFailure({ code: mode === 'code' ? 'code_required' : 'otp_required' });
  }

  function identityError(error) {
    setIdentityStatus(messageFor(error.code, error), 'error');
    showError(error);
  }

  async function submitCode(event) {
    event.preventDefault();
    const input = $('voter-code');
    const code = input.value.trim();
    if (!code) {
      identityError({ code: 'code_required' });
      input.focus();
      return;
    }
    const button = $('voter-code-submit');
    button.disabled = true;
    setIdentityStatus('Đang kiểm tra mã…', '');
    try {
      const res = await api('/voters', { method: 'POST', body: { code, round_id: state.round.id } });
      if (!res.ok) {
        identityError(res.error);
        input.focus();
        return;
      }
      storeToken(res);
      input.value = '';
      hideMessage();
      renderIdentity();
      updateBar();
    } catch (err) {
      identityError(err instanceof ApiFailure ? err.error : { code: 'network' });
    } finally {
      button.disabled = false;
    }
  }

  function otpBody() {
    const mode = roundMode();
    return { [mode]: $('otp-address').value.trim(), round_id: state.round.id };
  }

  async function sendOtp(event) {
    event.preventDefault();
    if (!$('otp-consent').checked) {
      identityError({ code: 'consent_required' });
      return;
    }
    const button = $('otp-send');
    button.disabled = true;
    setIdentityStatus('Đang gửi mã…', '');
    try {
      const res = await api('/voters/otp', { method: 'POST', body: { ...otpBody(), consent: true } });
      if (!res.ok) {
        identityError(res.error);
        return;
      }
      const to = res.data && res.data.sent_to ? res.data.sent_to : '';
      const minutes = Math.max(1, Math.round(((res.data && res.data.expires_in) || 300) / 60));
      setIdentityStatus(`Đã gửi mã đến ${to}. Mã có hiệu lực trong ${minutes} phút.`, '');
      $('otp-step2').hidden = false;
      $('otp-code').focus();
    } catch (_) {
      identityError({ code: 'network' });
    } finally {
      button.disabled = !$('otp-consent').checked;
    }
  }

  async function verifyOtp() {
    const otp = $('otp-code').value.trim();
    if (!/^[0-9]{6}$/.test(otp)) {
      identityError({ code: 'otp_invalid' });
      return;
    }
    const button = $('otp-verify');
    button.disabled = true;
    try {
      const res = await api('/voters', { method: 'POST', body: { ...otpBody(), otp } });
      if (!res.ok) {
        identityError(res.error);
        return;
      }
      storeToken(res);
      $('otp-code').value = '';
      $('otp-step2').hidden = true;
      hideMessage();
      renderIdentity();
      updateBar();
    } catch (_) {
      identityError({ code: 'network' });
    } finally {
      button.disabled = false;
    }
  }

  async function loadPrivacy() {
    try {
      const res = await api('/privacy');
      if (!res.ok || !res.data) return;
      const d = res.data;
      const set = (id, value) => { if (value !== undefined && value !== null) $(id).textContent = String(value); };
      set('privacy-retention', d.ip_retention_days);
      set('privacy-ipv4', d.ipv4_prefix);
      set('privacy-ipv6', d.ipv6_prefix);
      set('privacy-otp-minutes', Math.max(1, Math.round(d.otp_ttl_seconds / 60)));
      set('privacy-token-days', Math.max(1, Math.round(d.voter_token_ttl_seconds / 86400)));
    } catch (_) {
      /* the defaults written in the page stay */
    }
  }

  function startIdentity() {
    renderIdentity();
    if (identityNeeded() && roundMode() === 'device' && !currentToken()) {
      deviceToken().catch(() => { /* shown in the panel; retried on cast */ });
    }
  }

  function pendingKey(roundId) {
    return `pending_${roundId}`;
  }

  function restorePending() {
    try {
      const saved = JSON.parse(session.get(pendingKey(state.round.id)) || 'null');
      state.pending = saved && typeof saved.key === 'string' && typeof saved.sig === 'string' ? saved : null;
    } catch (_) {
      state.pending = null;
    }
  }

  function setPending(pending) {
    state.pending = pending;
    if (!state.round) return;
    if (pending) session.set(pendingKey(state.round.id), JSON.stringify(pending));
    else session.remove(pendingKey(state.round.id));
  }

  function openConfirm() {
    if (castBlocker()) return;
    const ids = orderedSelection();
    $('confirm-lead').textContent = `Bạn đã chọn ${ids.length} gương điển hình:`;
    const list = $('confirm-list');
    list.textContent = '';
    for (const id of ids) {
      const c = state.byId.get(id);
      list.append(el('li', null, el('span', { className: 'tag tag-code', text: c.code }), ' ', c.full_name));
    }
    const confirm = $('confirm');
    confirm.disabled = false;
    confirm.textContent = 'Xác nhận gửi phiếu';
    $('confirm-cancel').disabled = false;
    openDialog($('confirm-dialog'));
  }

  async function submitBallot() {
    if (state.sending || castBlocker()) return;
    const round = state.round;
    const ids = orderedSelection();
    const sig = ids.join(',');
    if (!state.pending || state.pending.sig !== sig) setPending({ key: uuid(), sig });

    state.sending = true;
    $('confirm').disabled = true;
    $('confirm').textContent = 'Đang gửi…';
    $('confirm-cancel').disabled = true;
    syncCards();
    updateBar();
    try {
      const token = await ensureToken();
      const res = await api(`/rounds/${round.id}/ballots`, {
        method: 'POST',
        body: { choices: ids },
        headers: { Authorization: `Bearer ${token}`, 'Idempotency-Key': state.pending.key },
      });
      if (res.ok) onCast(res.data || {}, ids);
      else await onCastError(res.error);
    } catch (err) {
      if (err instanceof NetworkError) {
        showError('network'); // the same Idempotency-Key is reused on the retry
      } else if (err instanceof ApiFailure) {
        if (err.error.code === 'rate_limited' || err.error.code === 'unavailable') {
          startCooldown(err.error.retryAfter);
        }
        showError(err.error);
        if (err.error.code === 'code_required') $('voter-code').focus();
      } else {
        showError('unknown');
        window.console.error(err);
      }
    } finally {
      state.sending = false;
      closeDialog($('confirm-dialog'));
      syncCards();
      updateBar();
    }
  }

  function onCast(data, ids) {
    const roundId = state.round.id;
    const choices = Array.isArray(data.choices) ? data.choices : ids;
    const voted = {
      receipt: typeof data.receipt === 'string' ? data.receipt : null,
      ballot_id: data.ballot_id !== undefined ? data.ballot_id : null,
      cast_at: data.cast_at || null,
      choices,
      names: choices.map((id) => (state.byId.get(id) || {}).full_name).filter(Boolean),
    };
    if (voted.receipt) local.set(`receipt_${roundId}`, voted.receipt);
    local.set(`ballot_${roundId}`, JSON.stringify(voted));
    setPending(null);
    session.remove(`selection_${roundId}`);
    state.selected.clear();
    state.voted = voted;
    renderVoted('cast');
    showMessage('Phiếu bình chọn của bạn đã được ghi nhận. Cảm ơn bạn đã tham gia!', 'success', '');
    loadResults();
  }

  async function onCastError(error) {
    const code = error.code;
    switch (code) {
      case 'voter_token_invalid':
      case 'voter_token_required':
        local.remove(tokenKey());
        state.deviceToken = null;
        setPending(null);
        renderIdentity();
        if (roundMode() !== 'device') {
          // a new code or one-time password is needed: say so rather than "a new one was issued"
          showError({ ...error, code: roundMode() === 'code' ? 'code_required' : 'otp_required' });
          return;
        }
        startIdentity();
        try {
          await ensureToken();
          showError(error);
        } catch (err) {
          if (err instanceof ApiFailure) showError(err.error);
          else showError('network');
        }
        return;
      case 'already_voted': {
        setPending(null);
        const roundId = state.round.id;
        const voted = {
          receipt: local.get(`receipt_${roundId}`),
          ballot_id: error.ballotId !== undefined && error.ballotId !== null ? error.ballotId : null,
          cast_at: null,
          choices: [],
          names: [],
        };
        local.set(`ballot_${roundId}`, JSON.stringify(voted));
        session.remove(`selection_${roundId}`);
        state.selected.clear();
        state.voted = voted;
        renderVoted('already');
        showError(error);
        return;
      }
      case 'round_not_open':
        setPending(null);
        showError(error);
        await refreshStatus(true);
        showError(error);
        return;
      case 'rate_limited':
      case 'unavailable':
        startCooldown(error.retryAfter);
        showError(error);
        return;
      default:
        // A 5xx may hide an accepted ballot: keep the key so a retry replays it.
        if (!(error.status >= 500)) setPending(null);
        showError(error);
    }
  }

  function votedChoices() {
    return state.voted && Array.isArray(state.voted.choices) ? state.voted.choices : [];
  }

  function loadVoted(roundId) {
    const receipt = local.get(`receipt_${roundId}`);
    let details = null;
    try {
      details = JSON.parse(local.get(`ballot_${roundId}`) || 'null');
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

  function renderVoted(how) {
    const v = state.voted;
    const panel = $('voted');
    $('voted-title').textContent = how === 'already' ? 'Bạn đã bình chọn trong đợt này' : 'Bạn đã bình chọn';
    let lead;
    if (how === 'cast') lead = 'Phiếu bình chọn của bạn đã được ghi nhận. Cảm ơn bạn đã tham gia!';
    else if (v.receipt) lead = 'Thiết bị này đã gửi phiếu trong đợt bình chọn này. Mỗi người chỉ được gửi một phiếu.';
    else lead = 'Mỗi người chỉ được gửi một phiếu. Biên nhận được lưu trên thiết bị đã dùng để bình chọn.';
    $('voted-lead').textContent = lead;

    $('receipt').textContent = text(v.receipt);
    $('receipt-block').hidden = !v.receipt;
    $('ballot-id').textContent = text(v.ballot_id);
    $('voted-ballot-row').hidden = v.ballot_id === null || v.ballot_id === undefined || v.ballot_id === '';
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

  async function copyReceipt() {
    const value = $('receipt').textContent;
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

  /* ---------- results ---------- */

  async function loadResults() {
    const round = state.round;
    if (!round) return;
    const section = $('results');
    const body = $('results-body');
    section.hidden = false;
    body.setAttribute('aria-busy', 'true');
    $('results-refresh').disabled = true;
    try {
      const res = await api(`/rounds/${round.id}/results`);
      body.textContent = '';
      if (res.ok && res.data) renderResults(res.data);
      else if (res.error.code === 'results_hidden') {
        body.append(el('p', { className: 'results-hidden', text: messageFor('results_hidden') }));
      } else {
        body.append(el('p', { className: 'error-text', text: messageFor(res.error.code, res.error) }));
      }
    } catch (err) {
      body.textContent = '';
      body.append(el('p', {
        className: 'error-text', text: messageFor(err instanceof NetworkError ? 'network' : 'unknown'),
      }));
    } finally {
      body.setAttribute('aria-busy', 'false');
      $('results-refresh').disabled = false;
    }
  }

  function renderResults(r) {
    const body = $('results-body');
    const winners = new Set(Array.isArray(r.winners) ? r.winners : []);
    const tie = r.tie && typeof r.tie === 'object' ? r.tie : null;
    const tied = new Set(tie && Array.isArray(tie.candidate_ids) ? tie.candidate_ids : []);
    const rows = Array.isArray(r.candidates) ? r.candidates : [];
    const nameOf = (id) => {
      const row = rows.find((x) => x.candidate_id === id);
      if (row) return row.full_name;
      const c = state.byId.get(id);
      return c ? c.full_name : `#${id}`;
    };

    body.append(el('p', { className: 'results-meta' },
      el('span', {
        className: r.final ? 'status-badge result-final' : 'status-badge result-provisional',
        text: r.final ? 'Kết quả chính thức' : 'Kết quả tạm thời',
      }),
      ' ',
      el('span', null, `Tổng số phiếu: ${formatNumber(r.total_ballots)}`)));
    if (!r.final) {
      body.append(el('p', {
        className: 'muted small',
        text: 'Số liệu có thể còn thay đổi. Kết quả chính thức được công bố sau khi đợt bình chọn kết thúc và toàn bộ phiếu được kiểm đếm.',
      }));
    }

    if (tie && tied.size) {
      const names = Array.from(tied, nameOf).join(', ');
      const votesRow = rows.find((x) => tied.has(x.candidate_id));
      const votes = votesRow ? ` với ${formatNumber(votesRow.votes)} phiếu` : '';
      body.append(el('div', { className: 'tie-note', role: 'note' },
        el('strong', { text: 'Có đồng phiếu ở vị trí cuối danh sách: ' }),
        `${tied.size} gương điển hình cùng xếp hạng ${tie.rank}${votes} (${names}) `
        + `tranh ${tie.seats} suất còn lại. Trang này không tự chọn người nào; `
        + 'việc xác định người được chọn do Ban Thường vụ quyết định theo quy chế của đợt bình chọn.'));
    }

    if (rows.length === 0) {
      body.append(el('p', { className: 'muted', text: 'Chưa có dữ liệu kết quả.' }));
      return;
    }

    const maxVotes = Math.max(1, ...rows.map((x) => Number(x.votes) || 0));
    const winnerLabel = r.final ? 'Trúng chọn' : 'Đang dẫn đầu';
    const tbody = el('tbody');
    for (const row of rows) {
      const isWinner = winners.has(row.candidate_id);
      const isTie = tied.has(row.candidate_id);
      const bar = el('span', { className: 'vote-bar', 'aria-hidden': 'true' });
      bar.style.width = `${Math.round(((Number(row.votes) || 0) / maxVotes) * 100)}%`;
      const tr = el('tr', {
        className: [isWinner ? 'is-winner' : '', isTie ? 'is-tie' : ''].join(' ').trim() || null,
        dataset: { resultCandidateId: String(row.candidate_id) },
      },
      el('td', { className: 'col-rank', text: row.rank }),
      el('td', { className: 'col-name' },
        el('span', { className: 'result-name', text: row.full_name }),
        el('span', { className: 'result-sub', text: [row.code, row.field].filter(Boolean).join(' · ') }),
        isWinner ? el('span', { className: 'mark mark-winner', text: winnerLabel }) : null,
        isTie ? el('span', { className: 'mark mark-tie', text: 'Đồng phiếu' }) : null),
      el('td', { className: 'col-votes' },
        el('span', { className: 'votes-num', text: formatNumber(row.votes) }),
        el('span', { className: 'vote-track', 'aria-hidden': 'true' }, bar)));
      tbody.append(tr);
    }
    const table = el('table', { className: 'results-table' },
      el('caption', { className: 'sr-only', text: 'Bảng kết quả bình chọn theo số phiếu' }),
      el('thead', null, el('tr', null,
        el('th', { scope: 'col', className: 'col-rank', text: 'Hạng' }),
        el('th', { scope: 'col', text: 'Gương điển hình' }),
        el('th', { scope: 'col', className: 'col-votes', text: 'Số phiếu' }))),
      tbody);
    body.append(el('div', { className: 'table-wrap' }, table));
    const winnerCount = winners.size;
    const seats = state.round && state.round.winners;
    if (seats) {
      let summary = `${winnerCount}/${seats} suất đã xác định`;
      if (tie) summary += `; ${tie.seats} suất còn lại chờ quyết định do đồng phiếu`;
      body.append(el('p', { className: 'muted small', text: `${summary}.` }));
    }
  }

  /* ---------- status refresh ---------- */

  async function refreshStatus(force) {
    if (!state.round) return;
    const now = Date.now();
    if (!force && now - state.lastStatusCheck < STATUS_REFRESH_MS) return;
    state.lastStatusCheck = now;
    try {
      const res = await api('/rounds');
      if (!res.ok) return;
      state.rounds = roundsFrom(res.data);
      const fresh = state.rounds.find((r) => r.id === state.round.id);
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

  /* ---------- start ---------- */

  function wire() {
    $('candidates').addEventListener('change', (event) => {
      const input = event.target;
      if (!(input instanceof HTMLInputElement) || input.name !== 'choice') return;
      const id = parseInt(input.value, 10);
      if (!setChosen(id, input.checked)) input.checked = state.selected.has(id);
    });
    $('candidates').addEventListener('click', (event) => {
      const button = event.target.closest('button[data-action="profile"]');
      if (!button) return;
      openProfile(parseInt(button.dataset.id, 10), button);
    });
    $('search').addEventListener('input', applyFilters);
    $('field-filter').addEventListener('change', applyFilters);
    $('only-chosen').addEventListener('change', applyFilters);

    $('cast').addEventListener('click', openConfirm);
    $('confirm').addEventListener('click', submitBallot);
    $('confirm-cancel').addEventListener('click', () => closeDialog($('confirm-dialog')));
    $('confirm-dialog').addEventListener('cancel', (event) => {
      if (state.sending) event.preventDefault();
    });
    closeOnBackdrop($('confirm-dialog'));

    $('profile-close').addEventListener('click', () => closeDialog($('profile-dialog')));
    $('profile-choose').addEventListener('click', () => {
      const id = state.profileId;
      if (id !== null) setChosen(id, !state.selected.has(id));
      syncProfileChoose();
    });
    $('profile-dialog').addEventListener('close', () => {
      const opener = state.profileOpener;
      state.profileId = null;
      state.profileOpener = null;
      if (opener && document.contains(opener)) opener.focus();
    });
    closeOnBackdrop($('profile-dialog'));

    $('copy-receipt').addEventListener('click', copyReceipt);
    $('identity-code').addEventListener('submit', submitCode);
    $('identity-otp').addEventListener('submit', sendOtp);
    $('otp-verify').addEventListener('click', verifyOtp);
    $('otp-code').addEventListener('keydown', (event) => {
      if (event.key === 'Enter') {
        event.preventDefault();
        verifyOtp();
      }
    });
    $('otp-consent').addEventListener('change', () => {
      $('otp-send').disabled = !$('otp-consent').checked;
    });
    $('results-refresh').addEventListener('click', () => {
      loadResults();
      refreshStatus(false);
    });
    $('message-close').addEventListener('click', hideMessage);

    document.addEventListener('visibilitychange', () => {
      if (document.visibilityState === 'visible') refreshStatus(false);
    });

    const bar = $('actionbar');
    const setBarHeight = () => {
      document.documentElement.style.setProperty('--bar-h', `${bar.offsetHeight}px`);
    };
    if (typeof ResizeObserver === 'function') new ResizeObserver(setBarHeight).observe(bar);
    setBarHeight();
  }

  async function init() {
    wire();
    loadPrivacy();
    let res;
    try {
      res = await api('/rounds');
    } catch (_) {
      showPageProblem('Không tải được đợt bình chọn', '', true);
      showError('network');
      return;
    }
    if (!res.ok) {
      showPageProblem('Không tải được đợt bình chọn', '', true);
      showError(res.error);
      return;
    }
    state.rounds = roundsFrom(res.data);
    const roundId = pickRoundId(state.rounds);
    renderRoundNav(roundId);
    if (roundId === null) {
      showPageProblem('Chưa có đợt bình chọn nào',
        'Hiện chưa có đợt bình chọn nào được công bố. Vui lòng quay lại sau.', false);
      return;
    }

    let detail;
    try {
      detail = await api(`/rounds/${roundId}`);
    } catch (_) {
      showPageProblem('Không tải được đợt bình chọn', '', true);
      showError('network');
      return;
    }
    if (!detail.ok || !detail.data) {
      const code = detail.error && detail.error.code === 'not_found' ? 'round_not_found' : (detail.error || {}).code;
      if (code === 'round_not_found') {
        showPageProblem('Không tìm thấy đợt bình chọn',
          state.rounds.length > 1 ? 'Vui lòng chọn một đợt bình chọn trong danh sách ở trên.' : '', false);
      } else {
        showPageProblem('Không tải được đợt bình chọn', '', true);
      }
      showError(detail.error ? { ...detail.error, code: code || 'unknown' } : 'unknown');
      return;
    }

    const round = detail.data;
    state.round = round;
    state.candidates = Array.isArray(round.candidates) ? round.candidates : [];
    state.byId = new Map(state.candidates.map((c) => [c.id, c]));
    state.voted = loadVoted(round.id);
    restoreSelection();
    restorePending();
    state.lastStatusCheck = Date.now();

    renderRoundInfo();
    renderCandidates();
    $('vote').hidden = false;
    if (state.voted) renderVoted('load');
    syncCards();
    applyFilters();
    startIdentity();
    updateBar();
    loadResults();
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', init);
  else init();
})();
