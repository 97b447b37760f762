#!/usr/bin/env bash
# NNDL Studio in one command:  ./studio.sh app   (set up, then start the app)
#                              ./studio.sh test  (set up, then run the whole test suite)
#                              ./studio.sh setup (only set up)
# Setup is idempotent: a Python 3.12 virtual environment in .venv with requirements-dev.txt, and Debian's
# Chromium for the browser tests (test only). Re-running it costs seconds once everything is there.
set -euo pipefail
cd "$(dirname "$0")"

find_python() {
  for candidate in python3.12 "$(pyenv root 2>/dev/null)/versions/3.12"*/bin/python3.12 /usr/bin/python3.12; do
    if command -v "$candidate" >/dev/null 2>&1 && "$candidate" -c 'import sys; assert sys.version_info[:2] == (3, 12)' 2>/dev/null; then
      command -v "$candidate"; return 0
    fi
  done
  if command -v pyenv >/dev/null 2>&1; then
    # pyenv's newest 3.12 (hazm and the pinned torch need 3.12)
    local version; version=$(pyenv versions --bare | grep -E '^3\.12' | tail -1 || true)
    [ -n "$version" ] && { echo "$(pyenv root)/versions/$version/bin/python3.12"; return 0; }
  fi
  echo "Python 3.12 is needed: install it (e.g. 'pyenv install 3.12' or 'apt-get install python3.12-venv')." >&2
  return 1
}

setup_python() {
  local stamp=.venv/.installed
  if [ ! -x .venv/bin/python ]; then
    "$(find_python)" -m venv .venv
  fi
  # Reinstall only when the requirement files changed since the last successful install.
  if [ ! -f "$stamp" ] || [ requirements.txt -nt "$stamp" ] || [ requirements-dev.txt -nt "$stamp" ]; then
    .venv/bin/python -m pip install --quiet --upgrade pip
    .venv/bin/python -m pip install --quiet -r requirements-dev.txt
    touch "$stamp"
  fi
}

setup_browser() {
  if ! command -v chromium >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ]; then
      (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
        || echo "warning: could not install Debian's chromium; browser tests will be skipped" >&2
    else
      echo "warning: chromium is not installed (sudo apt-get install chromium); browser tests will be skipped" >&2
    fi
  fi
}

command=${1:-app}
shift || true
case "$command" in
  setup) setup_python; setup_browser ;;
  app) setup_python; exec .venv/bin/python app.py "$@" ;;
  test) setup_python; setup_browser; exec .venv/bin/python -m pytest "$@" ;;
  *) echo "usage: ./studio.sh [app|test|setup] [args...]" >&2; exit 2 ;;
esac
