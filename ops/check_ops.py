#!/usr/bin/env python3
"""Checks edgevote's ops files: the Grafana dashboard, the Prometheus rules and their runbooks.

    python3 ops/check_ops.py                  # validate; prints a summary, exit 1 on any error
    python3 ops/check_ops.py --print-metrics  # the edgevote_* metric names used, one per line

Checks:
  - ops/grafana/*.json: valid JSON; every panel (rows aside) has a title, a datasource and
    targets whose `expr` is non-empty, balanced and filtered by `$region`; unique panel ids;
    the datasource variable and the `region` variable exist.
  - ops/prometheus/alerts.yml: every alerting rule has `alert`, `expr`, `for`,
    labels.severity, annotations.summary, description and runbook_url; alert names are
    unique; every runbook_url names a file in docs/runbooks/ and an anchor that exists in it;
    every `## Edgevote...` section of docs/runbooks/alerts.md belongs to an alert.
  - ops/prometheus/prometheus.yml: parses, loads alerts.yml, has scrape jobs with targets.
  - With `promtool` on PATH (Debian package `prometheus`), or the one `--promtool PATH` names
    (then required: scripts/test.sh passes the one scripts/bootstrap.sh unpacked), also
    `promtool check rules`, `promtool check config` and the rule unit tests in
    ops/prometheus/alerts_test.yml.

Metric names are the `edgevote_*` names in dashboard expressions, dashboard variable
queries and rule expressions. Histogram series (`_bucket`, `_sum`, `_count`) are reported by
their base name. A name that appears in no Rust source of the repository is reported as a
warning (on stderr), not an error: a metric may be added in the same change.

Only the standard library is required. PyYAML is used when importable; otherwise a small
parser for the block-style YAML subset these files use takes its place.

Exit codes: 0 ok, 1 validation errors, 2 a file is missing or cannot be parsed.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DASHBOARD_DIR = ROOT / "ops" / "grafana"
ALERTS = ROOT / "ops" / "prometheus" / "alerts.yml"
PROMETHEUS = ROOT / "ops" / "prometheus" / "prometheus.yml"
ALERT_TESTS = ROOT / "ops" / "prometheus" / "alerts_test.yml"
RUNBOOKS = ROOT / "docs" / "runbooks"

METRIC_RE = re.compile(r"(?<![A-Za-z0-9_:])edgevote_[A-Za-z0-9_:]+")
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")
DURATION_RE = re.compile(r"^(\d+(ms|s|m|h|d|w|y))+$")
ALERT_NAME_RE = re.compile(r"^[A-Z][A-Za-z0-9]+$")
SEVERITIES = {"critical", "warning", "info"}
SOURCE_SKIP = {"target", ".git", ".venv", "node_modules", "edgevote-data"}


class ParseError(Exception):
    """A file that cannot be read or parsed."""


# --------------------------------------------------------------------------- YAML


def load_yaml(path: Path):
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ParseError(f"{path}: {e}") from e
    try:
        import yaml  # type: ignore
    except ImportError:
        try:
            return MiniYaml(text).parse()
        except ValueError as e:
            raise ParseError(f"{path}: {e}") from e
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ParseError(f"{path}: {e}") from e


class MiniYaml:
    """Block-style YAML subset: mappings, `- ` sequences, flow sequences of scalars,
    quoted and plain one-line scalars, and `|`/`>` block scalars. Enough for these files."""

    KEY_RE = re.compile(r"""^(?P<key>"[^"]*"|'[^']*'|[^\s#'"\-\[{][^:]*?|-[^\s:][^:]*?)\s*:(?:\s+(?P<rest>.*))?$""")

    def __init__(self, text: str):
        self.raw = text.splitlines()

    @staticmethod
    def indent_of(line: str) -> int:
        return len(line) - len(line.lstrip(" "))

    def significant(self, i: int) -> int:
        while i < len(self.raw):
            stripped = self.raw[i].strip()
            if stripped and not stripped.startswith("#"):
                return i
            i += 1
        return i

    def parse(self):
        i = self.significant(0)
        if i >= len(self.raw):
            return None
        value, i = self.block(i, self.indent_of(self.raw[i]), self.raw[i].strip())
        i = self.significant(i)
        if i < len(self.raw):
            raise ValueError(f"line {i + 1}: unexpected indentation")
        return value

    def block(self, i: int, indent: int, first: str):
        """Parses the block whose first line is `first` (at column `indent`) on line i."""
        if first == "-" or first.startswith("- "):
            return self.sequence(i, indent, first)
        return self.mapping(i, indent, first)

    def sequence(self, i: int, indent: int, first: str):
        items = []
        text = first
        while True:
            rest = text[1:].lstrip(" ")
            if not rest or rest.startswith("#"):
                j = self.significant(i + 1)
                if j < len(self.raw) and self.indent_of(self.raw[j]) > indent:
                    value, i = self.block(j, self.indent_of(self.raw[j]), self.raw[j].strip())
                else:
                    value, i = None, i + 1
            elif self.KEY_RE.match(rest) and not rest.startswith(("[", "{")):
                value, i = self.mapping(i, indent + (len(text) - len(rest)), rest)
            else:
                value, i = self.scalar(rest, i), i + 1
            items.append(value)
            i = self.significant(i)
            if i >= len(self.raw):
                return items, i
            line = self.raw[i]
            text = line.strip()
            if self.indent_of(line) != indent or not (text == "-" or text.startswith("- ")):
                return items, i

    def mapping(self, i: int, indent: int, first: str):
        result = {}
        text = first
        while True:
            m = self.KEY_RE.match(text)
            if not m:
                raise ValueError(f"line {i + 1}: expected `key: value`, got {text!r}")
            key = self.unquote(m.group("key"))
            if key in result:
                raise ValueError(f"line {i + 1}: duplicate key {key!r}")
            rest = (m.group("rest") or "").strip()
            if rest and rest[0] in "|>":
                result[key], i = self.block_scalar(i, indent, rest)
            elif rest and not rest.startswith("#"):
                result[key], i = self.scalar(rest, i), i + 1
            else:
                j = self.significant(i + 1)
                if j < len(self.raw):
                    child = self.raw[j]
                    child_indent = self.indent_of(child)
                    child_text = child.strip()
                    is_item = child_text == "-" or child_text.startswith("- ")
                    if child_indent > indent or (child_indent == indent and is_item):
                        result[key], i = self.block(j, child_indent, child_text)
                    else:
                        result[key], i = None, i + 1
                else:
                    result[key], i = None, i + 1
            i = self.significant(i)
            if i >= len(self.raw):
                return result, i
            line = self.raw[i]
            if self.indent_of(line) != indent:
                if self.indent_of(line) > indent:
                    raise ValueError(f"line {i + 1}: unexpected indentation")
                return result, i
            text = line.strip()
            if text == "-" or text.startswith("- "):
                return result, i

    def block_scalar(self, i: int, indent: int, header: str):
        m = re.match(r"^([|>])([+-]?)\s*(#.*)?$", header)
        if not m:
            raise ValueError(f"line {i + 1}: unsupported block scalar header {header!r}")
        style, chomp = m.group(1), m.group(2)
        lines = []
        j = i + 1
        block_indent = None
        while j < len(self.raw):
            line = self.raw[j]
            if line.strip() == "":
                lines.append("")
                j += 1
                continue
            ind = self.indent_of(line)
            if ind <= indent:
                break
            if block_indent is None:
                block_indent = ind
            if ind < block_indent:
                break
            lines.append(line[block_indent:])
            j += 1
        while lines and lines[-1] == "" and j <= len(self.raw):
            # Trailing blank lines belong to chomping, not content.
            lines.pop()
            j -= 1
        trailing = 0
        k = j
        while k < len(self.raw) and self.raw[k].strip() == "":
            trailing += 1
            k += 1
        if style == "|":
            body = "\n".join(lines)
        else:
            body = ""
            for n, line in enumerate(lines):
                if n == 0:
                    body = line
                elif line == "" or lines[n - 1] == "":
                    body += "\n" if line == "" else line
                else:
                    body += " " + line
        if chomp == "-":
            return body, j
        if chomp == "+":
            return body + "\n" * (1 + trailing), j
        return (body + "\n") if body else "", j

    def scalar(self, text: str, i: int):
        text = text.strip()
        if text.startswith('"'):
            end = self.closing_quote(text, '"')
            if end < 0:
                raise ValueError(f"line {i + 1}: unterminated string")
            self.trailing_comment_only(text[end + 1:], i)
            return json.loads(text[: end + 1])
        if text.startswith("'"):
            end = self.closing_quote(text, "'")
            if end < 0:
                raise ValueError(f"line {i + 1}: unterminated string")
            self.trailing_comment_only(text[end + 1:], i)
            return text[1:end].replace("''", "'")
        text = re.sub(r"\s+#.*$", "", text)
        if text.startswith("["):
            if not text.endswith("]"):
                raise ValueError(f"line {i + 1}: unsupported flow sequence {text!r}")
            inner = text[1:-1].strip()
            return [self.scalar(part, i) for part in inner.split(",")] if inner else []
        if text.startswith("{"):
            raise ValueError(f"line {i + 1}: flow mappings are not supported")
        if text in ("true", "True", "TRUE"):
            return True
        if text in ("false", "False", "FALSE"):
            return False
        if text in ("null", "~", "Null", "NULL"):
            return None
        if re.fullmatch(r"[-+]?\d+", text):
            return int(text)
        if re.fullmatch(r"[-+]?(\d+\.\d*|\.\d+)([eE][-+]?\d+)?", text):
            return float(text)
        return text

    @staticmethod
    def closing_quote(text: str, quote: str) -> int:
        k = 1
        while k < len(text):
            if quote == '"' and text[k] == "\\":
                k += 2
                continue
            if text[k] == quote:
                if quote == "'" and k + 1 < len(text) and text[k + 1] == "'":
                    k += 2
                    continue
                return k
            k += 1
        return -1

    @staticmethod
    def trailing_comment_only(rest: str, i: int):
        rest = rest.strip()
        if rest and not rest.startswith("#"):
            raise ValueError(f"line {i + 1}: text after a quoted string")

    def unquote(self, key: str) -> str:
        key = key.strip()
        if key[:1] in ("'", '"'):
            return self.scalar(key, 0)
        return key


# --------------------------------------------------------------------------- utilities


def metric_names(expr: str) -> set[str]:
    names = set()
    for name in METRIC_RE.findall(strip_strings(expr)):
        for suffix in HISTOGRAM_SUFFIXES:
            if name.endswith(suffix):
                name = name[: -len(suffix)]
                break
        names.add(name)
    return names


def strip_strings(expr: str) -> str:
    """The expression with string literals (label values) blanked out."""
    return re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`', '""', expr)


def balanced(expr: str) -> bool:
    pairs = {")": "(", "]": "[", "}": "{"}
    stack = []
    for ch in strip_strings(expr):
        if ch in "([{":
            stack.append(ch)
        elif ch in pairs:
            if not stack or stack.pop() != pairs[ch]:
                return False
    return not stack


def slugify(heading: str) -> str:
    """The anchor GitHub (and most Markdown renderers) give a heading."""
    text = re.sub(r"`|\*\*|__", "", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors_of(path: Path) -> tuple[set[str], list[str]]:
    """The anchors of a Markdown file, and the texts of its level-2 headings."""
    anchors: set[str] = set()
    seen: dict[str, int] = {}
    headings: list[str] = []
    in_code = False
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.lstrip().startswith("```"):
            in_code = not in_code
            continue
        if in_code:
            continue
        m = re.match(r"^(#{1,6})\s+(.*?)\s*#*\s*$", line)
        if m:
            base = slugify(m.group(2))
            n = seen.get(base, 0)
            seen[base] = n + 1
            anchors.add(base if n == 0 else f"{base}-{n}")
            if len(m.group(1)) == 2:
                headings.append(m.group(2).strip())
        for explicit in re.findall(r"""<a\s+(?:id|name)=["']([^"']+)["']""", line):
            anchors.add(explicit)
    return anchors, headings


def source_text() -> str:
    chunks = []
    for path in ROOT.rglob("*.rs"):
        if SOURCE_SKIP.intersection(path.relative_to(ROOT).parts):
            continue
        try:
            chunks.append(path.read_text(encoding="utf-8", errors="replace"))
        except OSError:
            continue
    return "\n".join(chunks)


# --------------------------------------------------------------------------- dashboard


def walk_panels(panels):
    for panel in panels or []:
        yield panel
        yield from walk_panels(panel.get("panels"))


def check_dashboard(path: Path, errors: list[str], metrics: set[str]) -> int:
    try:
        dashboard = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ParseError(f"{path}: {e}") from e
    where = path.relative_to(ROOT)

    def err(msg):
        errors.append(f"{where}: {msg}")

    for key in ("title", "uid", "schemaVersion", "panels", "templating"):
        if key not in dashboard:
            err(f"missing top-level `{key}`")
    variables = {v.get("name"): v for v in dashboard.get("templating", {}).get("list", [])}
    ds_var = variables.get("datasource")
    if not ds_var or ds_var.get("type") != "datasource" or ds_var.get("query") != "prometheus":
        err("needs a `datasource` variable of type datasource (query `prometheus`)")
    inputs = {i.get("name") for i in dashboard.get("__inputs", [])}
    if "DS_PROMETHEUS" not in inputs:
        err("needs a DS_PROMETHEUS entry in __inputs (for Grafana's import dialog)")
    region = variables.get("region")
    if not region:
        err("needs a `region` template variable")
    for name, var in variables.items():
        if var.get("type") != "query":
            continue
        query = var.get("query")
        query = query.get("query", "") if isinstance(query, dict) else (query or "")
        if not query.strip():
            err(f"variable `{name}` has an empty query")
            continue
        if not balanced(query):
            err(f"variable `{name}`: unbalanced brackets in {query!r}")
        metrics |= metric_names(query)
        metrics |= metric_names(var.get("definition", ""))
    if region:
        query = region.get("query")
        query = query.get("query", "") if isinstance(query, dict) else (query or "")
        if not re.match(r"^label_values\(\s*edgevote_\w+.*,\s*region\s*\)$", query):
            err(f"`region` variable should be label_values(<edgevote metric>, region), got {query!r}")

    ids = set()
    count = 0
    for panel in walk_panels(dashboard.get("panels")):
        pid = panel.get("id")
        title = panel.get("title")
        label = f"panel {pid} {title!r}"
        if pid in ids:
            err(f"{label}: duplicate panel id")
        ids.add(pid)
        if "gridPos" not in panel:
            err(f"{label}: no gridPos")
        if panel.get("type") == "row":
            if not title:
                err(f"row {pid}: no title")
            continue
        count += 1
        if not title or not str(title).strip():
            err(f"{label}: no title")
        ds = panel.get("datasource")
        if not ds or (isinstance(ds, dict) and not ds.get("uid")):
            err(f"{label}: no datasource")
        targets = panel.get("targets") or []
        if not targets:
            err(f"{label}: no targets")
        refids = set()
        for target in targets:
            ref = target.get("refId")
            if not ref or ref in refids:
                err(f"{label}: missing or duplicate refId {ref!r}")
            refids.add(ref)
            expr = (target.get("expr") or "").strip()
            if not expr:
                err(f"{label}: target {ref} has no expr")
                continue
            if not balanced(expr):
                err(f"{label}: target {ref}: unbalanced brackets")
            if "$region" not in expr:
                err(f"{label}: target {ref} is not filtered by $region")
            used = metric_names(expr)
            if not used:
                err(f"{label}: target {ref} uses no edgevote_* metric")
            metrics |= used
    return count


# --------------------------------------------------------------------------- rules


def check_rules(path: Path, errors: list[str], metrics: set[str]) -> list[str]:
    doc = load_yaml(path)
    where = path.relative_to(ROOT)

    def err(msg):
        errors.append(f"{where}: {msg}")

    alerts: list[str] = []
    if not isinstance(doc, dict) or not isinstance(doc.get("groups"), list):
        err("top level must be a mapping with a `groups` list")
        return alerts
    anchor_cache: dict[Path, tuple[set[str], list[str]]] = {}
    group_names = set()
    for g, group in enumerate(doc["groups"]):
        if not isinstance(group, dict):
            err(f"group {g} is not a mapping")
            continue
        gname = group.get("name")
        if not gname or gname in group_names:
            err(f"group {g}: missing or duplicate name {gname!r}")
        group_names.add(gname)
        rules = group.get("rules")
        if not isinstance(rules, list) or not rules:
            err(f"group {gname}: no rules")
            continue
        for r, rule in enumerate(rules):
            if not isinstance(rule, dict):
                err(f"group {gname} rule {r}: not a mapping")
                continue
            name = rule.get("alert")
            expr = rule.get("expr")
            if "record" in rule:
                if not isinstance(expr, str) or not expr.strip():
                    err(f"recording rule {rule['record']}: no expr")
                else:
                    metrics |= metric_names(expr)
                continue
            label = f"alert {name!r} (group {gname})"
            if not isinstance(name, str) or not ALERT_NAME_RE.match(name):
                err(f"group {gname} rule {r}: `alert` must be a CamelCase name, got {name!r}")
            elif name in alerts:
                err(f"{label}: duplicate alert name")
            else:
                alerts.append(name)
            if not isinstance(expr, str) or not expr.strip():
                err(f"{label}: no expr")
            else:
                if not balanced(expr):
                    err(f"{label}: unbalanced brackets in expr")
                if "$__" in expr or "${" in expr or re.search(r"\$[a-z]", strip_strings(expr)):
                    err(f"{label}: expr contains a dashboard variable")
                metrics |= metric_names(expr)
            duration = rule.get("for")
            if not isinstance(duration, str) or not DURATION_RE.match(duration):
                err(f"{label}: `for` must be a duration such as 5m, got {duration!r}")
            labels = rule.get("labels") or {}
            if labels.get("severity") not in SEVERITIES:
                err(f"{label}: labels.severity must be one of {sorted(SEVERITIES)}")
            annotations = rule.get("annotations") or {}
            for key in ("summary", "description", "runbook_url"):
                if not isinstance(annotations.get(key), str) or not annotations[key].strip():
                    err(f"{label}: annotations.{key} missing")
            url = annotations.get("runbook_url")
            if isinstance(url, str) and url.strip():
                m = re.search(r"(?:^|/)docs/runbooks/([^#/]+\.md)#(.+)$", url.strip())
                if not m:
                    err(f"{label}: runbook_url must point to docs/runbooks/<file>.md#<anchor>, got {url!r}")
                    continue
                runbook = RUNBOOKS / m.group(1)
                if not runbook.is_file():
                    err(f"{label}: runbook {runbook.relative_to(ROOT)} does not exist")
                    continue
                if runbook not in anchor_cache:
                    anchor_cache[runbook] = anchors_of(runbook)
                if m.group(2) not in anchor_cache[runbook][0]:
                    err(f"{label}: no anchor #{m.group(2)} in {runbook.relative_to(ROOT)}")
    known = set(alerts)
    for runbook, (_, headings) in anchor_cache.items():
        for heading in headings:
            if ALERT_NAME_RE.match(heading) and heading.startswith("Edgevote") and heading not in known:
                err(f"{runbook.relative_to(ROOT)}: section `{heading}` names no alert in {where}")
    return alerts


def check_prometheus(path: Path, errors: list[str]) -> None:
    doc = load_yaml(path)
    where = path.relative_to(ROOT)
    if not isinstance(doc, dict):
        errors.append(f"{where}: top level must be a mapping")
        return
    for rule_file in doc.get("rule_files") or []:
        if not (path.parent / rule_file).is_file():
            errors.append(f"{where}: rule file {rule_file} not found next to it")
    jobs = doc.get("scrape_configs") or []
    if not jobs:
        errors.append(f"{where}: no scrape_configs")
    for job in jobs:
        name = job.get("job_name")
        if not name:
            errors.append(f"{where}: scrape config without job_name")
        static = job.get("static_configs") or []
        discovered = [k for k in job if k.endswith("_sd_configs")]
        if not discovered and not any(sc.get("targets") for sc in static):
            errors.append(f"{where}: job {name} has no targets")
        for sc in static:
            if "region" in (sc.get("labels") or {}) and not job.get("honor_labels"):
                errors.append(f"{where}: job {name}: a `region` target label hides the services' own")


def run_promtool(errors: list[str], required: str | None) -> str:
    """Runs promtool's own checks and the rule unit tests; returns a note for the summary.

    `required`: the promtool to run, which must exist (CI: a skipped check is not a pass);
    without it, the one on PATH if any."""
    promtool = required or shutil.which("promtool")
    if required and not Path(required).is_file():
        errors.append(f"promtool not found at {required} (scripts/bootstrap.sh promtool)")
        return "promtool missing"
    if not promtool:
        return "promtool not found: PromQL syntax and rule unit tests not checked"
    runs = [
        ["check", "rules", str(ALERTS)],
        ["check", "config", "--syntax-only", str(PROMETHEUS)],
    ]
    if ALERT_TESTS.is_file():
        runs.append(["test", "rules", str(ALERT_TESTS)])
    for args in runs:
        try:
            done = subprocess.run(
                [promtool, *args], capture_output=True, text=True, timeout=120, cwd=ROOT
            )
        except (OSError, subprocess.TimeoutExpired) as e:
            errors.append(f"promtool {' '.join(args[:2])}: {e}")
            continue
        if done.returncode != 0:
            output = (done.stdout + done.stderr).strip()
            errors.append(f"promtool {' '.join(args)} failed:\n{output}")
    return "promtool checks and rule unit tests run"


# --------------------------------------------------------------------------- main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--print-metrics",
        action="store_true",
        help="print the sorted edgevote_* metric names used, one per line, and nothing else",
    )
    parser.add_argument(
        "--promtool",
        metavar="PATH",
        help="the promtool to run, which must exist (an error otherwise); default: the one on "
        "PATH, if any",
    )
    args = parser.parse_args()

    errors: list[str] = []
    metrics: set[str] = set()
    try:
        dashboards = sorted(DASHBOARD_DIR.glob("*.json"))
        if not dashboards:
            raise ParseError(f"no dashboard in {DASHBOARD_DIR}")
        panels = sum(check_dashboard(d, errors, metrics) for d in dashboards)
        alerts = check_rules(ALERTS, errors, metrics)
        check_prometheus(PROMETHEUS, errors)
    except ParseError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2

    if args.print_metrics:
        for name in sorted(metrics):
            print(name)
        return 0

    promtool_note = run_promtool(errors, args.promtool)
    sources = source_text()
    for name in sorted(metrics):
        if name not in sources:
            print(f"warning: {name} appears in no Rust source file", file=sys.stderr)
    for e in errors:
        print(f"error: {e}", file=sys.stderr)
    if errors:
        print(f"{len(errors)} error(s)", file=sys.stderr)
        return 1
    print(
        f"ok: {len(dashboards)} dashboard(s), {panels} panels, {len(alerts)} alerts, "
        f"{len(metrics)} edgevote metrics; {promtool_note}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
