#!/usr/bin/env bash
# The whole test suite, set-up included: bash scripts/test.sh [pytest args]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --test
bash scripts/postgres.sh
export COMMONS_SYNC_TEST_POSTGRES_URL="${COMMONS_SYNC_TEST_POSTGRES_URL:-postgresql+psycopg://postgres@127.0.0.1:5432/test}"
set +e
.venv/bin/python -m pytest "$@"
status=$?
set -e
# pytest's exit 5 means no test ran: that is a failure here.
if [ "$status" -eq 5 ]; then echo "test.sh: no test ran" >&2; exit 1; fi
exit "$status"
