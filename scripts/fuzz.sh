#!/usr/bin/env bash
# Fuzzes the parsers and verifiers of the shared crate with cargo-fuzz (libFuzzer + AddressSanitizer).
# The targets live in fuzz/ (its own cargo workspace); docs/fuzzing.md says what each one checks.
#
# Usage: scripts/fuzz.sh <command> [args]
#   smoke [seconds] [target...]   every target (or the ones named) for `seconds` each (default 20),
#                                 one after the other, seeded from fuzz/corpus/<target>; new inputs go
#                                 to a scratch directory, so the checked-in corpus stays as it is.
#                                 Prints a summary table; exits 1 if any target crashed. (CI)
#   long [seconds] [target...]    the long run: `seconds` per target (default 3600) on every core
#                                 (libFuzzer -fork), growing fuzz/corpus/<target> (new files there are
#                                 git-ignored; only seed-* files are checked in).
#   list                          the fuzz targets
#   build                         install the tools and build every target (nothing else)
#   repro <target> <input>        run one input (e.g. fuzz/artifacts/<target>/crash-...) and show the failure
#   tmin <target> <input>         minimise a crashing input (result in fuzz/artifacts/<target>/minimized-*)
#   cmin <target>                 minimise fuzz/corpus/<target> (after long runs)
#   seeds [--check]               regenerate the seed files fuzz/corpus/*/seed-* (or only compare)
#
# Tools: cargo-fuzz $CARGO_FUZZ_VERSION, installed once from crates.io into
# ${EDGEVOTE_CACHE:-$HOME/.cache/edgevote}/cargo-fuzz-<version>, and a nightly toolchain (installed
# with rustup if missing). A nightly older than the workspace's rust-version cannot build the shared
# crate; then the pinned toolchain (rust-toolchain.toml) builds the targets with RUSTC_BOOTSTRAP=1,
# which enables the same nightly-only sanitizer flags on that compiler. EDGEVOTE_FUZZ_TOOLCHAIN picks a
# toolchain explicitly. Builds go to fuzz/target, logs to fuzz/target/fuzz-logs/<command>/.
#
# Environment: EDGEVOTE_FUZZ_JOBS (long: parallel fuzzing processes, default: all cores),
# EDGEVOTE_FUZZ_TIMEOUT (seconds one input may take before it counts as a hang, default 10).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
FUZZ_DIR=$ROOT/fuzz
CACHE=${EDGEVOTE_CACHE:-$HOME/.cache/edgevote}
CARGO_FUZZ_VERSION=0.13.2
CARGO_FUZZ_ROOT=$CACHE/cargo-fuzz-$CARGO_FUZZ_VERSION
CARGO_FUZZ_BIN=$CARGO_FUZZ_ROOT/bin/cargo-fuzz
TIMEOUT=${EDGEVOTE_FUZZ_TIMEOUT:-10}
# Fuzz builds never share a target directory with the main workspace (different flags).
export CARGO_TARGET_DIR=$FUZZ_DIR/target
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}

started=$(date +%s)
say() { printf '[fuzz] %s\n' "$*" >&2; }
die() { printf '[fuzz] ERROR: %s\n' "$*" >&2; exit 2; }
elapsed() { echo "$(( $(date +%s) - ${1:-$started} ))s"; }

