/* The public API under /api/v1: one fetch wrapper that never throws on an HTTP error status,
 * and the errors it normalises. */

/** Prefix of every API path. */
export const API = '/api/v1';

/** The server could not be reached (or its answer could not be read). */
export class NetworkError extends Error {}

/** A failure with a normalised error (`error.code`, as in the API's error body). */
export class ApiFailure extends Error {
  /** @param {{code: string}} error a normalised error, see normalizeError() */
  constructor(error) {
    super(error.code);
    this.error = error;
  }
}

/** Seconds to wait from a Retry-After header (delay-seconds or HTTP date); null if absent. */
function parseRetryAfter(value) {
  if (!value) return null;
  const trimmed = value.trim();
  if (/^\d+$/.test(trimmed)) return Math.max(1, parseInt(trimmed, 10));
  const when = Date.parse(trimmed);
  if (Number.isNaN(when)) return null;
  return Math.max(1, Math.ceil((when - Date.now()) / 1000));
}

function fallbackCode(status) {
  if (status === 413) return 'payload_too_large';
  if (status === 429) return 'rate_limited';
  if (status === 503) return 'unavailable';
  if (status === 404) return 'not_found';
  if (status >= 500) return 'internal';
  return 'unknown';
}

/**
 * The error of a failed response: {status, code, serverMessage, ballotId, retryAfter,
 * attemptsLeft, identityMode}; `code` falls back on one made from the HTTP status.
 */
function normalizeError(response, data) {
  const body = data && typeof data === 'object' ? data : {};
  const e = body.error && typeof body.error === 'object' ? body.error : {};
  return {
    status: response.status,
    code: typeof e.code === 'string' && e.code ? e.code : fallbackCode(response.status),
    serverMessage: typeof e.message === 'string' ? e.message : '',
    ballotId: e.ballot_id !== undefined ? e.ballot_id : body.ballot_id,
    retryAfter: parseRetryAfter(response.headers.get('Retry-After')),
    attemptsLeft: typeof e.attempts_left === 'number' ? e.attempts_left : undefined,
    identityMode: typeof e.identity_mode === 'string' ? e.identity_mode : undefined,
  };
}

/**
 * Call the API: `options` {method, body (sent as JSON), headers}. Resolves to
 * {ok, status, data, error} (error normalised, null when ok); rejects with NetworkError only.
 */
export async function api(path, options = {}) {
  const init = {
    method: options.method || 'GET',
    headers: { Accept: 'application/json', ...(options.headers || {}) },
    credentials: 'same-origin',
    cache: 'no-store',
  };
  if (options.body !== undefined) {
    init.body = JSON.stringify(options.body);
    init.headers['Content-Type'] = 'application/json';
  }
  let response;
  let raw;
  try {
    response = await fetch(API + path, init);
    raw = await response.text();
  } catch (err) {
    throw new NetworkError(String(err));
  }
  let data = null;
  if (raw) {
    try {
      data = JSON.parse(raw);
    } catch (_) {
      data = null;
    }
  }
  return {
    ok: response.ok,
    status: response.status,
    data,
    error: response.ok ? null : normalizeError(response, data),
  };
}
