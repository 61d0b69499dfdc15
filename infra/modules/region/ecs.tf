# The region's container services on ECS Fargate: the edge hosts (`edgevote edge run`, behind the
# load balancer of alb.tf) and the collectors (`edgevote collector run`).
#
# Each task writes its configuration files at start from environment variables into the
# task-local volume /run/edgevote (the root filesystem is read-only), then runs edgevote. The
# edge's private key comes from Secrets Manager through the execution role; the edge task role
# never sees the secret store.

locals {
  run_dir = "/run/edgevote"

  collector_image = replace(var.collector_image, "{region}", var.region)
  edge_image      = replace(var.edge_image, "{region}", var.region)

  election_files = [for i, manifest in var.election_manifests : "${local.run_dir}/election-${i}.jws"]

  # The files every task writes before it starts: environment variable => file.
  document_env = concat(
    [{ name = "EDGEVOTE_FILE_KEYSET", value = var.keyset_json }],
    [for i, manifest in var.election_manifests : { name = "EDGEVOTE_FILE_ELECTION_${i}", value = manifest }],
  )
  write_documents = join("\n", concat(
    ["printf '%s' \"$EDGEVOTE_FILE_KEYSET\" > \"$d/keyset.json\""],
    [for i, manifest in var.election_manifests : "printf '%s' \"$EDGEVOTE_FILE_ELECTION_${i}\" > \"$d/election-${i}.jws\""],
  ))

  # edgevote stops cleanly on SIGINT (it finishes the batches in progress); ECS stops a task
  # with SIGTERM, so the launcher passes the stop on as SIGINT and waits for the exit.
  run_and_forward_stop = <<-EOT
    "$@" &
    pid=$!
    trap 'kill -INT "$pid" 2>/dev/null' TERM INT
    status=0
    while kill -0 "$pid" 2>/dev/null; do
      wait "$pid" && status=0 || status=$?
    done
    exit "$status"
  EOT

  # --- collector -------------------------------------------------------------------------------

  # The collector's configuration file (collector/src/config.rs). Strings are JSON-encoded,
  # which is valid TOML for them.
  collector_config = <<-EOT
    region = ${jsonencode(var.region)}
    keyset_path = ${jsonencode("${local.run_dir}/keyset.json")}
    election_paths = ${jsonencode(local.election_files)}
    listen_addr = "0.0.0.0:9100"

    [processing]
    receivers = ${var.collector_receivers}
    visibility_timeout_secs = ${var.queue_visibility_timeout_seconds}
    # Every token verified again: no edge key alone can mint a vote.
    verify_tokens = true

    [queue]
    backend = "sqs"
    queue_url = ${jsonencode(aws_sqs_queue.votes.url)}
    dead_letter_queue_url = ${jsonencode(aws_sqs_queue.dlq.url)}
    region = ${jsonencode(var.region)}

    [store]
    backend = "dynamodb"
    table_name = ${jsonencode(var.table_name)}
    region = ${jsonencode(var.region)}
    max_concurrent_requests = ${var.dynamodb_max_concurrent_requests}
    consistency = ${jsonencode(var.store_consistency)}
  EOT

  collector_launch = <<-EOT
    set -eu
    umask 077
    d=${local.run_dir}
    printf '%s' "$EDGEVOTE_FILE_CONFIG" > "$d/collector.toml"
    ${local.write_documents}
    set -- edgevote collector run --config "$d/collector.toml"
    ${local.run_and_forward_stop}
  EOT

  # --- edge host -------------------------------------------------------------------------------

  # The edge host's configuration file (edge/host/src/config.rs).
  # - spill is off: a Fargate task's disk does not outlive the task, so a vote acknowledged
  #   from the spill log could be lost with it. The receipt waits for SQS instead.
  # - the per-address limit is lifted: behind CloudFront and the load balancer every request
  #   comes from a load balancer address. The CloudFront web ACL limits per client address
  #   instead; the per-token limit stays.
  edge_config = <<-EOT
    listen_addr = "0.0.0.0:8080"
    edge_id = ${jsonencode("${var.name_prefix}-edge-${var.region}")}
    region = ${jsonencode(var.region)}
    component_path = ${jsonencode(var.edge_component_path)}
    bundle_manifest_path = ${jsonencode(var.edge_bundle_manifest_path)}
    keyset_path = ${jsonencode("${local.run_dir}/keyset.json")}
    election_paths = ${jsonencode(local.election_files)}
    edge_key_path = ${jsonencode("${local.run_dir}/edge-key.jwk")}
    max_concurrent_requests = ${var.edge_max_concurrent_requests}
    forward_outbound = false

    [spill]
    enabled = false

    [rate_limit]
    enabled = true
    per_ip_per_sec = 100
    per_ip_burst = 200
    forwarded_for_hops = 2
    per_token_per_min = 6
    per_token_burst = 6

    [queue]
    backend = "sqs"
    queue_url = ${jsonencode(aws_sqs_queue.votes.url)}
    dead_letter_queue_url = ${jsonencode(aws_sqs_queue.dlq.url)}
    region = ${jsonencode(var.region)}
  EOT

  edge_launch = <<-EOT
    set -eu
    umask 077
    d=${local.run_dir}
    printf '%s' "$EDGEVOTE_FILE_CONFIG" > "$d/edge.toml"
    printf '%s' "$EDGEVOTE_FILE_EDGE_KEY" > "$d/edge-key.jwk"
    unset EDGEVOTE_FILE_EDGE_KEY
    ${local.write_documents}
    set -- edgevote edge run --config "$d/edge.toml"
    ${local.run_and_forward_stop}
  EOT
}

