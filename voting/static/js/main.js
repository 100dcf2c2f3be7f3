/* Public voting page: browse the shortlist, choose, cast one ballot, see the results.
 *
 * The entry module (index.html loads it with <script type="module">); no build step. It wires
 * the page's controls to the modules below and loads the round:
 *   dom.js        element building, text and number/date formatting, dialogs
 *   api.js        the fetch wrapper and its errors
 *   messages.js   the Vietnamese texts of the errors, the message box
 *   state.js      the state the modules share
 *   store.js      localStorage / sessionStorage and their keys
 *   rounds.js     which round, the round list and info, status refresh
 *   candidates.js the cards, the filters, the selection
 *   votebar.js    the counter bar and the cast button
 *   profile.js    a candidate's profile and achievements
 *   identity.js   the voter's credential (device with ALTCHA, code, email/phone OTP)
 *   ballot.js     confirming and casting, retried with the same Idempotency-Key
 *   voted.js      this device's ballot and its receipt
 *   results.js    the results (first on the page for a closed round or live results)
 *   privacy.js    the figures of the privacy notice
 *   links.js      the page's addresses (/r/<slug>, /r/<slug>/<code>)
 *   frame.js      a framed page hands voting off to a top-level window
 */
import { openConfirm, restorePending, submitBallot } from './ballot.js';
import { applyFilters, renderCandidates, restoreSelection, setChosen, syncCards } from './candidates.js';
import { $, closeDialog, closeOnBackdrop } from './dom.js';
import { detectFrame, showHandOff } from './frame.js';
import {
  consentChanged, formatCodeInput, sendOtp, startIdentity, submitCode, verifyOtp,
} from './identity.js';
import { hideMessage } from './messages.js';
import { loadPrivacy } from './privacy.js';
import {
  followLocation, openProfile, profileClosed, shareProfile, syncProfileChoose,
} from './profile.js';
import { loadResults, placeResults, resultsFirst } from './results.js';
import { loadRound, refreshStatus, renderRoundInfo, watchStatus } from './rounds.js';
import { state } from './state.js';
import { updateBar } from './votebar.js';
import {
  copyReceipt, downloadReceiptImage, loadVoted, renderVoted, sendReceipt,
} from './voted.js';

/* Move the focus to the send button (shown and enabled or not: its title says why not). */
function focusCast() {
  const cast = $('cast');
  if ($('votebar').hidden) return false;
  cast.focus();
  return true;
}

/* The dialogs stay open while a ballot is being sent. */
const mayCloseDialog = () => !state.sending;

function wire() {
  $('candidates').addEventListener('change', (event) => {
    const input = event.target;
    if (!(input instanceof HTMLInputElement) || input.name !== 'choice') return;
    const id = parseInt(input.value, 10);
    if (!setChosen(id, input.checked)) input.checked = state.selected.has(id);
  });
  $('candidates').addEventListener('click', (event) => {
    const toCast = event.target.closest('button[data-action="to-cast"]');
    if (toCast) {
      focusCast();
      return;
    }
    const button = event.target.closest('button[data-action="profile"]');
    if (!button) return;
    openProfile(parseInt(button.dataset.id, 10), button);
  });
  // Ctrl+Enter (⌘+Enter) anywhere outside a dialog: to the send button (#keyboard-tip says so)
  document.addEventListener('keydown', (event) => {
    if (event.key !== 'Enter' || !(event.ctrlKey || event.metaKey)) return;
    if (document.querySelector('dialog[open]')) return;
    if (focusCast()) event.preventDefault();
  });
  window.addEventListener('popstate', () => followLocation('pop'));
  $('search').addEventListener('input', applyFilters);
  $('field-filter').addEventListener('change', applyFilters);
  $('only-chosen').addEventListener('change', applyFilters);

  $('cast').addEventListener('click', openConfirm);
  $('confirm').addEventListener('click', submitBallot);
  $('confirm-cancel').addEventListener('click', () => closeDialog($('confirm-dialog')));
  $('confirm-dialog').addEventListener('cancel', (event) => {
    if (state.sending) event.preventDefault();
  });
  closeOnBackdrop($('confirm-dialog'), mayCloseDialog);

  $('profile-close').addEventListener('click', () => closeDialog($('profile-dialog')));
  $('profile-choose').addEventListener('click', () => {
    const id = state.profileId;
    if (id !== null) setChosen(id, !state.selected.has(id));
    syncProfileChoose();
  });
  $('profile-dialog').addEventListener('close', profileClosed);
  $('profile-share').addEventListener('click', shareProfile);
  closeOnBackdrop($('profile-dialog'), mayCloseDialog);

  $('copy-receipt').addEventListener('click', copyReceipt);
  $('receipt-image').addEventListener('click', downloadReceiptImage);
  $('receipt-send').addEventListener('click', sendReceipt);
  $('identity-code').addEventListener('submit', submitCode);
  $('voter-code').addEventListener('input', formatCodeInput);
  $('identity-otp').addEventListener('submit', sendOtp);
  $('otp-verify').addEventListener('click', verifyOtp);
  $('otp-code').addEventListener('keydown', (event) => {
    if (event.key === 'Enter') {
      event.preventDefault();
      verifyOtp();
    }
  });
  $('otp-consent').addEventListener('change', consentChanged);
  $('results-refresh').addEventListener('click', () => {
    loadResults();
    refreshStatus(false);
  });
  $('message-close').addEventListener('click', hideMessage);


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
  const [round, framed] = await Promise.all([loadRound(), detectFrame()]);
  if (!round) return;
  state.framed = framed;
  if (framed) showHandOff();

  state.round = round;
  state.candidates = Array.isArray(round.candidates) ? round.candidates : [];
  state.byId = new Map(state.candidates.map((c) => [c.id, c]));
  state.voted = loadVoted(round.id);
  restoreSelection();
  restorePending();

  placeResults();
  // results first: drawn before the page below them shows, so nothing moves when they come
  if (resultsFirst()) await loadResults();
  renderRoundInfo();
  renderCandidates();
  $('vote').hidden = false;
  if (state.voted) renderVoted('load');
  syncCards();
  applyFilters();
  startIdentity();
  updateBar();
  if (!resultsFirst()) loadResults();
  followLocation('load');
  watchStatus();
}

if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', init);
else init();
