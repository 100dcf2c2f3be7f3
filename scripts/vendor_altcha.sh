#!/bin/sh
# Vendor the ALTCHA widget (npm package "altcha", MIT) into voting/static/vendor/.
# The page loads it from our own origin; never from a CDN. Usage: scripts/vendor_altcha.sh [VERSION]
set -eu
VERSION="${1:-3.2.2}"
DEST="$(cd "$(dirname "$0")/.." && pwd)/voting/static/vendor"
. "$(dirname "$0")/npm_package.sh"
npm_package altcha "$VERSION"
mkdir -p "$DEST"
cp "$PKG/dist/main/altcha.min.js" "$DEST/altcha.min.js"      # widget, styles and workers inlined
cp "$PKG/dist/i18n/vi.js" "$DEST/altcha.i18n.vi.js"          # Vietnamese strings
cp "$PKG/LICENSE.txt" "$DEST/ALTCHA-LICENSE.txt"
{
  echo "altcha $VERSION (npm), vendored by scripts/vendor_altcha.sh"
  (cd "$DEST" && sha256sum altcha.min.js altcha.i18n.vi.js ALTCHA-LICENSE.txt)
} > "$DEST/ALTCHA-VERSION.txt"
cat "$DEST/ALTCHA-VERSION.txt"
