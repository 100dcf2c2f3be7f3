/* The results (#results): provisional or final counts, the winners as photo cards, the ranked
 * table, a tie or the committee's decision, the quarantine counts, and links to the
 * commitments and (once official) the audit package, as GET /rounds/{id}/results gives them.
 * For a closed round or one whose results are live they are the first thing on the page
 * (resultsFirst(), placeResults()); otherwise below the list. */
import { api, NetworkError } from './api.js';
import { $, avatar, el, formatNumber } from './dom.js';
import { messageFor } from './messages.js';
import { renderQuarantine } from './quarantine.js';
import { state } from './state.js';

/** Whether the results come first: the round is closed, or its results are live. */
export function resultsFirst() {
  const r = state.round;
  return Boolean(r) && (r.status === 'closed' || (r.results_visibility === 'live' && r.status !== 'draft'));
}

/** Put #results right after the round's panel (results first) or after the list, with the link to the list. */
export function placeResults() {
  const section = $('results');
  const first = resultsFirst();
  (first ? $('round-info') : $('vote')).after(section);
  section.classList.toggle('results-first', first);
  $('results-to-list').hidden = !first;
}

function failedLoad(body, message) {
  body.append(el('p', { className: 'error-text' }, 'Không tải được kết quả. ', message),
    el('button', {
      type: 'button', className: 'btn btn-secondary btn-small', text: 'Thử lại',
      onclick: async () => {
        await loadResults();
        const again = body.querySelector('button');
        (again || $('results-title')).focus();
      },
    }));
}

/** Fetch and show the results of the current round (or why they are not shown, with a retry on failure). */
export async function loadResults() {
  const round = state.round;
  if (!round) return;
  const section = $('results');
  const body = $('results-body');
  section.hidden = false;
  body.setAttribute('aria-busy', 'true');
  $('results-refresh').disabled = true;
  try {
    const res = await api(`/rounds/${round.id}/results`);
    body.textContent = '';
    if (res.ok && res.data) renderResults(res.data);
    else if (res.error.code === 'results_hidden') {
      body.append(el('p', { className: 'results-hidden', text: messageFor('results_hidden') }));
    } else {
      failedLoad(body, messageFor(res.error.code, res.error));
    }
  } catch (err) {
    body.textContent = '';
    failedLoad(body, messageFor(err instanceof NetworkError ? 'network' : 'unknown'));
  } finally {
    body.setAttribute('aria-busy', 'false');
    $('results-refresh').disabled = false;
  }
}