# The fuzz targets: the [[bin]] names of fuzz/Cargo.toml, sorted (what `cargo fuzz list` prints).
targets() {
    awk '
        /^\[\[bin\]\]/ { in_bin = 1; next }
        /^\[/ { in_bin = 0 }
        in_bin && $1 == "name" { gsub(/"/, "", $3); print $3 }
    ' "$FUZZ_DIR/Cargo.toml" | sort
}

is_target() { targets | grep -qx -- "$1"; }

# True when version $1 >= version $2 (dotted numbers).
version_ge() { [ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n 1)" = "$2" ]; }

# Sets TOOLCHAIN and BOOTSTRAP (1: RUSTC_BOOTSTRAP=1 on a release toolchain).
choose_toolchain() {
    command -v rustup >/dev/null || die "rustup is not installed; run scripts/bootstrap.sh first"
    local required pinned version
    required=$(sed -n 's/^rust-version *= *"\(.*\)"/\1/p' Cargo.toml)
    pinned=$(sed -n 's/^channel *= *"\(.*\)"/\1/p' rust-toolchain.toml)
    [ -n "$required" ] && [ -n "$pinned" ] || die "cannot read rust-version (Cargo.toml) or channel (rust-toolchain.toml)"
    if [ -n "${EDGEVOTE_FUZZ_TOOLCHAIN:-}" ]; then
        TOOLCHAIN=$EDGEVOTE_FUZZ_TOOLCHAIN
        version=$(rustup run "$TOOLCHAIN" rustc --version 2>/dev/null) \
            || die "toolchain $TOOLCHAIN (EDGEVOTE_FUZZ_TOOLCHAIN) is not installed"
        case $version in *nightly*|*-dev*) BOOTSTRAP=0 ;; *) BOOTSTRAP=1 ;; esac
        say "toolchain $TOOLCHAIN ($version), from EDGEVOTE_FUZZ_TOOLCHAIN"
        return
    fi
    if ! rustup run nightly rustc --version >/dev/null 2>&1; then
        say "installing the nightly toolchain (cargo-fuzz needs nightly-only compiler flags)"
        rustup toolchain install nightly --profile minimal \
            || die "could not install a nightly toolchain with rustup (check access to the rustup server)"
    fi
    version=$(rustup run nightly rustc --version)
    local number
    number=$(awk '{ print $2 }' <<<"$version")
    number=${number%%-*}
    if version_ge "$number" "$required"; then
        TOOLCHAIN=nightly
        BOOTSTRAP=0
        say "toolchain nightly ($version)"
        return
    fi
    rustup run "$pinned" rustc --version >/dev/null 2>&1 \
        || die "nightly is $version, older than rust-version $required, and the pinned $pinned is not installed (scripts/bootstrap.sh rust, or rustup toolchain install nightly)"
    TOOLCHAIN=$pinned
    BOOTSTRAP=1
    say "nightly is $version, older than the workspace's rust-version $required: building with the pinned $pinned and RUSTC_BOOTSTRAP=1 (rustup toolchain install nightly switches to a current nightly)"
}

install_cargo_fuzz() {
    if [ -x "$CARGO_FUZZ_BIN" ] && "$CARGO_FUZZ_BIN" fuzz --version 2>/dev/null | grep -qF "$CARGO_FUZZ_VERSION"; then
        say "cargo-fuzz $CARGO_FUZZ_VERSION present ($CARGO_FUZZ_ROOT)"
        return
    fi
    say "installing cargo-fuzz $CARGO_FUZZ_VERSION into $CARGO_FUZZ_ROOT from crates.io"
    local t0 log
    t0=$(date +%s)
    mkdir -p "$CACHE"
    log=$CACHE/install-cargo-fuzz-$CARGO_FUZZ_VERSION.log
    # An unoptimised build: cargo-fuzz only drives cargo and libFuzzer, and compiles ~3x faster.
    if ! env -u CARGO_TARGET_DIR CARGO_PROFILE_DEV_DEBUG=false nice -n 10 cargo "+$TOOLCHAIN" install --locked --debug \
        --root "$CARGO_FUZZ_ROOT" cargo-fuzz --version "$CARGO_FUZZ_VERSION" >"$log" 2>&1; then
        tail -n 30 "$log" >&2
        die "cargo install cargo-fuzz $CARGO_FUZZ_VERSION failed (full log: $log)"
    fi
    say "cargo-fuzz $CARGO_FUZZ_VERSION installed in $(elapsed "$t0")"
}

tools() {
    choose_toolchain
    install_cargo_fuzz
}

# cargo fuzz <args> with the chosen toolchain.
cargo_fuzz() {
    local -a env=(PATH="$CARGO_FUZZ_ROOT/bin:$PATH")
    [ "$BOOTSTRAP" = 1 ] && env+=(RUSTC_BOOTSTRAP=1)
    env "${env[@]}" nice -n 10 cargo "+$TOOLCHAIN" fuzz "$@"
}

build() {
    local t0
    t0=$(date +%s)
    say "building the fuzz targets (release, debug assertions, AddressSanitizer) into fuzz/target"
    cargo_fuzz build --fuzz-dir "$FUZZ_DIR" || die "cargo fuzz build failed"
    say "fuzz targets built in $(elapsed "$t0")"
}

# Figures of one libFuzzer log: runs, exec/s, corpus entries, coverage (- when unknown).
figures() {
    local log=$1 runs corpus cov
    runs=$(sed -n 's/^Done \([0-9]*\) runs in.*/\1/p' "$log" | tail -n 1)
    if [ -z "$runs" ]; then
        # -fork mode prints "#<runs>: cov: ... corp: ..." status lines instead.
        runs=$(sed -n 's/^#\([0-9]*\): cov:.*/\1/p' "$log" | tail -n 1 || true)
    fi
    corpus=$(grep -Eo 'corp: [0-9]+' "$log" | tail -n 1 | awk '{ print $2 }' || true)
    cov=$(grep -Eo 'cov: [0-9]+' "$log" | tail -n 1 | awk '{ print $2 }' || true)
    echo "${runs:--} ${corpus:--} ${cov:--}"
}

# The libFuzzer dictionary of a target (fuzz/dicts/), if it has one.
dict_for() {
    case $1 in
        b64|merkle) ;;
        checkpoint) echo "$FUZZ_DIR/dicts/checkpoint.dict" ;;
        *) echo "$FUZZ_DIR/dicts/json.dict" ;;
    esac
}

