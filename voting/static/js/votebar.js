/* The sticky bar (#votebar): the count of choices, the hint, and the cast button with the
 * reason it is disabled; and the cool-down after a "try again later" answer. */
import { $ } from './dom.js';
import { syncProfileChoose } from './profile.js';
import { roundMode, state } from './state.js';
import { currentToken } from './store.js';

const MAX_COOLDOWN_SECONDS = 300;

/* Until when (ms since the epoch) casting waits, and the timer that counts it down. */
let cooldownUntil = 0;
let cooldownTimer = null;

function cooldownLeft() {
  return Math.max(0, Math.ceil((cooldownUntil - Date.now()) / 1000));
}

/** Why the ballot cannot be cast now (Vietnamese, shown as the button's title); '' when it can. */
export function castBlocker() {
  const r = state.round;
  if (!r) return 'Chưa tải được đợt bình chọn';
  if (state.voted) return 'Bạn đã bình chọn';
  if (state.framed) return 'Hãy mở trang bình chọn trong thẻ mới để gửi phiếu';
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

/** Redraw the bar (and the profile dialog's choose button) from the state. */
export function updateBar() {
  const r = state.round;
  const bar = $('votebar');
  const show = Boolean(r) && !state.voted && !state.framed && (r.status === 'open' || r.status === 'paused');
  bar.hidden = !show;
  if (!r) return;
  const n = state.selected.size;
  $('counter').textContent = `Đã chọn ${n}/${r.max_choices}`;
  const hint = $('counter-hint');
  const blocker = castBlocker();
  let hintText = r.min_choices > 1 ? `Tối thiểu ${r.min_choices}` : '';
  if (r.status === 'paused') hintText = 'Tạm dừng nhận phiếu';
  else if (n >= r.max_choices) hintText = 'Đã đủ, bỏ bớt để chọn người khác';
  hint.textContent = hintText;
  const cast = $('cast');
  cast.disabled = Boolean(blocker);
  if (state.sending) cast.textContent = 'Đang gửi…';
  else if (cooldownLeft() > 0) cast.textContent = `Thử lại sau ${cooldownLeft()} giây`;
  else cast.textContent = 'Gửi phiếu bình chọn';
  cast.title = blocker;
  if (state.profileId !== null) syncProfileChoose();
}

/** Block casting for `seconds` (at most 5 minutes), counting down on the button. */
export function startCooldown(seconds) {
  if (!seconds) return;
  cooldownUntil = Date.now() + Math.min(seconds, MAX_COOLDOWN_SECONDS) * 1000;
  clearInterval(cooldownTimer);
  cooldownTimer = setInterval(() => {
    if (cooldownLeft() === 0) {
      clearInterval(cooldownTimer);
      cooldownTimer = null;
    }
    updateBar();
  }, 1000);
  updateBar();
}
