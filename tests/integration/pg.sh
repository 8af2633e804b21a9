#!/usr/bin/env bash
# tests/integration/pg.sh - run a program against a private PostgreSQL server.
#
#   pg.sh PROGRAM [ARGS...]
#
# Owns: a temporary directory holding the cluster, its Unix socket and its
# log, and the server running from it.
# Invariant: the server is stopped and the directory removed however this
# script ends (trap on EXIT, INT, TERM).
#
# initdb's a cluster in a mktemp directory, starts it with a Unix socket in
# that directory and no TCP (as the postgres user when run as root), then
# runs PROGRAM with PGHOST, PGPORT, PGUSER, PGDATABASE set and with
# LFPOOL_PG_CTL naming a command that controls the server:
#   "$LFPOOL_PG_CTL" stop|start|restart [pg_ctl options, e.g. -m fast]
# Exits with PROGRAM's status; 77 (skipped, for meson) when no PostgreSQL
# server binaries are found.  PG_BINDIR overrides where they are looked for.
set -euo pipefail

if [ $# -lt 1 ]; then
    sed -n '2,17p' "$0"
    exit 2
fi

bindir=${PG_BINDIR:-}
if [ -z "$bindir" ]; then
    for d in /usr/lib/postgresql/15/bin $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -rV); do
        if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then bindir=$d; break; fi
    done
fi
if [ -z "$bindir" ] && command -v pg_ctl >/dev/null && command -v initdb >/dev/null; then
    bindir=$(dirname "$(command -v pg_ctl)")
fi
if [ -z "$bindir" ]; then
    echo "pg.sh: no PostgreSQL server binaries (initdb, pg_ctl): skipped" >&2
    exit 77
fi

dir=$(mktemp -d "${TMPDIR:-/tmp}/lfpool-pg.XXXXXX")
as_pg=()
if [ "$(id -u)" -eq 0 ]; then
    # the server refuses to run as root
    if ! id postgres >/dev/null 2>&1; then
        echo "pg.sh: running as root and there is no postgres user: skipped" >&2
        rm -rf "$dir"
        exit 77
    fi
    chown postgres: "$dir"
    chmod 755 "$dir"
    as_pg=(runuser -u postgres --)
fi

data=$dir/data
port=${LFPOOL_PG_PORT:-54329}   # only names the socket file: no TCP
cleanup() {
    local rc=$? tail=""
    # a reader of our output that went away must not stop the cleanup
    trap '' PIPE
    if [ -f "$data/postmaster.pid" ]; then
        "${as_pg[@]}" "$bindir/pg_ctl" -D "$data" -m immediate -w stop >/dev/null 2>&1 || true
    fi
    if [ "$rc" -ne 0 ] && [ -f "$dir/server.log" ]; then
        tail=$(tail -n 30 "$dir/server.log" 2>/dev/null || true)
    fi
    rm -rf "$dir" || true
    if [ -n "$tail" ]; then
        { echo "---- last lines of the server log"; echo "$tail"; } >&2 || true
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

"${as_pg[@]}" "$bindir/initdb" -D "$data" -U lfpool -A trust -E UTF8 --locale=C --no-sync >"$dir/initdb.log" 2>&1 || {
    cat "$dir/initdb.log" >&2
    exit 1
}

# The control command the program calls: pg_ctl with this cluster's options
# (fsync off: a test server, nothing survives the test anyway; commits are
# still acknowledged only after the server has written them).
cat >"$dir/ctl" <<CTL
#!/usr/bin/env bash
set -eu
cmd=\$1; shift
exec ${as_pg[*]} "$bindir/pg_ctl" -D "$data" -l "$dir/server.log" -w -t 30 \\
    -o "-c listen_addresses='' -k $dir -p $port -c fsync=off -c max_connections=100" "\$cmd" "\$@" >/dev/null
CTL
chmod 755 "$dir/ctl"

"$dir/ctl" start
# pg_ctl -w returns when the server says it is ready; a connection made at
# that instant can still be refused ("the database system is starting up"):
# wait until one is accepted (PQping), at most 10 s
for _ in $(seq 100); do
    "$bindir/pg_isready" -q -h "$dir" -p "$port" -U lfpool -d postgres && break
    sleep 0.1
done

export PGHOST=$dir PGPORT=$port PGUSER=lfpool PGDATABASE=postgres
export LFPOOL_PG_CTL=$dir/ctl
unset PGPASSWORD PGSERVICE PGOPTIONS
set +e
"$@"
rc=$?
set -e
exit "$rc"