# fuzz <smoke|long> <seconds> [targets...]
fuzz() {
    local kind=$1 seconds=$2
    shift 2
    case $seconds in ''|*[!0-9]*) die "seconds must be a whole number, got '$seconds'" ;; esac
    local -a chosen
    if [ $# -gt 0 ]; then
        for t in "$@"; do is_target "$t" || die "unknown target '$t' (scripts/fuzz.sh list)"; done
        chosen=("$@")
    else
        mapfile -t chosen < <(targets)
    fi
    tools
    build
    local logs=$FUZZ_DIR/target/fuzz-logs/$kind
    rm -rf "$logs"
    mkdir -p "$logs"
    local jobs=${EDGEVOTE_FUZZ_JOBS:-$(nproc)}
    local -a rows failed=()
    local t0 target
    t0=$(date +%s)
    for target in "${chosen[@]}"; do
        local log=$logs/$target.log seeds=$FUZZ_DIR/corpus/$target artifacts=$FUZZ_DIR/artifacts/$target
        local -a corpora libfuzzer
        mkdir -p "$seeds" "$artifacts"
        libfuzzer=(-max_total_time="$seconds" -timeout="$TIMEOUT" -print_final_stats=1)
        local dict
        dict=$(dict_for "$target")
        [ -z "$dict" ] || libfuzzer+=(-dict="$dict")
        if [ "$kind" = smoke ]; then
            # New inputs go to the first directory: a scratch one, so the run leaves the tree alone.
            local scratch=$FUZZ_DIR/target/fuzz-scratch/$target
            rm -rf "$scratch"
            mkdir -p "$scratch"
            corpora=("$scratch" "$seeds")
        else
            corpora=("$seeds")
            libfuzzer+=(-fork="$jobs")
        fi
        local marker=$logs/$target.start
        touch "$marker"
        say "$kind: $target for ${seconds}s (log: ${log#"$ROOT"/})"
        local status=0
        cargo_fuzz run --fuzz-dir "$FUZZ_DIR" "$target" "${corpora[@]}" -- "${libfuzzer[@]}" >"$log" 2>&1 || status=$?
        local crashes
        crashes=$(find "$artifacts" -type f -newer "$marker" | wc -l)
        read -r runs corpus cov < <(figures "$log")
        rows+=("$target $runs $corpus $cov $crashes $status")
        if [ "$status" != 0 ] || [ "$crashes" != 0 ]; then
            failed+=("$target")
            say "$target FAILED (exit $status); the end of its log:"
            grep -v '^#[0-9]' "$log" | tail -n 40 >&2
            find "$artifacts" -type f -newer "$marker" | while read -r input; do
                say "reproduce: scripts/fuzz.sh repro $target ${input#"$ROOT"/}"
            done
        fi
        rm -f "$marker"
    done
    printf '\n%-11s %12s %8s %7s %8s\n' target runs corpus cov crashes
    local row
    for row in "${rows[@]}"; do
        read -r target runs corpus cov crashes status <<<"$row"
        [ "$status" = 0 ] || crashes="$crashes (exit $status)"
        printf '%-11s %12s %8s %7s %8s\n' "$target" "$runs" "$corpus" "$cov" "$crashes"
    done
    printf '\n%s: %d targets, %ss each, fuzzing took %s (total %s)\n' "$kind" "${#chosen[@]}" "$seconds" \
        "$(elapsed "$t0")" "$(elapsed)"
    if [ ${#failed[@]} -gt 0 ]; then
        say "crashed: ${failed[*]} (inputs in fuzz/artifacts/<target>/, logs in ${logs#"$ROOT"/})"
        exit 1
    fi
}

needs_input() {
    [ $# -eq 2 ] || die "usage: scripts/fuzz.sh $CMD <target> <input file>"
    is_target "$1" || die "unknown target '$1' (scripts/fuzz.sh list)"
    [ -f "$2" ] || die "no such input file: $2"
}

CMD=${1:-}
[ $# -gt 0 ] && shift
case $CMD in
    smoke) fuzz smoke "${1:-20}" "${@:2}" ;;
    long) fuzz long "${1:-3600}" "${@:2}" ;;
    list) targets ;;
    build) tools; build ;;
    repro)
        needs_input "$@"
        tools
        input=$(realpath "$2")
        cargo_fuzz run --fuzz-dir "$FUZZ_DIR" "$1" "$input" -- -runs=1
        ;;
    tmin)
        needs_input "$@"
        tools
        input=$(realpath "$2")
        cargo_fuzz tmin --fuzz-dir "$FUZZ_DIR" "$1" "$input"
        ;;
    cmin)
        [ $# -eq 1 ] && is_target "$1" || die "usage: scripts/fuzz.sh cmin <target>"
        tools
        cargo_fuzz cmin --fuzz-dir "$FUZZ_DIR" "$1"
        ;;
    seeds)
        nice -n 10 cargo run --quiet --manifest-path "$FUZZ_DIR/Cargo.toml" --example gen_corpus -- "$@"
        ;;
    *)
        sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
        exit 2
        ;;
esac
