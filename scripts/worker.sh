#!/usr/bin/env bash
# Builds edge/worker, edgevote's edge as a Cloudflare Worker, with the workers-rs toolchain
# (worker-build: cargo → wasm-bindgen → esbuild), taking every tool from crates.io or npm (never
# from GitHub release downloads, which worker-build would otherwise attempt), and installs
# workerd to run it locally (tests/worker).
#
# Tools are cached in ${EDGEVOTE_CACHE:-$HOME/.cache/edgevote}:
#   wasm-bindgen-<V>/bin/wasm-bindgen   wasm-bindgen-cli at exactly the wasm-bindgen version of
#                                       edge/worker/Cargo.lock (the cold install is the slow part)
#   worker-build-<V>/bin/worker-build   worker-build at the worker crate's version
#   npm/node_modules/.bin/{workerd,esbuild}
#
# Usage: scripts/worker.sh [all|tools|build|check|paths]
#   all (default)  tools, then build
#   tools          install the tools (idempotent: a second run only checks them)
#   build          build the bundle into edge/worker/build/ and print its size (needs the tools)
#   check          cargo fmt --check, clippy (wasm32, warnings are errors), unit tests on the host
#   paths          print the tool paths as shell assignments
#
# Fails loudly, with the reason, when something cannot be installed or built.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
WORKER_DIR=$ROOT/edge/worker
CACHE=${EDGEVOTE_CACHE:-$HOME/.cache/edgevote}
NPM_DIR=$CACHE/npm

# npm packages, exact versions. esbuild is the version worker-build 0.8 bundles with.
WORKERD_VERSION=1.20261117.1
ESBUILD_VERSION=0.28.2

started=$(date +%s)
say() { printf '[worker] %s\n' "$*" >&2; }
die() { printf '[worker] ERROR: %s\n' "$*" >&2; exit 1; }
elapsed() { echo "$(( $(date +%s) - ${1:-$started} ))s"; }

