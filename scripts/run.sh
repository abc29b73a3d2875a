#!/usr/bin/env bash
# `make run`: everything jobsite needs on one machine, until Ctrl-C stops it all.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
export DJANGO_SETTINGS_MODULE="${DJANGO_SETTINGS_MODULE:-jobsite.settings.base}"
export REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379/0}"
mkdir -p .run
started_redis=""

# Redis: use the one on REDIS_URL, or start a local one there.
if ! $PY -c "import os, redis; redis.Redis.from_url(os.environ['REDIS_URL'], socket_connect_timeout=2).ping()" 2>/dev/null; then
  ./scripts/system-packages.sh
  port=$($PY -c "import os; from urllib.parse import urlparse; print(urlparse(os.environ['REDIS_URL']).port or 6379)")
  echo "no Redis answered on $REDIS_URL: starting redis-server on 127.0.0.1:$port"
  redis-server --daemonize yes --bind 127.0.0.1 --port "$port" --save "" --appendonly no \
    --dir "$PWD/.run" --logfile "$PWD/.run/redis.log" --pidfile "$PWD/.run/redis.pid"
  started_redis="$PWD/.run/redis.pid"
  for _ in $(seq 50); do $PY -c "import os, redis; redis.Redis.from_url(os.environ['REDIS_URL']).ping()" 2>/dev/null && break; sleep 0.1; done
fi

$PY manage.py migrate --noinput
$PY manage.py ensure_demo_user

pids=()
cleanup() {
  # Finish stopping even when the terminal goes away or Ctrl-C is pressed again.
  trap - TERM EXIT
  trap '' INT HUP
  echo; echo "stopping jobsite..."
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  # The Redis this script started goes with it; one that was already there stays.
  if [ -n "$started_redis" ] && [ -f "$started_redis" ]; then kill -TERM "$(cat "$started_redis")" 2>/dev/null || true; fi
}
trap cleanup INT TERM EXIT

start() { "$@" & pids+=($!); }
start $PY manage.py runserver 127.0.0.1:8000 --noreload
start $PY manage.py rqworker --name "web-demo-worker-1-$$"
start $PY manage.py rqworker --name "web-demo-worker-2-$$" --without-scheduler
for extra in scripts/run.d/*.sh; do [ -e "$extra" ] && source "$extra"; done

echo
echo "jobsite is up: http://127.0.0.1:8000/dashboard/  (Ctrl-C stops everything)"
wait -n "${pids[@]}" || true
