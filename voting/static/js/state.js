/* The state the page's modules share, and the few questions asked of it everywhere.
 * State that only one module needs lives in that module. */

/**
 * The shared state of the page.
 * @property {?object} round the round shown (GET /rounds/{id}, status refreshed from GET /rounds)
 * @property {object[]} candidates its candidates, in the order of the list
 * @property {Map<number, object>} byId the same candidates by id
 * @property {Set<number>} selected ids of the candidates chosen, not yet cast
 * @property {?object} voted this device's ballot in the round, once cast:
 *   {receipt, ballot_id, cast_at, choices: ids, names}; null before
 * @property {boolean} sending whether a ballot is being sent (choices and dialogs are locked)
 * @property {?number} profileId id of the candidate whose profile dialog is open, or null
 * @property {boolean} framed whether voting is handed off to a top-level window (frame.js):
 *   the page reads, it neither chooses nor mints a credential
 */
export const state = {
  round: null,
  candidates: [],
  byId: new Map(),
  selected: new Set(),
  voted: null,
  sending: false,
  profileId: null,
  framed: false,
};

/* Identity modes this page knows; a round with another one is treated as 'device'. */
const IDENTITY_MODES = new Set(['device', 'code', 'email', 'phone']);

/** The identity mode of the round: 'device', 'code', 'email' or 'phone'. */
export function roundMode() {
  const mode = state.round && state.round.identity_mode;
  return typeof mode === 'string' && IDENTITY_MODES.has(mode) ? mode : 'device';
}

/** Ids of the candidates on this device's ballot ([] before voting). */
export function votedChoices() {
  return state.voted && Array.isArray(state.voted.choices) ? state.voted.choices : [];
}

/** Whether the voter may change the selection now (round open or paused, not voted, not sending). */
export function canSelect() {
  const r = state.round;
  return Boolean(r) && !state.framed && !state.voted && !state.sending
    && (r.status === 'open' || r.status === 'paused');
}
