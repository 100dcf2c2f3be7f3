/* Casting the ballot: the confirmation dialog, the POST with an Idempotency-Key that a retry
 * of the same choices reuses (kept in sessionStorage until an answer settles it), and what
 * each answer does. */
import { ApiFailure, api, NetworkError } from './api.js';
import { orderedSelection, syncCards } from './candidates.js';
import { $, closeDialog, el, openDialog } from './dom.js';
import { ensureToken, forgetToken, renderIdentity, startIdentity } from './identity.js';
import { showError, showMessage } from './messages.js';
import { loadResults } from './results.js';
import { applyStatus, refreshStatus } from './rounds.js';
import { roundMode, state } from './state.js';
import { local, pendingKey, receiptKey, session } from './store.js';
import { castBlocker, startCooldown, updateBar } from './votebar.js';
import { recordVoted } from './voted.js';

/* The ballot being sent: {key: its Idempotency-Key, sig: its choices joined}, or null. */
let pending = null;
/* Whether #cast is asking the round's status before the confirm step. */
let checking = false;

function uuid() {
  const c = window.crypto;
  if (c && typeof c.randomUUID === 'function') return c.randomUUID();
  const b = c.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** Take up the ballot of the current round that was being sent when the page was left. */
export function restorePending() {
  try {
    const saved = JSON.parse(session.get(pendingKey(state.round.id)) || 'null');
    pending = saved && typeof saved.key === 'string' && typeof saved.sig === 'string' ? saved : null;
  } catch (_) {
    pending = null;
  }
}

function setPending(next) {
  pending = next;
  if (!state.round) return;
  if (next) session.set(pendingKey(state.round.id), JSON.stringify(next));
  else session.remove(pendingKey(state.round.id));
}

/**
 * Click handler of #cast: ask the round's status first (a pause while the page was open
 * says so here, not after the confirm step), then list the choices in the confirmation
 * dialog and open it.
 */
export async function openConfirm() {
  if (castBlocker() || checking) return;
  checking = true;
  let status;
  try {
    status = await refreshStatus(true);
  } finally {
    checking = false;
  }
  updateBar();
  if (status !== 'open') {
    showError({ code: 'round_not_open', status });
    return;
  }
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

/** Click handler of #confirm: send the ballot (or resend it, with the same key). */
export async function submitBallot() {
  if (state.sending || castBlocker()) return;
  const round = state.round;
  const ids = orderedSelection();
  const sig = ids.join(',');
  if (!pending || pending.sig !== sig) setPending({ key: uuid(), sig });

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
      headers: { Authorization: `Bearer ${token}`, 'Idempotency-Key': pending.key },
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
  // closed first: closing gives the focus back to #cast, and the receipt's heading takes it
  closeDialog($('confirm-dialog'));
  const choices = Array.isArray(data.choices) ? data.choices : ids;
  const voted = {
    receipt: typeof data.receipt === 'string' ? data.receipt : null,
    ballot_id: data.ballot_id !== undefined ? data.ballot_id : null,
    cast_at: data.cast_at || null,
    choices,
    names: choices.map((id) => (state.byId.get(id) || {}).full_name).filter(Boolean),
  };
  if (voted.receipt) local.set(receiptKey(roundId), voted.receipt);
  setPending(null);
  recordVoted(voted, 'cast');
  showMessage('Phiếu bình chọn của bạn đã được ghi nhận. Cảm ơn bạn đã tham gia!', 'success', '');
  loadResults();
}

async function onCastError(error) {
  const code = error.code;
  switch (code) {
    case 'voter_token_invalid':
    case 'voter_token_required':
      forgetToken();
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
        receipt: local.get(receiptKey(roundId)),
        ballot_id: error.ballotId !== undefined && error.ballotId !== null ? error.ballotId : null,
        cast_at: null,
        choices: [],
        names: [],
      };
      recordVoted(voted, 'already');
      showError(error);
      return;
    }
    case 'round_not_open': {
      setPending(null);
      // the ballot box names the status it found ("... (paused)"): fresher than the round list
      const found = /\((paused|closed|draft)\)/.exec(error.serverMessage || '');
      if (found) applyStatus(found[1]);
      else await refreshStatus(true);
      showError({ ...error, status: state.round.status });
      return;
    }
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
