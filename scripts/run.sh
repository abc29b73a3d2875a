#!/usr/bin/env bash
# `make run`: everything jobsite needs on one machine, until Ctrl-C (or SIGINT / SIGTERM
# to make or to this script) stops it all within 5 s. Each service logs to .run/<name>.log
# (JOBSITE_RUN_DIR);
# the terminal shows where the dashboard is, the login and a short status line.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
export DJANGO_SETTINGS_MODULE="${DJANGO_SETTINGS_MODULE:-jobsite.settings.base}"
export REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379/0}"
export PYTHONUNBUFFERED=1
PORT="${JOBSITE_RUN_PORT:-8000}"
RUN="$(realpath -m "${JOBSITE_RUN_DIR:-.run}")"
mkdir -p "$RUN"
UP="$RUN/up"
started_redis=""
pids=()
names=()

say() { printf '%s\n' "$*"; }

# Redis: use the one on REDIS_URL, or start a local one there.
if ! $PY -c "import os, redis; redis.Redis.from_url(os.environ['REDIS_URL'], socket_connect_timeout=2).ping()" 2>/dev/null; then
  ./scripts/system-packages.sh
  port=$($PY -c "import os; from urllib.parse import urlparse; print(urlparse(os.environ['REDIS_URL']).port or 6379)")
  say "no Redis answered on $REDIS_URL: starting redis-server on 127.0.0.1:$port (log: $RUN/redis.log)"
  redis-server --daemonize yes --bind 127.0.0.1 --port "$port" --save "" --appendonly no \
    --dir "$RUN" --logfile "$RUN/redis.log" --pidfile "$RUN/redis.pid"
  started_redis="$RUN/redis.pid"
  for _ in $(seq 50); do $PY -c "import os, redis; redis.Redis.from_url(os.environ['REDIS_URL']).ping()" 2>/dev/null && break; sleep 0.1; done
fi

if ! $PY manage.py migrate --noinput >"$RUN/migrate.log" 2>&1; then
  say "migrate failed; its output:"; cat "$RUN/migrate.log"; exit 1
fi
login=$($PY manage.py ensure_demo_user | tail -n 1)

stopping=""
cleanup() {
  # Finish stopping even when the terminal goes away or Ctrl-C is pressed again.
  [ -n "$stopping" ] && return
  stopping=1
  trap '' INT TERM HUP
  say ""; say "stopping jobsite..."
  # First SIGTERM: RQ workers finish their job (warm); a second one, 2 s later, stops it
  # (cold: the attempt is recorded as interrupted and retried). Whatever is left at 4 s is killed.
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for step in $(seq 40); do
    alive=0
    for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    [ "$alive" = 0 ] && break
    [ "$step" = 20 ] && for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    sleep 0.1
  done
  for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  # The Redis this script started goes with it; one that was already there stays.
  if [ -n "$started_redis" ] && [ -f "$started_redis" ]; then kill -TERM "$(cat "$started_redis")" 2>/dev/null || true; fi
  rm -f "$UP"
  say "stopped."
}
trap 'cleanup; exit 130' INT
trap 'cleanup; exit 143' TERM HUP
trap cleanup EXIT

# start NAME COMMAND...: run a service in the background, its output in .run/NAME.log.
start() { local name=$1; shift; "$@" >"$RUN/$name.log" 2>&1 & pids+=($!); names+=("$name"); }
start web $PY manage.py runserver "127.0.0.1:$PORT" --noreload
start worker-1 $PY manage.py rqworker --name "web-demo-worker-1-$$"
start worker-2 $PY manage.py rqworker --name "web-demo-worker-2-$$" --without-scheduler
for extra in scripts/run.d/*.sh; do [ -e "$extra" ] && source "$extra"; done
touch "$UP"

say ""
say "jobsite is starting: http://127.0.0.1:$PORT/dashboard/"
say "$login"
for _ in $(seq 100); do
  $PY -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$PORT/healthz', timeout=1)" 2>/dev/null && break
  sleep 0.3
done

status() {
  local line="" i
  for i in "${!pids[@]}"; do
    if kill -0 "${pids[$i]}" 2>/dev/null; then line+="${names[$i]} up · "; else line+="${names[$i]} DOWN · "; fi
  done
  say "${line}logs in $RUN/*.log"
}
say ""
say "jobsite is up: http://127.0.0.1:$PORT/dashboard/   $login"
status
say "Ctrl-C stops everything."

# Wait until a service ends on its own or make deleted $UP (make got SIGINT); say which.
while true; do
  [ -e "$UP" ] || { say "make was interrupted"; exit 130; }
  for i in "${!pids[@]}"; do
    if ! kill -0 "${pids[$i]}" 2>/dev/null; then
      say "${names[$i]} stopped on its own; the last lines of $RUN/${names[$i]}.log:"
      tail -n 15 "$RUN/${names[$i]}.log" || true
      exit 1
    fi
  done
  sleep 0.5
done
