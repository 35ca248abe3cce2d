#!/usr/bin/env bash
# Start a throw-away local PostgreSQL server for the leaderboard store's PostgreSQL test variants, and print the
# SQLAlchemy URL the tests read from NERFSEG_TEST_PG_URL. CI sources nothing: it runs
#   url=$(bash scripts/start_postgres.sh)  and exports NERFSEG_TEST_PG_URL="$url".
# Installs Debian's postgresql when no server binary is found (needs root). The cluster lives in a temporary
# folder, listens on 127.0.0.1 only, trusts local connections and is stopped with `bash scripts/start_postgres.sh --stop`.
set -euo pipefail
PORT=${NERFSEG_PG_PORT:-55432}
DATA=${NERFSEG_PG_DATA:-/tmp/nerfseg-pg}
find_bin() {
  local d
  for d in /usr/lib/postgresql/*/bin; do [ -x "$d/initdb" ] && { echo "$d"; return 0; }; done
  return 1
}
BIN=$(find_bin || true)
if [ "${1:-}" = "--stop" ]; then
  [ -n "$BIN" ] && [ -d "$DATA" ] && su postgres -s /bin/sh -c "$BIN/pg_ctl -D $DATA stop -m fast" >&2 || true
  exit 0
fi
if [ -z "$BIN" ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >&2 && apt-get install -y -q --no-install-recommends postgresql >&2
  BIN=$(find_bin)
fi
RUN_AS=(su postgres -s /bin/sh -c)
if [ "$(id -u)" -ne 0 ]; then RUN_AS=(sh -c); fi
if [ ! -f "$DATA/PG_VERSION" ]; then
  rm -rf "$DATA"; mkdir -p "$DATA"
  [ "$(id -u)" -eq 0 ] && chown postgres "$DATA"
  "${RUN_AS[@]}" "$BIN/initdb -D $DATA -U postgres --auth=trust -E UTF8 >/dev/null"
fi
if ! "${RUN_AS[@]}" "$BIN/pg_ctl -D $DATA status" >/dev/null 2>&1; then
  "${RUN_AS[@]}" "$BIN/pg_ctl -D $DATA -l $DATA/server.log -w -o '-c listen_addresses=127.0.0.1 -p $PORT -k /tmp' start" >&2
fi
echo "postgresql+psycopg://postgres@127.0.0.1:$PORT/postgres"