# ---------------------------------------------------------------------------------------------
# Log groups
# ---------------------------------------------------------------------------------------------

resource "aws_cloudwatch_log_group" "collector" {
  name              = "${local.log_group_root}/collector"
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.regional.arn

  tags = var.tags
}

resource "aws_cloudwatch_log_group" "edge" {
  name              = "${local.log_group_root}/edge"
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.regional.arn

  tags = var.tags
}

# Where ECS Exec sessions would be logged. Exec is off on both services (the task roles have no
# ssmmessages permissions); the cluster still names an encrypted destination for it.
resource "aws_cloudwatch_log_group" "exec" {
  name              = "${local.log_group_root}/ecs-exec"
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.regional.arn

  tags = var.tags
}

# ---------------------------------------------------------------------------------------------
# Cluster
# ---------------------------------------------------------------------------------------------

resource "aws_ecs_cluster" "this" {
  name = var.name_prefix

  setting {
    name  = "containerInsights"
    value = "enabled"
  }

  configuration {
    execute_command_configuration {
      kms_key_id = aws_kms_key.regional.arn
      logging    = "OVERRIDE"

      log_configuration {
        cloud_watch_encryption_enabled = true
        cloud_watch_log_group_name     = aws_cloudwatch_log_group.exec.name
      }
    }
  }

  tags = var.tags
}

# ---------------------------------------------------------------------------------------------
# Collector service
# ---------------------------------------------------------------------------------------------

resource "aws_ecs_task_definition" "collector" {
  family                   = "${var.name_prefix}-collector"
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = var.collector_cpu
  memory                   = var.collector_memory
  execution_role_arn       = aws_iam_role.execution.arn
  task_role_arn            = aws_iam_role.collector.arn

  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = var.cpu_architecture
  }

  # Task-local scratch space for the generated files.
  volume {
    name = "run"
  }

  container_definitions = jsonencode([
    {
      name                   = "collector"
      image                  = local.collector_image
      essential              = true
      readonlyRootFilesystem = true
      entryPoint             = ["/bin/sh", "-c"]
      command                = [local.collector_launch]
      stopTimeout            = 60
      environment = concat(
        [
          { name = "EDGEVOTE_FILE_CONFIG", value = local.collector_config },
          { name = "RUST_LOG", value = var.log_level },
        ],
        local.document_env,
      )
      portMappings = [{ containerPort = 9100, protocol = "tcp" }]
      mountPoints  = [{ sourceVolume = "run", containerPath = local.run_dir, readOnly = false }]
      logConfiguration = {
        logDriver = "awslogs"
        options = {
          "awslogs-group"         = aws_cloudwatch_log_group.collector.name
          "awslogs-region"        = var.region
          "awslogs-stream-prefix" = "collector"
        }
      }
    },
  ])

  tags = var.tags
}

resource "aws_ecs_service" "collector" {
  name             = "${var.name_prefix}-collector"
  cluster          = aws_ecs_cluster.this.id
  task_definition  = aws_ecs_task_definition.collector.arn
  desired_count    = var.collector_task_count
  launch_type      = "FARGATE"
  platform_version = "LATEST"
  propagate_tags   = "SERVICE"

  enable_execute_command             = false
  deployment_minimum_healthy_percent = 100
  deployment_maximum_percent         = 200

  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }

  network_configuration {
    subnets          = var.private_subnet_ids
    security_groups  = [aws_security_group.collector.id]
    assign_public_ip = false
  }

  # Autoscaling owns the count after creation.
  lifecycle {
    ignore_changes = [desired_count]
  }

  tags = var.tags
}

# ---------------------------------------------------------------------------------------------
# Edge host service
# ---------------------------------------------------------------------------------------------

