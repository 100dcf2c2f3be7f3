/* Addresses of the page: a round is /r/<slug>, one of its candidates /r/<slug>/<code> (the
 * server answers both with this page). Opening a profile pushes the candidate's address,
 * closing it goes back to the round's, and the browser's back and forward buttons follow. */

const PATH = /^\/r\/([^/]+)(?:\/([^/]+))?\/?$/;

/** The slug and candidate code in the address: {slug, code} (either may be null). */
export function parseLocation() {
  const m = PATH.exec(window.location.pathname);
  if (!m) return { slug: null, code: null };
  const part = (s) => {
    try {
      return s ? decodeURIComponent(s) : null;
    } catch (_) {
      return null;
    }
  };
  return { slug: part(m[1]), code: part(m[2]) };
}

/** The address of a round (by slug), or of one of its candidates when `code` is given. */
export function roundPath(slug, code) {
  const base = `/r/${encodeURIComponent(slug)}`;
  return code ? `${base}/${encodeURIComponent(code)}` : base;
}

/** The absolute URL of `path` on this origin (for sharing). */
export function absolute(path) {
  return new URL(path, window.location.origin).href;
}