function renderResults(r) {
  const body = $('results-body');
  const winners = new Set(Array.isArray(r.winners) ? r.winners : []);
  const tie = r.tie && typeof r.tie === 'object' ? r.tie : null;
  const tied = new Set(tie && Array.isArray(tie.candidate_ids) ? tie.candidate_ids : []);
  const rows = Array.isArray(r.candidates) ? r.candidates : [];
  const nameOf = (id) => {
    const row = rows.find((x) => x.candidate_id === id);
    if (row) return row.full_name;
    const c = state.byId.get(id);
    return c ? c.full_name : `#${id}`;
  };

  const decision = r.decision && typeof r.decision === 'object' ? r.decision : null;
  const chosen = new Set(decision && Array.isArray(decision.chosen) ? decision.chosen : []);
  const ids = (list) => new Set(Array.isArray(list) ? list : []);
  const byRule = ids(r.seated_by_rule);
  const entered = ids(r.entered_by_rule);
  const displaced = ids(r.displaced_by_rule);
  const elected = Array.isArray(r.elected) ? new Set(r.elected) : null;
  const undecided = r.undecided && typeof r.undecided === 'object' ? r.undecided : null;
  const ruleName = r.tie_break === 'draw' ? 'bốc thăm' : 'ưu tiên lĩnh vực';
  const official = r.official === true;
  let badge = 'Kết quả tạm thời';
  if (official) badge = 'Kết quả chính thức';
  else if (r.final) badge = 'Đã kiểm đếm, chờ công bố chính thức';
  body.append(el('p', { className: 'results-meta' },
    el('span', {
      className: official ? 'status-badge result-final' : 'status-badge result-provisional',
      text: badge,
    }),
    ' ',
    el('span', null, `Tổng số phiếu: ${formatNumber(r.total_ballots)}`)));
  body.append(winnerCards(r, rows, elected || new Set([...winners, ...chosen, ...byRule])));
  if (!r.final) {
    body.append(el('p', {
      className: 'muted small',
      text: 'Số liệu có thể còn thay đổi. Kết quả chính thức được công bố sau khi đợt bình chọn kết thúc và toàn bộ phiếu được kiểm đếm.',
    }));
  }

  if (tie && tied.size && byRule.size) {
    const draw = r.draw && typeof r.draw === 'object' ? r.draw : null;
    const note = el('div', { className: 'tie-note', role: 'note', dataset: { rule: r.tie_break } },
      el('strong', { text: r.tie_break === 'draw' ? 'Bốc thăm công khai: ' : 'Ưu tiên lĩnh vực: ' }),
      `${tied.size} gương điển hình cùng xếp hạng ${tie.rank} tranh ${tie.seats} suất còn lại; `
      + `theo quy tắc công bố trước khi mở, ${Array.from(byRule, nameOf).join(', ')} được chọn.`);
    if (draw && draw.seed) {
      note.append(' Số bốc thăm: ', el('code', { className: 'hash', text: draw.seed }),
        '; mã băm SHA-256 của nó, công bố từ khi mở: ',
        el('code', { className: 'hash', text: draw.commitment }),
        '. Thứ tự theo mã băm SHA-256 của “số bốc thăm:mã người”, từ nhỏ đến lớn:');
      const order = el('ol', { className: 'draw-order' });
      for (const line of Array.isArray(draw.order) ? draw.order : []) {
        order.append(el('li', null, `${nameOf(line.candidate_id)} (${line.code}): `,
          el('code', { className: 'hash', text: line.number })));
      }
      note.append(order);
    }
    if (undecided && !decision) {
      note.append(` Quy tắc không tự phân định được ${undecided.seats} suất còn lại; Ban Thường vụ quyết định.`);
    }
    body.append(note);
  }
  if (tie && tied.size && decision) {
    const [y, m, d] = String(decision.decided_on).split('-');
    body.append(el('div', { className: 'tie-note', role: 'note' },
      el('strong', { text: `Quyết định của ${decision.decided_by}: ` }),
      `${tied.size} gương điển hình cùng xếp hạng ${tie.rank} tranh ${tie.seats} suất còn lại; `
      + `ngày ${d}/${m}/${y}, ${decision.decided_by} quyết định chọn `
      + `${Array.from(chosen, nameOf).join(', ')}. Đây là quyết định theo quy chế, không phải số phiếu.`));
  } else if (tie && tied.size && !byRule.size) {
    const names = Array.from(tied, nameOf).join(', ');
    const votesRow = rows.find((x) => tied.has(x.candidate_id));
    const votes = votesRow ? ` với ${formatNumber(votesRow.votes)} phiếu` : '';
    let how = 'việc xác định người được chọn do Ban Thường vụ quyết định theo quy chế của đợt bình chọn.';
    if (r.tie_break === 'draw') how = 'người được chọn sẽ được xác định bằng bốc thăm công khai sau khi kiểm đếm xong.';
    else if (r.tie_break === 'field_balance' && !undecided) how = 'người được chọn sẽ được xác định theo quy tắc ưu tiên lĩnh vực sau khi kiểm đếm xong.';
    body.append(el('div', { className: 'tie-note', role: 'note' },
      el('strong', { text: 'Có đồng phiếu ở vị trí cuối danh sách: ' }),
      `${tied.size} gương điển hình cùng xếp hạng ${tie.rank}${votes} (${names}) `
      + `tranh ${tie.seats} suất còn lại. Trang này không tự chọn người nào; ${how}`));
  }
  if (entered.size) {
    const swaps = (r.entered_by_rule || []).map((x, i) => `${nameOf(x)} vào thay ${nameOf(r.displaced_by_rule[i])}`);
    body.append(el('div', { className: 'tie-note', role: 'note', dataset: { rule: 'field-minimum' } },
      el('strong', { text: 'Số người trúng chọn tối thiểu mỗi lĩnh vực: ' }),
      `theo quy định công bố trước khi mở (ít nhất ${r.field_minimum} người mỗi lĩnh vực), `
      + `${swaps.join('; ')}.`));
  }

  if (rows.length === 0) {
    body.append(el('p', { className: 'muted', text: 'Chưa có dữ liệu kết quả.' }));
    renderQuarantine(r, body);
    body.append(checkLinks(r));
    return;
  }

  const maxVotes = Math.max(1, ...rows.map((x) => Number(x.votes) || 0));
  const winnerLabel = r.final ? 'Trúng chọn' : 'Đang dẫn đầu';
  const tbody = el('tbody');
  for (const row of rows) {
    const id = row.candidate_id;
    const byDecision = chosen.has(id);
    const isWinner = elected ? elected.has(id) : winners.has(id) || byDecision;
    const isTie = tied.has(id) && !isWinner && !displaced.has(id);
    let how = '';
    if (entered.has(id)) how = ' (tối thiểu mỗi lĩnh vực)';
    else if (byRule.has(id)) how = ` (${ruleName})`;
    else if (byDecision) how = ' (theo quyết định)';
    const bar = el('span', { className: 'vote-bar', 'aria-hidden': 'true' });
    bar.style.width = `${Math.round(((Number(row.votes) || 0) / maxVotes) * 100)}%`;
    const tr = el('tr', {
      className: [isWinner ? 'is-winner' : '', isTie ? 'is-tie' : ''].join(' ').trim() || null,
      dataset: { resultCandidateId: String(row.candidate_id) },
    },
    el('td', { className: 'col-rank', text: row.rank }),
    el('td', { className: 'col-name' },
      el('span', { className: 'result-name', text: row.full_name }),
      el('span', { className: 'result-sub', text: [row.code, row.field].filter(Boolean).join(' · ') }),
      isWinner ? el('span', {
        className: 'mark mark-winner',
        text: `${winnerLabel}${how}`,
      }) : null,
      displaced.has(id) ? el('span', { className: 'mark mark-tie', text: 'Nhường suất (tối thiểu mỗi lĩnh vực)' }) : null,
      isTie ? el('span', { className: 'mark mark-tie', text: decision || elected ? 'Đồng phiếu, không được chọn' : 'Đồng phiếu' }) : null),
    el('td', { className: 'col-votes' },
      el('span', { className: 'votes-num', text: formatNumber(row.votes) }),
      el('span', { className: 'vote-track', 'aria-hidden': 'true' }, bar)));
    tbody.append(tr);
  }
  const table = el('table', { className: 'results-table' },
    el('caption', { className: 'sr-only', text: 'Bảng kết quả bình chọn theo số phiếu' }),
    el('thead', null, el('tr', null,
      el('th', { scope: 'col', className: 'col-rank', text: 'Hạng' }),
      el('th', { scope: 'col', text: 'Gương điển hình' }),
      el('th', { scope: 'col', className: 'col-votes', text: 'Số phiếu' }))),
    tbody);
  body.append(el('div', { className: 'table-wrap' }, table));
  const winnerCount = winners.size;
  const seats = state.round && state.round.winners;
  if (seats) {
    const known = elected ? elected.size : winnerCount + chosen.size + byRule.size;
    let summary = `${known}/${seats} suất đã xác định`;
    if (!elected && tie) summary += `; ${seats - known} suất còn lại chờ xác định do đồng phiếu`;
    body.append(el('p', { className: 'muted small', text: `${summary}.` }));
  }
  renderQuarantine(r, body);
  body.append(checkLinks(r));
}

