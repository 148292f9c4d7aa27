#!/usr/bin/env bash
# Runs a command inside a throwaway desktop session, as the end-to-end tests need it:
#   tests/desktop-session.sh cargo test -p concord-e2e --test secrets
#
# The session: a private D-Bus session bus (dbus-run-session), Xvfb on a free display, a
# temporary HOME and XDG directories, an unlocked gnome-keyring (secrets component, with a
# default "login" collection), and dunst as the notification server. It exports DISPLAY,
# CONCORD_E2E_SESSION=1 and the WebKit switches Xvfb needs. CARGO_HOME, RUSTUP_HOME and PATH
# keep pointing at the real toolchain. On exit, whatever happened, every process it started is
# stopped and the temporary directory removed; the exit code is the command's.
set -euo pipefail

# Limits: how long each piece may take to come up.
readonly START_TIMEOUT_S=20
readonly POLL_S=0.1

die() {
  echo "desktop-session: $*" >&2
  exit 1
}

# Runs as `desktop-session.sh --inside-bus CMD...` under dbus-run-session: the part of the
# session that needs the bus (keyring, notifications), then the command.
if [[ "${1:-}" == "--inside-bus" ]]; then
  shift
  inner_pids=()
  stop_inner() {
    local pid
    for pid in "${inner_pids[@]}"; do
      kill "$pid" 2>/dev/null || true
    done
    for pid in "${inner_pids[@]}"; do
      wait "$pid" 2>/dev/null || true
    done
  }
  trap stop_inner EXIT

  bus_has() {
    dbus-send --session --print-reply --dest=org.freedesktop.DBus /org/freedesktop/DBus \
      org.freedesktop.DBus.NameHasOwner "string:$1" 2>/dev/null | grep -q 'boolean true'
  }
  wait_for_name() {
    local name=$1 pid=$2 log=$3 tries
    tries=$(awk "BEGIN { print int($START_TIMEOUT_S / $POLL_S) }")
    for ((i = 0; i < tries; i++)); do
      bus_has "$name" && return 0
      kill -0 "$pid" 2>/dev/null || die "$name: its process exited; its log:"$'\n'"$(cat "$log")"
      sleep "$POLL_S"
    done
    die "$name did not appear on the session bus within ${START_TIMEOUT_S}s; log:"$'\n'"$(cat "$log")"
  }

  # The keyring, in the foreground so its pid is ours to stop. With a fresh HOME, --unlock
  # creates the "login" keyring with this password and makes it the default collection, which
  # is where libsecret (and keyring-core's Secret Service store) put new items.
  printf '%s' "concord-e2e-keyring" |
    gnome-keyring-daemon --foreground --unlock --components=secrets \
      >"$SESSION_DIR/keyring.env" 2>"$SESSION_DIR/keyring.log" &
  inner_pids+=($!)
  wait_for_name org.freedesktop.secrets "$!" "$SESSION_DIR/keyring.log"
  # Export what it prints (NAME=value lines; none in foreground mode with only secrets).
  while IFS='=' read -r name value; do
    [[ "$name" =~ ^[A-Z_][A-Z0-9_]*$ ]] && export "$name=$value"
  done <"$SESSION_DIR/keyring.env"
  default_collection=$(dbus-send --session --print-reply --dest=org.freedesktop.secrets \
    /org/freedesktop/secrets org.freedesktop.Secret.Service.ReadAlias string:default 2>&1) ||
    die "the keyring has no default collection: $default_collection"
  [[ "$default_collection" == *'/org/freedesktop/secrets/collection/login"'* ]] ||
    die "the keyring's default collection is not the login keyring: $default_collection"

  # dunst refuses -config /dev/null; an empty file is an all-defaults config.
  : >"$SESSION_DIR/dunstrc"
  dunst -config "$SESSION_DIR/dunstrc" >"$SESSION_DIR/dunst.log" 2>&1 &
  inner_pids+=($!)
  wait_for_name org.freedesktop.Notifications "$!" "$SESSION_DIR/dunst.log"

  # Not exec: the trap must still stop the keyring and dunst when the command ends.
  status=0
  "$@" || status=$?
  exit "$status"
fi

[[ $# -gt 0 ]] || die "usage: tests/desktop-session.sh COMMAND [ARGS...]"
for tool in dbus-run-session dbus-send Xvfb gnome-keyring-daemon dunst; do
  command -v "$tool" >/dev/null || die "$tool is missing: run \`make test\` (it installs xvfb, dbus-x11, gnome-keyring, dunst)"
done

SESSION_DIR=$(mktemp -d "${TMPDIR:-/tmp}/concord-session.XXXXXX")
export SESSION_DIR
xvfb_pid=""
cleanup() {
  local status=$?
  if [[ -n "$xvfb_pid" ]]; then
    kill "$xvfb_pid" 2>/dev/null || true
    wait "$xvfb_pid" 2>/dev/null || true
  fi
  rm -rf "$SESSION_DIR"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# The real toolchain, before HOME moves.
export CARGO_HOME="${CARGO_HOME:-$HOME/.cargo}"
export RUSTUP_HOME="${RUSTUP_HOME:-$HOME/.rustup}"

export HOME="$SESSION_DIR/home"
export XDG_CONFIG_HOME="$HOME/.config"
export XDG_DATA_HOME="$HOME/.local/share"
export XDG_CACHE_HOME="$HOME/.cache"
export XDG_STATE_HOME="$HOME/.local/state"
export XDG_RUNTIME_DIR="$SESSION_DIR/runtime"
mkdir -p "$XDG_CONFIG_HOME" "$XDG_DATA_HOME" "$XDG_CACHE_HOME" "$XDG_STATE_HOME"
mkdir -m 700 "$XDG_RUNTIME_DIR"
# Nothing of the caller's desktop may leak in.
unset DBUS_SESSION_BUS_ADDRESS WAYLAND_DISPLAY GNOME_KEYRING_CONTROL SSH_AUTH_SOCK \
  XAUTHORITY DESKTOP_SESSION XDG_SESSION_TYPE XDG_CURRENT_DESKTOP

# Xvfb picks a free display itself and writes its number to fd 3 once it accepts clients.
Xvfb -displayfd 3 -screen 0 1280x1024x24 -nolisten tcp -noreset \
  3>"$SESSION_DIR/display" >"$SESSION_DIR/xvfb.log" 2>&1 &
xvfb_pid=$!
tries=$(awk "BEGIN { print int($START_TIMEOUT_S / $POLL_S) }")
for ((i = 0; i < tries; i++)); do
  [[ -s "$SESSION_DIR/display" ]] && break
  kill -0 "$xvfb_pid" 2>/dev/null || die "Xvfb exited; its log:"$'\n'"$(cat "$SESSION_DIR/xvfb.log")"
  sleep "$POLL_S"
done
display=$(tr -d '[:space:]' <"$SESSION_DIR/display")
[[ "$display" =~ ^[0-9]+$ ]] || die "Xvfb gave no display within ${START_TIMEOUT_S}s"
export DISPLAY=":$display"

export WEBKIT_DISABLE_COMPOSITING_MODE=1
export WEBKIT_DISABLE_DMABUF_RENDERER=1
export CONCORD_E2E_SESSION=1

status=0
dbus-run-session -- "$0" --inside-bus "$@" || status=$?
exit "$status"
