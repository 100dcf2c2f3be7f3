/* The voter's credential, per the round's identity mode (round.identity_mode), and the
 * #identity panel that obtains it:
 * - device: the ALTCHA widget (vendored in /static/vendor, loaded only when needed, never from
 *   a CDN) solves the proof of work from /api/v1/challenge?round_id=N while the voter reads
 *   the list; the payload is exchanged at once for a credential of that round, kept in
 *   localStorage;
 * - code: the voter types the one-time code the organisers handed out (typed as they like:
 *   case, spaces, hyphens, O for 0, I and L for 1, as voting/identity/codes.py reads it; the
 *   field shows it grouped XXXX-XXXX-XXX);
 * - email / phone: after consenting to the privacy notice, the voter gets a 6-digit code; the
 *   resend button counts down the server's resend interval (`resend_after`).
 * Credentials are kept per round (see store.js). A framed page (frame.js) mints none.
 * In device mode the panel keeps its place once the work is done (it says so), so solving
 * never moves the list; on a later visit with a credential it is not drawn at all.
 */
import { API, ApiFailure, api, NetworkError } from './api.js';
import { $ } from './dom.js';
import { hideMessage, messageFor, showError } from './messages.js';
import { roundMode, state } from './state.js';
import { currentToken, local, tokenKey } from './store.js';
import { startCooldown, updateBar } from './votebar.js';

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
const CHALLENGE_RETRY = new Set(['challenge_used', 'challenge_expired', 'challenge_invalid', 'challenge_stale']);
/* The widget gives up after this long (its default is 90 s): the work grows on a network that
 * has received many credentials in the round. */
const SOLVE_TIMEOUT_MS = 600000;

/* The device verification under way or done (a promise of the credential), the loading of the
 * ALTCHA scripts (a promise), and the widget once mounted. */
let deviceTokenPromise = null;
let altchaPromise = null;
let mountedWidget = null;
/* Whether the device credential was obtained in this page view (the panel then stays, saying so). */
let solvedHere = false;
/* The countdown of the OTP resend button. */
let resendTimer = null;

function identityNeeded() {
  const r = state.round;
  return Boolean(r) && !state.voted && !state.framed && (r.status === 'open' || r.status === 'paused');
}

function setIdentityStatus(textValue, kind) {
  const box = $('identity-status');
  box.textContent = textValue || '';
  box.dataset.state = kind || '';
}

/** Show or hide the #identity panel and the form of the round's mode, with the status line. */
export function renderIdentity() {
  const panel = $('identity');
  const mode = roundMode();
  const token = currentToken();
  const show = identityNeeded() && !(mode === 'device' && token && !solvedHere);
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
    if (!resendTimer) $('otp-send').disabled = !$('otp-consent').checked;
  }
  if (token) setIdentityStatus(IDENTITY_DONE[mode], 'ok');
}

function storeToken(res) {
  const token = res.data && res.data.voter_token;
  if (typeof token !== 'string' || !token) throw new ApiFailure({ code: 'unknown', status: res.status });
  local.set(tokenKey(), token);
  return token;
}

/* The ALTCHA widget and its Vietnamese strings, from our own static files, imported only when
 * a voter needs the proof of work (111 KiB: never on first paint). A dynamic import, so the
 * page's import map sends it to the content-hashed file. */
function loadAltcha() {
  if (!altchaPromise) {
    altchaPromise = import('/static/vendor/altcha.min.js')
      .then(() => import('/static/vendor/altcha.i18n.vi.js'))
      .then(() => customElements.whenDefined('altcha-widget'))
      .catch(() => { throw new ApiFailure({ code: 'altcha_unavailable' }); });
    altchaPromise.catch(() => { altchaPromise = null; });
  }
  return altchaPromise;
}

async function mountWidget() {
  await loadAltcha();
  if (mountedWidget && document.contains(mountedWidget)) return mountedWidget;
  const widget = document.createElement('altcha-widget');
  widget.setAttribute('challenge', `${API}/challenge?round_id=${encodeURIComponent(state.round.id)}`);
  widget.setAttribute('auto', 'off');
  widget.setAttribute('language', 'vi');
  widget.setAttribute('name', 'altcha');
  const box = $('altcha-box');
  box.textContent = '';
  box.append(widget);
  await new Promise((resolve) => setTimeout(resolve, 0));
  if (typeof widget.configure === 'function') {
    // no pointer/scroll collection: the proof of work is all we need
    await widget.configure({ humanInteractionSignature: false, language: 'vi', timeout: SOLVE_TIMEOUT_MS });
  }
  mountedWidget = widget;
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
    const res = await api('/voters', { method: 'POST', body: { altcha: result.payload, round_id: state.round.id } });
    if (res.ok) return storeToken(res);
    if (!CHALLENGE_RETRY.has(res.error.code)) throw new ApiFailure(res.error);
  }
  throw new ApiFailure({ code: 'challenge_failed' });
}

/** Start (once) the device verification; resolves to the credential. */
function deviceToken() {
  if (!deviceTokenPromise) {
    deviceTokenPromise = obtainDeviceToken().then((token) => {
      solvedHere = true;
      setIdentityStatus(IDENTITY_DONE.device, 'ok');
      renderIdentity();
      updateBar();
      return token;
    }, (err) => {
      deviceTokenPromise = null;
      const error = err instanceof ApiFailure ? err.error : { code: err instanceof NetworkError ? 'network' : 'challenge_failed' };
      setIdentityStatus(messageFor(error.code, error), 'error');
      if (error.code === 'rate_limited' || error.code === 'unavailable') startCooldown(error.retryAfter);
      throw err;
    });
  }
  return deviceTokenPromise;
}

