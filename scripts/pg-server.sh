#!/usr/bin/env bash
# A throwaway PostgreSQL server for tests and benchmarks: a new cluster in a
# folder of its own, on 127.0.0.1 and a free port, with a role and database
# `qie` (random password, scram-sha-256), tuned for speed over durability
# (fsync, synchronous_commit and full_page_writes off). Several can run at
# once; none depends on the system cluster or on port 5432.
#
#   scripts/pg-server.sh start DIR   creates DIR/data, starts the server and
#                                    prints its URL (also in DIR/url):
#                                    postgres://qie:PASSWORD@127.0.0.1:PORT/qie
#   scripts/pg-server.sh url DIR     prints the URL again
#   scripts/pg-server.sh stop DIR    stops the server at once and removes DIR
#                                    (quietly, when it is already gone)
#
# The server's log is DIR/server.log. It uses the newest PostgreSQL under
# /usr/lib/postgresql (`scripts/ensure-deps.sh postgresql` installs it), never
# the one on PATH. initdb and postgres refuse to run as root: as root, both
# run as the `postgres` system user (created when missing), which then owns
# DIR, so every folder above DIR must be open to it (o+x). The unix socket
# goes in DIR, or in a short folder under /tmp when DIR's path is too long
# for a socket (about 100 bytes) or has characters postgresql.conf would need
# quoted; DIR/socket-dir records which.
set -euo pipefail

# The caller's PGHOST, PGPORT, PGUSER... must not steer the tools below.
unset "${!PG@}"

usage() {
  echo "usage: scripts/pg-server.sh start|stop|url DIR" >&2
  exit 2
}
[ $# -eq 2 ] || usage
command=$1
dir_arg=$2
[ -n "$dir_arg" ] || usage

pgbin() {
  local bin
  bin=$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin -type d 2>/dev/null | sort -V | tail -n 1)
  if [ -z "$bin" ] || [ ! -x "$bin/initdb" ]; then
    echo "pg-server: PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb); scripts/ensure-deps.sh postgresql installs it" >&2
    exit 1
  fi
  echo "$bin"
}

as_root=0
[ "$(id -u)" -eq 0 ] && as_root=1

# Runs a PostgreSQL tool as the user that owns the cluster: `postgres` when
# this script runs as root, the caller otherwise. From /, which that user can
# always enter, whatever the caller's working directory.
as_pg() {
  if [ $as_root -eq 1 ]; then
    (cd / && runuser -u postgres -- "$@")
  else
    (cd / && "$@")
  fi
}

ensure_postgres_user() {
  getent passwd postgres >/dev/null && return 0
  # Parallel starts may race to create it: only a missing user is an error.
  useradd --system --user-group --no-create-home --home-dir /var/lib/postgresql \
    --shell /bin/bash postgres >/dev/null 2>&1 || true
  getent passwd postgres >/dev/null && return 0
  sleep 0.5
  getent passwd postgres >/dev/null && return 0
  echo "pg-server: the postgres system user is missing and useradd could not create it" >&2
  exit 1
}

# Names the first folder from / down to $1 that the postgres user cannot
# enter, or fails when there is none.
closed_ancestor() {
  local path="" part
  local -a parts
  IFS=/ read -r -a parts <<<"${1#/}"
  for part in "${parts[@]}"; do
    path="$path/$part"
    if ! runuser -u postgres -- test -x "$path"; then
      echo "$path"
      return 0
    fi
  done
  return 1
}

