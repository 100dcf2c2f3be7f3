#!/bin/sh
# Vendor the admin console's two libraries from npm into admin/static/ (the console's files, served at /admin/static): htmx
# ("htmx.org", 0BSD; partial page updates) and uPlot ("uplot", MIT; the dashboard's charts).
# Served from our own origin, never a CDN; install scripts are not run.
# Usage: scripts/vendor_console.sh [HTMX_VERSION] [UPLOT_VERSION]
set -eu
HTMX="${1:-2.0.11}"
UPLOT="${2:-1.6.32}"
VENDOR="$(cd "$(dirname "$0")/.." && pwd)/admin/static"
. "$(dirname "$0")/npm_package.sh"

npm_package htmx.org "$HTMX"
rm -rf "$VENDOR/htmx" && mkdir -p "$VENDOR/htmx"
cp "$PKG/dist/htmx.min.js" "$VENDOR/htmx/"
cp "$PKG/LICENSE" "$VENDOR/htmx/LICENSE.txt"
{
  echo "htmx.org $HTMX (npm), vendored by scripts/vendor_console.sh"
  (cd "$VENDOR/htmx" && sha256sum htmx.min.js LICENSE.txt)
} > "$VENDOR/htmx/VERSION.txt"
rm -rf "$TMP"

npm_package uplot "$UPLOT"
rm -rf "$VENDOR/uplot" && mkdir -p "$VENDOR/uplot"
cp "$PKG/dist/uPlot.iife.min.js" "$PKG/dist/uPlot.min.css" "$VENDOR/uplot/"
cp "$PKG/LICENSE" "$VENDOR/uplot/LICENSE.txt"
{
  echo "uplot $UPLOT (npm), vendored by scripts/vendor_console.sh"
  (cd "$VENDOR/uplot" && sha256sum uPlot.iife.min.js uPlot.min.css LICENSE.txt)
} > "$VENDOR/uplot/VERSION.txt"
cat "$VENDOR/htmx/VERSION.txt" "$VENDOR/uplot/VERSION.txt"
