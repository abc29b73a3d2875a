#!/usr/bin/env bash
# The whole suite: lint, SQLite, then PostgreSQL when one answers on 127.0.0.1:5432.
# JOBSITE_REQUIRE_POSTGRES=1 (set by .ci/run) turns a missing PostgreSQL into a failure.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
./scripts/system-packages.sh --browser

echo "== lint (ruff)"
.venv/bin/ruff check .
.venv/bin/ruff format --check .

echo "== types (mypy)"
.venv/bin/mypy

echo "== import layers (import-linter)"
.venv/bin/lint-imports --no-cache

echo "== makemigrations --check"
DJANGO_SETTINGS_MODULE=jobsite.settings.test $PY manage.py makemigrations --check --dry-run >/dev/null

echo "== tests on SQLite"
env -u DATABASE_URL $PY -m pytest "$@"

PG_URL="${JOBSITE_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432}"
if $PY - "$PG_URL" <<'PYEOF'
import sys, psycopg
try:
    psycopg.connect(sys.argv[1] + "/postgres", connect_timeout=3).close()
except Exception as exc:
    print(f"PostgreSQL did not answer: {exc}", file=sys.stderr)
    sys.exit(1)
PYEOF
then
  # A database name of this checkout's own, so parallel runs never share one.
  name="jobsite_$(pwd | cksum | cut -d' ' -f1)"
  # The multi-host test brings its own PostgreSQL cluster, so it ran in the SQLite pass:
  # deselected here, added to whatever -m expression was given (pytest keeps the last -m).
  marker="not multihost"
  pg_args=()
  take_marker=0
  for arg in "$@"; do
    if [ "$take_marker" = 1 ]; then marker="($arg) and not multihost"; take_marker=0; continue; fi
    case "$arg" in
      -m) take_marker=1 ;;
      -m*) marker="(${arg#-m}) and not multihost" ;;
      *) pg_args+=("$arg") ;;
    esac
  done
  echo "== tests on PostgreSQL (test_${name}; -m \"$marker\")"
  DATABASE_URL="$PG_URL/$name" $PY -m pytest --create-db ${pg_args[@]+"${pg_args[@]}"} -m "$marker"
else
  echo "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"
  echo "!!  NO POSTGRESQL ANSWERED on $PG_URL: the PostgreSQL run was SKIPPED  !!"
  echo "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"
  if [ "${JOBSITE_REQUIRE_POSTGRES:-0}" = "1" ]; then
    echo "JOBSITE_REQUIRE_POSTGRES=1: failing." >&2
    exit 1
  fi
fi
