#!/usr/bin/env bash
# The whole test suite: formatting, lints, wasm builds of the portable crates, every Rust test,
# and the third-party (Python JOSE) verification tests. Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}
# Every step below (the simulation binary, the wasm components) reads ./target: a caller's
# CARGO_TARGET_DIR would send the builds elsewhere and fail later steps.
export CARGO_TARGET_DIR="$PWD/target"
# CI builds from a clean tree, where incremental caches (a gigabyte or more of target/) are
# written and never read; a local re-run rebuilds a changed crate whole instead.
export CARGO_INCREMENTAL=0
started=$(date +%s)
step() { printf '\n==> %s (%ss)\n' "$*" "$(( $(date +%s) - started ))"; }
# The trust figures (simulation, fuzzing, hostile inputs) are gathered here and repeated at the end.
figures=target/ci-figures.txt
mkdir -p target && : > "$figures"

# Free disk, printed first, so that the log of a run that dies of a full disk shows what it had.
free_mib=$(df -Pm . | awk 'NR == 2 { print $4 }')
echo "disk: ${free_mib} MiB free at the start"
if (( free_mib < 2048 )); then
    echo "test.sh: only ${free_mib} MiB free on $(df -P . | awk 'NR == 2 { print $6 }'); free some disk first" >&2
    exit 1
fi

step "bootstrap"
bash scripts/bootstrap.sh all

step "infra: OpenTofu checked offline (python-hcl2, infra/check.py, checkov)"
bash scripts/check-infra.sh

step "ops: dashboard, alert rules (promtool checks and rule unit tests) and runbook links"
.venv/bin/python ops/check_ops.py \
    --promtool "${EDGEVOTE_CACHE:-$HOME/.cache/edgevote}/promtool/usr/bin/promtool"

step "cargo fmt --check"
cargo fmt --all -- --check
cargo fmt --manifest-path edge/spin/Cargo.toml -- --check
cargo fmt --manifest-path edge/host/tests/rogue/Cargo.toml -- --check

step "cargo clippy (all targets, warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "the edge component (portable and wide-arithmetic builds), the hostile test component (wasm32-wasip2) and their lints"
bash scripts/build-wasm.sh spin
bash scripts/build-wasm.sh wide   # the wide-arithmetic build for our host (tests and bench)
bash scripts/build-wasm.sh rogue
for manifest in edge/spin/Cargo.toml edge/host/tests/rogue/Cargo.toml; do
    CARGO_TARGET_DIR="$PWD/target" cargo clippy --locked --manifest-path "$manifest" \
        --target wasm32-wasip2 -- -D warnings
done

step "wasm builds of the portable crates"
for target in wasm32-wasip2 wasm32-unknown-unknown; do
    cargo build --locked -p edgevote-shared -p edgevote-edge-core -p edgevote-edge-sqs --target "$target"
done

step "cargo test (workspace)"
cargo test --workspace --locked

step "deterministic simulation: 500 seeds of 3 regions under faults and forged messages, and the canary"
# The binary `cargo test --workspace` built (a `cargo run -p` would rebuild with other features).
sim=target/debug/edgevote-sim
"$sim" --seeds 500 | tee -a "$figures"
"$sim" --canary --seeds 20 | tail -n 1 | tee -a "$figures"

step "fuzz smoke (cargo-fuzz: every shared parser and verifier, ${EDGEVOTE_FUZZ_SECONDS:-10} s per target)"
bash scripts/fuzz.sh smoke "${EDGEVOTE_FUZZ_SECONDS:-10}" | tee -a "$figures"

step "hostile-input catalogue: the figures (the cases also ran above)"
# --workspace: the same features as the run above, so nothing is rebuilt.
cargo test --workspace --locked -q --test it hostile -- --nocapture 2>/dev/null \
    | grep -o 'hostile-input catalogue.*' | tee -a "$figures"

step "third-party verification (python: jwcrypto, PyJWT)"
cargo build --locked -p edgevote
EDGEVOTE_BIN="$PWD/target/debug/edgevote" .venv/bin/python -m pytest -q tests/python

step "the voter's page end to end in headless Chromium (vote, receipt verified in wasm, live log, accessibility)"
# Chromium from scripts/bootstrap.sh browser; a missing one fails the test.
EDGEVOTE_BIN="$PWD/target/debug/edgevote" .venv/bin/python -m pytest -q tests/browser

step "the Cloudflare Worker (workers-rs): tools, bundle, lints, unit tests, end to end under workerd"
bash scripts/worker.sh          # tools cached in ${EDGEVOTE_CACHE:-~/.cache/edgevote}, then edge/worker/build/
bash scripts/worker.sh check    # fmt --check, clippy wasm32 -D warnings, unit tests
EDGEVOTE_BIN="$PWD/target/debug/edgevote" .venv/bin/python -m pytest -q tests/worker

step "figures of this run"
echo "disk: target/ holds $(du -sm target | cut -f1) MiB at the end" >> "$figures"
cat "$figures"

step "all tests passed"
