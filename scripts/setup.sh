#!/usr/bin/env bash
# Installs everything commons-sync needs on a Debian/Ubuntu machine, idempotently:
# Debian packages (only those missing), a virtualenv in .venv with the project and its test tools.
# Usage: bash scripts/setup.sh [--test]   (--test adds what the test suite needs: PostgreSQL, PHP
# and MediaWiki, Dovecot, Chromium)
set -euo pipefail
cd "$(dirname "$0")/.."

want_test=0
[ "${1:-}" = "--test" ] && want_test=1

SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"

base_packages=(python3 python3-venv python3-pip git ca-certificates)
# MediaWiki 1.39 from Debian, run by `php -S` in the demo and the tests.
wiki_packages=(mediawiki php-cli php-sqlite3 php-intl php-mbstring php-xml)
test_packages=(postgresql dovecot-imapd chromium)

missing=()
have() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
need() { for p in "$@"; do have "$p" || missing+=("$p"); done; }

need "${base_packages[@]}"
if [ "${COMMONS_SYNC_NO_WIKI:-0}" != "1" ]; then need "${wiki_packages[@]}"; fi
if [ "$want_test" = 1 ]; then need "${test_packages[@]}"; fi
# python3 may come from elsewhere (pyenv): then Debian's is not needed.
if command -v python3 >/dev/null && python3 -c 'import venv, ensurepip' 2>/dev/null; then
  filtered=(); for p in "${missing[@]}"; do case "$p" in python3|python3-venv|python3-pip) ;; *) filtered+=("$p");; esac; done
  missing=("${filtered[@]}")
fi
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
stamp=.venv/.commons-sync-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e '.[test]'
  touch "$stamp"
fi
