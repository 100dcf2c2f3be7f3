#!/bin/sh
# Vendor axe-core (npm "axe-core", MPL-2.0) into tests/browser/vendor/ for the accessibility
# checks of the browser tests (injected into the page under test; never served by the app).
# Usage: scripts/vendor_axe.sh [VERSION]
set -eu
VERSION="${1:-4.14.1}"
DEST="$(cd "$(dirname "$0")/.." && pwd)/tests/browser/vendor"
. "$(dirname "$0")/npm_package.sh"
npm_package axe-core "$VERSION"
mkdir -p "$DEST"
cp "$PKG/axe.min.js" "$DEST/axe.min.js"
cp "$PKG/LICENSE" "$DEST/AXE-LICENSE.txt"
{
  echo "axe-core $VERSION (npm), vendored by scripts/vendor_axe.sh"
  (cd "$DEST" && sha256sum axe.min.js AXE-LICENSE.txt)
} > "$DEST/AXE-VERSION.txt"
cat "$DEST/AXE-VERSION.txt"
