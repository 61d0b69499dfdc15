#!/usr/bin/env bash
# Builds the edge's Wasm bundles into the shared target directory:
#   spin   -> target/wasm32-wasip2/release/edgevote_edge_spin.wasm (wasi:http component)
# (the Cloudflare Worker has its own script, scripts/worker.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
what=${1:-spin}
case "$what" in
    spin)
        CARGO_TARGET_DIR="$root/target" cargo build --locked --release \
            --manifest-path edge/spin/Cargo.toml --target wasm32-wasip2
        wasm="$root/target/wasm32-wasip2/release/edgevote_edge_spin.wasm"
        [ -f "$wasm" ] || { echo "build-wasm: $wasm was not produced" >&2; exit 1; }
        printf 'build-wasm: %s (%s bytes)\n' "$wasm" "$(wc -c < "$wasm")" >&2
        ;;
    *) echo "usage: scripts/build-wasm.sh [spin]" >&2; exit 2 ;;
esac
