#!/usr/bin/env bash
# A throwaway PostgreSQL server holding the example's "operations" database.
#
#   bash ops-db.sh start    # initdb + start on 127.0.0.1:55432, load ops/schema.sql and ops/seed.sql
#   bash ops-db.sh psql ... # psql connected to the ops database (extra arguments passed on)
#   bash ops-db.sh stop     # stop the server and delete its files
#
# The server runs with wal_level=logical (CDC needs it) and trust
# authentication on loopback only. PostgreSQL refuses to run as root, so as
# root the server runs as the `postgres` user. The port is the one the
# manifests name; set FERRY_EXAMPLE_PG_PORT and edit their `url` to change it.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
port="${FERRY_EXAMPLE_PG_PORT:-55432}"
data="${FERRY_EXAMPLE_PG_DIR:-${TMPDIR:-/tmp}/ferry-cdc-example-pg}"

bindir() {
    if command -v pg_config >/dev/null && [[ -x "$(pg_config --bindir)/initdb" ]]; then
        pg_config --bindir
        return
    fi
    local best
    best="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)"
    if [[ -n "$best" && -x "$best/initdb" ]]; then
        echo "$best"
    elif command -v initdb >/dev/null; then
        dirname "$(command -v initdb)"
    else
        echo "ops-db: PostgreSQL is not installed; run scripts/setup.sh (it installs the Debian package postgresql)" >&2
        exit 1
    fi
}

as_owner() {
    if [[ "$(id -u)" == 0 ]]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

psql_ops() {
    psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -U postgres -d ops "$@"
}

case "${1:-}" in
start)
    bin="$(bindir)"
    if [[ -f "$data/db/postmaster.pid" ]]; then
        echo "ops-db: already running in $data (bash ops-db.sh stop first)" >&2
        exit 1
    fi
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        echo "ops-db: port $port is taken; stop what listens there or set FERRY_EXAMPLE_PG_PORT (and edit the manifests' url)" >&2
        exit 1
    fi
    rm -rf "$data"
    mkdir -p "$data"
    if [[ "$(id -u)" == 0 ]]; then
        chown postgres "$data"
    fi
    as_owner "$bin/initdb" -D "$data/db" --auth=trust -U postgres --encoding=UTF8 --locale=C >"$data/initdb.log"
    as_owner "$bin/pg_ctl" -D "$data/db" -l "$data/server.log" -w -o \
        "-p $port -c listen_addresses=127.0.0.1 -c unix_socket_directories=$data -c wal_level=logical -c max_replication_slots=10 -c max_wal_senders=10" \
        start >/dev/null
    psql -X -q -h 127.0.0.1 -p "$port" -U postgres -d postgres -c "CREATE DATABASE ops"
    psql_ops -f "$here/ops/schema.sql"
    psql_ops -f "$here/ops/seed.sql"
    echo "ops-db: PostgreSQL on 127.0.0.1:$port, database ops loaded (data in $data)"
    ;;
psql)
    shift
    psql_ops "$@"
    ;;
stop)
    if [[ -f "$data/db/postmaster.pid" ]]; then
        as_owner "$(bindir)/pg_ctl" -D "$data/db" -m fast -w stop >/dev/null
    fi
    rm -rf "$data"
    ;;
*)
    echo "usage: bash ops-db.sh start | psql [args] | stop" >&2
    exit 2
    ;;
esac
