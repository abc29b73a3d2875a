#!/usr/bin/env bash
# `make bench-peers`: jobsite's workers beside bare RQ, Celery + django-celery-results,
# django-q2, procrastinate and django-tasks (bench/peers). Each peer gets a venv of its own
# in .bench-peers/ from its pinned requirements (made again when they change), the run a
# redis-server of its own and a PostgreSQL database per row (jobsite_peers_*, dropped at
# the end). Arguments go to bench/peers/run.py: rows, --reps N, --scale F.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
PYTHON="${PYTHON:-python3}"
./scripts/system-packages.sh

for requirements in bench/peers/requirements/*.txt; do
  name=$(basename "$requirements" .txt)
  venv=".bench-peers/$name"
  sum=$(sha256sum "$requirements" | cut -d' ' -f1)
  if [ "$(cat "$venv/.installed" 2>/dev/null)" != "$sum" ]; then
    echo "== the $name venv"
    rm -rf "$venv"
    "$PYTHON" -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements"
    echo "$sum" > "$venv/.installed"
  fi
done

PG_URL="${JOBSITE_BENCH_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432}"
port=$($PY -c "import socket; s=socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])")
workdir=$(mktemp -d -t jobsite-bench-peers-XXXXXX)
redis-server --bind 127.0.0.1 --port "$port" --save "" --appendonly no --dir "$workdir" \
  --logfile "$workdir/redis.log" &
redis_pid=$!
cleanup() {
  kill "$redis_pid" 2>/dev/null || true
  wait "$redis_pid" 2>/dev/null || true
  rm -rf "$workdir"
}
trap cleanup EXIT INT TERM
for _ in $(seq 100); do
  $PY -c "import redis; redis.Redis(port=$port).ping()" 2>/dev/null && break
  sleep 0.1
done

export REDIS_URL="redis://127.0.0.1:$port/0"
export BENCH_PG_URL="$PG_URL"
export BENCH_WORKDIR="$workdir"
$PY -m bench.peers.run "$@"
