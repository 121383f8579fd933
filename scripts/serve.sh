#!/usr/bin/env bash
# Sets everything up and runs the service with its embedded defaults: SQLite and photos under
# ./data, listening on http://127.0.0.1:8000. Extra arguments go to `attendansee serve`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo build --release --locked --bin attendansee
export ORT_DYLIB_PATH="${ORT_DYLIB_PATH:-$PWD/.local/onnxruntime/libonnxruntime.so}"
exec target/release/attendansee serve "$@"
