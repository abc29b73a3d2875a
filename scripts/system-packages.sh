#!/usr/bin/env bash
# Installs the Debian packages jobsite needs and the machine lacks: redis-server for
# `make run` and the tests; with --browser (what `make test` passes) also chromium for the
# browser tests, openssl and systemd (systemd-analyze) for the deployment tests
# (tests/deploy/), and iproute2 (`ip netns`) for the multi-host test
# (tests/faults/test_multihost.py). Asks apt only when one is missing.
set -euo pipefail
missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
if [ "${1:-}" = "--browser" ]; then
  [ -x /usr/bin/chromium ] || missing+=(chromium fonts-dejavu-core)
  command -v openssl >/dev/null 2>&1 || missing+=(openssl)
  command -v systemd-analyze >/dev/null 2>&1 || missing+=(systemd)
  command -v ip >/dev/null 2>&1 || [ -x /usr/sbin/ip ] || [ -x /sbin/ip ] || missing+=(iproute2)
fi
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ] && ! command -v sudo >/dev/null 2>&1; then
  echo "jobsite needs these Debian packages: ${missing[*]} (apt-get install them as root)" >&2
  exit 1
fi
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
echo "installing Debian packages: ${missing[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
