/* The privacy notice (#privacy): its figures come from the server's settings. */
import { api } from './api.js';
import { $ } from './dom.js';

/** Put the server's retention, prefix and lifetime figures in the notice (the page's defaults stay on failure). */
export async function loadPrivacy() {
  try {
    const res = await api('/privacy');
    if (!res.ok || !res.data) return;
    const d = res.data;
    const set = (id, value) => { if (value !== undefined && value !== null) $(id).textContent = String(value); };
    set('privacy-retention', d.ip_retention_days);
    set('privacy-ipv4', d.ipv4_prefix);
    set('privacy-ipv6', d.ipv6_prefix);
    set('privacy-otp-minutes', Math.max(1, Math.round(d.otp_ttl_seconds / 60)));
    set('privacy-token-days', Math.max(1, Math.round(d.voter_token_ttl_seconds / 86400)));
  } catch (_) {
    /* the defaults written in the page stay */
  }
}
