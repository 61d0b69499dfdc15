#!/usr/bin/env bash
# The offline check of infra/ (OpenTofu for the AWS side). CI cannot download OpenTofu providers,
# so instead of `tofu validate` this runs, from PyPI tools only:
#   1. python-hcl2 on every .tf file (and infra/example.tfvars): each must parse;
#   2. infra/check.py: the structural facts the deployment relies on (encrypted queues with
#      dead-letter redrive, the global table and its key schema, the alarms, least-privilege IAM
#      matched against the SDK calls in collector/aws/src, edgevote config keys, CloudFront);
#   3. checkov on infra/ (terraform framework): any failed check fails. Checks that do not apply
#      are skipped inline in the .tf files, each with its reason.
#
# The tools are pinned in infra/requirements-check.txt, in two sections: python-hcl2 goes into
# the project's .venv (created if missing), checkov into its own virtualenv in
# ${EDGEVOTE_CACHE:-$HOME/.cache/edgevote} (its pins clash with .venv, see that file).
# Idempotent: when the installed versions match the pins, nothing is installed.
#
# Usage: scripts/check-infra.sh        exit status 0 when everything passes, 1 otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."

REQUIREMENTS=infra/requirements-check.txt
CACHE=${EDGEVOTE_CACHE:-$HOME/.cache/edgevote}
PYTHON=${PYTHON:-python3}
started=$(date +%s)

say() { printf '[check-infra] %s\n' "$*"; }
die() { printf '[check-infra] FAILED: %s\n' "$*" >&2; exit 1; }
elapsed() { echo "$(( $(date +%s) - started ))s"; }

# The requirement lines of one section ("# [name] ...") of the requirements file.
section() {
    awk -v want="[$1]" '
        /^# \[[^]]+\]/ { current = $2; next }
        /^[[:space:]]*(#|$)/ { next }
        current == want { print }
    ' "$REQUIREMENTS"
}

# True when every `name==version` pin on stdin is installed in the virtualenv of python $1.
pins_installed() {
    "$1" - "$2" <<'PY' 2>/dev/null
import sys
from importlib import metadata

wanted = [line.split("==", 1) for line in sys.argv[1].split() if "==" in line]
for name, version in wanted:
    try:
        if metadata.version(name) != version:
            sys.exit(1)
    except metadata.PackageNotFoundError:
        sys.exit(1)
PY
}

# ensure_tools LABEL VENV_DIR SECTION: the pins of SECTION installed in VENV_DIR (created if
# missing, recreated if broken).
ensure_tools() {
    local label=$1 dir=$2 pins
    pins=$(section "$3")
    [ -n "$pins" ] || die "$REQUIREMENTS has no [$3] section"
    if [ -d "$dir" ] && ! "$dir/bin/python" -c 'import sys' 2>/dev/null; then
        [ "$dir" = .venv ] && die ".venv exists but its python does not run; recreate it (rm -rf .venv && scripts/bootstrap.sh python)"
        say "$label: $dir is broken, recreating it"
        rm -rf "$dir"
    fi
    if [ ! -x "$dir/bin/python" ]; then
        say "$label: creating the virtualenv $dir"
        "$PYTHON" -m venv "$dir" || die "$PYTHON -m venv $dir failed (on Debian: apt-get install python3-venv)"
    fi
    if pins_installed "$dir/bin/python" "$pins"; then
        say "$label: $(wc -l <<<"$pins") pinned packages present ($dir)"
        return
    fi
    say "$label: installing $(wc -l <<<"$pins") pinned packages from PyPI into $dir"
    "$dir/bin/python" -m pip install -q --disable-pip-version-check -r <(printf '%s\n' "$pins") \
        || die "pip could not install the [$3] pins of $REQUIREMENTS from PyPI"
    pins_installed "$dir/bin/python" "$pins" \
        || die "after pip install, $dir still does not hold the [$3] pins of $REQUIREMENTS"
}

[ -f "$REQUIREMENTS" ] || die "$REQUIREMENTS is missing"
command -v "$PYTHON" >/dev/null || die "$PYTHON is needed"

say "tools"
ensure_tools "python-hcl2" .venv .venv
python_version=$("$PYTHON" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
checkov_version=$(section checkov | sed -n 's/^checkov==//p')
[ -n "$checkov_version" ] || die "$REQUIREMENTS pins no checkov version"
CHECKOV_VENV=$CACHE/checkov-$checkov_version-py$python_version
mkdir -p "$CACHE"
ensure_tools "checkov" "$CHECKOV_VENV" checkov
say "tools ready ($(elapsed))"

say "[1/3] parse every .tf file and example.tfvars (python-hcl2)"
.venv/bin/python infra/check.py parse || die "a .tf file does not parse (see above)"

say "[2/3] structural checks (infra/check.py)"
.venv/bin/python infra/check.py check || die "infra/check.py found problems (see FAIL lines above)"

say "[3/3] checkov -d infra --framework terraform"
report=$(mktemp)
trap 'rm -f "$report"' EXIT
# --skip-download and the two variables keep checkov offline: no platform guidelines, no
# version check.
status=0
CKV_SKIP_PACKAGE_UPDATE_CHECK=true BC_SKIP_MAPPING=TRUE \
    "$CHECKOV_VENV/bin/checkov" -d infra --framework terraform --compact --quiet --skip-download \
    -o cli -o json --output-file-path "console,$report" || status=$?
summary=$("$CHECKOV_VENV/bin/python" - "$report" <<'PY'
import json, sys

try:
    with open(sys.argv[1], encoding="utf-8") as f:
        report = json.load(f)
except (OSError, ValueError) as e:
    print(f"no readable checkov report ({e})")
    sys.exit(1)
reports = report if isinstance(report, list) else [report]
summary = {k: sum(r.get("summary", {}).get(k, 0) for r in reports) for k in ("passed", "failed", "skipped", "parsing_errors", "resource_count")}
print(f"checkov: {summary['resource_count']} resources, {summary['passed']} passed, {summary['failed']} failed, "
      f"{summary['skipped']} skipped inline, {summary['parsing_errors']} parsing errors")
sys.exit(0 if summary["failed"] == 0 and summary["parsing_errors"] == 0 and summary["resource_count"] > 0 else 1)
PY
) || { printf '%s\n' "$summary"; die "checkov reports failed checks or parsing errors (exit status $status)"; }
say "$summary"
[ "$status" = 0 ] || die "checkov exited with status $status"

say "infra checks passed ($(elapsed))"