/** The credential for casting: the stored one, or (device mode) a new one; rejects with ApiFailure otherwise. */
export async function ensureToken() {
  const saved = currentToken();
  if (saved) return saved;
  const mode = roundMode();
  if (mode === 'device') return deviceToken();
  throw new ApiFailure({ code: mode === 'code' ? 'code_required' : 'otp_required' });
}

/** Forget the current round's stored credential (and a device verification already done). */
export function forgetToken() {
  local.remove(tokenKey());
  deviceTokenPromise = null;
}

function identityError(error) {
  setIdentityStatus(messageFor(error.code, error), 'error');
  showError(error);
}

/** Submit handler of the code form: exchange the one-time code for a credential. */
export async function submitCode(event) {
  event.preventDefault();
  const input = $('voter-code');
  const code = canonicalCode(input.value);
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

/* Crockford's reading of a typed voting code (voting/core/crockford.py): upper case, O → 0,
 * I and L → 1, anything but letters and digits dropped. */
function canonicalCode(raw) {
  return raw.toUpperCase().replace(/O/g, '0').replace(/[IL]/g, '1').replace(/[^0-9A-Z*~$=]/g, '');
}

/** Input handler of #voter-code: show what was typed in the code's groups (ABCD-EFGH-JKM). */
export function formatCodeInput() {
  const input = $('voter-code');
  const atEnd = input.selectionStart === input.value.length;
  const code = canonicalCode(input.value).slice(0, 11);
  const grouped = code.replace(/^(.{4})(.{1,4})?(.{1,3})?$/, (_, a, b, c) => [a, b, c].filter(Boolean).join('-'));
  if (atEnd && grouped !== input.value) input.value = grouped;
}

/* Count down the resend interval on the send button ("Gửi lại mã sau N giây"). */
function startResendCountdown(seconds) {
  const button = $('otp-send');
  const note = $('otp-resend');
  clearInterval(resendTimer);
  let left = Math.max(0, Math.ceil(Number(seconds) || 0));
  const draw = () => {
    if (left > 0) {
      button.disabled = true;
      button.textContent = `Gửi lại mã sau ${left} giây`;
      note.textContent = '';
    } else {
      clearInterval(resendTimer);
      resendTimer = null;
      button.disabled = !$('otp-consent').checked;
      button.textContent = 'Gửi lại mã';
      note.textContent = 'Chưa nhận được mã? Bạn có thể yêu cầu gửi lại.';
    }
    note.hidden = !note.textContent;
  };
  draw();
  if (left > 0) {
    resendTimer = setInterval(() => {
      left -= 1;
      draw();
    }, 1000);
  }
}

function otpBody() {
  const mode = roundMode();
  return { [mode]: $('otp-address').value.trim(), round_id: state.round.id };
}

/** Submit handler of the OTP form: have a 6-digit code sent to the email address or phone. */
export async function sendOtp(event) {
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
      if (res.error.code === 'rate_limited' && res.error.retryAfter) startResendCountdown(res.error.retryAfter);
      return;
    }
    const to = res.data && res.data.sent_to ? res.data.sent_to : '';
    const minutes = Math.max(1, Math.round(((res.data && res.data.expires_in) || 300) / 60));
    hideMessage();  // an earlier error (a mistyped address) no longer holds
    setIdentityStatus(`Đã gửi mã đến ${to}. Mã có hiệu lực trong ${minutes} phút.`, '');
    $('otp-step2').hidden = false;
    $('otp-code').focus();
    startResendCountdown(res.data && res.data.resend_after !== undefined ? res.data.resend_after : 60);
    return;
  } catch (_) {
    identityError({ code: 'network' });
  } finally {
    if (!resendTimer) button.disabled = !$('otp-consent').checked;
  }
}

/** Change handler of #otp-consent: no consent, no sending (the resend countdown keeps its hold). */
export function consentChanged() {
  if (!resendTimer) $('otp-send').disabled = !$('otp-consent').checked;
}

/** Exchange the 6-digit code received for a credential. */
export async function verifyOtp() {
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

/* Whether the proof of work waits for the voter's first choice (set once it started). */
let waitingForVoter = false;

/** Draw the panel and, in device mode without a credential, start the verification as soon as
 * the voter starts voting (the first choice ticked, in the list or a profile): the widget and
 * its work are not part of the first load. Casting before that starts it too (ensureToken). */
export function startIdentity() {
  renderIdentity();
  if (!identityNeeded() || roundMode() !== 'device' || currentToken() || waitingForVoter) return;
  waitingForVoter = true;
  const start = (event) => {
    const target = event.target;
    const chose = (target instanceof HTMLInputElement && target.name === 'choice')
      || (target instanceof Element && target.closest('#profile-choose'));
    if (!chose) return;
    document.removeEventListener('change', start, true);
    document.removeEventListener('click', start, true);
    waitingForVoter = false;
    if (identityNeeded() && roundMode() === 'device' && !currentToken()) {
      deviceToken().catch(() => { /* shown in the panel; retried on cast */ });
    }
  };
  document.addEventListener('change', start, true);
  document.addEventListener('click', start, true);
}
