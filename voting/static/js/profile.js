/* The profile dialog (#profile-dialog) of one candidate: facts, summary, achievements (fetched
 * on demand and kept), and a button to choose the candidate from there. */
import { api, NetworkError } from './api.js';
import { $, el, fillAvatar, openDialog, text } from './dom.js';
import { messageFor } from './messages.js';
import { canSelect, state } from './state.js';

/* Achievements fetched, by candidate id. */
const achievements = new Map();
/* The element that opened the dialog, focused again when it closes. */
let profileOpener = null;

/** Redraw the dialog's choose button (hidden when the selection cannot change). */
export function syncProfileChoose() {
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

/** Open the profile dialog of candidate `id`; `opener` gets the focus back on close. */
export async function openProfile(id, opener) {
  const c = state.byId.get(id);
  if (!c) return;
  state.profileId = id;
  profileOpener = opener || null;
  fillAvatar($('profile-avatar'), c, 'profile');
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

  if (achievements.has(id)) {
    renderAchievements(achievements.get(id));
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
      achievements.set(id, value);
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

/** To call when the profile dialog has closed: forget it and give the focus back. */
export function profileClosed() {
  const opener = profileOpener;
  state.profileId = null;
  profileOpener = null;
  if (opener && document.contains(opener)) opener.focus();
}
