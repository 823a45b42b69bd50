#!/bin/sh
# Postgres for the compose stacks on hosts without a registry: the same contract as the official
# image's entrypoint, reduced to what the stacks use. POSTGRES_USER (the superuser, so the pgvector
# provider may CREATE EXTENSION vector), POSTGRES_PASSWORD and POSTGRES_DB initialise an empty
# PGDATA once; later starts reuse it. Clients outside the container authenticate with scram.
set -eu
: "${POSTGRES_PASSWORD:?POSTGRES_PASSWORD must be set}"
POSTGRES_USER="${POSTGRES_USER:-postgres}"
POSTGRES_DB="${POSTGRES_DB:-$POSTGRES_USER}"
PGDATA="${PGDATA:-/var/lib/postgresql/data}"
BIN=/usr/lib/postgresql/17/bin
export PGDATA

# A new named volume belongs to root; the server runs as the postgres user.
mkdir -p "$PGDATA" /run/postgresql
chown -R postgres:postgres "$PGDATA" /run/postgresql
chmod 700 "$PGDATA"

as_postgres() { setpriv --reuid=postgres --regid=postgres --init-groups "$@"; }

if [ ! -s "$PGDATA/PG_VERSION" ]; then
    pwfile="$(mktemp)"
    printf '%s\n' "$POSTGRES_PASSWORD" >"$pwfile"
    chown postgres "$pwfile"
    as_postgres "$BIN/initdb" --username="$POSTGRES_USER" --pwfile="$pwfile" \
        --auth-local=trust --auth-host=scram-sha-256 --encoding=UTF8 >/dev/null
    rm -f "$pwfile"
    echo "host all all all scram-sha-256" >>"$PGDATA/pg_hba.conf"
    # A server on a private socket only (so pg_isready does not pass yet), to create the database.
    as_postgres "$BIN/pg_ctl" -w -o "-c listen_addresses='' -k /tmp" start >/dev/null
    if [ "$POSTGRES_DB" != postgres ]; then
        as_postgres psql -h /tmp -v ON_ERROR_STOP=1 -U "$POSTGRES_USER" -d postgres \
            -c "CREATE DATABASE \"$POSTGRES_DB\""
    fi
    as_postgres "$BIN/pg_ctl" -w -m fast stop >/dev/null
    echo "initialised $PGDATA for $POSTGRES_USER/$POSTGRES_DB"
fi
exec setpriv --reuid=postgres --regid=postgres --init-groups "$BIN/postgres" -c listen_addresses='*'
