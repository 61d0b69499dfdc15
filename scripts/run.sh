#!/usr/bin/env bash
# The main job on embedded defaults: `edgevote up`, the whole system on this machine (3 regions,
# each with the real Wasm edge component in our wasmtime host, an embedded queue, a collector and
# an embedded store; the stores replicate like DynamoDB Global Tables). Once it is up, a short
# load of demo voters runs through it and prints the reconciled tally; the live table then keeps
# updating until Ctrl-C, which stops everything cleanly. State stays in edgevote-data/up.
#
#   scripts/run.sh                      # up + 1000 demo voters
#   EDGEVOTE_DEMO_VOTERS=0 scripts/run.sh   # up only
#   scripts/run.sh --regions 5          # extra arguments go to `edgevote up`
#
# It runs the release build, the one whose latency and throughput a user would measure (the
# debug profile leaves the workspace's own crates unoptimised); the first build takes longer.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh rust
# `--backend aws` runs on a local moto server, installed into .venv with the Python tools.
case " $* " in *" --backend aws "*|*" --backend=aws "*) bash scripts/bootstrap.sh python ;; esac
bash scripts/build-wasm.sh spin
cargo build --locked --release -p edgevote
bin="$PWD/target/release/edgevote"
data=${EDGEVOTE_DATA_DIR:-$PWD/edgevote-data/up}
voters=${EDGEVOTE_DEMO_VOTERS:-1000}

rm -f "$data/stack.json"
"$bin" up --data-dir "$data" "$@" &
up_pid=$!
trap 'kill -INT $up_pid 2>/dev/null || true' INT TERM
for _ in $(seq 1 600); do
    [ -f "$data/stack.json" ] && break
    kill -0 "$up_pid" 2>/dev/null || { wait "$up_pid"; exit $?; }
    sleep 0.1
done
if [ "$voters" -gt 0 ]; then
    echo "== demo: $voters voters (some vote twice, some in two regions at once, some retry)"
    "$bin" load --up "$data" --voters "$voters" --rate 1000 || echo "== demo load reported a problem (see above)"
    echo "== the stack keeps running; Ctrl-C stops it"
fi
wait "$up_pid"
