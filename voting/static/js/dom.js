/* DOM building and text formatting helpers. No state, no network.
 *
 * Every piece of text that comes from the API is put in the page with textContent (never
 * innerHTML), through el() or text(), so candidate data cannot inject markup.
 */

/** The element with this id. */
export const $ = (id) => document.getElementById(id);

/**
 * A new element: `props` are set as properties or attributes (className, text, dataset and
 * event handlers such as onclick are understood; null/undefined/false are skipped), then the
 * children (nodes or strings, null/undefined/false skipped) are appended.
 */
export function el(tag, props, ...children) {
  const node = document.createElement(tag);
  if (props) {
    for (const [key, value] of Object.entries(props)) {
      if (value === undefined || value === null || value === false) continue;
      if (key === 'className') node.className = value;
      else if (key === 'text') node.textContent = String(value);
      else if (key === 'dataset') Object.assign(node.dataset, value);
      else if (key in node && typeof value !== 'string') node[key] = value;
      else node.setAttribute(key, value === true ? '' : String(value));
    }
  }
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** A span read only by screen readers. */
export function srOnly(text) {
  return el('span', { className: 'sr-only', text });
}

/** `value` as a string; '' for null and undefined. */
export function text(value) {
  return value === null || value === undefined ? '' : String(value);
}

/** Lower case without Vietnamese diacritics (đ → d), for searching. */
export function fold(value) {
  return text(value)
    .normalize('NFD')
    .replace(/[\u0300-\u036f]/g, '')
    .replace(/đ/g, 'd')
    .replace(/Đ/g, 'D')
    .toLowerCase();
}

/** The initials of a name: first and last word, '?' for an empty name. */
function initials(name) {
  const words = text(name).trim().split(/\s+/).filter(Boolean);
  if (words.length === 0) return '?';
  const first = Array.from(words[0])[0];
  if (words.length === 1) return first.toLocaleUpperCase('vi');
  const last = Array.from(words[words.length - 1])[0];
  return (first + last).toLocaleUpperCase('vi');
}

const numberFormat = new Intl.NumberFormat('vi-VN');

/** A number in Vietnamese notation (1.234); anything else as text. */
export function formatNumber(n) {
  return typeof n === 'number' ? numberFormat.format(n) : text(n);
}

const DATE_OPTIONS = {
  hour: '2-digit', minute: '2-digit', day: '2-digit', month: '2-digit', year: 'numeric',
};
let dateFormat;
try {
  dateFormat = new Intl.DateTimeFormat('vi-VN', { ...DATE_OPTIONS, timeZone: 'Asia/Ho_Chi_Minh' });
} catch (_) {
  dateFormat = new Intl.DateTimeFormat('vi-VN', DATE_OPTIONS);
}

/** An ISO date-time as Vietnamese date and time in Asia/Ho_Chi_Minh; '' for none. */
export function formatDate(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? text(iso) : dateFormat.format(d);
}

/* The photo sizes the API serves (GET .../photo?size=): pixels of each, for the <img>'s
 * width and height (its aspect ratio; CSS sets the drawn size). */
const PHOTO_SIZES = { card: [192, 192], profile: [480, 600] };

/** The URL of one size of the person's photo: photo_url (same origin only) with ?size=. */
function photoUrl(person, size) {
  const raw = typeof person.photo_url === 'string' ? person.photo_url.trim() : '';
  if (!raw) return '';
  let url;
  try {
    url = new URL(raw, window.location.href);
  } catch (_) {
    return '';
  }
  if (url.origin !== window.location.origin) return '';
  url.searchParams.set('size', size);
  return url.pathname + url.search;
}

/* The display width (CSS px) of each size where it is drawn, for the <img>'s `sizes`. */
const DRAWN = { card: '56px', profile: '96px' };

/**
 * Fill `box` with the person's photo in `size` ('card' or 'profile'; lazy-loaded, alt
 * "Ảnh của <name>", width/height of the served size, a srcset of the sizes the API serves of
 * that shape so a dense screen may take the larger), or their initials (decorative, hidden
 * from screen readers) when there is none or it fails to load.
 */
export function fillAvatar(box, person, size = 'card') {
  box.textContent = '';
  const showInitials = () => {
    box.textContent = initials(person.full_name);
    box.classList.remove('avatar-photo');
    box.classList.add('avatar-initials');
    box.setAttribute('aria-hidden', 'true');
  };
  const url = photoUrl(person, size);
  if (url) {
    const [width, height] = PHOTO_SIZES[size] || PHOTO_SIZES.card;
    box.classList.remove('avatar-initials');
    box.classList.add('avatar-photo');
    box.removeAttribute('aria-hidden');
    const img = el('img', {
      alt: `Ảnh của ${text(person.full_name)}`, loading: 'lazy', decoding: 'async', width, height,
    });
    img.addEventListener('error', showInitials, { once: true });
    // the card's square (192 px) suits 1x to 3x screens at 56 px; the profile's portrait
    // (480 px wide) is the one size of its shape
    img.srcset = `${url} ${width}w`;
    img.sizes = DRAWN[size] || DRAWN.card;
    img.src = url;
    box.append(img);
  } else {
    showInitials();
  }
}

/** A new avatar box for the person: the card size, or the profile size when `large`. */
export function avatar(person, large) {
  const box = el('div', { className: large ? 'avatar avatar-lg' : 'avatar' });
  fillAvatar(box, person, large ? 'profile' : 'card');
  return box;
}

/** Open a <dialog> as modal (or just mark it open where showModal is missing). */
export function openDialog(dialog) {
  if (dialog.open) return;
  if (typeof dialog.showModal === 'function') dialog.showModal();
  else dialog.setAttribute('open', '');
}

/** Close a <dialog> if it is open. */
export function closeDialog(dialog) {
  if (!dialog.open) return;
  if (typeof dialog.close === 'function') dialog.close();
  else dialog.removeAttribute('open');
}

/** Close the dialog on a click on its backdrop, when `mayClose()` says so. */
export function closeOnBackdrop(dialog, mayClose) {
  dialog.addEventListener('click', (event) => {
    if (event.target === dialog && mayClose()) closeDialog(dialog);
  });
}