resource "aws_ecs_task_definition" "edge" {
  family                   = "${var.name_prefix}-edge"
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = var.edge_cpu
  memory                   = var.edge_memory
  execution_role_arn       = aws_iam_role.execution.arn
  task_role_arn            = aws_iam_role.edge.arn

  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = var.cpu_architecture
  }

  volume {
    name = "run"
  }

  container_definitions = jsonencode([
    {
      name                   = "edge"
      image                  = local.edge_image
      essential              = true
      readonlyRootFilesystem = true
      entryPoint             = ["/bin/sh", "-c"]
      command                = [local.edge_launch]
      stopTimeout            = 30
      environment = concat(
        [
          { name = "EDGEVOTE_FILE_CONFIG", value = local.edge_config },
          { name = "RUST_LOG", value = var.log_level },
        ],
        local.document_env,
      )
      secrets      = [{ name = "EDGEVOTE_FILE_EDGE_KEY", valueFrom = var.edge_key_secret_arn }]
      portMappings = [{ containerPort = 8080, protocol = "tcp" }]
      mountPoints  = [{ sourceVolume = "run", containerPath = local.run_dir, readOnly = false }]
      logConfiguration = {
        logDriver = "awslogs"
        options = {
          "awslogs-group"         = aws_cloudwatch_log_group.edge.name
          "awslogs-region"        = var.region
          "awslogs-stream-prefix" = "edge"
        }
      }
    },
  ])

  tags = var.tags
}

resource "aws_ecs_service" "edge" {
  name             = "${var.name_prefix}-edge"
  cluster          = aws_ecs_cluster.this.id
  task_definition  = aws_ecs_task_definition.edge.arn
  desired_count    = var.edge_task_count
  launch_type      = "FARGATE"
  platform_version = "LATEST"
  propagate_tags   = "SERVICE"

  enable_execute_command             = false
  deployment_minimum_healthy_percent = 100
  deployment_maximum_percent         = 200
  health_check_grace_period_seconds  = 30

  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }

  network_configuration {
    subnets          = var.private_subnet_ids
    security_groups  = [aws_security_group.edge.id]
    assign_public_ip = false
  }

  load_balancer {
    target_group_arn = aws_lb_target_group.edge.arn
    container_name   = "edge"
    container_port   = 8080
  }

  lifecycle {
    ignore_changes = [desired_count]
  }

  depends_on = [aws_lb_listener_rule.edge_through_cloudfront]

  tags = var.tags
}

# ---------------------------------------------------------------------------------------------
# Autoscaling: CPU target tracking. Signature checks dominate both services' CPU, so CPU follows
# the vote rate. Scale out ahead of a known peak by raising the minimum counts.
# ---------------------------------------------------------------------------------------------

resource "aws_appautoscaling_target" "collector" {
  service_namespace  = "ecs"
  resource_id        = "service/${aws_ecs_cluster.this.name}/${aws_ecs_service.collector.name}"
  scalable_dimension = "ecs:service:DesiredCount"
  min_capacity       = var.collector_task_count
  max_capacity       = var.collector_task_max_count
}

resource "aws_appautoscaling_policy" "collector_cpu" {
  name               = "${var.name_prefix}-collector-cpu"
  policy_type        = "TargetTrackingScaling"
  service_namespace  = aws_appautoscaling_target.collector.service_namespace
  resource_id        = aws_appautoscaling_target.collector.resource_id
  scalable_dimension = aws_appautoscaling_target.collector.scalable_dimension

  target_tracking_scaling_policy_configuration {
    target_value       = 60
    scale_in_cooldown  = 300
    scale_out_cooldown = 60

    predefined_metric_specification {
      predefined_metric_type = "ECSServiceAverageCPUUtilization"
    }
  }
}

resource "aws_appautoscaling_target" "edge" {
  service_namespace  = "ecs"
  resource_id        = "service/${aws_ecs_cluster.this.name}/${aws_ecs_service.edge.name}"
  scalable_dimension = "ecs:service:DesiredCount"
  min_capacity       = var.edge_task_count
  max_capacity       = var.edge_task_max_count
}

resource "aws_appautoscaling_policy" "edge_cpu" {
  name               = "${var.name_prefix}-edge-cpu"
  policy_type        = "TargetTrackingScaling"
  service_namespace  = aws_appautoscaling_target.edge.service_namespace
  resource_id        = aws_appautoscaling_target.edge.resource_id
  scalable_dimension = aws_appautoscaling_target.edge.scalable_dimension

  target_tracking_scaling_policy_configuration {
    target_value       = 50
    scale_in_cooldown  = 300
    scale_out_cooldown = 30

    predefined_metric_specification {
      predefined_metric_type = "ECSServiceAverageCPUUtilization"
    }
  }
}
