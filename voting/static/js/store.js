/* What the page keeps in the browser, and under which keys.
 *
 * localStorage: 'voter_token_<mode>_<round id>' (the voter credential of a round: device,
 *   code, email or phone; a device credential is made for one round),
 *   'receipt_<round id>' and 'ballot_<round id>' (this device's ballot).
 * sessionStorage: 'selection_<round id>' (the choices not yet cast) and 'pending_<round id>'
 *   (the Idempotency-Key of a ballot being sent, reused on a retry).
 */
import { roundMode, state } from './state.js';

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

/** localStorage (kept in memory when it is unavailable): get(key), set(key, value), remove(key). */
export const local = makeStore('localStorage');

/** sessionStorage, likewise. */
export const session = makeStore('sessionStorage');

/** Key of the voter credential for the current round and its identity mode. */
export function tokenKey() {
  return `voter_token_${roundMode()}_${state.round.id}`;
}

/** The voter credential stored for the current round, or null. */
export function currentToken() {
  return state.round ? local.get(tokenKey()) : null;
}

/** Key of the receipt of the ballot cast in a round (localStorage). */
export const receiptKey = (roundId) => `receipt_${roundId}`;

/** Key of what the page remembers of the ballot cast in a round (localStorage, JSON). */
export const ballotKey = (roundId) => `ballot_${roundId}`;

/** Key of the choices not yet cast in a round (sessionStorage, JSON list of ids). */
export const selectionKey = (roundId) => `selection_${roundId}`;

/** Key of the ballot being sent in a round (sessionStorage, JSON {key, sig}). */
export const pendingKey = (roundId) => `pending_${roundId}`;
