/* The profile dialog (#profile-dialog) of one candidate: facts, summary, achievements (fetched
 * on demand and kept, with a retry when they fail), the count of choices, a button to choose
 * the candidate from there, and a share button. It opens with the focus on the candidate's
 * name and gives it back to the card on close. Its address is /r/<slug>/<code> (links.js):
 * opening pushes it, closing goes back, popstate opens or closes it. */
import { api, NetworkError } from './api.js';
import { $, closeDialog, el, fillAvatar, openDialog, text } from './dom.js';
import { absolute, parseLocation, roundPath } from './links.js';
import { messageFor } from './messages.js';
import { canSelect, state } from './state.js';

/* Achievements fetched, by candidate id. */
const achievements = new Map();
/* The element that opened the dialog, focused again when it closes. */
let profileOpener = null;
/* Whether the open profile pushed its address (closing then goes back in the history). */
let pushed = false;

/** Redraw the dialog's choose button (hidden when the selection cannot change). */
export function syncProfileChoose() {
  const button = $('profile-choose');
  const counter = $('profile-counter');
  const id = state.profileId;
  if (id === null || !canSelect()) {
    button.hidden = true;
    counter.textContent = '';
    return;
  }
  button.hidden = false;
  counter.textContent = `Đã chọn ${state.selected.size}/${state.round.max_choices}`;
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

/* The card's profile button of candidate `id` (the focus goes back there on close). */
function cardButton(id) {
  return document.querySelector(`#candidates button[data-action="profile"][data-id="${id}"]`);
}

/**
 * Open the profile dialog of candidate `id`; `opener` gets the focus back on close (the
 * card's button when none is given). `how`: 'push' (a voter's click: the address becomes
 * /r/<slug>/<code>), 'load' or 'pop' (the address already says it).
 */
export async function openProfile(id, opener, how = 'push') {
  const c = state.byId.get(id);
  if (!c) return;
  state.profileId = id;
  profileOpener = opener || cardButton(id);
  if (how === 'push' && state.round.slug) {
    history.pushState({ profile: c.code }, '', roundPath(state.round.slug, c.code));
    pushed = true;
  } else if (how === 'load') {
    pushed = false;
  }
  $('profile-share-status').textContent = '';
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
  $('profile-name').focus();
  await loadAchievements(id);
}

/* The achievements of candidate `id` into the dialog: kept, or fetched (a retry button on failure). */
async function loadAchievements(id) {
  const box = $('profile-achievements');
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
      failed(box, id, messageFor(res.error.code, res.error));
    }
  } catch (err) {
    if (state.profileId !== id) return;
    failed(box, id, messageFor(err instanceof NetworkError ? 'network' : 'unknown'));
  } finally {
    box.setAttribute('aria-busy', 'false');
  }
}

function failed(box, id, message) {
  box.textContent = '';
  box.append(el('p', { className: 'error-text' }, 'Không tải được thành tích. ', message),
    el('button', {
      type: 'button', className: 'btn btn-secondary btn-small', text: 'Thử lại',
      onclick: async () => {
        await loadAchievements(id);
        // the button is gone (or replaced): keep the focus in the dialog, not on the body
        const again = box.querySelector('button');
        if (again) again.focus();
        else if (state.profileId === id) $('profile-name').focus();
      },
    }));
}

/** To call when the profile dialog has closed: forget it, restore the round's address, give the focus back. */
export function profileClosed() {
  const opener = profileOpener;
  state.profileId = null;
  profileOpener = null;
  if (parseLocation().code && state.round && state.round.slug) {
    if (pushed) history.back();
    else history.replaceState(null, '', roundPath(state.round.slug));
  }
  pushed = false;
  if (opener && document.contains(opener)) opener.focus();
}

/** The candidate of the address (/r/<slug>/<code>), its profile opened or closed to match (load and popstate). */
export function followLocation(how) {
  const { code } = parseLocation();
  const c = code ? state.candidates.find((x) => x.code.toUpperCase() === code.toUpperCase()) : null;
  const dialog = $('profile-dialog');
  if (c) {
    if (state.profileId !== c.id) {
      if (dialog.open) {
        pushed = false;
        closeDialog(dialog);
      }
      openProfile(c.id, null, how);
    }
  } else if (dialog.open) {
    pushed = false;  // the history already went back
    closeDialog(dialog);
  }
}

/** Click handler of #profile-share: the Web Share API when present, else copy the link. */
export async function shareProfile() {
  const c = state.byId.get(state.profileId);
  if (!c || !state.round) return;
  const url = state.round.slug ? absolute(roundPath(state.round.slug, c.code)) : window.location.href;
  const status = $('profile-share-status');
  if (typeof navigator.share === 'function') {
    try {
      await navigator.share({ title: `${c.full_name} – ${state.round.title}`, url });
      return;
    } catch (err) {
      if (err && err.name === 'AbortError') return;
    }
  }
  let ok = false;
  try {
    if (navigator.clipboard && window.isSecureContext) {
      await navigator.clipboard.writeText(url);
      ok = true;
    }
  } catch (_) {
    ok = false;
  }
  status.textContent = ok ? 'Đã chép liên kết.' : `Liên kết: ${url}`;
}