/* The winners as photo cards (photo or initials, name, code, field, votes), in rank order. */
function winnerCards(r, rows, elected) {
  const list = el('ol', { className: 'winner-cards', 'aria-label': r.final ? 'Những người trúng chọn' : 'Những người đang dẫn đầu' });
  for (const row of rows) {
    if (!elected.has(row.candidate_id)) continue;
    const c = state.byId.get(row.candidate_id) || { full_name: row.full_name, photo_url: null };
    list.append(el('li', { className: 'winner-card', dataset: { winnerId: String(row.candidate_id) } },
      avatar(c, false),
      el('span', { className: 'winner-rank', text: `Hạng ${row.rank}` }),
      el('span', { className: 'winner-name', text: row.full_name }),
      el('span', { className: 'result-sub', text: [row.code, row.field].filter(Boolean).join(' · ') }),
      el('span', { className: 'winner-votes', text: `${formatNumber(row.votes)} phiếu` })));
  }
  const box = el('div', { className: 'winners-block' },
    el('h3', { className: 'h-small', text: r.final ? 'Những người trúng chọn' : 'Đang dẫn đầu (tạm thời)' }));
  if (!list.children.length) {
    box.append(el('p', { className: 'muted small', text: 'Chưa có người nào chắc chắn trong nhóm trúng chọn.' }));
  } else {
    box.append(list);
  }
  return box;
}

/* Where anyone checks the count: the commitments (always) and the audit package (once official). */
function checkLinks(r) {
  const id = encodeURIComponent(state.round.id);
  const box = el('div', { className: 'check-links' },
    el('h3', { className: 'h-small', text: 'Tự kiểm tra kết quả' }));
  const list = el('ul', { className: 'small' },
    el('li', null, el('a', { href: `/api/v1/rounds/${id}/commitments`, text: 'Các cam kết đã công bố (JSON)' }),
      ': mã băm của từng lô phiếu, công bố trong khi bình chọn.'));
  if (r.official === true) {
    list.append(el('li', null, el('a', { href: `/api/v1/rounds/${id}/audit`, download: '', text: 'Gói kiểm tra (ZIP)' }),
      ': toàn bộ dữ liệu để đếm lại phiếu và đối chiếu với các cam kết (chạy python3 verify.py).'));
  } else {
    list.append(el('li', { className: 'muted', text: 'Gói kiểm tra để đếm lại phiếu sẽ có khi kết quả được công bố chính thức.' }));
  }
  list.append(el('li', null, el('a', { href: '/kiem-tra', text: 'Kiểm tra phiếu của bạn bằng mã biên nhận' })));
  box.append(list);
  return box;
}
