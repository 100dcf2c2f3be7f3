/* The page inside another site's frame (the bloc's portal embeds it): Chromium partitions a
 * third-party frame's storage, so a credential minted there is forgotten on the next visit and
 * the same browser could cast a second ballot. A framed page therefore reads (profiles,
 * results) but does not vote: #framed explains it and opens the page top-level, unless the
 * Storage Access API says the frame already reaches the browser's own storage. */
import { $ } from './dom.js';

/** Whether this page is in a frame (a cross-origin parent counts: reading window.top throws). */
function inFrame() {
  try {
    return window.top !== window.self;
  } catch (_) {
    return true;
  }
}

/**
 * Decide once, on load, whether voting is handed off to a top-level window. Resolves to true
 * when the page is framed without access to its unpartitioned storage
 * (document.hasStorageAccess(); absent or failing counts as no access).
 */
export async function detectFrame() {
  if (!inFrame()) return false;
  let access = false;
  try {
    if (typeof document.hasStorageAccess === 'function') access = await document.hasStorageAccess();
  } catch (_) {
    access = false;
  }
  return !access;
}

/** Show the hand-off panel, its link opening this very address top-level. */
export function showHandOff() {
  $('framed').hidden = false;
  $('framed-open').href = window.location.href;
}
