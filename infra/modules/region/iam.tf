# IAM roles of one region, each with the least it needs:
#
#   edge role       (task role of `edgevote edge run`; also assumable by the principals in
#                   edge_trusted_principal_arns, for edges outside AWS)
#                   sqs:SendMessage on this region's queue and the failover queues. Nothing else.
#   collector role  (task role of `edgevote collector run`)
#                   drain the queue, dead-letter into the DLQ, and the four DynamoDB calls the
#                   store makes (collector/aws/src/dynamo/sdk.rs) on this region's replica.
#   execution role  (ECS agent) pull the images, write the two log groups, read the edge key.
#
# The actions are the IAM names of the SDK calls in collector/aws/src: SendMessageBatch needs
# sqs:SendMessage, DeleteMessageBatch sqs:DeleteMessage, ChangeMessageVisibilityBatch
# sqs:ChangeMessageVisibility.

# Tasks of this account's ECS clusters in this region may assume the task roles.
data "aws_iam_policy_document" "ecs_tasks_trust" {
  statement {
    sid     = "EcsTasksOfThisAccount"
    effect  = "Allow"
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["ecs-tasks.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }

    condition {
      test     = "ArnLike"
      variable = "aws:SourceArn"
      values   = ["arn:${local.partition}:ecs:${var.region}:${local.account_id}:*"]
    }
  }
}

# ---------------------------------------------------------------------------------------------
# Edge
# ---------------------------------------------------------------------------------------------

# ECS tasks, and the principals that hand temporary credentials to edges running outside AWS
# (Spin, Cloudflare Workers take AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN).
data "aws_iam_policy_document" "edge_trust" {
  source_policy_documents = [data.aws_iam_policy_document.ecs_tasks_trust.json]

  dynamic "statement" {
    for_each = length(var.edge_trusted_principal_arns) > 0 ? [var.edge_trusted_principal_arns] : []

    content {
      sid     = "EdgesOutsideAws"
      effect  = "Allow"
      actions = ["sts:AssumeRole"]

      principals {
        type        = "AWS"
        identifiers = statement.value
      }
    }
  }
}

resource "aws_iam_role" "edge" {
  name                 = "${var.name_prefix}-edge-${var.region}"
  description          = "edgevote edge hosts in ${var.region}: send votes to the regional queue and its failover queue, nothing else"
  assume_role_policy   = data.aws_iam_policy_document.edge_trust.json
  max_session_duration = 3600

  tags = var.tags
}

data "aws_iam_policy_document" "edge" {
  statement {
    sid       = "SendVotes"
    effect    = "Allow"
    actions   = ["sqs:SendMessage"]
    resources = concat([aws_sqs_queue.votes.arn], var.failover_queue_arns)
  }
}

resource "aws_iam_role_policy" "edge" {
  name   = "send-votes"
  role   = aws_iam_role.edge.id
  policy = data.aws_iam_policy_document.edge.json
}

# ---------------------------------------------------------------------------------------------
# Collector
# ---------------------------------------------------------------------------------------------

resource "aws_iam_role" "collector" {
  name                 = "${var.name_prefix}-collector-${var.region}"
  description          = "edgevote collectors in ${var.region}: drain the regional queue into this region's replica of the ballot table"
  assume_role_policy   = data.aws_iam_policy_document.ecs_tasks_trust.json
  max_session_duration = 3600

  tags = var.tags
}

data "aws_iam_policy_document" "collector" {
  # receive (long poll), delete after the store confirmed, extend visibility of slow batches,
  # queue depth for /metrics.
  statement {
    sid    = "DrainTheQueue"
    effect = "Allow"
    actions = [
      "sqs:ReceiveMessage",
      "sqs:DeleteMessage",
      "sqs:ChangeMessageVisibility",
      "sqs:GetQueueAttributes",
    ]
    resources = [aws_sqs_queue.votes.arn]
  }

  # dead_letter sends a refused message with its reason; stats reads the DLQ depth.
  statement {
    sid       = "DeadLetter"
    effect    = "Allow"
    actions   = ["sqs:SendMessage", "sqs:GetQueueAttributes"]
    resources = [aws_sqs_queue.dlq.arn]
  }

  # PutItem (conditional ballot put), Query (a voter's ballots, counter shards), UpdateItem
  # (counter ADD), Scan (final tally). No GetItem, BatchWriteItem or transactions are used.
  statement {
    sid    = "Ballots"
    effect = "Allow"
    actions = [
      "dynamodb:PutItem",
      "dynamodb:Query",
      "dynamodb:UpdateItem",
      "dynamodb:Scan",
    ]
    resources = [var.table_arn]
  }

  # The replica is encrypted with this region's key; DynamoDB uses it on the caller's behalf.
  statement {
    sid    = "TableKeyThroughDynamoDB"
    effect = "Allow"
    actions = [
      "kms:Decrypt",
      "kms:Encrypt",
      "kms:GenerateDataKey",
      "kms:DescribeKey",
    ]
    resources = [aws_kms_key.regional.arn]

    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["dynamodb.${var.region}.amazonaws.com"]
    }
  }
}

resource "aws_iam_role_policy" "collector" {
  name   = "drain-queue-write-ballots"
  role   = aws_iam_role.collector.id
  policy = data.aws_iam_policy_document.collector.json
}

# ---------------------------------------------------------------------------------------------
# Task execution (the ECS agent, not the application)
# ---------------------------------------------------------------------------------------------

resource "aws_iam_role" "execution" {
  name                 = "${var.name_prefix}-execution-${var.region}"
  description          = "ECS agent for edgevote tasks in ${var.region}: pull images, write logs, read the edge key secret"
  assume_role_policy   = data.aws_iam_policy_document.ecs_tasks_trust.json
  max_session_duration = 3600

  tags = var.tags
}

data "aws_iam_policy_document" "execution" {
  # GetAuthorizationToken has no resource-level permissions: AWS requires "*" here.
  statement {
    sid       = "RegistryLogin"
    effect    = "Allow"
    actions   = ["ecr:GetAuthorizationToken"]
    resources = ["*"]
  }

  statement {
    sid    = "PullImages"
    effect = "Allow"
    actions = [
      "ecr:BatchCheckLayerAvailability",
      "ecr:GetDownloadUrlForLayer",
      "ecr:BatchGetImage",
    ]
    resources = [
      for name in var.ecr_repository_names :
      "arn:${local.partition}:ecr:${var.region}:${local.account_id}:repository/${name}"
    ]
  }

  # Streams are named by ECS after the task id, so the log streams of our two groups.
  statement {
    sid     = "WriteTaskLogs"
    effect  = "Allow"
    actions = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = [
      "${aws_cloudwatch_log_group.collector.arn}:log-stream:*",
      "${aws_cloudwatch_log_group.edge.arn}:log-stream:*",
    ]
  }

  statement {
    sid       = "ReadEdgeKey"
    effect    = "Allow"
    actions   = ["secretsmanager:GetSecretValue"]
    resources = [var.edge_key_secret_arn]
  }
}

resource "aws_iam_role_policy" "execution" {
  name   = "pull-log-read-edge-key"
  role   = aws_iam_role.execution.id
  policy = data.aws_iam_policy_document.execution.json
}
