#!/usr/bin/env bash
# Sets everything up and runs the whole test suite: every crate's unit and integration tests,
# then the README check (the README's serve command, followed literally, answers /api/health/).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --test
export ORT_DYLIB_PATH="${ORT_DYLIB_PATH:-$PWD/.local/onnxruntime/libonnxruntime.so}"
# fault-injection: lets the pool tests make workers abort, segfault, hang… (never in a release build)
cargo test --workspace --locked --features attendansee/fault-injection
scripts/check-readme.sh
