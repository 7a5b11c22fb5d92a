#!/usr/bin/env bash
# Installs the two peers the benchmark harness compares ghost-sync with: redis-server and
# nats-server (Debian packages). Idempotent: re-running it installs nothing twice.
#
# The harness starts each server itself, on its own loopback port, as a child process; the
# system services the packages ship are neither needed nor wanted (they would hold ports 6379
# and 4222 and use CPU during the measurements), so they are kept from starting, and stopped
# and disabled if they run.
#
# Usage (as root, or with sudo available):  scripts/install-bench-peers.sh
set -euo pipefail

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi

need=()
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
command -v nats-server >/dev/null 2>&1 || need+=(nats-server)

if [ "${#need[@]}" -gt 0 ]; then
    # policy-rc.d exit code 101 = "action forbidden": the packages' postinst scripts then do
    # not start their services. Removed again afterwards (only if this script created it).
    created_policy=0
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
        $SUDO chmod +x /usr/sbin/policy-rc.d
        created_policy=1
    fi
    cleanup() {
        if [ "$created_policy" -eq 1 ]; then
            $SUDO rm -f /usr/sbin/policy-rc.d
        fi
    }
    trap cleanup EXIT
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}"
fi

# If a service manager started them anyway (or an earlier install did), stop them.
for svc in redis-server nats-server; do
    if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet "$svc" 2>/dev/null; then
        $SUDO systemctl stop "$svc" || true
        $SUDO systemctl disable "$svc" >/dev/null 2>&1 || true
    elif command -v service >/dev/null 2>&1 && service "$svc" status >/dev/null 2>&1; then
        $SUDO service "$svc" stop >/dev/null 2>&1 || true
    fi
done

redis-server --version
nats-server --version
