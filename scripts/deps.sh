#!/usr/bin/env bash
# Installs what Concord needs and is missing, and nothing else: a re-run on a machine that has
# everything only checks (a few seconds). Called by the Makefile: deps.sh build|test|bench|ui|venv|driver
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian/Ubuntu packages to build the desktop app, and to test it for real.
BUILD_PKGS=(build-essential pkg-config file libssl-dev libwebkit2gtk-4.1-dev
  libayatana-appindicator3-dev librsvg2-dev)
TEST_PKGS=(xvfb xauth dbus dbus-x11 dunst libnotify-bin gnome-keyring libsecret-tools
  python3-dbus python3-venv webkit2gtk-driver curl openssl)
# The peers benchmarks compare against, and /usr/bin/time for their peak memory.
BENCH_PKGS=(newsboat time)
TAURI_DRIVER_VERSION=2.1.0
VENV=.tools/venv

say() { printf 'deps: %s\n' "$*" >&2; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"
  elif command -v sudo >/dev/null; then sudo "$@"
  else say "need root to run: $*"; exit 1
  fi
}

# Installs the Debian packages among "$@" that are not installed yet.
apt_missing() {
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' \
      || missing+=("$pkg")
  done
  [ ${#missing[@]} = 0 ] && return 0
  if ! command -v apt-get >/dev/null; then
    say "missing system packages: ${missing[*]} (this script knows apt-get only)"; exit 1
  fi
  say "installing ${missing[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
}

need_toolchain() {
  if ! command -v cargo >/dev/null; then
    say "Rust is missing: install it with rustup (https://rustup.rs), then run make again"
    exit 1
  fi
}

need_node() {
  command -v node >/dev/null || apt_missing nodejs npm
  local major
  major=$(node -p 'process.versions.node.split(".")[0]')
  if [ "$major" -lt 20 ]; then
    say "Node.js $(node --version) is too old for the UI build (Vite 8 needs 20.19 or newer)"
    exit 1
  fi
}

case "${1:-}" in
  build) need_toolchain; apt_missing "${BUILD_PKGS[@]}" ;;
  test) apt_missing "${TEST_PKGS[@]}" ;;
  bench) apt_missing "${BENCH_PKGS[@]}" ;;
  ui)
    need_node
    # npm ci only when the lock file changed since the last install.
    if [ ! -f ui/node_modules/.package-lock.json ] \
      || [ ui/package-lock.json -nt ui/node_modules/.package-lock.json ]; then
      say "installing the UI's npm packages"
      npm --prefix ui ci --no-audit --no-fund --loglevel=error
    fi ;;
  venv)
    stamp="$VENV/.installed-$(sha256sum tests/requirements.txt | cut -c1-16)"
    if [ ! -f "$stamp" ]; then
      say "installing Radicale and Xandikos into $VENV"
      rm -rf "$VENV"
      python3 -m venv "$VENV"
      "$VENV/bin/pip" install -q --disable-pip-version-check -r tests/requirements.txt
      touch "$stamp"
    fi ;;
  driver)
    need_toolchain
    if ! cargo install --list | grep -q "^tauri-driver v$TAURI_DRIVER_VERSION:"; then
      say "installing tauri-driver $TAURI_DRIVER_VERSION"
      cargo install --quiet --locked "tauri-driver@$TAURI_DRIVER_VERSION"
    fi ;;
  *) say "usage: deps.sh build|test|bench|ui|venv|driver"; exit 2 ;;
esac
