#!/usr/bin/env python3
"""Offline checks of edgevote's OpenTofu configuration (infra/).

CI cannot download OpenTofu providers, so `tofu validate` is out of reach. This script reads the
configuration with python-hcl2 and asserts the facts the deployment depends on:

  parse     every .tf file and example.tfvars parse (python-hcl2); one line per file
  check     the structural facts below, then a summary line
            `infra: N files, M resources, K checks passed`

The facts checked:
  - layout: OpenTofu >= 1.6, AWS provider 5.x, one provider and one region module per region;
  - every variable has a description and a type; module calls pass every required variable
    and nothing unknown, and so does example.tfvars; every var./local./module output/resource/
    data reference resolves;
  - every SQS queue is encrypted, every non-dead-letter queue redrives to a dead-letter queue;
  - the DynamoDB table: on-demand, streams NEW_AND_OLD_IMAGES, point-in-time recovery, a
    customer managed key, a replica per other region, and the key schema of the Rust store
    (collector/aws/src/dynamo/item.rs), without secondary indexes;
  - the alarms: queue age, dead letters, table throttles (ThrottledRequests and
    WriteThrottleEvents), replication latency, all notifying an encrypted SNS topic;
  - IAM: no "*" in Allow actions, no "*" resource unless AWS requires it, no wildcard
    principals; the edge role may only sqs:SendMessage; the collector's SQS and DynamoDB
    actions are exactly the calls the Rust code makes (collector/aws/src/sqs.rs, dynamo/sdk.rs);
  - the generated collector.toml and edge.toml use only keys the Rust configuration structs
    know (edgevote refuses unknown keys at startup);
  - ECS on Fargate with distinct task and execution roles and read-only root filesystems;
  - CloudFront: an origin group failing over on 5xx, a never-cached POST behavior for votes,
    HTTPS only;
  - every `#checkov:skip` carries a reason.

Exit status: 0 when everything holds, 1 when a check fails, 2 when a file does not parse.
"""

from __future__ import annotations

import argparse
import re
import sys
import textwrap
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

import hcl2
from hcl2 import SerializationOptions

INFRA = Path(__file__).resolve().parent
REPO = INFRA.parent
ROOT_MODULE = "."
REGION_MODULE = "modules/region"

OPTIONS = SerializationOptions(strip_string_quotes=True, explicit_blocks=False, with_comments=False)

# Actions that have no resource-level permissions: AWS only accepts "*" as their resource.
ACTIONS_REQUIRING_STAR_RESOURCE = {"ecr:GetAuthorizationToken"}

# SDK calls (snake_case, as in the Rust code) -> the IAM action they need. The batch calls are
# authorized by the single-message action.
SQS_CALL_ACTIONS = {
    "send_message": "sqs:SendMessage",
    "send_message_batch": "sqs:SendMessage",
    "receive_message": "sqs:ReceiveMessage",
    "delete_message": "sqs:DeleteMessage",
    "delete_message_batch": "sqs:DeleteMessage",
    "change_message_visibility": "sqs:ChangeMessageVisibility",
    "change_message_visibility_batch": "sqs:ChangeMessageVisibility",
    "get_queue_attributes": "sqs:GetQueueAttributes",
    "get_queue_url": "sqs:GetQueueUrl",
    "purge_queue": "sqs:PurgeQueue",
}
DYNAMODB_CALL_ACTIONS = {
    "put_item": "dynamodb:PutItem",
    "get_item": "dynamodb:GetItem",
    "query": "dynamodb:Query",
    "scan": "dynamodb:Scan",
    "update_item": "dynamodb:UpdateItem",
    "delete_item": "dynamodb:DeleteItem",
    "batch_write_item": "dynamodb:BatchWriteItem",
    "batch_get_item": "dynamodb:BatchGetItem",
    "transact_write_items": "dynamodb:PutItem",  # plus the actions of each item; flagged below
    "transact_get_items": "dynamodb:GetItem",
}
# Methods of the edgevote_queue::Queue trait (what the edge host calls on its queue) -> the IAM
# actions SqsQueue needs for them.
QUEUE_TRAIT_ACTIONS: dict[str, str | list[str]] = {
    "send_batch": "sqs:SendMessage",
    "receive": "sqs:ReceiveMessage",
    "delete_batch": "sqs:DeleteMessage",
    "change_visibility": "sqs:ChangeMessageVisibility",
    "dead_letter": ["sqs:SendMessage", "sqs:DeleteMessage"],
    "peek_dead_letters": ["sqs:ReceiveMessage", "sqs:ChangeMessageVisibility"],
    "stats": "sqs:GetQueueAttributes",
}
# Calls that only dev and test setup make (create_queue_pair, create_table): production queues
# and tables come from this configuration, so no runtime role gets them.
SETUP_ONLY_CALLS = {"create_queue", "create_table"}

# The KMS actions DynamoDB performs with the caller's permissions on a customer managed key.
TABLE_KEY_ACTIONS = {"kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey", "kms:DescribeKey"}


# ------------------------------------------------------------------------------------------------
# Loading
# ------------------------------------------------------------------------------------------------


@dataclass
class Block:
    """One labelled block: resource, data, variable, output, module or provider."""

    module: str
    kind: str
    type: str
    name: str
    body: dict[str, Any]
    file: Path

    @property
    def address(self) -> str:
        where = "" if self.module == ROOT_MODULE else f"{self.module}: "
        return (
            f"{where}{self.kind} {self.type}.{self.name}" if self.type else f"{where}{self.kind} {self.name}"
        )


@dataclass
class Module:
    path: str
    files: list[Path] = field(default_factory=list)
    docs: list[dict[str, Any]] = field(default_factory=list)
    blocks: list[Block] = field(default_factory=list)
    locals: dict[str, Any] = field(default_factory=dict)
    terraform: list[dict[str, Any]] = field(default_factory=list)

    def of(self, kind: str, type_: str | None = None) -> list[Block]:
        return [b for b in self.blocks if b.kind == kind and (type_ is None or b.type == type_)]

    def get(self, kind: str, type_: str, name: str) -> Block | None:
        found = [b for b in self.of(kind, type_) if b.name == name]
        return found[0] if found else None


