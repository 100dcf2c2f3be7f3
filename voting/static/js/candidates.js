/* The candidates: their cards (#candidates), the filters, and the voter's selection (kept in
 * sessionStorage until the ballot is cast).
 *
 * A card's choose control is a checkbox (its checked state is what aria-pressed would say);
 * its label reads "Chọn" or "Đã chọn". Once max_choices are chosen, the other cards read
 * "Đã đủ N", dimmed and aria-disabled, described by #full-note, before any tap. After each card
 * a button (visible when focused) jumps to the send button: from any card the send button is at
 * most three key presses away (Tab, Tab, Enter from its profile button); Ctrl+Enter anywhere
 * goes there too (main.js). */
import { $, avatar, el, fold, srOnly } from './dom.js';
import { hideMessage, showError } from './messages.js';
import { canSelect, state, votedChoices } from './state.js';
import { selectionKey, session } from './store.js';
import { updateBar } from './votebar.js';

/* The card of each candidate by id: {card, input, word (the label's visible text), haystack
 * (folded text searched)}. */
const cards = new Map();

function buildCard(c) {
  const nameId = `cand-name-${c.id}`;
  const input = el('input', {
    type: 'checkbox', name: 'choice', value: String(c.id), 'aria-describedby': nameId,
  });
  const word = el('span', { className: 'choose-word', text: 'Chọn' });
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
        el('span', { className: 'choose-text' }, word, srOnly(` ${c.full_name}`))),
      el('button', {
        type: 'button', className: 'to-cast', dataset: { action: 'to-cast' },
      }, 'Đến nút gửi phiếu')));
  return { card, input, word };
}

/** Draw the cards of the current round's candidates and fill the field filter. */
export function renderCandidates() {
  const list = $('candidates');
  list.textContent = '';
  cards.clear();
  const frag = document.createDocumentFragment();
  for (const c of state.candidates) {
    const built = buildCard(c);
    built.haystack = fold(`${c.code} ${c.full_name} ${c.workplace} ${c.position}`);
    cards.set(c.id, built);
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

/** Show only the cards that match the search, the field and "only chosen"; update the count. */
export function applyFilters() {
  const terms = fold($('search').value).split(/\s+/).filter(Boolean);
  const field = $('field-filter').value;
  const onlyChosen = $('only-chosen').checked;
  let shown = 0;
  for (const c of state.candidates) {
    const entry = cards.get(c.id);
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

/* Draw one card's choose control: chosen, free, or unavailable because the ballot is full. */
function drawChoice(entry, on, full) {
  const max = state.round ? state.round.max_choices : 0;
  entry.input.checked = on;
  entry.card.classList.toggle('is-selected', on);
  const blocked = full && !on;
  entry.card.classList.toggle('is-full', blocked);
  if (blocked) {
    entry.input.setAttribute('aria-disabled', 'true');
    entry.input.setAttribute('aria-describedby', `cand-name-${entry.input.value} full-note`);
  } else {
    entry.input.removeAttribute('aria-disabled');
    entry.input.setAttribute('aria-describedby', `cand-name-${entry.input.value}`);
  }
  entry.word.textContent = on ? 'Đã chọn' : (blocked ? `Đã đủ ${max}` : 'Chọn');
}

/* Whether the selection holds max_choices (so the unchosen cards are unavailable). */
function isFull() {
  return Boolean(state.round) && canSelect() && state.selected.size >= state.round.max_choices;
}

/* Show or hide #full-note and redraw every card's choose control. */
function drawAllChoices() {
  const full = isFull();
  // read by screen readers on the unavailable cards (aria-describedby); the eye reads the
  // cards' "Đã đủ N" and the bar's hint, so nothing moves the list when the ballot fills
  $('full-note').textContent = full
    ? `Bạn đã chọn đủ ${state.round.max_choices} gương điển hình. Muốn chọn người khác, hãy bỏ chọn một người trước.`
    : '';
  for (const [id, entry] of cards) {
    if (state.voted) continue;
    drawChoice(entry, state.selected.has(id), full);
  }
}

function isMarked(id) {
  if (state.voted) return votedChoices().includes(id);
  return state.selected.has(id);
}

/** Bring the cards' checkboxes and marks in line with the state (selection, voted, locked). */
export function syncCards() {
  const selectable = canSelect();
  const readOnly = Boolean(state.voted) || state.framed || !state.round
    || !(state.round.status === 'open' || state.round.status === 'paused');
  $('vote').classList.toggle('readonly', readOnly);
  const marked = new Set(state.voted ? votedChoices() : state.selected);
  for (const [id, entry] of cards) {
    const on = marked.has(id);
    entry.input.checked = !state.voted && on;
    entry.input.disabled = !selectable;
    entry.card.classList.toggle('is-selected', !state.voted && on);
    entry.card.classList.toggle('is-voted', Boolean(state.voted) && on);
  }
  drawAllChoices();
}

/** Ids of the selected candidates, in the order of the list. */
export function orderedSelection() {
  return state.candidates.filter((c) => state.selected.has(c.id)).map((c) => c.id);
}

function saveSelection() {
  if (!state.round) return;
  session.set(selectionKey(state.round.id), JSON.stringify(orderedSelection()));
}

/** Restore the selection kept for the current round (within its max_choices). */
export function restoreSelection() {
  state.selected.clear();
  let saved = [];
  try {
    saved = JSON.parse(session.get(selectionKey(state.round.id)) || '[]');
  } catch (_) {
    saved = [];
  }
  if (!Array.isArray(saved)) return;
  for (const id of saved) {
    if (state.byId.has(id) && state.selected.size < state.round.max_choices) state.selected.add(id);
  }
}

/** Select or unselect one candidate; returns whether the wish was applied. */
export function setChosen(id, want) {
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
  drawAllChoices();
  saveSelection();
  updateBar();
  return true;
}
