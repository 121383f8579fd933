#!/usr/bin/env bash
# Installs what AttendanSee needs beyond cargo's crates, into the project-local .local/ directory:
#   .local/venv/                       a Python virtualenv holding the official onnxruntime wheel
#   .local/onnxruntime/libonnxruntime.so   link to that wheel's shared library (what the binary loads)
# Idempotent and quick when everything is in place. `--test` adds the test tools (requirements/test.txt)
# and, when node is installed, the browser-test driver (e2e/node_modules: playwright-core, no browser
# download; the tests use the system's chromium).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
local_dir="$root/.local"
venv="$local_dir/venv"

if ! command -v cargo >/dev/null; then
    echo "setup: cargo is missing; install Rust from https://rustup.rs first" >&2
    exit 1
fi
if ! command -v python3 >/dev/null; then
    echo "setup: python3 (3.9 or newer, with venv) is needed to install ONNX Runtime from PyPI" >&2
    exit 1
fi

requirements=("$root/requirements/runtime.txt")
if [ "${1:-}" = "--test" ] && [ -f "$root/requirements/test.txt" ]; then
    requirements+=("$root/requirements/test.txt")
fi

stamp="$venv/.installed"
wanted=$(cat "${requirements[@]}" | sha256sum | cut -c1-64)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$wanted" ]; then
    echo "setup: installing ${requirements[*]##*/} into $venv" >&2
    [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check $(printf -- '-r %s ' "${requirements[@]}")
    echo "$wanted" >"$stamp"
fi

lib=$(find "$venv" -path '*onnxruntime/capi/*' -name 'libonnxruntime.so.*' | sort | tail -n 1)
if [ -z "$lib" ]; then
    echo "setup: the onnxruntime wheel holds no libonnxruntime.so.* (is this Linux x86_64 or aarch64?)" >&2
    exit 1
fi
mkdir -p "$local_dir/onnxruntime"
ln -sfn "$lib" "$local_dir/onnxruntime/libonnxruntime.so"
echo "setup: ONNX Runtime library: $local_dir/onnxruntime/libonnxruntime.so -> ${lib#"$root"/}" >&2

# HEIC photos (iPhones) decode through Debian's libheif, loaded by the workers at run time; the
# tests make HEIC samples with its heif-enc. Installed when we may (root with apt), else named.
heif_packages=(libheif1)
[ "${1:-}" = "--test" ] && heif_packages+=(libheif-examples)
# From libheif 1.17 (Debian 13, Ubuntu 24.04) the HEVC decoder and encoder are plugin packages of
# their own, which --no-install-recommends would leave out; Debian 12 builds them in.
if command -v apt-cache >/dev/null && apt-cache show libheif-plugin-libde265 >/dev/null 2>&1; then
    heif_packages+=(libheif-plugin-libde265)
    [ "${1:-}" = "--test" ] && heif_packages+=(libheif-plugin-x265)
fi
heif_missing=()
for package in "${heif_packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'ok installed' || heif_missing+=("$package")
done
if [ ${#heif_missing[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "setup: installing ${heif_missing[*]} (HEIC photos)" >&2
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${heif_missing[@]}" >/dev/null
    else
        echo "setup: HEIC photos need ${heif_missing[*]} (Debian/Ubuntu: sudo apt-get install ${heif_missing[*]}); other formats work without" >&2
    fi
fi

if [ "${1:-}" = "--test" ] && command -v npm >/dev/null; then
    e2e="$root/e2e"
    if [ ! -f "$e2e/node_modules/.installed" ] || ! cmp -s "$e2e/package-lock.json" "$e2e/node_modules/.installed"; then
        echo "setup: installing the browser-test driver into $e2e/node_modules" >&2
        (cd "$e2e" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error)
        cp "$e2e/package-lock.json" "$e2e/node_modules/.installed"
    fi
fi