EXAMPLE_VARS = INFRA / "example.tfvars"


def tf_files() -> list[Path]:
    return sorted(p for p in INFRA.rglob("*.tf") if ".terraform" not in p.parts)


def parse_file(path: Path) -> dict[str, Any]:
    with path.open(encoding="utf-8") as f:
        return hcl2.load(f, serialization_options=OPTIONS)


def load(files: list[Path]) -> dict[str, Module]:
    modules: dict[str, Module] = {}
    for path in files:
        rel = path.parent.relative_to(INFRA).as_posix()
        module = modules.setdefault(rel, Module(rel))
        doc = parse_file(path)
        module.files.append(path)
        module.docs.append(doc)
        for kind in ("resource", "data"):
            for entry in doc.get(kind, []):
                for type_, named in entry.items():
                    for name, body in named.items():
                        module.blocks.append(Block(rel, kind, type_, name, body or {}, path))
        for kind in ("variable", "output", "module"):
            for entry in doc.get(kind, []):
                for name, body in entry.items():
                    module.blocks.append(Block(rel, kind, "", name, body or {}, path))
        for entry in doc.get("provider", []):
            for type_, body in entry.items():
                alias = (body or {}).get("alias", "default")
                module.blocks.append(Block(rel, "provider", type_, alias, body or {}, path))
        for entry in doc.get("locals", []):
            module.locals.update(entry)
        module.terraform.extend(doc.get("terraform", []))
    return modules


# ------------------------------------------------------------------------------------------------
# Expression helpers (python-hcl2 keeps expressions as "${...}" strings)
# ------------------------------------------------------------------------------------------------


def blocks(body: dict[str, Any], name: str) -> list[dict[str, Any]]:
    """Nested blocks called `name` (python-hcl2 gives a list of bodies), dynamic ones included."""
    found = body.get(name, [])
    found = [found] if isinstance(found, dict) else list(found)
    for dynamic in body.get("dynamic", []):
        content = dynamic.get(name, {}).get("content") if isinstance(dynamic, dict) else None
        if content:
            found.extend([content] if isinstance(content, dict) else content)
    return found


def one(body: dict[str, Any], name: str) -> dict[str, Any]:
    found = blocks(body, name)
    return found[0] if found else {}


def expr(value: Any) -> str:
    """The expression inside a pure "${...}" string, else the value as text."""
    if isinstance(value, str) and value.startswith("${") and value.endswith("}"):
        return value[2:-1]
    return str(value)


def call_argument(value: Any, function: str) -> Any:
    """The parsed argument of `function(...)` when `value` is exactly such a call."""
    prefix = "${" + function + "("
    if not (isinstance(value, str) and value.startswith(prefix) and value.endswith(")}")):
        return None
    parsed = hcl2.loads("argument = " + value[len(prefix) : -2] + "\n", serialization_options=OPTIONS)
    return parsed["argument"]


def heredoc(value: Any) -> str | None:
    """The text of a heredoc (python-hcl2 keeps `<<-EOT ... EOT` as written)."""
    if not isinstance(value, str):
        return None
    match = re.match(r"^<<(-?)([A-Za-z_]+)\n(.*)\n\s*\2\s*$", value, re.S)
    if not match:
        return None
    text = match.group(3) + "\n"
    return textwrap.dedent(text) if match.group(1) else text


