/* The public page's service worker, served at /sw.js (scope /) by voting/http/page.py, which
 * writes this deploy's VERSION and PRECACHE below (the hashes of the static files).
 *
 * What it does, so that a voter who loaded the page once can reload it offline and still read
 * the round:
 * - install: precache the page shell (/) and the hashed stylesheet and modules;
 * - activate: delete the caches of every other version (a new deploy replaces the old cache),
 *   take control of the open pages;
 * - navigations (/, /?round=, /r/<slug>[/<code>]): network first, else the cached page of that
 *   URL, else the shell (the page's script reads the round from the address);
 * - GET /api/v1/rounds..., /api/v1/privacy: network first, the cached answer when offline;
 * - candidate photos: cache first, at most MAX_PHOTOS kept;
 * - hashed /static files: cache first (their bytes never change).
 * Never touched (left to the network, never cached nor queued): anything but GET (ballots,
 * credentials), receipts and their checks, the proof-of-work challenge, /api/v1/voters,
 * the audit package, /admin, /schema, other origins.
 */
'use strict';

const VERSION = "__VERSION__";
const PRECACHE = ["__PRECACHE__"];
const SHELL = `voting-shell-${VERSION}`;
const DATA = `voting-data-${VERSION}`;
const PHOTOS = `voting-photos-${VERSION}`;
const MAX_PHOTOS = 120;

const HASHED = /^\/static\/.+\.[0-9a-f]{10}\.[a-z0-9]+$/;
const PHOTO = /^\/api\/v1\/rounds\/\d+\/candidates\/\d+\/photo$/;
const NEVER = /^\/(?:admin|schema|kiem-tra)(?:\/|$)|^\/api\/v1\/(?:voters|receipts|challenge)(?:\/|$)|\/(?:ballots|audit)$/;

self.addEventListener('install', (event) => {
  event.waitUntil(
    caches.open(SHELL).then((cache) => cache.addAll(PRECACHE)).then(() => self.skipWaiting()),
  );
});

self.addEventListener('activate', (event) => {
  const keep = new Set([SHELL, DATA, PHOTOS]);
  event.waitUntil(
    caches.keys()
      .then((names) => Promise.all(
        names.filter((name) => name.startsWith('voting-') && !keep.has(name)).map((name) => caches.delete(name)),
      ))
      .then(() => self.clients.claim()),
  );
});

/* Keep at most `max` entries in `cache`, the oldest put first out. */
async function trim(cacheName, max) {
  const cache = await caches.open(cacheName);
  const keys = await cache.keys();
  await Promise.all(keys.slice(0, Math.max(0, keys.length - max)).map((key) => cache.delete(key)));
}

async function networkFirst(request, cacheName, fallbackUrl) {
  const cache = await caches.open(cacheName);
  try {
    const response = await fetch(request);
    if (response.ok) await cache.put(request, response.clone());
    return response;
  } catch (err) {
    const hit = await cache.match(request) || (fallbackUrl && await caches.match(fallbackUrl));
    if (hit) return hit;
    throw err;
  }
}

async function cacheFirst(request, cacheName, max) {
  const cache = await caches.open(cacheName);
  const hit = await cache.match(request);
  if (hit) return hit;
  const response = await fetch(request);
  if (response.ok) {
    await cache.put(request, response.clone());
    if (max) trim(cacheName, max);
  }
  return response;
}

/* Which strategy a GET of our origin gets, or null: left to the network. */
function route(url, request) {
  const path = url.pathname;
  if (NEVER.test(path)) return null;
  if (request.mode === 'navigate') {
    if (path === '/' || path.startsWith('/r/')) return () => networkFirst(request, SHELL, '/');
    return null;
  }
  if (PHOTO.test(path)) return () => cacheFirst(request, PHOTOS, MAX_PHOTOS);
  if (path.startsWith('/api/v1/rounds') || path === '/api/v1/privacy') return () => networkFirst(request, DATA);
  if (HASHED.test(path)) return () => cacheFirst(request, SHELL);
  return null;
}

self.addEventListener('fetch', (event) => {
  const { request } = event;
  if (request.method !== 'GET') return; // ballots and credentials: the network, or an error
  const url = new URL(request.url);
  if (url.origin !== self.location.origin) return;
  const handle = route(url, request);
  if (handle) event.respondWith(handle());
});

/* The page (js/offline.js) sends the GET URLs it fetched before this worker controlled it
 * ({type: 'warm', urls}); they are cached as if fetched through it, then the port is told. */
self.addEventListener('message', (event) => {
  const data = event.data || {};
  if (data.type !== 'warm' || !Array.isArray(data.urls)) return;
  const reply = event.ports && event.ports[0];
  const work = Promise.all(data.urls.map(async (href) => {
    const url = new URL(href, self.location.origin);
    if (url.origin !== self.location.origin) return;
    const request = new Request(url.href, { credentials: 'same-origin', headers: { Accept: 'application/json' } });
    if (!route(url, request)) return;
    const name = PHOTO.test(url.pathname) ? PHOTOS : (HASHED.test(url.pathname) ? SHELL : DATA);
    const cache = await caches.open(name);
    if (await cache.match(request)) return;
    try {
      const response = await fetch(request);
      if (response.ok) await cache.put(request, response);
    } catch (_) { /* offline already: nothing to keep */ }
  })).then(() => trim(PHOTOS, MAX_PHOTOS));
  event.waitUntil(work.then(() => { if (reply) reply.postMessage({ type: 'warmed', version: VERSION }); }));
});
