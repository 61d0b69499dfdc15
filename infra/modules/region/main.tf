# One region of edgevote: the regional queue and its dead-letter queue, the region's KMS key,
# and (in the other files) the IAM roles, the ECS services, the load balancer and the alarms.

data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}

locals {
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition

  # Names. IAM is global, so role names carry the region; the rest is regional.
  queue_name     = "${var.name_prefix}-votes"
  dlq_name       = "${var.name_prefix}-votes-dlq"
  log_group_root = "/${var.name_prefix}/${var.region}"

  # SQS keeps a message at most 14 days; the dead-letter queue keeps what it receives as long.
  retention_seconds = 14 * 24 * 3600
}

# ---------------------------------------------------------------------------------------------
# KMS: one customer managed key per region for the table replica, the log groups, the ECS Exec
# sessions and the alarm topic. (The queues use SQS-managed encryption, see below.)
# ---------------------------------------------------------------------------------------------

resource "aws_kms_key" "regional" {
  description             = "${var.name_prefix} ${var.region}: ballot table replica, log groups, alarm topic"
  enable_key_rotation     = true
  deletion_window_in_days = 30
  is_enabled              = true

  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        # Keeps the key manageable: IAM policies of this account decide who may use it. The
        # collector role gets its table permissions that way (iam.tf).
        Sid       = "AccountAdministersTheKey"
        Effect    = "Allow"
        Principal = { AWS = "arn:${local.partition}:iam::${local.account_id}:root" }
        Action    = "kms:*"
        Resource  = "*"
      },
      {
        Sid       = "CloudWatchLogsEncryptsOurLogGroups"
        Effect    = "Allow"
        Principal = { Service = "logs.${var.region}.amazonaws.com" }
        Action = [
          "kms:Encrypt",
          "kms:Decrypt",
          "kms:ReEncryptFrom",
          "kms:ReEncryptTo",
          "kms:GenerateDataKey",
          "kms:GenerateDataKeyWithoutPlaintext",
          "kms:DescribeKey",
        ]
        Resource = "*"
        Condition = {
          ArnLike = {
            "kms:EncryptionContext:aws:logs:arn" = "arn:${local.partition}:logs:${var.region}:${local.account_id}:log-group:${local.log_group_root}/*"
          }
        }
      },
      {
        Sid       = "CloudWatchAlarmsPublishToTheEncryptedTopic"
        Effect    = "Allow"
        Principal = { Service = "cloudwatch.amazonaws.com" }
        Action    = ["kms:Decrypt", "kms:GenerateDataKey"]
        Resource  = "*"
        Condition = {
          StringEquals = { "aws:SourceAccount" = local.account_id }
        }
      },
    ]
  })

  tags = var.tags
}

resource "aws_kms_alias" "regional" {
  name          = "alias/${var.name_prefix}-${var.region}"
  target_key_id = aws_kms_key.regional.key_id
}

# ---------------------------------------------------------------------------------------------
# SQS: the regional vote queue and its dead-letter queue.
#
# Both use SQS-managed server-side encryption (SSE-SQS). With a customer managed key every
# sender would also need kms:GenerateDataKey and kms:Decrypt; SSE-SQS keeps the edge role at
# sqs:SendMessage alone (see iam.tf) and puts no KMS request quota under the vote path.
# ---------------------------------------------------------------------------------------------

resource "aws_sqs_queue" "dlq" {
  #checkov:skip=CKV2_AWS_73:SSE-SQS on purpose: a customer managed key would add KMS permissions to every edge credential and KMS quotas to the vote path; the data is still encrypted at rest
  name                      = local.dlq_name
  message_retention_seconds = local.retention_seconds
  sqs_managed_sse_enabled   = true

  tags = merge(var.tags, { Role = "dead-letter" })
}

resource "aws_sqs_queue" "votes" {
  #checkov:skip=CKV2_AWS_73:SSE-SQS on purpose: a customer managed key would add KMS permissions to every edge credential and KMS quotas to the vote path; the data is still encrypted at rest
  name                       = local.queue_name
  visibility_timeout_seconds = var.queue_visibility_timeout_seconds
  message_retention_seconds  = local.retention_seconds
  max_message_size           = 262144
  receive_wait_time_seconds  = 20
  sqs_managed_sse_enabled    = true

  # After max_receive_count receives SQS moves a message to the dead-letter queue; the
  # collector reports such messages as max_receives_exceeded.
  redrive_policy = jsonencode({
    deadLetterTargetArn = aws_sqs_queue.dlq.arn
    maxReceiveCount     = var.max_receive_count
  })

  tags = merge(var.tags, { Role = "votes" })
}

# Only the vote queue may use the dead-letter queue as its redrive target.
resource "aws_sqs_queue_redrive_allow_policy" "dlq" {
  queue_url = aws_sqs_queue.dlq.id

  redrive_allow_policy = jsonencode({
    redrivePermission = "byQueue"
    sourceQueueArns   = [aws_sqs_queue.votes.arn]
  })
}