# The single version of crate $1 in edge/worker/Cargo.lock.
lock_version() {
    local versions
    versions=$(awk -v name="$1" '
        $0 == "[[package]]" { in_pkg = 1; found = 0; next }
        in_pkg && $1 == "name" { found = ($3 == "\"" name "\"") }
        in_pkg && found && $1 == "version" { gsub(/"/, "", $3); print $3; found = 0 }
    ' "$WORKER_DIR/Cargo.lock")
    [ -n "$versions" ] || die "$1 is not in edge/worker/Cargo.lock"
    [ "$(wc -l <<<"$versions")" = 1 ] || die "edge/worker/Cargo.lock holds several versions of $1: $(tr '\n' ' ' <<<"$versions")"
    echo "$versions"
}

preflight() {
    command -v cargo >/dev/null || die "cargo is not installed; run scripts/bootstrap.sh rust first"
    [ -f "$WORKER_DIR/Cargo.lock" ] || die "edge/worker/Cargo.lock is missing (it is committed; restore it)"
    WASM_BINDGEN_VERSION=$(lock_version wasm-bindgen)
    WORKER_VERSION=$(lock_version worker)
    WASM_BINDGEN_BIN=$CACHE/wasm-bindgen-$WASM_BINDGEN_VERSION/bin/wasm-bindgen
    WORKER_BUILD_BIN=$CACHE/worker-build-$WORKER_VERSION/bin/worker-build
    ESBUILD_BIN=$NPM_DIR/node_modules/.bin/esbuild
    WORKERD_BIN=$NPM_DIR/node_modules/.bin/workerd
}

# Both tools are installed as unoptimised (dev profile) builds without debug info: that compiles
# about 3x faster than --release (wasm-bindgen-cli: 41-52 s against 2m17-3m43 on 2 cores) and gives a
# byte-identical bundle; their own run time stays around a second. CARGO_PROFILE_DEV_DEBUG=false
# also keeps the binaries small (26 MB instead of 150 MB).
CARGO_INSTALL_FLAGS=(--locked --debug)

# cargo install $crate at $version into $root (skipped when $bin already reports $version);
# only the binary $bin.
install_crate() {
    local crate=$1 version=$2 root=$3 bin=$4 note=$5
    if [ -x "$root/bin/$bin" ] && "$root/bin/$bin" --version 2>/dev/null | grep -qF "$version"; then
        say "$crate $version present ($root)"
        return
    fi
    say "installing $crate $version into $root from crates.io ($note)"
    local t0 log
    t0=$(date +%s)
    log=$CACHE/install-$crate-$version.log
    # From the repository root, so the pinned toolchain (rust-toolchain.toml) builds it too.
    if ! CARGO_PROFILE_DEV_DEBUG=false nice -n 10 cargo install "${CARGO_INSTALL_FLAGS[@]}" --bin "$bin" --root "$root" "$crate" --version "$version" 2>&1 | tee "$log" >&2; then
        if grep -q 'failed to select a version' "$log" && grep -q 'locked to' "$log"; then
            install_relocked "$crate" "$version" "$root" "$bin"
        else
            die "cargo install $crate --version $version failed (crates.io reachable? disk space? log: $log)"
        fi
    fi
    [ -x "$root/bin/$bin" ] || die "cargo install $crate finished but $root/bin/$bin is missing"
    "$root/bin/$bin" --version | grep -qF "$version" \
        || die "$root/bin/$bin does not report version $version: $("$root/bin/$bin" --version)"
    say "installed $crate $version in $(elapsed "$t0")"
}

# The crate's own Cargo.lock pins a version that this crates.io index does not serve (a yanked
# or not mirrored release). Install from the crate's source with that lock, changing only the
# entries the index lacks (each to its newest compatible version) and saying which.
install_relocked() {
    local crate=$1 version=$2 root=$3 bin=$4
    local work=$CACHE/src/$crate-$version
    say "WARNING: $crate $version's Cargo.lock pins a version this crates.io index does not serve;"
    say "WARNING: installing from its source with only the missing entries relocked"
    rm -rf "$work"
    mkdir -p "$work/fetch"
    # Download the .crate with cargo itself: a throwaway manifest depending on exactly it.
    printf '[package]\nname = "fetch-%s"\nversion = "0.0.0"\nedition = "2021"\n[lib]\npath = "lib.rs"\n[dependencies]\n%s = "=%s"\n[workspace]\n' \
        "$crate" "$crate" "$version" >"$work/fetch/Cargo.toml"
    : >"$work/fetch/lib.rs"
    cargo fetch --manifest-path "$work/fetch/Cargo.toml" >&2 || die "cargo fetch of $crate $version failed"
    local archive
    archive=$(find "${CARGO_HOME:-$HOME/.cargo}/registry/cache" -name "$crate-$version.crate" | head -n1)
    [ -n "$archive" ] || die "cargo fetch did not leave $crate-$version.crate in the registry cache"
    tar -xzf "$archive" -C "$work" || die "could not unpack $archive"
    local src=$work/$crate-$version out pkg attempt converged=0
    [ -f "$src/Cargo.lock" ] || die "$crate $version ships no Cargo.lock"
    for attempt in $(seq 1 20); do
        if out=$(cargo metadata --locked --format-version 1 --manifest-path "$src/Cargo.toml" 2>&1 >/dev/null); then
            converged=1
            break
        fi
        pkg=$(sed -n 's/.*requirement `\([A-Za-z0-9_-]*\) = .*(locked to \([^)]*\)).*/\1@\2/p' <<<"$out" | head -n1)
        [ -n "$pkg" ] || die "cannot relock $crate $version: $out"
        say "WARNING: $pkg (from $crate's Cargo.lock, attempt $attempt) is not in the index; relocking it"
        cargo update --manifest-path "$src/Cargo.toml" -p "$pkg" >&2 || die "cargo update -p $pkg failed"
    done
    [ "$converged" = 1 ] || die "relocking $crate $version did not converge"
    CARGO_TARGET_DIR=$work/target CARGO_PROFILE_DEV_DEBUG=false nice -n 10 cargo install "${CARGO_INSTALL_FLAGS[@]}" --bin "$bin" --root "$root" --path "$src" >&2 \
        || die "cargo install --locked --path $src ($crate $version, relocked) failed"
    rm -rf "$work/target"
}

npm_version() {
    local manifest=$NPM_DIR/node_modules/$1/package.json
    [ -f "$manifest" ] && node -p "require(process.argv[1]).version" "$manifest" 2>/dev/null || true
}

install_npm() {
    command -v npm >/dev/null || die "npm is not installed (on Debian: apt-get install nodejs npm); workerd and esbuild come from npm"
    if [ "$(npm_version workerd)" = "$WORKERD_VERSION" ] && [ "$(npm_version esbuild)" = "$ESBUILD_VERSION" ] \
        && [ -x "$WORKERD_BIN" ] && [ -x "$ESBUILD_BIN" ]; then
        say "npm workerd $WORKERD_VERSION and esbuild $ESBUILD_VERSION present ($NPM_DIR)"
    else
        say "installing npm workerd@$WORKERD_VERSION esbuild@$ESBUILD_VERSION into $NPM_DIR"
        mkdir -p "$NPM_DIR"
        npm install --prefix "$NPM_DIR" --no-audit --no-fund --save-exact \
            "workerd@$WORKERD_VERSION" "esbuild@$ESBUILD_VERSION" >&2 \
            || die "npm install workerd esbuild failed (npm registry reachable?)"
    fi
    "$ESBUILD_BIN" --version >/dev/null || die "$ESBUILD_BIN does not run"
    "$WORKERD_BIN" --version >/dev/null \
        || die "$WORKERD_BIN does not run (workerd needs glibc >= 2.35 on x86_64/arm64 Linux)"
}

tools() {
    mkdir -p "$CACHE"
    command -v node >/dev/null || die "node is not installed (on Debian: apt-get install nodejs npm)"
    install_npm
    install_crate worker-build "$WORKER_VERSION" "$CACHE/worker-build-$WORKER_VERSION" worker-build \
        "about 2 minutes on 2 cores when cold"
    install_crate wasm-bindgen-cli "$WASM_BINDGEN_VERSION" "$CACHE/wasm-bindgen-$WASM_BINDGEN_VERSION" wasm-bindgen \
        "about 1 minute on 2 cores when cold"
}

require_tools() {
    local missing=()
    for bin in "$WASM_BINDGEN_BIN" "$WORKER_BUILD_BIN" "$ESBUILD_BIN" "$WORKERD_BIN"; do
        [ -x "$bin" ] || missing+=("$bin")
    done
    [ ${#missing[@]} = 0 ] || die "missing tools: ${missing[*]} (run: bash scripts/worker.sh tools)"
}

build() {
    require_tools
    rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown \
        || die "the wasm32-unknown-unknown target is not installed (run scripts/bootstrap.sh rust)"
    say "building edge/worker with worker-build $WORKER_VERSION, wasm-bindgen $WASM_BINDGEN_VERSION (release, --no-opt)"
    local t0
    t0=$(date +%s)
    # --no-opt: wasm-opt would come from a GitHub download; see edge/worker/README.md for its effect.
    # `-- --locked`: cargo build must use the committed Cargo.lock as is.
    (cd "$WORKER_DIR" && WASM_BINDGEN_BIN=$WASM_BINDGEN_BIN ESBUILD_BIN=$ESBUILD_BIN \
        nice -n 10 "$WORKER_BUILD_BIN" --release --no-opt -- --locked) \
        || die "worker-build failed (see the output above)"
    local wasm js
    wasm=$WORKER_DIR/build/index_bg.wasm
    js=$WORKER_DIR/build/index.js
    [ -f "$wasm" ] || wasm=$(find "$WORKER_DIR/build" -name '*.wasm' | head -n1)
    [ -n "$wasm" ] && [ -f "$wasm" ] || die "worker-build produced no .wasm in edge/worker/build/"
    [ -f "$js" ] || die "worker-build produced no edge/worker/build/index.js"
    say "built in $(elapsed "$t0")"
    report_size
}

report_size() {
    local raw gz file
    raw=0
    gz=0
    for file in $(find "$WORKER_DIR/build" -maxdepth 2 -type f \( -name '*.wasm' -o -name '*.js' \) | sort); do
        local r g
        r=$(wc -c <"$file")
        g=$(gzip -9 -c "$file" | wc -c)
        printf '[worker]   %-40s %9d bytes raw %9d bytes gzipped\n' "${file#"$WORKER_DIR"/}" "$r" "$g" >&2
        raw=$((raw + r))
        gz=$((gz + g))
    done
    printf '[worker] bundle: %d bytes raw (%d KiB), %d bytes gzipped (%d KiB)\n' \
        "$raw" $((raw / 1024)) "$gz" $((gz / 1024)) >&2
}

check() {
    say "cargo fmt --check (edge/worker)"
    cargo fmt --manifest-path "$WORKER_DIR/Cargo.toml" -- --check \
        || die "edge/worker is not formatted (cargo fmt --manifest-path edge/worker/Cargo.toml)"
    say "clippy (wasm32-unknown-unknown, all targets, warnings are errors)"
    nice -n 10 cargo clippy --manifest-path "$WORKER_DIR/Cargo.toml" --locked --all-targets \
        --target wasm32-unknown-unknown -- -D warnings || die "clippy failed on edge/worker"
    say "unit tests (host: the configuration parsing and the 503 detail)"
    nice -n 10 cargo test --manifest-path "$WORKER_DIR/Cargo.toml" --locked \
        || die "edge/worker unit tests failed"
}

paths() {
    printf 'WASM_BINDGEN_BIN=%q\nWORKER_BUILD_BIN=%q\nESBUILD_BIN=%q\nWORKERD_BIN=%q\n' \
        "$WASM_BINDGEN_BIN" "$WORKER_BUILD_BIN" "$ESBUILD_BIN" "$WORKERD_BIN"
}

preflight
case "${1:-all}" in
    all) tools; build ;;
    tools) tools ;;
    build) build ;;
    check) check ;;
    paths) paths ;;
    *) die "usage: scripts/worker.sh [all|tools|build|check|paths]" ;;
esac
say "done in $(elapsed)"
