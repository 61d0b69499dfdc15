#!/usr/bin/env bash
# Installs everything edgevote's build and tests need, on a machine that has only rustup:
#   - the pinned Rust toolchain with its wasm targets (rust-toolchain.toml),
#   - a Python virtualenv (.venv) with the third-party JOSE libraries and moto used by the tests,
#   - Debian's chromium, for the results page test,
#   - promtool, for the alert rule unit tests: unpacked from Debian's prometheus package into
#     ${EDGEVOTE_CACHE:-~/.cache/edgevote}/promtool (not installed: no server is started).
# Idempotent: a second run only checks. Fails loudly, with the reason, when something is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '[bootstrap] %s\n' "$*" >&2; }
die() { printf '[bootstrap] ERROR: %s\n' "$*" >&2; exit 1; }

install_toolchain() {
    command -v rustup >/dev/null || die "rustup is not installed; install it first (https://rustup.rs)"
    local channel targets components
    channel=$(sed -n 's/^channel *= *"\(.*\)"/\1/p' rust-toolchain.toml)
    targets=$(sed -n 's/^targets *= *\[\(.*\)\]/\1/p' rust-toolchain.toml | tr -d '" ' | tr ',' ' ')
    components=$(sed -n 's/^components *= *\[\(.*\)\]/\1/p' rust-toolchain.toml | tr -d '" ' | tr ',' ' ')
    [ -n "$channel" ] || die "no channel in rust-toolchain.toml"
    local installed_targets
    installed_targets=$(rustup target list --installed --toolchain "$channel" 2>/dev/null || true)
    local missing=0
    for t in $targets; do grep -qx "$t" <<<"$installed_targets" || missing=1; done
    if [ "$missing" = 0 ] && rustup run "$channel" cargo clippy --version >/dev/null 2>&1 \
        && rustup run "$channel" rustfmt --version >/dev/null 2>&1; then
        say "toolchain $channel with targets [$targets] present"
        return
    fi
    say "installing toolchain $channel with targets [$targets] and components [$components]"
    # shellcheck disable=SC2086
    rustup toolchain install "$channel" --profile minimal \
        $(printf -- '--component %s ' $components) $(printf -- '--target %s ' $targets) \
        || die "could not install Rust $channel from the rustup distribution server; the wasm targets need it (check network access to the rustup server)"
}

install_python() {
    local python=${PYTHON:-python3}
    command -v "$python" >/dev/null || die "python3 is needed for the third-party verification tests"
    if [ ! -x .venv/bin/python ]; then
        say "creating .venv"
        "$python" -m venv .venv || die "python3 -m venv failed (on Debian: apt-get install python3-venv)"
    fi
    if ! .venv/bin/python -m pip install -q --disable-pip-version-check -r tests/python/requirements.txt; then
        die "pip could not install tests/python/requirements.txt from PyPI"
    fi
    say "python test dependencies present (.venv)"
}

install_browser() {
    # Headless Chromium renders the results page in the end-to-end test (Debian's package).
    if command -v chromium >/dev/null; then
        say "chromium present ($(chromium --version 2>/dev/null | head -n 1))"
        return
    fi
    command -v apt-get >/dev/null || die "chromium is needed for the results page test; install Debian's chromium package"
    say "installing chromium (Debian package) for the results page test"
    local sudo=""
    [ "$(id -u)" = 0 ] || sudo="sudo"
    $sudo apt-get update -q >/dev/null || die "apt-get update failed"
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q chromium >/dev/null \
        || die "apt-get install chromium failed"
}

PROMTOOL_DIR=${EDGEVOTE_CACHE:-$HOME/.cache/edgevote}/promtool

install_promtool() {
    # Unpacked, not installed: the package would also set up (and on systemd, start) a server.
    local promtool=$PROMTOOL_DIR/usr/bin/promtool
    if [ -x "$promtool" ]; then
        say "promtool present ($("$promtool" --version 2>&1 | head -n 1))"
        return
    fi
    command -v apt-get >/dev/null && command -v dpkg-deb >/dev/null \
        || die "promtool is needed for the alert rule tests; Debian's prometheus package provides it"
    say "unpacking promtool from Debian's prometheus package into $PROMTOOL_DIR"
    local work
    work=$(mktemp -d)
    if ! (cd "$work" && apt-get download -q prometheus >/dev/null 2>&1); then
        local sudo=""
        [ "$(id -u)" = 0 ] || sudo="sudo"
        $sudo apt-get update -q >/dev/null || die "apt-get update failed"
        (cd "$work" && apt-get download -q prometheus >/dev/null) || die "apt-get download prometheus failed"
    fi
    mkdir -p "$PROMTOOL_DIR"
    dpkg-deb -x "$work"/prometheus_*.deb "$work/root" || die "could not unpack the prometheus package"
    mkdir -p "$PROMTOOL_DIR/usr/bin"
    mv "$work/root/usr/bin/promtool" "$promtool"
    rm -rf "$work"
    "$promtool" --version >/dev/null 2>&1 || die "the unpacked promtool does not run"
}

case "${1:-all}" in
    rust) install_toolchain ;;
    python) install_python ;;
    browser) install_browser ;;
    promtool) install_promtool ;;
    all) install_toolchain; install_python; install_browser; install_promtool ;;
    *) die "usage: scripts/bootstrap.sh [rust|python|browser|promtool|all]" ;;
esac
