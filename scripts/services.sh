#!/usr/bin/env bash
# The team's tracking services on this machine, on loopback only: a PostgreSQL server (the
# MLflow backend store) and `mlflow server` with proxied artifacts (workers talk to the
# server only, never to the store or the artifact folder).
#
#   scripts/services.sh up | down | status | uri
#
# Settings (environment): SERVICES_DIR (default ./services: data, logs, password),
# PG_PORT (default 54329), MLFLOW_PORT (default 5000), PG_BIN (PostgreSQL's bin folder,
# default: Debian's /usr/lib/postgresql/<newest>/bin, else from PATH), MLFLOW (the mlflow
# command, default .venv/bin/mlflow when present). PostgreSQL never runs as root: started by
# root it runs as the `postgres` user, which must be able to reach SERVICES_DIR. Its password
# is generated once into SERVICES_DIR/pg-password (mode 600); `uri` prints the tracking URI.
set -euo pipefail

dir="${SERVICES_DIR:-./services}"
pg_port="${PG_PORT:-54329}"
mlflow_port="${MLFLOW_PORT:-5000}"
host=127.0.0.1

if [ -n "${PG_BIN:-}" ]; then
  pg_bin="$PG_BIN"
elif ls -d /usr/lib/postgresql/*/bin >/dev/null 2>&1; then
  pg_bin="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)"
else
  pg_bin="$(dirname "$(command -v initdb || echo /nonexistent/initdb)")"
fi
if [ -n "${MLFLOW:-}" ]; then
  mlflow_cmd="$MLFLOW"
elif [ -x .venv/bin/mlflow ]; then
  mlflow_cmd=.venv/bin/mlflow
else
  mlflow_cmd=mlflow
fi

die() { echo "services: $*" >&2; exit 2; }

# run a PostgreSQL program as a non-root user
as_pg() {
  if [ "$(id -u)" = 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

setup_dirs() {
  mkdir -p "$dir"
  dir="$(cd "$dir" && pwd)"
  mkdir -p "$dir/logs" "$dir/artifacts" "$dir/run"
  if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || die "running as root and there is no postgres user to run PostgreSQL as"
    mkdir -p "$dir/pgdata"
    chown postgres "$dir/pgdata" "$dir/run" "$dir/logs"
    chmod 700 "$dir/pgdata"
    runuser -u postgres -- test -w "$dir/pgdata" ||
      die "the postgres user cannot reach $dir (a parent folder is closed to it): choose a SERVICES_DIR it can reach, or run as a non-root user"
  fi
}

password() {
  if [ ! -s "$dir/pg-password" ]; then
    (umask 077 && head -c 24 /dev/urandom | base64 | tr -d '/+=' > "$dir/pg-password")
  fi
  cat "$dir/pg-password"
}

uri() { echo "http://$host:$mlflow_port"; }

pg_up() {
  [ -x "$pg_bin/initdb" ] || die "no PostgreSQL in $pg_bin (set PG_BIN)"
  local pw
  pw="$(password)"
  if [ ! -f "$dir/pgdata/PG_VERSION" ]; then
    local pwfile="$dir/run/pwfile"
    (umask 077 && printf '%s\n' "$pw" > "$pwfile")
    [ "$(id -u)" = 0 ] && chown postgres "$pwfile"
    as_pg "$pg_bin/initdb" -D "$dir/pgdata" -U mlflow --auth=scram-sha-256 \
      --pwfile="$pwfile" -E UTF8 >"$dir/logs/initdb.log" 2>&1 || {
      rm -f "$pwfile"; die "initdb failed (see $dir/logs/initdb.log)"; }
    rm -f "$pwfile"
  fi
  if ! as_pg "$pg_bin/pg_ctl" -D "$dir/pgdata" status >/dev/null 2>&1; then
    as_pg "$pg_bin/pg_ctl" -D "$dir/pgdata" -l "$dir/logs/postgres.log" -w -t 60 \
      -o "-c listen_addresses=$host -p $pg_port -k $dir/run" start >/dev/null ||
      die "PostgreSQL did not start (see $dir/logs/postgres.log)"
  fi
  if ! PGPASSWORD="$pw" "$pg_bin/psql" -h "$host" -p "$pg_port" -U mlflow -d postgres -tAc \
      "SELECT 1 FROM pg_database WHERE datname = 'mlflow'" | grep -q 1; then
    PGPASSWORD="$pw" "$pg_bin/createdb" -h "$host" -p "$pg_port" -U mlflow mlflow
  fi
}

mlflow_up() {
  if [ -f "$dir/run/mlflow.pid" ] && kill -0 "$(cat "$dir/run/mlflow.pid")" 2>/dev/null; then
    return 0
  fi
  if curl -s -o /dev/null "$(uri)/health" 2>/dev/null; then
    die "something else answers on $(uri) already (set MLFLOW_PORT)"
  fi
  local pw
  pw="$(password)"
  # the password reaches mlflow through its environment, not its command line
  MLFLOW_BACKEND_STORE_URI="postgresql://mlflow:$pw@$host:$pg_port/mlflow" \
  MLFLOW_ARTIFACTS_DESTINATION="$dir/artifacts" \
    nohup "$mlflow_cmd" server --host "$host" --port "$mlflow_port" --workers 2 \
    >"$dir/logs/mlflow.log" 2>&1 &
  echo $! > "$dir/run/mlflow.pid"
  for _ in $(seq 1 120); do
    if curl -fsS "$(uri)/health" >/dev/null 2>&1 && kill -0 "$(cat "$dir/run/mlflow.pid")" 2>/dev/null; then
      return 0
    fi
    kill -0 "$(cat "$dir/run/mlflow.pid")" 2>/dev/null || die "mlflow server exited (see $dir/logs/mlflow.log)"
    sleep 0.5
  done
  die "mlflow server did not answer on $(uri) within 60 s (see $dir/logs/mlflow.log)"
}

mlflow_down() {
  if [ -f "$dir/run/mlflow.pid" ]; then
    local pid
    pid="$(cat "$dir/run/mlflow.pid")"
    if kill -0 "$pid" 2>/dev/null; then
      pkill -TERM -P "$pid" 2>/dev/null || true  # its gunicorn/uvicorn workers
      kill -TERM "$pid" 2>/dev/null || true
      for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
      kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$dir/run/mlflow.pid"
  fi
}

case "${1:-}" in
  up)
    setup_dirs
    pg_up
    mlflow_up
    echo "postgres on $host:$pg_port (data $dir/pgdata), mlflow on $(uri) (artifacts $dir/artifacts)"
    echo "tracking URI: $(uri)   e.g. orchestrate survey --tracking-uri $(uri)"
    ;;
  down)
    [ -d "$dir" ] || exit 0
    dir="$(cd "$dir" && pwd)"
    mlflow_down
    if [ -f "$dir/pgdata/PG_VERSION" ]; then
      as_pg "$pg_bin/pg_ctl" -D "$dir/pgdata" -m fast -w stop >/dev/null 2>&1 || true
    fi
    echo "services stopped"
    ;;
  status)
    code=0
    if [ -d "$dir/pgdata" ] && "$pg_bin/pg_isready" -q -h "$host" -p "$pg_port"; then
      echo "postgres: up on $host:$pg_port"
    else
      echo "postgres: down"; code=1
    fi
    if curl -fsS "$(uri)/health" >/dev/null 2>&1; then
      echo "mlflow: up on $(uri)"
    else
      echo "mlflow: down"; code=1
    fi
    exit $code
    ;;
  restart-mlflow)
    setup_dirs
    mlflow_down
    mlflow_up
    echo "mlflow restarted on $(uri)"
    ;;
  uri)
    uri
    ;;
  *)
    echo "usage: $0 up | down | status | restart-mlflow | uri" >&2
    exit 2
    ;;
esac