start() {
  local bin dir created=0 data log sockdir port password url from sql started=0
  bin=$(pgbin)
  [ $as_root -eq 1 ] && ensure_postgres_user

  [ -d "$dir_arg" ] || { mkdir -p -- "$dir_arg"; created=1; }
  dir=$(cd -- "$dir_arg" && pwd -P)
  data="$dir/data"
  log="$dir/server.log"
  if [ -e "$data" ]; then
    echo "pg-server: $data already exists (stop that server first: scripts/pg-server.sh stop $dir_arg)" >&2
    exit 1
  fi
  if [ $as_root -eq 1 ]; then
    local closed
    if closed=$(closed_ancestor "$(dirname "$dir")"); then
      [ "$created" -eq 1 ] && rmdir -- "$dir"
      echo "pg-server: the postgres user (which runs the server, as initdb and postgres refuse root) cannot enter $closed ($(stat -c %a "$closed"), owner $(stat -c %U "$closed")), above $dir; chmod o+x $closed, or use a folder whose parents are all open to others, such as /tmp/NAME" >&2
      exit 1
    fi
  fi

  # Everything made from here on is removed if the start fails, except the
  # log, which the error message points to.
  sockdir=""
  cleanup() {
    local status=$?
    [ $status -eq 0 ] && return 0
    if [ -f "$data/postmaster.pid" ]; then
      as_pg "$bin/pg_ctl" stop -D "$data" -m immediate >/dev/null 2>&1 || true
    fi
    rm -rf -- "$data" "$dir/url" "$dir/socket-dir"
    [ -n "$sockdir" ] && [ "$sockdir" != "$dir" ] && rm -rf -- "$sockdir"
    if [ ! -s "$log" ]; then
      rm -f -- "$log"
      [ "$created" -eq 1 ] && rmdir -- "$dir" 2>/dev/null
    fi
    return $status
  }
  trap cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM HUP
  fail() {
    echo "pg-server: $1 (log: $log)" >&2
    if [ -s "$log" ]; then
      tail -n 5 -- "$log" | sed 's/^/  /' >&2
    fi
    exit 1
  }

  # A socket's path ends in /.s.PGSQL.PORT (15 bytes) and must fit in 107.
  if [ "$(LC_ALL=C; echo "${#dir}")" -le 90 ] && [[ "$dir" =~ ^[A-Za-z0-9._/-]+$ ]]; then
    sockdir=$dir
  else
    sockdir=$(mktemp -d /tmp/qie-pg.XXXXXX)
  fi
  echo "$sockdir" >"$dir/socket-dir"
  : >"$log"
  if [ $as_root -eq 1 ]; then
    chown -R postgres -- "$dir"
    [ "$sockdir" != "$dir" ] && chown postgres -- "$sockdir"
  fi

  password=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
  as_pg "$bin/initdb" -D "$data" --no-sync --no-instructions -E UTF8 --locale=C \
    -U postgres --auth-local=trust --auth-host=scram-sha-256 >>"$log" 2>&1 ||
    fail "initdb failed"
  cat >>"$data/postgresql.conf" <<EOF

# scripts/pg-server.sh: a throwaway server for tests.
listen_addresses = '127.0.0.1'
unix_socket_directories = '$sockdir'
unix_socket_permissions = 0700
max_connections = 200
fsync = off
synchronous_commit = off
full_page_writes = off
EOF

  # A random port below Linux's ephemeral range (32768 and up), so outgoing
  # connections never hold it; one in use now, or taken by a parallel start
  # before the server binds it, means another try.
  for _ in $(seq 20); do
    port=$((20000 + RANDOM % 12768))
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && continue
    from=$(($(wc -l <"$log") + 1))
    if as_pg "$bin/pg_ctl" start -w -t 30 -D "$data" -l "$log" -o "-p $port" >/dev/null 2>&1; then
      started=1
      break
    fi
    tail -n "+$from" -- "$log" | grep -q "Address already in use" || fail "the server did not start"
  done
  [ $started -eq 1 ] || fail "the server found no free port in 20 tries"

  sql="CREATE ROLE qie LOGIN CREATEDB PASSWORD '$password';
CREATE DATABASE qie OWNER qie;"
  as_pg "$bin/psql" -X -q -v ON_ERROR_STOP=1 -h "$sockdir" -p "$port" -U postgres -d postgres \
    >>"$log" 2>&1 <<<"$sql" || fail "creating the role and database qie failed"

  url="postgres://qie:$password@127.0.0.1:$port/qie"
  (umask 077 && echo "$url" >"$dir/url")
  trap - EXIT INT TERM HUP
  echo "$url"
}

stop() {
  local bin dir sockdir=""
  [ -d "$dir_arg" ] || return 0
  dir=$(cd -- "$dir_arg" && pwd -P)
  # DIR is removed whole: only one this script made (or an empty one).
  if [ ! -f "$dir/socket-dir" ] && [ ! -f "$dir/server.log" ] && [ -n "$(ls -A -- "$dir")" ]; then
    echo "pg-server: $dir is not a folder of scripts/pg-server.sh start (no socket-dir or server.log in it); not removing it" >&2
    exit 1
  fi
  [ -f "$dir/socket-dir" ] && sockdir=$(cat -- "$dir/socket-dir")
  if [ -f "$dir/data/postmaster.pid" ]; then
    bin=$(pgbin)
    if ! as_pg "$bin/pg_ctl" stop -D "$dir/data" -m immediate >/dev/null 2>&1; then
      # Status 3: no server runs there (it died, or was stopped already).
      local status=0
      as_pg "$bin/pg_ctl" status -D "$dir/data" >/dev/null 2>&1 || status=$?
      if [ $status -ne 3 ] && [ $status -ne 4 ]; then
        echo "pg-server: pg_ctl stop failed for $dir/data (log: $dir/server.log)" >&2
        exit 1
      fi
    fi
  fi
  rm -rf -- "$dir"
  case "$sockdir" in
    /tmp/qie-pg.*) rm -rf -- "$sockdir" ;;
  esac
}

url() {
  if [ ! -f "$dir_arg/url" ]; then
    echo "pg-server: no server URL in $dir_arg/url (start one: scripts/pg-server.sh start $dir_arg)" >&2
    exit 1
  fi
  cat -- "$dir_arg/url"
}

case "$command" in
  start) start ;;
  stop) stop ;;
  url) url ;;
  *) usage ;;
esac
