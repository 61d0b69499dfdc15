#!/usr/bin/env bash
# Builds the edge's Wasm bundles into the shared target directory:
#   spin   -> target/wasm32-wasip2/release/edgevote_edge_spin.wasm (wasi:http component, portable:
#            Spin, wasmtime serve, our host)
#   wide   -> target/wasm32-wasip2/release/edgevote_edge_wide.wasm (the same component built with
#            the wide-arithmetic proposal, curve25519-dalek's 64-bit field arithmetic and 128-bit
#            SIMD: faster signatures, but only for engines with wide-arithmetic, i.e. our host;
#            wasmtime 50 enables both by default, Spin and V8 may refuse the module)
#   rogue  -> target/wasm32-wasip2/release/edgevote_rogue_component.wasm (hostile, tests only)
#   verifier -> target/wasm32-unknown-unknown/verifier/edgevote_page_verifier.wasm (the voter
#            page's verifier; the edge host's build script builds and embeds the same module)
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
    wide)
        # wide-arithmetic is an unstable target feature in rustc (a warning, not an error, on
        # stable); the wasm proposal itself is enabled by default in wasmtime 50. simd128 lets
        # the compiler vectorise the constant-time table lookups and copies of the signatures
        # (measured: 160 -> 150 us of CPU per vote under component sealing).
        # Its own target directory: different RUSTFLAGS would otherwise rebuild (and overwrite)
        # the portable component each time the two are built in turn.
        RUSTFLAGS='--cfg curve25519_dalek_bits="64" -C target-feature=+wide-arithmetic,+simd128' \
            CARGO_TARGET_DIR="$root/target/wasm-wide" cargo build --locked --release \
            --manifest-path edge/spin/Cargo.toml --target wasm32-wasip2
        built="$root/target/wasm-wide/wasm32-wasip2/release/edgevote_edge_spin.wasm"
        [ -f "$built" ] || { echo "build-wasm: $built was not produced" >&2; exit 1; }
        wasm="$root/target/wasm32-wasip2/release/edgevote_edge_wide.wasm"
        mkdir -p "$(dirname "$wasm")"
        cp "$built" "$wasm"
        printf 'build-wasm: %s (%s bytes)\n' "$wasm" "$(wc -c < "$wasm")" >&2
        ;;
    rogue)
        # A hostile component for the edge host's tests only; never signed for a deployment.
        CARGO_TARGET_DIR="$root/target" cargo build --locked --release \
            --manifest-path edge/host/tests/rogue/Cargo.toml --target wasm32-wasip2
        wasm="$root/target/wasm32-wasip2/release/edgevote_rogue_component.wasm"
        [ -f "$wasm" ] || { echo "build-wasm: $wasm was not produced" >&2; exit 1; }
        printf 'build-wasm: %s (%s bytes)\n' "$wasm" "$(wc -c < "$wasm")" >&2
        ;;
    verifier)
        CARGO_TARGET_DIR="$root/target" cargo build --locked --profile verifier \
            -p edgevote-page-verifier --target wasm32-unknown-unknown
        wasm="$root/target/wasm32-unknown-unknown/verifier/edgevote_page_verifier.wasm"
        [ -f "$wasm" ] || { echo "build-wasm: $wasm was not produced" >&2; exit 1; }
        printf 'build-wasm: %s (%s bytes)\n' "$wasm" "$(wc -c < "$wasm")" >&2
        ;;
    *) echo "usage: scripts/build-wasm.sh [spin|wide|rogue|verifier]" >&2; exit 2 ;;
esac
