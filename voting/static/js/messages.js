/* What the voter reads: the Vietnamese text of every error code, and the message box
 * (#message, whose data-code names the error shown). */
import { $ } from './dom.js';
import { state } from './state.js';

/** The Vietnamese label of each round status. */
export const STATUS_LABELS = {
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
  round_not_open: (ctx) => {
    // ctx.status: the round's status (a normalised error's HTTP status is a number)
    const status = typeof ctx.status === 'string' ? ctx.status : (state.round || {}).status;
    if (status === 'paused') return ERROR_MESSAGES.round_paused;
    if (status === 'closed') return ERROR_MESSAGES.round_closed;
    return status && status !== 'open' && STATUS_LABELS[status]
      ? `Đợt bình chọn hiện không nhận phiếu (trạng thái: ${STATUS_LABELS[status].toLowerCase()}).`
      : 'Đợt bình chọn hiện không nhận phiếu.';
  },
  round_paused: 'Đợt bình chọn đang tạm dừng nên chưa nhận phiếu. Lựa chọn của bạn vẫn được giữ; hãy gửi phiếu khi đợt bình chọn tiếp tục.',
  round_closed: 'Đợt bình chọn đã kết thúc, không nhận thêm phiếu.',
  framed: 'Trang đang nằm trong một trang web khác. Hãy mở trang bình chọn trong thẻ mới để gửi phiếu.',
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
  challenge_stale: 'Mạng của bạn vừa nhận thêm nhiều lượt xác minh, cần giải lại bước xác minh thiết bị. Vui lòng thử lại.',
  challenge_wrong_round: 'Bước xác minh thiết bị được làm cho một đợt bình chọn khác. Vui lòng tải lại trang rồi thử lại.',
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

/**
 * The text for an error code; `ctx` (a normalised error or extra values) fills the blanks,
 * with the current round's min, max and status by default.
 */
export function messageFor(code, ctx = {}) {
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

/** Show a message in the box: `kind` 'error', 'info' or 'success'; `code` goes to data-code. */
export function showMessage(textValue, kind, code) {
  const box = $('message');
  $('message-text').textContent = textValue;
  box.dataset.code = code || '';
  box.className = `message message-shown message-${kind}`;
  $('message-close').hidden = false;
}

/** Show the text of an error (a code, or a normalised error with its context). */
export function showError(error) {
  const code = typeof error === 'string' ? error : error.code;
  const ctx = typeof error === 'string' ? {} : error;
  showMessage(messageFor(code, ctx), 'error', code);
}

/** Show an information message. */
export function showInfo(textValue) {
  showMessage(textValue, 'info', '');
}

/** Empty and hide the message box. */
export function hideMessage() {
  const box = $('message');
  box.className = 'message';
  $('message-text').textContent = '';
  $('message-close').hidden = true;
  box.dataset.code = '';
}
