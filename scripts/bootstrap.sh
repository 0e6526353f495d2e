#!/usr/bin/env bash
# Set-up shared by the README's commands: a virtualenv with Parcours in it, and a Chromium.
# Idempotent and quick when nothing changed. Source it; it exports PARCOURS_VENV.
# With PARCOURS_NEED_PROMETHEUS=1 (the tests) it also makes sure prometheus, promtool,
# alertmanager and nats-server exist.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${PARCOURS_VENV:-$ROOT/.venv}"
PYTHON="${PYTHON:-python3}"
export PARCOURS_VENV="$VENV"

say() { printf 'parcours-setup: %s\n' "$*" >&2; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null 2>&1; then sudo -n "$@"; else return 1; fi
}

apt_install() {
  command -v apt-get >/dev/null 2>&1 || return 1
  say "installing $* with apt-get"
  if [ ! -f /tmp/.parcours-apt-updated ]; then
    as_root apt-get update -qq >&2 && touch /tmp/.parcours-apt-updated || return 1
  fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >&2
}

ensure_venv() {
  if [ ! -x "$VENV/bin/python" ]; then
    say "creating virtualenv in $VENV"
    "$PYTHON" -m venv "$VENV" || { apt_install python3-venv && "$PYTHON" -m venv "$VENV"; }
  fi
  local stamp="$VENV/.parcours-installed"
  if [ ! -f "$stamp" ] || [ "$ROOT/pyproject.toml" -nt "$stamp" ]; then
    say "installing Parcours and its dependencies"
    "$VENV/bin/python" -m pip install -q --upgrade pip >&2
    "$VENV/bin/python" -m pip install -q -e "$ROOT[dev]" >&2
    touch "$stamp"
  fi
}

have_chromium() {
  [ -n "${PARCOURS_CHROMIUM:-}" ] && [ -x "$PARCOURS_CHROMIUM" ] && return 0
  "$VENV/bin/python" - <<'PY' 2>/dev/null && return 0
import os, sys
from playwright.sync_api import sync_playwright
with sync_playwright() as p:
    sys.exit(0 if os.path.exists(p.chromium.executable_path) else 1)
PY
  for name in chromium chromium-browser google-chrome google-chrome-stable; do
    command -v "$name" >/dev/null 2>&1 && return 0
  done
  return 1
}

ensure_chromium() {
  have_chromium && return 0
  say "no Chromium found; trying Playwright's download"
  if timeout 300 "$VENV/bin/python" -m playwright install chromium >&2 2>/dev/null && have_chromium; then
    return 0
  fi
  say "Playwright's download failed (no internet?); trying the system package"
  if apt_install chromium && have_chromium; then return 0; fi
  say "ERROR: no Chromium. Install one (Debian: apt-get install -y chromium), or set"
  say "PARCOURS_CHROMIUM=/path/to/chrome, or run: $VENV/bin/python -m playwright install chromium"
  return 1
}

ensure_prometheus() {
  local missing=()
  command -v prometheus >/dev/null 2>&1 || missing+=(prometheus)
  command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
  command -v prometheus-alertmanager >/dev/null 2>&1 || command -v alertmanager >/dev/null 2>&1 \
    || missing+=(prometheus-alertmanager)
  [ ${#missing[@]} = 0 ] && return 0
  apt_install "${missing[@]}" && return 0
  say "ERROR: could not install ${missing[*]}; install them (Debian: apt-get install -y prometheus"
  say "prometheus-alertmanager) or put their binaries on PATH"
  return 1
}

ensure_nats() {
  command -v nats-server >/dev/null 2>&1 || [ -x /usr/sbin/nats-server ] && return 0
  apt_install nats-server && return 0
  say "ERROR: could not install nats-server (the split deployment's tests need it); install it"
  say "(Debian: apt-get install -y nats-server) or put its binary on PATH"
  return 1
}

ensure_venv
ensure_chromium
if [ "${PARCOURS_NEED_PROMETHEUS:-0}" = 1 ]; then ensure_prometheus; ensure_nats; fi
