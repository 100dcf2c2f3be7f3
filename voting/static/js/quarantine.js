/* Quarantine, as voters read it: the detection rules fixed with the round (#round-detection,
 * from GET /rounds/{id}: `detection`) and, with the results, the ballots each rule set aside
 * and what the committee decided (`quarantine` of GET /rounds/{id}/results). */
import { $, el, formatNumber } from './dom.js';

/** Fill #round-detection with the round's detection rules (hidden when the round has none). */
export function renderDetectionRules(round) {
  const box = $('round-detection');
  if (!box) return;
  box.textContent = '';
  const d = round && round.detection && typeof round.detection === 'object' ? round.detection : null;
  const rules = d && Array.isArray(d.rules) ? d.rules : [];
  box.hidden = rules.length === 0;
  if (!rules.length) return;
  const list = el('ul', { className: 'detection-rules' });
  for (const rule of rules) list.append(el('li', { className: rule.active ? null : 'muted', text: rule.text }));
  box.append(el('details', null,
    el('summary', { text: 'Quy tắc phát hiện phiếu bất thường' }),
    el('p', { className: 'small', text: d.preamble || '' }),
    list));
}

const DECIDED = {
  count: 'đã xem xét, quyết định tính',
  void: 'đã xem xét, quyết định không tính',
};

/** The quarantine lines of results `r` (a block appended to `body`; nothing without any). */
export function renderQuarantine(r, body) {
  const q = r && r.quarantine && typeof r.quarantine === 'object' ? r.quarantine : null;
  if (!q || !Array.isArray(q.reasons)) return;
  const box = el('div', { className: 'quarantine-note', role: 'note' });
  box.append(el('h3', { text: 'Phiếu tạm giữ để xem xét' }));
  if (!q.flagged) {
    box.append(el('p', { className: 'small', text: 'Không có phiếu nào bị quy tắc phát hiện đánh dấu.' }));
    body.append(box);
    return;
  }
  const lead = q.excluded
    ? `${formatNumber(q.flagged)} phiếu bị đánh dấu theo quy tắc phát hiện; ${formatNumber(q.set_aside)} phiếu không tính vào tổng số phiếu ở trên.`
    : `${formatNumber(q.flagged)} phiếu đang bị đánh dấu theo quy tắc phát hiện. Số liệu tạm thời vẫn gồm cả các phiếu này; kết quả cuối cùng chỉ tính các nhóm được quyết định tính.`;
  box.append(el('p', { className: 'small', text: lead }));
  const tbody = el('tbody');
  for (const line of q.reasons) {
    if (!line.flagged) continue;
    const state = DECIDED[line.decision] || 'chờ xem xét';
    tbody.append(el('tr', { dataset: { quarantineReason: line.reason } },
      el('td', null,
        el('span', { className: 'result-name', text: line.text }),
        el('span', { className: 'result-sub', text: line.note ? `${state}: ${line.note}` : state })),
      el('td', { className: 'col-votes', text: formatNumber(line.flagged) }),
      el('td', { className: 'col-votes', text: formatNumber(line.counted) }),
      el('td', { className: 'col-votes', text: formatNumber(line.voided) }),
      el('td', { className: 'col-votes', text: formatNumber(line.pending) })));
  }
  box.append(el('div', { className: 'table-wrap' }, el('table', { className: 'results-table quarantine-table' },
    el('caption', { className: 'sr-only', text: 'Số phiếu tạm giữ theo lý do' }),
    el('thead', null, el('tr', null,
      el('th', { scope: 'col', text: 'Lý do' }),
      el('th', { scope: 'col', className: 'col-votes', text: 'Bị đánh dấu' }),
      el('th', { scope: 'col', className: 'col-votes', text: 'Tính sau xem xét' }),
      el('th', { scope: 'col', className: 'col-votes', text: 'Không tính' }),
      el('th', { scope: 'col', className: 'col-votes', text: 'Chờ xem xét' }))),
    tbody)));
  body.append(box);
}