def as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def strings(value: Any) -> Iterator[str]:
    """Every string anywhere inside a parsed value."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from strings(v)


def refers_to(value: Any, address: str) -> bool:
    return any(re.search(r"(?<![\w.])" + re.escape(address) + r"\b", s) for s in strings(value))


# ------------------------------------------------------------------------------------------------
# The checks
# ------------------------------------------------------------------------------------------------


class Checker:
    def __init__(self, modules: dict[str, Module]) -> None:
        self.modules = modules
        self.passed = 0
        self.failures: list[str] = []

    def expect(self, condition: bool, what: str) -> bool:
        if condition:
            self.passed += 1
        else:
            self.failures.append(what)
        return condition

    @property
    def root(self) -> Module:
        return self.modules[ROOT_MODULE]

    @property
    def region(self) -> Module:
        return self.modules[REGION_MODULE]

    def all_blocks(self, kind: str, type_: str | None = None) -> list[Block]:
        return [b for m in self.modules.values() for b in m.of(kind, type_)]

    def regions_default(self) -> list[str]:
        variable = self.root.get("variable", "", "regions")
        return as_list(variable.body.get("default")) if variable else []

    # --- layout ----------------------------------------------------------------------------

    def check_layout(self) -> None:
        self.expect(ROOT_MODULE in self.modules, "infra/*.tf: the root module is missing")
        self.expect(REGION_MODULE in self.modules, f"infra/{REGION_MODULE}: the region module is missing")
        for module in self.modules.values():
            settings = module.terraform[0] if module.terraform else {}
            version = str(settings.get("required_version", ""))
            self.expect(
                re.fullmatch(r">=\s*1\.(6|[7-9]|\d\d)(\.\d+)?", version) is not None,
                f"{module.path}: required_version must be '>= 1.6' or later, found {version!r}",
            )
            providers = one(settings, "required_providers") if settings else {}
            aws = providers.get("aws", {}) if isinstance(providers, dict) else {}
            self.expect(
                aws.get("source") == "hashicorp/aws",
                f"{module.path}: aws provider source must be hashicorp/aws",
            )
            self.expect(
                str(aws.get("version", "")).startswith("~> 5."),
                f"{module.path}: aws provider must be pinned to the 5.x series ('~> 5.N'), found {aws.get('version')!r}",
            )

        regions = self.regions_default()
        self.expect(
            len(regions) == 3 and len(set(regions)) == 3,
            f"variable regions: default must list 3 distinct regions, found {regions}",
        )

        providers = self.root.of("provider", "aws")
        by_region_index: dict[int, str] = {}
        for provider in providers:
            m = re.fullmatch(r"var\.regions\[(\d+)\]", expr(provider.body.get("region")))
            if m:
                by_region_index[int(m.group(1))] = provider.name
        self.expect(
            sorted(by_region_index) == list(range(len(regions))),
            f"providers: one aws provider per region (var.regions[0..{len(regions) - 1}]), found indexes {sorted(by_region_index)}",
        )

        calls = [b for b in self.root.of("module") if b.body.get("source") == f"./{REGION_MODULE}"]
        self.expect(
            len(calls) == len(regions),
            f"module calls: {len(regions)} instances of ./{REGION_MODULE} expected, found {len(calls)}",
        )
        seen_regions, seen_providers = set(), set()
        for call in calls:
            m = re.fullmatch(r"var\.regions\[(\d+)\]", expr(call.body.get("region")))
            index = int(m.group(1)) if m else None
            providers_arg = call.body.get("providers", {})
            provider = expr(providers_arg.get("aws")) if isinstance(providers_arg, dict) else ""
            expected = (
                "aws" if by_region_index.get(index) == "default" else f"aws.{by_region_index.get(index)}"
            )
            self.expect(index is not None, f"module.{call.name}: region must be var.regions[i]")
            self.expect(
                provider == expected,
                f"module.{call.name}: region var.regions[{index}] needs providers = {{ aws = {expected} }}, found {provider!r}",
            )
            seen_regions.add(index)
            seen_providers.add(provider)
        self.expect(
            len(seen_regions) == len(calls) and len(seen_providers) == len(calls),
            "module calls: each region and each provider exactly once",
        )

    # --- variables and references ------------------------------------------------------------

    def check_variables(self) -> None:
        for variable in self.all_blocks("variable"):
            description = variable.body.get("description")
            self.expect(
                isinstance(description, str) and len(description.strip()) >= 10,
                f"{variable.address}: needs a description",
            )
            self.expect("type" in variable.body, f"{variable.address}: needs a type")

        module_variables = {b.name: b for b in self.region.of("variable")}
        required = {name for name, b in module_variables.items() if "default" not in b.body}
        for call in self.root.of("module"):
            arguments = set(call.body) - {"source", "providers", "depends_on", "count", "for_each"}
            self.expect(
                not (required - arguments),
                f"module.{call.name}: missing required variables {sorted(required - arguments)}",
            )
            self.expect(
                not (arguments - set(module_variables)),
                f"module.{call.name}: unknown variables {sorted(arguments - set(module_variables))}",
            )

    def check_example_vars(self) -> None:
        """example.tfvars sets every root variable without a default, and nothing unknown."""
        if not self.expect(EXAMPLE_VARS.exists(), "infra/example.tfvars is missing"):
            return
        values = parse_file(EXAMPLE_VARS)
        variables = {b.name: b for b in self.root.of("variable")}
        required = {name for name, b in variables.items() if "default" not in b.body}
        self.expect(not (required - set(values)), f"example.tfvars: missing {sorted(required - set(values))}")
        self.expect(
            not (set(values) - set(variables)),
            f"example.tfvars: unknown {sorted(set(values) - set(variables))}",
        )

    def check_references(self) -> None:
        outputs = {b.name for b in self.region.of("output")}
        calls = {b.name for b in self.root.of("module")}
        for module in self.modules.values():
            variables = {b.name for b in module.of("variable")}
            resources = {(b.type, b.name) for b in module.of("resource")}
            data = {(b.type, b.name) for b in module.of("data")}
            text = [s for doc in module.docs for s in strings(doc)]
            found: dict[str, set[str]] = {
                "var": set(),
                "local": set(),
                "module": set(),
                "resource": set(),
                "data": set(),
            }
            for s in text:
                for m in re.finditer(r"(?<![\w.])var\.([A-Za-z_][\w-]*)", s):
                    found["var"].add(m.group(1))
                for m in re.finditer(r"(?<![\w.])local\.([A-Za-z_][\w-]*)", s):
                    found["local"].add(m.group(1))
                for m in re.finditer(r"(?<![\w.])module\.([A-Za-z_][\w-]*)\.([A-Za-z_][\w-]*)", s):
                    found["module"].add(f"{m.group(1)}.{m.group(2)}")
                for m in re.finditer(r"(?<![\w.])data\.(aws_[a-z0-9_]+)\.([A-Za-z_][\w-]*)", s):
                    found["data"].add(f"{m.group(1)}.{m.group(2)}")
                for m in re.finditer(r"(?<![\w.:/-])(aws_[a-z0-9_]+)\.([A-Za-z_][\w-]*)", s):
                    found["resource"].add(f"{m.group(1)}.{m.group(2)}")
            where = f"infra/{module.path}" if module.path != ROOT_MODULE else "infra"
            for name in sorted(found["var"]):
                self.expect(name in variables, f"{where}: var.{name} is not declared")
            for name in sorted(found["local"]):
                self.expect(name in module.locals, f"{where}: local.{name} is not defined")
            for ref in sorted(found["module"]):
                call, output = ref.split(".")
                self.expect(call in calls and output in outputs, f"{where}: module.{ref} does not exist")
            for ref in sorted(found["data"]):
                self.expect(tuple(ref.split(".")) in data, f"{where}: data.{ref} is not declared")
            for ref in sorted(found["resource"]):
                self.expect(tuple(ref.split(".")) in resources, f"{where}: {ref} is not declared")
        for output in self.all_blocks("output"):
            self.expect(bool(output.body.get("description")), f"{output.address}: needs a description")

    # --- SQS -------------------------------------------------------------------------------

    def check_queues(self) -> None:
        for module in self.modules.values():
            queues = module.of("resource", "aws_sqs_queue")
            targets: dict[str, Block] = {}
            for queue in queues:
                policy = call_argument(queue.body.get("redrive_policy"), "jsonencode")
                if policy:
                    targets[queue.name] = queue
            dead_letter_names = set()
            for queue in targets.values():
                policy = call_argument(queue.body.get("redrive_policy"), "jsonencode")
                target = re.fullmatch(
                    r"aws_sqs_queue\.([\w-]+)\.arn", expr(policy.get("deadLetterTargetArn"))
                )
                ok = self.expect(
                    target is not None
                    and module.get("resource", "aws_sqs_queue", target.group(1)) is not None,
                    f"{queue.address}: redrive_policy must name a dead-letter queue of this module",
                )
                self.expect(
                    "maxReceiveCount" in policy, f"{queue.address}: redrive_policy needs maxReceiveCount"
                )
                if ok:
                    dead_letter_names.add(target.group(1))
            for queue in queues:
                encrypted = queue.body.get("sqs_managed_sse_enabled") is True or bool(
                    queue.body.get("kms_master_key_id")
                )
                self.expect(
                    encrypted,
                    f"{queue.address}: needs server-side encryption (sqs_managed_sse_enabled or kms_master_key_id)",
                )
                if queue.name in dead_letter_names:
                    self.expect(
                        queue.name not in targets,
                        f"{queue.address}: a dead-letter queue must not redrive further",
                    )
                    allow = [
                        b
                        for b in module.of("resource", "aws_sqs_queue_redrive_allow_policy")
                        if refers_to(b.body.get("queue_url"), f"aws_sqs_queue.{queue.name}")
                    ]
                    self.expect(
                        len(allow) == 1,
                        f"{queue.address}: needs a redrive allow policy limiting who may use it",
                    )
                else:
                    self.expect(
                        queue.name in targets,
                        f"{queue.address}: needs a redrive_policy to a dead-letter queue",
                    )
            if queues:
                self.expect(bool(dead_letter_names), f"infra/{module.path}: no dead-letter queue")

    # --- DynamoDB ----------------------------------------------------------------------------

    def rust_key_names(self) -> tuple[str | None, str | None]:
        source = (REPO / "collector/aws/src/dynamo/item.rs").read_text(encoding="utf-8")
        pk = re.search(r'pub const PK: &str = "([^"]+)";', source)
        sk = re.search(r'pub const SK: &str = "([^"]+)";', source)
        return (pk.group(1) if pk else None, sk.group(1) if sk else None)

    def check_table(self) -> None:
        tables = self.all_blocks("resource", "aws_dynamodb_table")
        if not self.expect(len(tables) == 1, f"exactly one aws_dynamodb_table expected, found {len(tables)}"):
            return
        table = tables[0]
        body = table.body
        pk, sk = self.rust_key_names()
        self.expect(
            pk is not None and sk is not None, "collector/aws/src/dynamo/item.rs: PK/SK constants not found"
        )
        self.expect(
            body.get("billing_mode") == "PAY_PER_REQUEST",
            f"{table.address}: billing_mode must be PAY_PER_REQUEST",
        )
        self.expect(
            body.get("hash_key") == pk,
            f"{table.address}: hash_key must be {pk!r} (DynamoStore's PK), found {body.get('hash_key')!r}",
        )
        self.expect(
            body.get("range_key") == sk,
            f"{table.address}: range_key must be {sk!r} (DynamoStore's SK), found {body.get('range_key')!r}",
        )
        attributes = {a.get("name"): a.get("type") for a in blocks(body, "attribute")}
        self.expect(
            attributes == {pk: "S", sk: "S"},
            f"{table.address}: attributes must be exactly {pk} and {sk}, strings; found {attributes}",
        )
        sdk = (REPO / "collector/aws/src/dynamo/sdk.rs").read_text(encoding="utf-8")
        code_uses_index = re.search(r"\.index_name\(", sdk) is not None
        has_index = bool(blocks(body, "global_secondary_index") or blocks(body, "local_secondary_index"))
        self.expect(
            has_index == code_uses_index,
            f"{table.address}: secondary indexes must match the store's queries (code uses one: {code_uses_index})",
        )
        self.expect(body.get("stream_enabled") is True, f"{table.address}: stream_enabled must be true")
        self.expect(
            body.get("stream_view_type") == "NEW_AND_OLD_IMAGES",
            f"{table.address}: stream_view_type must be NEW_AND_OLD_IMAGES",
        )
        self.expect(
            one(body, "point_in_time_recovery").get("enabled") is True,
            f"{table.address}: point_in_time_recovery must be enabled",
        )
        sse = one(body, "server_side_encryption")
        self.expect(
            sse.get("enabled") is True and bool(sse.get("kms_key_arn")),
            f"{table.address}: server_side_encryption with a customer managed key",
        )
        self.expect(
            bool(body.get("deletion_protection_enabled")),
            f"{table.address}: deletion_protection_enabled must be set",
        )
        self.expect(
            one(body, "lifecycle").get("prevent_destroy") is True,
            f"{table.address}: lifecycle.prevent_destroy must be true",
        )

        replicas = blocks(body, "replica")
        regions = self.regions_default()
        self.expect(
            len(replicas) == len(regions) - 1,
            f"{table.address}: one replica per other region ({len(regions) - 1}), found {len(replicas)}",
        )
        indexes = set()
        for replica in replicas:
            m = re.fullmatch(r"var\.regions\[(\d+)\]", expr(replica.get("region_name")))
            indexes.add(int(m.group(1)) if m else -1)
            self.expect(
                replica.get("point_in_time_recovery") is True,
                f"{table.address}: replica {replica.get('region_name')} needs point_in_time_recovery",
            )
            self.expect(
                bool(replica.get("kms_key_arn")),
                f"{table.address}: replica {replica.get('region_name')} needs its region's kms_key_arn",
            )
        self.expect(
            indexes == set(range(1, len(regions))),
            f"{table.address}: replicas must be var.regions[1..], found {sorted(indexes)}",
        )

    # --- alarms ------------------------------------------------------------------------------

    def alarm_metrics(self, alarm: Block) -> list[tuple[str, str, dict[str, Any]]]:
        body = alarm.body
        metrics = []
        if body.get("metric_name"):
            metrics.append((body.get("namespace"), body.get("metric_name"), body.get("dimensions") or {}))
        for query in blocks(body, "metric_query"):
            for metric in blocks(query, "metric"):
                metrics.append(
                    (metric.get("namespace"), metric.get("metric_name"), metric.get("dimensions") or {})
                )
        return metrics

    def check_alarms(self) -> None:
        alarms = self.all_blocks("resource", "aws_cloudwatch_metric_alarm")
        # (what, namespace, metric, a dimension that must be there or a resource it names)
        wanted = [
            ("SQS queue age", "AWS/SQS", "ApproximateAgeOfOldestMessage", "aws_sqs_queue.votes"),
            (
                "dead-letter queue not empty",
                "AWS/SQS",
                "ApproximateNumberOfMessagesVisible",
                "aws_sqs_queue.dlq",
            ),
            ("DynamoDB throttled requests", "AWS/DynamoDB", "ThrottledRequests", "Operation"),
            ("DynamoDB write throttles", "AWS/DynamoDB", "WriteThrottleEvents", "TableName"),
            ("DynamoDB replication latency", "AWS/DynamoDB", "ReplicationLatency", "ReceivingRegion"),
        ]
        for label, namespace, metric, needs in wanted:

            def matches(ns: str, name: str, dims: dict[str, Any]) -> bool:
                return ns == namespace and name == metric and (needs in dims or refers_to(dims, needs))

            found = [a for a in alarms if any(matches(*m) for m in self.alarm_metrics(a))]
            self.expect(bool(found), f"alarm missing: {label} ({namespace} {metric})")
            if metric == "ApproximateNumberOfMessagesVisible":
                for alarm in found:
                    self.expect(
                        alarm.body.get("threshold") == 0
                        and alarm.body.get("comparison_operator") == "GreaterThanThreshold",
                        f"{alarm.address}: the dead-letter alarm must fire on more than 0 messages",
                    )
        for alarm in alarms:
            self.expect(
                alarm.body.get("actions_enabled") is True, f"{alarm.address}: actions_enabled must be true"
            )
            self.expect(
                refers_to(alarm.body.get("alarm_actions"), "aws_sns_topic")
                or refers_to(alarm.body.get("alarm_actions"), "local.alarm_actions"),
                f"{alarm.address}: must notify an SNS topic",
            )
        topics = self.all_blocks("resource", "aws_sns_topic")
        self.expect(bool(topics), "no SNS topic for the alarms")
        for topic in topics:
            self.expect(
                bool(topic.body.get("kms_master_key_id")),
                f"{topic.address}: must be encrypted (kms_master_key_id)",
            )

    # --- IAM -----------------------------------------------------------------------------------

    def statements(self, document: Block) -> list[dict[str, Any]]:
        return blocks(document.body, "statement")

    def policy_document_of(self, module: Module, value: Any) -> Block | None:
        m = re.fullmatch(r"data\.aws_iam_policy_document\.([\w-]+)\.json", expr(value))
        return module.get("data", "aws_iam_policy_document", m.group(1)) if m else None

    def check_policy_documents(self) -> None:
        for module in self.modules.values():
            for document in module.of("data", "aws_iam_policy_document"):
                for index, statement in enumerate(self.statements(document)):
                    where = f"{document.address} statement {statement.get('sid', index)}"
                    self.expect(
                        "not_actions" not in statement and "not_resources" not in statement,
                        f"{where}: no not_actions/not_resources",
                    )
                    if statement.get("effect", "Allow") != "Allow":
                        continue
                    actions = as_list(statement.get("actions"))
                    self.expect(bool(actions), f"{where}: names no actions")
                    self.expect(all("*" not in a for a in actions), f"{where}: wildcard action in {actions}")
                    for principal in blocks(statement, "principals"):
                        self.expect(
                            "*" not in as_list(principal.get("identifiers")), f"{where}: wildcard principal"
                        )
                    resources = as_list(statement.get("resources"))
                    if not resources:
                        self.expect(
                            actions == ["sts:AssumeRole"] and bool(blocks(statement, "principals")),
                            f"{where}: only a trust statement may omit resources",
                        )
                        continue
                    for resource in resources:
                        if resource == "*":
                            self.expect(
                                set(actions) <= ACTIONS_REQUIRING_STAR_RESOURCE,
                                f"{where}: resource '*' is only for actions without resource-level permissions {sorted(ACTIONS_REQUIRING_STAR_RESOURCE)}",
                            )
                        elif "*" in resource:
                            self.expect(
                                resource.endswith(":log-stream:*") and resource.count("*") == 1,
                                f"{where}: wildcard resource {resource!r} (only log streams of a named group may be wildcarded)",
                            )
                        else:
                            self.passed += 1

    def check_key_policies(self) -> None:
        for key in self.all_blocks("resource", "aws_kms_key"):
            policy = call_argument(key.body.get("policy"), "jsonencode")
            if not self.expect(
                isinstance(policy, dict), f"{key.address}: needs an explicit key policy (jsonencode)"
            ):
                continue
            self.expect(
                key.body.get("enable_key_rotation") is True,
                f"{key.address}: enable_key_rotation must be true",
            )
            for statement in as_list(policy.get("Statement")):
                where = f"{key.address} statement {statement.get('Sid')}"
                principal = statement.get("Principal")
                principals = [
                    p
                    for v in (principal.values() if isinstance(principal, dict) else [principal])
                    for p in as_list(v)
                ]
                self.expect(bool(principals) and "*" not in principals, f"{where}: needs specific principals")
                actions = as_list(statement.get("Action"))
                if any("*" in a for a in actions):
                    # The key's administration by the account itself (IAM policies then decide);
                    # without it the key cannot be managed at all.
                    self.expect(
                        all(str(p).endswith(":root") for p in principals),
                        f"{where}: wildcard actions only for the account root",
                    )
                # In a key policy "Resource": "*" means this key.
                self.expect(
                    statement.get("Resource") == "*",
                    f"{where}: a key policy statement's resource is the key itself ('*')",
                )

    def role_actions(self, module: Module, role: str) -> tuple[set[str], list[dict[str, Any]]]:
        actions: set[str] = set()
        statements: list[dict[str, Any]] = []
        for policy in module.of("resource", "aws_iam_role_policy"):
            if expr(policy.body.get("role")) != f"aws_iam_role.{role}.id":
                continue
            document = self.policy_document_of(module, policy.body.get("policy"))
            if self.expect(
                document is not None, f"{policy.address}: policy must come from an aws_iam_policy_document"
            ):
                for statement in self.statements(document):
                    statements.append(statement)
                    actions.update(as_list(statement.get("actions")))
        return actions, statements

    def code_actions(self, paths: Iterable[str], table: dict[str, str], receiver: str = "") -> set[str]:
        """IAM actions of the calls named in `table` that the Rust files make. `receiver`
        narrows the match to calls on one variable (e.g. `queue.`)."""
        used: set[str] = set()
        for path in paths:
            source = (REPO / path).read_text(encoding="utf-8")
            calls = set(
                re.findall(
                    r"(?<![\w])" + re.escape(receiver) + r"\.([a-z_]+)\(" if receiver else r"\.([a-z_]+)\(",
                    source,
                )
            )
            used |= {c for c in calls if c in table} - SETUP_ONLY_CALLS
        self.expect(
            "transact_write_items" not in used and "transact_get_items" not in used,
            "transactions need a per-item IAM review; update check.py and iam.tf together",
        )
        return {action for c in used for action in as_list(table[c])}

    def check_roles(self) -> None:
        module = self.region
        for attachment_type in (
            "aws_iam_role_policy_attachment",
            "aws_iam_policy_attachment",
            "aws_iam_policy",
        ):
            self.expect(
                not self.all_blocks("resource", attachment_type),
                f"no {attachment_type}: every role's permissions are its inline policy from a checked policy document",
            )
        for role in self.all_blocks("resource", "aws_iam_role"):
            self.expect(
                "managed_policy_arns" not in role.body and not blocks(role.body, "inline_policy"),
                f"{role.address}: no managed or inline policies on the role itself",
            )
            trust = self.policy_document_of(self.modules[role.module], role.body.get("assume_role_policy"))
            if self.expect(
                trust is not None,
                f"{role.address}: assume_role_policy must come from an aws_iam_policy_document",
            ):
                sources = [
                    self.policy_document_of(self.modules[role.module], s)
                    for s in as_list(trust.body.get("source_policy_documents"))
                ]
                for statement in self.statements(trust) + [
                    s for d in sources if d for s in self.statements(d)
                ]:
                    self.expect(
                        as_list(statement.get("actions")) == ["sts:AssumeRole"]
                        and bool(blocks(statement, "principals")),
                        f"{role.address}: trust statements may only let named principals sts:AssumeRole",
                    )

        # Edge: sqs:SendMessage on queues, nothing else.
        edge_actions, edge_statements = self.role_actions(module, "edge")
        self.expect(
            edge_actions == {"sqs:SendMessage"},
            f"edge role: may only sqs:SendMessage, found {sorted(edge_actions)}",
        )
        for statement in edge_statements:
            resources = as_list(statement.get("resources"))
            self.expect(
                all(
                    re.search(r"aws_sqs_queue\.votes\.arn|var\.failover_queue_arns", r)
                    for r in strings(resources)
                )
                and bool(resources),
                f"edge role: only the regional and failover vote queues, found {resources}",
            )
        host_sources = sorted(p.relative_to(REPO).as_posix() for p in (REPO / "edge/host/src").glob("*.rs"))
        edge_code = self.code_actions(host_sources, QUEUE_TRAIT_ACTIONS, receiver="queue")
        self.expect(
            edge_code == {"sqs:SendMessage"},
            f"edge host: its queue calls need {sorted(edge_code)}, the edge role grants sqs:SendMessage; review both",
        )

        # Collector: exactly the calls of the Rust SQS and DynamoDB code.
        collector_actions, collector_statements = self.role_actions(module, "collector")
        sqs_code = self.code_actions(["collector/aws/src/sqs.rs"], SQS_CALL_ACTIONS)
        dynamodb_code = self.code_actions(["collector/aws/src/dynamo/sdk.rs"], DYNAMODB_CALL_ACTIONS)
        sqs_role = {a for a in collector_actions if a.startswith("sqs:")}
        dynamodb_role = {a for a in collector_actions if a.startswith("dynamodb:")}
        kms_role = {a for a in collector_actions if a.startswith("kms:")}
        self.expect(
            sqs_role == sqs_code,
            f"collector role: SQS actions {sorted(sqs_role)} differ from the calls in collector/aws/src/sqs.rs {sorted(sqs_code)}",
        )
        self.expect(
            dynamodb_role == dynamodb_code,
            f"collector role: DynamoDB actions {sorted(dynamodb_role)} differ from the calls in collector/aws/src/dynamo/sdk.rs {sorted(dynamodb_code)}",
        )
        self.expect(
            kms_role <= TABLE_KEY_ACTIONS,
            f"collector role: unexpected KMS actions {sorted(kms_role - TABLE_KEY_ACTIONS)}",
        )
        self.expect(
            collector_actions == sqs_role | dynamodb_role | kms_role,
            f"collector role: actions beyond SQS, DynamoDB and the table key: {sorted(collector_actions)}",
        )
        for statement in collector_statements:
            actions = as_list(statement.get("actions"))
            resources = list(strings(statement.get("resources")))
            if any(a.startswith("dynamodb:") for a in actions):
                self.expect(
                    resources == ["${var.table_arn}"],
                    f"collector role: DynamoDB only on this region's table, found {resources}",
                )
            if any(a.startswith("sqs:") for a in actions):
                self.expect(
                    all(re.fullmatch(r"\$\{aws_sqs_queue\.(votes|dlq)\.arn\}", r) for r in resources),
                    f"collector role: SQS only on its queues, found {resources}",
                )
            if any(a.startswith("sqs:") for a in actions) and "sqs:SendMessage" in actions:
                self.expect(
                    resources == ["${aws_sqs_queue.dlq.arn}"],
                    "collector role: sqs:SendMessage only to the dead-letter queue",
                )
            if any(a.startswith("kms:") for a in actions):
                via = [c for c in blocks(statement, "condition") if c.get("variable") == "kms:ViaService"]
                self.expect(bool(via), "collector role: the table key only through DynamoDB (kms:ViaService)")

    # --- generated configuration files -------------------------------------------------------

    def rust_struct_fields(self, path: str, struct: str) -> set[str]:
        source = (REPO / path).read_text(encoding="utf-8")
        m = re.search(r"pub struct " + struct + r"\s*\{(.*?)\n\}", source, re.S)
        if not self.expect(m is not None, f"{path}: struct {struct} not found"):
            return set()
        return set(re.findall(r"^\s*pub (\w+):", m.group(1), re.M))

    def render_toml(self, text: str) -> dict[str, Any]:
        # Stand-ins for the interpolations: any string or number will do to check the keys.
        text = re.sub(r"\$\{jsonencode\((?:[^()]|\([^()]*\))*\)\}", '"x"', text)
        text = re.sub(r"\$\{[^}]*\}", "1", text)
        return tomllib.loads(text)

    def check_generated_configs(self) -> None:
        queue_keys = {"backend"} | self.rust_struct_fields("collector/aws/src/sqs.rs", "SqsQueueConfig")
        store_keys = {"backend"} | self.rust_struct_fields(
            "collector/aws/src/dynamo/mod.rs", "DynamoStoreConfig"
        )
        collector = {
            "": self.rust_struct_fields("collector/src/config.rs", "CollectorConfig"),
            "processing": self.rust_struct_fields("collector/src/config.rs", "ProcessingConfig"),
            "queue": queue_keys,
            "store": store_keys,
        }
        edge = {
            "": self.rust_struct_fields("edge/host/src/config.rs", "HostConfig"),
            "group_commit": self.rust_struct_fields("edge/host/src/config.rs", "GroupCommitConfig"),
            "spill": self.rust_struct_fields("edge/host/src/config.rs", "SpillConfig"),
            "rate_limit": self.rust_struct_fields("edge/host/src/limit.rs", "RateLimitConfig"),
            "queue": queue_keys,
        }
        for local, schema, backends in (
            ("collector_config", collector, {"queue": "sqs", "store": "dynamodb"}),
            ("edge_config", edge, {"queue": "sqs"}),
        ):
            text = heredoc(self.region.locals.get(local))
            if not self.expect(text is not None, f"{REGION_MODULE}: local.{local} must be a heredoc"):
                continue
            try:
                parsed = self.render_toml(text)
            except tomllib.TOMLDecodeError as e:
                self.expect(False, f"{REGION_MODULE}: local.{local} is not valid TOML: {e}")
                continue
            for key, value in parsed.items():
                if isinstance(value, dict):
                    self.expect(
                        key in schema and set(value) <= schema[key],
                        f"local.{local}: [{key}] keys {sorted(set(value) - schema.get(key, set()))} unknown to edgevote",
                    )
                else:
                    self.expect(key in schema[""], f"local.{local}: key {key!r} unknown to edgevote")
            required_top = {"region", "keyset_path", "election_paths", "queue"}
            self.expect(
                required_top <= set(parsed), f"local.{local}: needs {sorted(required_top - set(parsed))}"
            )
            for table, backend in backends.items():
                self.expect(
                    parsed.get(table, {}).get("backend") == backend,
                    f"local.{local}: [{table}] backend must be {backend!r}",
                )
        edge_text = heredoc(self.region.locals.get("edge_config")) or ""
        edge_parsed = self.render_toml(edge_text) if edge_text else {}
        self.expect(
            edge_parsed.get("spill", {}).get("enabled") is False,
            "local.edge_config: spill must be off on Fargate (no durable task disk)",
        )

    # --- ECS -----------------------------------------------------------------------------------

    def check_ecs(self) -> None:
        definitions = self.all_blocks("resource", "aws_ecs_task_definition")
        self.expect(
            {d.name for d in definitions} == {"collector", "edge"},
            f"task definitions: collector and edge expected, found {[d.name for d in definitions]}",
        )
        for definition in definitions:
            body = definition.body
            self.expect(
                as_list(body.get("requires_compatibilities")) == ["FARGATE"],
                f"{definition.address}: Fargate only",
            )
            self.expect(
                bool(body.get("execution_role_arn"))
                and bool(body.get("task_role_arn"))
                and body.get("execution_role_arn") != body.get("task_role_arn"),
                f"{definition.address}: distinct execution and task roles",
            )
            containers = call_argument(body.get("container_definitions"), "jsonencode")
            if not self.expect(
                isinstance(containers, list) and bool(containers),
                f"{definition.address}: container_definitions must be jsonencode([...])",
            ):
                continue
            for container in containers:
                where = f"{definition.address} container {container.get('name')}"
                self.expect(
                    container.get("readonlyRootFilesystem") is True, f"{where}: read-only root filesystem"
                )
                self.expect(not container.get("privileged"), f"{where}: not privileged")
                self.expect(
                    re.fullmatch(r"\$\{(local|var)\.[\w]+\}", str(container.get("image"))) is not None,
                    f"{where}: image must come from a variable",
                )
                log = container.get("logConfiguration", {})
                self.expect(
                    log.get("logDriver") == "awslogs"
                    and refers_to(log.get("options"), "aws_cloudwatch_log_group"),
                    f"{where}: logs to a managed log group",
                )
        services = self.all_blocks("resource", "aws_ecs_service")
        self.expect(
            {s.name for s in services} == {"collector", "edge"},
            f"services: collector and edge expected, found {[s.name for s in services]}",
        )
        for service in services:
            self.expect(
                service.body.get("launch_type") == "FARGATE", f"{service.address}: launch_type FARGATE"
            )
            self.expect(
                one(service.body, "network_configuration").get("assign_public_ip") is False,
                f"{service.address}: no public IP",
            )
            self.expect(
                service.body.get("enable_execute_command") is False, f"{service.address}: ECS Exec off"
            )
        for group in self.all_blocks("resource", "aws_cloudwatch_log_group"):
            self.expect(
                bool(group.body.get("kms_key_id")) and bool(group.body.get("retention_in_days")),
                f"{group.address}: encrypted, with a retention",
            )

    # --- CloudFront --------------------------------------------------------------------------

    def check_cloudfront(self) -> None:
        distributions = self.all_blocks("resource", "aws_cloudfront_distribution")
        if not self.expect(
            len(distributions) == 1, f"one CloudFront distribution expected, found {len(distributions)}"
        ):
            return
        distribution = distributions[0]
        body = distribution.body
        groups = blocks(body, "origin_group")
        group_ids = {g.get("origin_id") for g in groups}
        self.expect(len(groups) >= 1, f"{distribution.address}: needs an origin group for failover")
        for group in groups:
            members = blocks(group, "member")
            codes = set(as_list(one(group, "failover_criteria").get("status_codes")))
            self.expect(
                len(members) == 2,
                f"{distribution.address}: origin group {group.get('origin_id')} needs two regional origins",
            )
            self.expect(
                {500, 502, 503, 504} <= codes,
                f"{distribution.address}: origin group must fail over on 500, 502, 503, 504 (found {sorted(codes)})",
            )
        behaviors = [("default", one(body, "default_cache_behavior"))] + [
            (b.get("path_pattern"), b) for b in blocks(body, "ordered_cache_behavior")
        ]
        self.expect(
            behaviors[0][1].get("target_origin_id") in group_ids,
            f"{distribution.address}: the default behavior must use the origin group",
        )
        for pattern, behavior in behaviors:
            self.expect(
                behavior.get("viewer_protocol_policy") == "https-only",
                f"{distribution.address}: behavior {pattern} must be https-only",
            )
            if behavior.get("target_origin_id") in group_ids:
                self.expect(
                    "POST" not in as_list(behavior.get("allowed_methods")),
                    f"{distribution.address}: behavior {pattern}: CloudFront refuses POST on an origin group",
                )
        votes = [b for p, b in behaviors if p == "/v1/elections/*/votes"]
        if self.expect(
            len(votes) == 1, f"{distribution.address}: needs a behavior for /v1/elections/*/votes"
        ):
            vote = votes[0]
            self.expect(
                "POST" in as_list(vote.get("allowed_methods")),
                f"{distribution.address}: votes behavior must allow POST",
            )
            policy = re.fullmatch(
                r"data\.aws_cloudfront_cache_policy\.([\w-]+)\.id", expr(vote.get("cache_policy_id"))
            )
            data = self.root.get("data", "aws_cloudfront_cache_policy", policy.group(1)) if policy else None
            self.expect(
                data is not None and data.body.get("name") == "Managed-CachingDisabled",
                f"{distribution.address}: votes must never be cached (Managed-CachingDisabled)",
            )
        origins = blocks(body, "origin")
        self.expect(len(origins) >= 2, f"{distribution.address}: needs the regional origins")
        for origin in origins:
            custom = one(origin, "custom_origin_config")
            self.expect(
                custom.get("origin_protocol_policy") == "https-only"
                and as_list(custom.get("origin_ssl_protocols")) == ["TLSv1.2"],
                f"{distribution.address}: origin {origin.get('origin_id')} must be HTTPS (TLS 1.2) only",
            )
        certificate = one(body, "viewer_certificate")
        self.expect(
            str(certificate.get("minimum_protocol_version", "")).startswith("TLSv1.2"),
            f"{distribution.address}: viewers need TLS 1.2 or later",
        )
        self.expect(bool(body.get("web_acl_id")), f"{distribution.address}: needs a web ACL")

    # --- checkov skips ----------------------------------------------------------------------

    def skips(self) -> list[tuple[Path, str, str]]:
        found = []
        for module in self.modules.values():
            for path in module.files:
                for line in path.read_text(encoding="utf-8").splitlines():
                    m = re.search(r"#\s*checkov:skip=([A-Z0-9_]+)(?::(.*))?$", line)
                    if m:
                        found.append((path, m.group(1), (m.group(2) or "").strip()))
        return found

    def check_skips(self) -> None:
        for path, check, reason in self.skips():
            self.expect(len(reason) >= 20, f"{path.relative_to(INFRA)}: checkov skip {check} needs a reason")

    def run(self) -> None:
        self.check_layout()
        self.check_variables()
        self.check_example_vars()
        self.check_references()
        self.check_queues()
        self.check_table()
        self.check_alarms()
        self.check_policy_documents()
        self.check_key_policies()
        self.check_roles()
        self.check_generated_configs()
        self.check_ecs()
        self.check_cloudfront()
        self.check_skips()


# ------------------------------------------------------------------------------------------------


def command_parse(files: Iterable[Path]) -> int:
    failed = 0
    for path in [*files, EXAMPLE_VARS]:
        try:
            parse_file(path)
            print(f"  ok    {path.relative_to(INFRA.parent)}")
        except Exception as e:  # python-hcl2 raises lark errors of several kinds
            failed += 1
            first = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
            print(f"  ERROR {path.relative_to(INFRA.parent)}: {first}")
    return 2 if failed else 0


def command_check(files: list[Path]) -> int:
    try:
        modules = load(files)
    except Exception as e:  # a parse error: `check.py parse` names the file
        print(f"infra: cannot load the configuration ({type(e).__name__}); run `check.py parse`")
        return 2
    checker = Checker(modules)
    checker.run()
    resources = sum(len(m.of("resource")) for m in modules.values())
    if checker.failures:
        for failure in checker.failures:
            print(f"  FAIL  {failure}")
        print(
            f"infra: {len(files)} files, {resources} resources, {len(checker.failures)} of {checker.passed + len(checker.failures)} checks FAILED"
        )
        return 1
    skips = checker.skips()
    print(
        f"infra: {len(files)} files, {resources} resources, {checker.passed} checks passed ({len(skips)} checkov skip comments, each with a reason)"
    )
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["parse", "check"])
    args = parser.parse_args()
    files = tf_files()
    if not files:
        print("infra: no .tf files found")
        return 1
    return command_parse(files) if args.command == "parse" else command_check(files)


if __name__ == "__main__":
    sys.exit(main())
