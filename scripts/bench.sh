#!/usr/bin/env bash
# `make bench`: side-by-side benchmarks on a redis-server of their own and a PostgreSQL
# database of their own (jobsite_bench on 127.0.0.1:5432, or $JOBSITE_BENCH_DB, dropped and
# created afresh).
# Prints one table of ratios and writes bench/results.json. Arguments pick benchmarks:
#   ./scripts/bench.sh enqueue throughput
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
./scripts/system-packages.sh

PG_URL="${JOBSITE_BENCH_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432}"
DB_NAME="${JOBSITE_BENCH_DB:-jobsite_bench}"
$PY - "$PG_URL" "$DB_NAME" <<'PYEOF'
import sys, psycopg
url, name = sys.argv[1], sys.argv[2]
try:
    conn = psycopg.connect(url + "/postgres", autocommit=True, connect_timeout=5)
except Exception as exc:
    sys.exit(f"make bench needs PostgreSQL on {url}: {exc}")
with conn:
    conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    conn.execute(f'CREATE DATABASE "{name}"')
PYEOF

free_port() { $PY -c "import socket; s=socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])"; }
port=$(free_port)
replica_port=$(free_port)
workdir=$(mktemp -d -t jobsite-bench-XXXXXX)
redis-server --bind 127.0.0.1 --port "$port" --save "" --appendonly no --dir "$workdir" \
  --repl-diskless-sync-delay 0 --logfile "$workdir/redis.log" &
redis_pid=$!
# A replica, for the cost of JOBSITE["ENQUEUE_WAIT"] (bench/enqueue_wait.py).
mkdir "$workdir/replica"
redis-server --bind 127.0.0.1 --port "$replica_port" --save "" --appendonly no --dir "$workdir/replica" \
  --replicaof 127.0.0.1 "$port" --logfile "$workdir/replica.log" &
replica_pid=$!
cleanup() {
  kill "$redis_pid" "$replica_pid" 2>/dev/null || true
  wait "$redis_pid" "$replica_pid" 2>/dev/null || true
  rm -rf "$workdir"
  # The pages bench leaves 10,000,000 records (8.5 GB) in it: not kept past the run.
  $PY -c "import sys, psycopg; psycopg.connect(sys.argv[1] + '/postgres', autocommit=True).execute('DROP DATABASE IF EXISTS \"' + sys.argv[2] + '\" WITH (FORCE)')" \
    "$PG_URL" "$DB_NAME" 2>/dev/null || true
}
trap cleanup EXIT INT TERM
for _ in $(seq 100); do
  $PY -c "import redis; redis.Redis(port=$port).ping()" 2>/dev/null && break
  sleep 0.1
done
for _ in $(seq 100); do
  $PY -c "import redis, sys; sys.exit(redis.Redis(port=$replica_port).info('replication')['master_link_status'] != 'up')" \
    2>/dev/null && break
  sleep 0.1
done

export REDIS_URL="redis://127.0.0.1:$port/0"
export DATABASE_URL="$PG_URL/$DB_NAME"
export DJANGO_SETTINGS_MODULE=jobsite.settings.base
export DJANGO_DEBUG=0
export DJANGO_ALLOWED_HOSTS="127.0.0.1,localhost,testserver"
export DJANGO_LOG_LEVEL=WARNING
export PYTHONUNBUFFERED=1
$PY -m bench.run "$@"
