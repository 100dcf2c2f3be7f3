# Sourced by scripts/vendor_*.sh. `npm_package NAME VERSION` installs the npm package
# NAME@VERSION into a temporary folder removed on exit, without running install scripts, and
# sets PKG to the package's folder.
npm_package() {
  TMP="$(mktemp -d)"
  trap 'rm -rf "$TMP"' EXIT
  (cd "$TMP" && npm init -y >/dev/null && npm install --ignore-scripts --no-audit --no-fund "$1@$2" >/dev/null)
  PKG="$TMP/node_modules/$1"
}
