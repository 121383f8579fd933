#!/usr/bin/env bash
# Follows the README: runs the serve command it gives (the line after `<!-- serve-command -->`'s
# code fence) on a free loopback port with a fresh data directory, and expects /api/health/ to
# answer 200 with status "ok". Prints a closing "N passed, N failed" line.
set -euo pipefail
cd "$(dirname "$0")/.."

command=$(awk '/<!-- serve-command -->/ {found=1; next} found && /^```/ {fence++; next} found && fence==1 {print; exit}' README.md)
if [ -z "$command" ]; then
    echo "check-readme: no serve command after <!-- serve-command --> in README.md"
    echo "readme: 0 passed, 1 failed"
    exit 1
fi
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
data=$(mktemp -d)
log="$data/serve.log"
echo "check-readme: running '$command' on 127.0.0.1:$port"
# Offline machines (CI) install the models from ../shared when it is there, as a user would with a mirror.
if [ -d ../shared/models ]; then export ATTENDANSEE_MODEL_MIRROR="$(cd ../shared/models && pwd)"; fi
ATTENDANSEE_BIND="127.0.0.1:$port" ATTENDANSEE_DATA_DIR="$data/data" setsid bash -c "$command" >"$log" 2>&1 &
pid=$!
cleanup() { kill -TERM -- "-$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$data"; }
trap cleanup EXIT

# The first run compiles a release build: allow it time.
deadline=$((SECONDS + 900))
body=""
while [ $SECONDS -lt $deadline ]; do
    if ! kill -0 "$pid" 2>/dev/null; then break; fi
    if body=$(python3 -c 'import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())' \
        "http://127.0.0.1:$port/api/health/" 2>/dev/null); then break; fi
    sleep 1
done
if echo "$body" | grep -q '"status":"ok"' && { [ ! -d ../shared/models ] || echo "$body" | grep -q '"models_loaded":\["yunet","mobilefacenet"\]'; }; then
    echo "check-readme: /api/health/ answered $body"
    echo "readme: 1 passed, 0 failed"
else
    echo "check-readme: the README's serve command did not answer /api/health/; its output:"
    tail -n 40 "$log"
    echo "readme: 0 passed, 1 failed"
    exit 1
fi
