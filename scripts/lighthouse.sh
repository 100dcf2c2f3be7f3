#!/usr/bin/env bash
# Lighthouse 12 on the public page, mobile preset on a 360 × 740 px screen (DPR 2, 4x CPU slowdown, simulated
# 1.6 Mbps / 150 ms: Lighthouse's default mobile throttling), in Debian's Chromium.
#
#   scripts/lighthouse.sh [URL] [OUT_DIR]
#
# URL: the page (default http://127.0.0.1:8000/?round=1, as `voting up --demo
# data/shortlist-sample.csv` serves it). OUT_DIR (default ./lighthouse-report): the JSON and
# HTML reports. Prints the scores, CLS, LCP, TBT, the bytes transferred with and without the
# candidates' photos, the requests, and the audits that did not pass.
#
# Lighthouse comes from npm (lighthouse@12) into LIGHTHOUSE_DIR (default
# ${XDG_CACHE_HOME:-~/.cache}/voting-lighthouse), outside the repository; CHROME_PATH defaults
# to /usr/bin/chromium. Needs node >= 18 and npm. Measure on an idle machine: the simulated
# throttling scales what the machine itself does.
set -euo pipefail

URL="${1:-http://127.0.0.1:8000/?round=1}"
OUT="${2:-lighthouse-report}"
LIGHTHOUSE_DIR="${LIGHTHOUSE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/voting-lighthouse}"
export CHROME_PATH="${CHROME_PATH:-/usr/bin/chromium}"

if [ ! -x "$LIGHTHOUSE_DIR/node_modules/.bin/lighthouse" ]; then
  mkdir -p "$LIGHTHOUSE_DIR"
  (cd "$LIGHTHOUSE_DIR" && npm init -y >/dev/null && npm install --no-audit --no-fund lighthouse@12 >/dev/null)
fi
mkdir -p "$OUT"

"$LIGHTHOUSE_DIR/node_modules/.bin/lighthouse" "$URL" \
  --quiet \
  --only-categories=performance,accessibility,best-practices \
  --screenEmulation.mobile --screenEmulation.width=360 --screenEmulation.height=740 \
  --screenEmulation.deviceScaleFactor=2 \
  --chrome-flags="--headless --no-sandbox --disable-gpu --disable-background-networking" \
  --output=json --output=html --output-path="$OUT/page"

node - "$OUT/page.report.json" <<'EOF'
const report = require(require('path').resolve(process.argv[2]));
const a = report.audits;
const kib = (n) => (n / 1024).toFixed(1) + ' KiB';
const items = a['network-requests'].details.items.filter((r) => !r.url.startsWith('data:'));
const photo = (r) => /\/photo(\?|$)/.test(r.url);
const sum = (rs) => rs.reduce((s, r) => s + (r.transferSize || 0), 0);
const score = (c) => Math.round(report.categories[c].score * 100);
console.log(`lighthouse ${report.lighthouseVersion}, ${report.configSettings.formFactor}, ` +
  `${report.configSettings.screenEmulation.width} px, throttling ${report.configSettings.throttlingMethod} ` +
  `(${report.configSettings.throttling.cpuSlowdownMultiplier}x CPU, ` +
  `${report.configSettings.throttling.throughputKbps} kbps, ${report.configSettings.throttling.rttMs} ms)`);
console.log(`performance ${score('performance')}, accessibility ${score('accessibility')}, best practices ${score('best-practices')}`);
console.log(`FCP ${a['first-contentful-paint'].displayValue}, LCP ${a['largest-contentful-paint'].displayValue}, ` +
  `TBT ${a['total-blocking-time'].displayValue}, CLS ${a['cumulative-layout-shift'].numericValue.toFixed(3)}, ` +
  `SI ${a['speed-index'].displayValue}`);
console.log(`transferred: ${kib(sum(items))} in ${items.length} requests; before photos ` +
  `${kib(sum(items.filter((r) => !photo(r))))} in ${items.filter((r) => !photo(r)).length}; ` +
  `photos ${kib(sum(items.filter(photo)))} in ${items.filter(photo).length}`);
for (const r of items) {
  const path = r.url.replace(/^https?:\/\/[^/]+/, '');
  console.log(`  ${String(r.transferSize).padStart(7)} B  ${String(r.resourceSize).padStart(7)} B raw  ${path}`);
}
const failing = Object.values(a).filter((x) => x.score !== null && x.score < 0.9 &&
  ['binary', 'numeric', 'metricSavings'].includes(x.scoreDisplayMode));
console.log('audits below 0.9:' + (failing.length ? '' : ' none'));
for (const x of failing) console.log(`  ${x.id}: ${x.score} ${x.displayValue || ''} (${x.title})`);
EOF
