#!/usr/bin/env bash
# The main job on embedded defaults. Today: the offline round trip every later part builds on
# (keys, a signed election, 10,000 vote tokens, a receipt, its verification). Once `edgevote up`
# lands, this runs the whole local multi-region stack instead.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh rust
cargo build --release --locked -p edgevote
bin="$PWD/target/release/edgevote"
work=${EDGEVOTE_DEMO_DIR:-$PWD/edgevote-data/demo}
rm -rf "$work" && mkdir -p "$work" && cd "$work"
echo "== working in $work"
"$bin" keys gen --role authority
"$bin" keys gen --role edge
"$bin" keys show
"$bin" election create --id demo-2026 --title "Demo referendum" \
    --option yes:Yes --option no:No --closes +2h --policy first-vote-wins
"$bin" token issue --count 10000 --out tokens.txt
token=$(head -n 1 tokens.txt)
"$bin" receipt issue --token "$token" --choice yes --edge-id edge-local --region local --out receipt.jws
"$bin" verify receipt receipt.jws --election demo-2026
echo "== done: keys in $work/edgevote-keys, receipt in $work/receipt.jws"
