/* Offline use of the public page: the service worker (/sw.js) and the offline state.
 *
 * - Registers /sw.js (scope /) a few seconds after the page has loaded, when the browser is
 *   idle, so it never competes with the first paint; then hands the worker the GET URLs this page fetched before
 *   the worker controlled it (the round, its candidates, photos) to keep for an offline reload.
 *   When that is done, <html data-offline-ready> is set.
 * - While the browser is offline: a Vietnamese banner under the site header says so, the page
 *   carries <html data-offline>, and casting is blocked with a clear message before anything is
 *   sent (the service worker never caches nor queues a POST: nothing is sent later behind the
 *   voter's back).
 * Loaded by index.html as its own module, before main.js.
 */

const BANNER_ID = 'offline-banner';
const OFFLINE_TEXT = 'Bạn đang ngoại tuyến. Trang đang hiển thị dữ liệu đã lưu lần trước, có thể chưa cập nhật. '
  + 'Chưa gửi được phiếu cho đến khi có kết nối mạng trở lại.';
const BLOCKED_TEXT = 'Không có kết nối mạng nên chưa gửi được. Lựa chọn của bạn vẫn được giữ trên trang, '
  + 'hãy gửi lại khi có mạng. Trang không lưu phiếu để tự gửi sau.';
/* The controls that send a ballot or ask for a credential. */
const SENDING = '#cast, #confirm, #voter-code-submit, #otp-send, #otp-verify';
/* API answers worth keeping for an offline reload (the service worker checks again). */
const KEPT = /^\/api\/v1\/(?:rounds(?:\/|$)|privacy$)/;

function offline() {
  return navigator.onLine === false;
}

function banner() {
  let box = document.getElementById(BANNER_ID);
  if (!box) {
    box = document.createElement('div');
    box.id = BANNER_ID;
    box.className = 'wrap';
    box.hidden = true;
    const p = document.createElement('p');
    p.className = 'notice';
    p.setAttribute('role', 'status');
    p.textContent = OFFLINE_TEXT;
    box.append(p);
    const header = document.querySelector('.site-header');
    if (header) header.after(box);
    else document.body.prepend(box);
  }
  return box;
}

/** Show or hide the offline banner and the <html data-offline> flag. */
export function renderOffline() {
  const now = offline();
  document.documentElement.toggleAttribute('data-offline', now);
  if (now || document.getElementById(BANNER_ID)) banner().hidden = !now;
}

/* Capture phase: runs before the page's own handlers, which never see a click while offline. */
function blockWhileOffline(event) {
  if (!offline()) return;
  const source = event.type === 'submit' ? event.submitter || event.target : event.target;
  const target = source instanceof Element ? source.closest(SENDING) : null;
  if (!target) return;
  event.preventDefault();
  event.stopImmediatePropagation();
  const text = banner().querySelector('p');
  text.textContent = BLOCKED_TEXT;
  text.setAttribute('role', 'alert');
  banner().hidden = false;
  const dialog = target.closest('dialog');
  if (dialog && dialog.open) dialog.close();
}

function fetchedUrls() {
  const urls = new Set();
  for (const entry of performance.getEntriesByType('resource')) {
    const url = new URL(entry.name);
    if (url.origin === location.origin && KEPT.test(url.pathname)) urls.add(url.pathname + url.search);
  }
  for (const img of document.images) {
    const url = img.currentSrc ? new URL(img.currentSrc) : null;
    if (url && url.origin === location.origin && KEPT.test(url.pathname)) urls.add(url.pathname + url.search);
  }
  return [...urls];
}

/* Ask the worker to keep what this page loaded before it was in control. */
function warm(worker) {
  return new Promise((resolve) => {
    const channel = new MessageChannel();
    channel.port1.onmessage = () => resolve();
    worker.postMessage({ type: 'warm', urls: fetchedUrls() }, [channel.port2]);
    setTimeout(resolve, 15000);
  });
}

async function register() {
  if (!('serviceWorker' in navigator) || !window.isSecureContext) return;
  try {
    await navigator.serviceWorker.register('/sw.js', { scope: '/' });
    const registration = await navigator.serviceWorker.ready;
    if (registration.active) await warm(registration.active);
    document.documentElement.setAttribute('data-offline-ready', '');
  } catch (_) {
    /* no worker (private mode, blocked storage): the page works online as before */
  }
}

/* Three seconds after the load event, when the browser is idle: the worker is for the next
 * visit, not this one. */
function whenIdle(fn) {
  const idle = () => (window.requestIdleCallback ? requestIdleCallback(fn, { timeout: 5000 }) : fn());
  const later = () => setTimeout(idle, 3000);
  if (document.readyState === 'complete') later();
  else window.addEventListener('load', later, { once: true });
}

window.addEventListener('online', renderOffline);
window.addEventListener('offline', renderOffline);
document.addEventListener('click', blockWhileOffline, true);
document.addEventListener('submit', blockWhileOffline, true);
if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', renderOffline, { once: true });
else renderOffline();
whenIdle(register);
