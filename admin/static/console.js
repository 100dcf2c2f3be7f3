// The console's small behaviours (no build step): countdowns to scheduled opening and
// closing, and dropping a file onto an upload form.
"use strict";

function remaining(ms) {
  if (ms <= 0) return "đã đến giờ";
  const s = Math.floor(ms / 1000);
  const d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60), sec = s % 60;
  const parts = [];
  if (d) parts.push(d + " ngày");
  if (d || h) parts.push(h + " giờ");
  parts.push(m + " phút");
  if (!d) parts.push(sec + " giây");
  return "còn " + parts.join(" ");
}

function tickCountdowns() {
  for (const el of document.querySelectorAll("[data-countdown]")) {
    el.textContent = remaining(Date.parse(el.dataset.countdown) - Date.now());
  }
}

function wireDropzones(root) {
  for (const zone of root.querySelectorAll("[data-dropzone]")) {
    if (zone.dataset.wired) continue;
    zone.dataset.wired = "1";
    const input = zone.querySelector("input[type=file]");
    zone.addEventListener("dragover", (e) => { e.preventDefault(); zone.classList.add("over"); });
    zone.addEventListener("dragleave", () => zone.classList.remove("over"));
    zone.addEventListener("drop", (e) => {
      e.preventDefault();
      zone.classList.remove("over");
      if (!e.dataTransfer || !e.dataTransfer.files.length) return;
      input.files = e.dataTransfer.files;
      zone.requestSubmit();
    });
  }
}

document.addEventListener("DOMContentLoaded", () => {
  tickCountdowns();
  setInterval(tickCountdowns, 1000);
  wireDropzones(document);
});
document.addEventListener("htmx:afterSettle", (e) => wireDropzones(e.target));

// The dashboard's chart of ballots per minute (uPlot) and the turnout table, redrawn with
// each refresh of the figures. Times in Vietnam time, 24-hour clock.
const hhmm = new Intl.DateTimeFormat("vi-VN", {
  hour: "2-digit", minute: "2-digit", hour12: false, timeZone: "Asia/Ho_Chi_Minh",
});
async function drawDashboard(el) {
  let data;
  try {
    const r = await fetch(el.dataset.series, { credentials: "same-origin" });
    if (!r.ok) return;
    data = await r.json();
  } catch (e) {
    return;
  }
  const width = Math.max(300, el.clientWidth || 600);
  const opts = {
    width, height: 240,
    scales: { x: { time: true } },
    axes: [
      { values: (u, splits) => splits.map((ts) => hhmm.format(new Date(ts * 1000))) },
      { label: "phiếu/phút" },
    ],
    series: [
      { label: "Thời gian", value: (u, ts) => (ts == null ? "—" : hhmm.format(new Date(ts * 1000))) },
      { label: "Phiếu", stroke: "#a3111b", fill: "rgba(163,17,27,0.12)" },
    ],
  };
  if (el._plot) el._plot.setData([data.x, data.y]);
  else if (window.uPlot) el._plot = new uPlot(opts, [data.x, data.y], el);
  const body = document.querySelector("#turnout tbody");
  if (body) {
    if (!data.hours.length) {
      const tr = document.createElement("tr");
      const td = document.createElement("td");
      td.colSpan = 2;
      td.textContent = "Chưa có phiếu nào được lưu.";
      tr.append(td);
      body.replaceChildren(tr);
      return;
    }
    body.replaceChildren(...data.hours.map(([label, n]) => {
      const tr = document.createElement("tr");
      const a = document.createElement("td"); a.textContent = label;
      const b = document.createElement("td"); b.className = "num"; b.textContent = n.toLocaleString("vi-VN");
      tr.append(a, b);
      return tr;
    }));
  }
}

document.addEventListener("DOMContentLoaded", () => {
  const el = document.getElementById("chart");
  if (!el) return;
  drawDashboard(el);
  // the figures fragment replaces itself every few seconds: redraw with it
  document.addEventListener("htmx:afterSettle", (e) => {
    if (e.detail && e.detail.elt && e.detail.elt.id === "stats") drawDashboard(el);
  });
});

// Forms that download a file from the admin API (the one-time voting codes): the JSON body
// and the session's CSRF token are sent by fetch, and the answer is saved under its name.
function csrfToken() {
  try {
    return JSON.parse(document.body.getAttribute("hx-headers") || "{}")["X-CSRF-Token"] || "";
  } catch (e) {
    return "";
  }
}

document.addEventListener("submit", async (e) => {
  const form = e.target;
  if (!(form instanceof HTMLFormElement) || !form.dataset.apiDownload) return;
  e.preventDefault();
  const out = form.querySelector("[aria-live]");
  const data = new FormData(form);
  const count = Number(data.get("count"));
  const format = data.get("format") || "csv";
  const button = form.querySelector("button[type=submit]");
  button.disabled = true;
  out.textContent = "Đang tạo mã…";
  try {
    const r = await fetch(`${form.dataset.apiDownload}?format=${encodeURIComponent(format)}`, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrfToken() },
      body: JSON.stringify({ count }),
    });
    if (!r.ok) {
      const body = await r.json().catch(() => ({}));
      const code = body.error && body.error.code;
      out.textContent = code === "malformed"
        ? "Số mã phải là số nguyên từ 1 đến 10.000."
        : code === "mode_mismatch" ? "Vòng này không dùng mã bình chọn."
        : code === "round_closed" ? "Vòng đã đóng, không tạo thêm mã."
        : "Không tạo được mã; vui lòng thử lại.";
      out.className = "error";
      return;
    }
    const name = (/filename="([^"]+)"/.exec(r.headers.get("Content-Disposition") || "") || [])[1] || `ma-binh-chon.${format}`;
    const url = URL.createObjectURL(await r.blob());
    const a = document.createElement("a");
    a.href = url;
    a.download = name;
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60000);
    out.textContent = `Đã tạo ${count} mã và tải về tệp ${name}. Hãy lưu tệp này: mã không xem lại được.`;
    out.className = "notice";
  } finally {
    button.disabled = false;
  }
});
