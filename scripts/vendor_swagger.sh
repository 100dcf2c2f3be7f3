#!/bin/sh
# Vendor Swagger UI (npm package "swagger-ui-dist", Apache-2.0) into
# voting/static/vendor/swagger-ui/ for the API docs at /schema, which load it from our own origin;
# never from a CDN. Install scripts are not run (the package's dependency @scarf/scarf would
# report the download). Usage: scripts/vendor_swagger.sh [VERSION]
set -eu
VERSION="${1:-5.35.0}"
DEST="$(cd "$(dirname "$0")/.." && pwd)/voting/static/vendor/swagger-ui"
. "$(dirname "$0")/npm_package.sh"
npm_package swagger-ui-dist "$VERSION"
rm -rf "$DEST"
mkdir -p "$DEST"
cp "$PKG/swagger-ui-bundle.js" "$PKG/swagger-ui-standalone-preset.js" "$DEST/"
# the stylesheet without its source map comment (the map is not vendored)
sed 's#/\*\# sourceMappingURL=swagger-ui.css.map\*/##' "$PKG/swagger-ui.css" > "$DEST/swagger-ui.css"
cp "$PKG/LICENSE" "$DEST/LICENSE.txt"
cp "$PKG/NOTICE" "$DEST/NOTICE.txt"
cp "$PKG/swagger-ui-bundle.js.LICENSE.txt" "$PKG/swagger-ui-standalone-preset.js.LICENSE.txt" "$DEST/"
{
  echo "swagger-ui-dist $VERSION (npm), vendored by scripts/vendor_swagger.sh"
  (cd "$DEST" && sha256sum swagger-ui-bundle.js swagger-ui-standalone-preset.js swagger-ui.css \
    LICENSE.txt NOTICE.txt swagger-ui-bundle.js.LICENSE.txt swagger-ui-standalone-preset.js.LICENSE.txt)
} > "$DEST/VERSION.txt"
cat "$DEST/VERSION.txt"
