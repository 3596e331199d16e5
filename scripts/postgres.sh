#!/usr/bin/env bash
# Makes sure a PostgreSQL server answers on 127.0.0.1:5432 with trust auth and a database `test`:
# uses the running one, starts an installed cluster, or creates one (Debian's postgresql package).
set -euo pipefail
ready() { pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; }
if ready; then exit 0; fi
if ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
  if ! command -v pg_createcluster >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql >/dev/null
  fi
  ls /etc/postgresql/*/main >/dev/null 2>&1 || pg_createcluster "$(ls /usr/lib/postgresql | sort -n | tail -1)" main
fi
version=$(ls /etc/postgresql | sort -n | tail -1)
conf=/etc/postgresql/$version/main
# trust auth on loopback for the tests only (this is a throwaway test server).
if ! grep -q "commons-sync-tests" "$conf/pg_hba.conf"; then
  sed -i '1i host all all 127.0.0.1/32 trust # commons-sync-tests\nhost all all ::1/128 trust # commons-sync-tests' "$conf/pg_hba.conf"
fi
pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
for _ in $(seq 1 30); do ready && break; sleep 1; done
ready || { echo "postgres.sh: PostgreSQL did not start" >&2; exit 1; }
psql -h 127.0.0.1 -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname='test'" | grep -q 1 \
  || psql -h 127.0.0.1 -U postgres -c "CREATE DATABASE test" >/dev/null
