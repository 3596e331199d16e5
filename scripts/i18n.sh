#!/usr/bin/env bash
# Extract the French message ids, update the English catalog, compile it.
#   bash scripts/i18n.sh           # after adding or changing text
# Then fill in the empty msgstr of commons_sync/locale/en/LC_MESSAGES/messages.po and run it again.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
LOC=commons_sync/locale
$PY -m babel.messages.frontend -q extract -F babel.cfg -k t:2 -k tn:2,3 -k CommandSyntaxError:1 \
    --no-location --sort-output --omit-header -o "$LOC/messages.pot" . >/dev/null
if [ -f "$LOC/en/LC_MESSAGES/messages.po" ]; then
  $PY -m babel.messages.frontend -q update -i "$LOC/messages.pot" -d "$LOC" -l en --no-fuzzy-matching >/dev/null
else
  $PY -m babel.messages.frontend -q init -i "$LOC/messages.pot" -d "$LOC" -l en >/dev/null
fi
$PY -m babel.messages.frontend compile -d "$LOC" -l en --statistics
