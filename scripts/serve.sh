#!/usr/bin/env bash
# Sets everything up and runs the service with its embedded defaults: SQLite and photos under
# ./data, listening on http://127.0.0.1:8000. Extra arguments go to `attendansee serve`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo build --release --locked --bin attendansee
export ORT_DYLIB_PATH="${ORT_DYLIB_PATH:-$PWD/.local/onnxruntime/libonnxruntime.so}"
# The default detector and recognizer (from ATTENDANSEE_MODEL_MIRROR if set, else downloaded).
# Without them the service still runs; its face routes then say which model is missing and how
# to install it.
target/release/attendansee models fetch yunet mobilefacenet ||
    echo "serve.sh: models not installed; run 'attendansee models fetch yunet mobilefacenet' later" >&2
exec target/release/attendansee serve "$@"
