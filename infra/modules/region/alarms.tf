# The region's alarms and the SNS topic they notify (encrypted with the regional key):
#   queue age         the oldest vote waiting in the queue is too old: collectors behind or down
#   dead letters      any message in the DLQ: a refused envelope or a message received too often
#   table throttles   this replica throttles requests (ThrottledRequests) or writes (WriteThrottleEvents)
#   replication       writes from this region reach another region's replica too late

resource "aws_sns_topic" "alarms" {
  name              = "${var.name_prefix}-alarms"
  kms_master_key_id = aws_kms_key.regional.arn

  tags = var.tags
}

data "aws_iam_policy_document" "alarms_topic" {
  statement {
    sid       = "CloudWatchAlarmsOfThisAccount"
    effect    = "Allow"
    actions   = ["sns:Publish"]
    resources = [aws_sns_topic.alarms.arn]

    principals {
      type        = "Service"
      identifiers = ["cloudwatch.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

resource "aws_sns_topic_policy" "alarms" {
  arn    = aws_sns_topic.alarms.arn
  policy = data.aws_iam_policy_document.alarms_topic.json
}

resource "aws_sns_topic_subscription" "alarm_email" {
  for_each = toset(var.alarm_emails)

  topic_arn = aws_sns_topic.alarms.arn
  protocol  = "email"
  endpoint  = each.value
}

locals {
  alarm_actions = [aws_sns_topic.alarms.arn]

  # The table operations the collectors perform; ThrottledRequests is reported per operation.
  table_operations = ["PutItem", "Query", "UpdateItem", "Scan"]
}

# ---------------------------------------------------------------------------------------------
# Queues
# ---------------------------------------------------------------------------------------------

resource "aws_cloudwatch_metric_alarm" "queue_age" {
  alarm_name          = "${var.name_prefix}-${var.region}-queue-age"
  alarm_description   = "Oldest vote in ${aws_sqs_queue.votes.name} is older than ${var.queue_age_alarm_seconds}s: the collectors of ${var.region} are behind or stopped."
  namespace           = "AWS/SQS"
  metric_name         = "ApproximateAgeOfOldestMessage"
  dimensions          = { QueueName = aws_sqs_queue.votes.name }
  statistic           = "Maximum"
  period              = 60
  evaluation_periods  = 3
  threshold           = var.queue_age_alarm_seconds
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  actions_enabled     = true
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions

  tags = var.tags
}

resource "aws_cloudwatch_metric_alarm" "dead_letters" {
  alarm_name          = "${var.name_prefix}-${var.region}-dead-letters"
  alarm_description   = "${aws_sqs_queue.dlq.name} holds messages: envelopes refused by the collector (reason in the edgevote_reason attribute) or received more than ${var.max_receive_count} times."
  namespace           = "AWS/SQS"
  metric_name         = "ApproximateNumberOfMessagesVisible"
  dimensions          = { QueueName = aws_sqs_queue.dlq.name }
  statistic           = "Maximum"
  period              = 60
  evaluation_periods  = 1
  threshold           = 0
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  actions_enabled     = true
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions

  tags = var.tags
}

# ---------------------------------------------------------------------------------------------
# Ballot table (this region's replica)
# ---------------------------------------------------------------------------------------------

resource "aws_cloudwatch_metric_alarm" "table_throttled_requests" {
  alarm_name          = "${var.name_prefix}-${var.region}-table-throttled-requests"
  alarm_description   = "Requests of the collectors of ${var.region} to ${var.table_name} are throttled (sum of ThrottledRequests over ${join(", ", local.table_operations)})."
  evaluation_periods  = 3
  datapoints_to_alarm = 2
  threshold           = var.throttle_alarm_threshold
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  actions_enabled     = true
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions

  metric_query {
    id          = "throttled"
    expression  = "SUM(METRICS())"
    label       = "ThrottledRequests (all operations)"
    return_data = true
  }

  dynamic "metric_query" {
    for_each = local.table_operations

    content {
      id          = "op${metric_query.key}"
      return_data = false

      metric {
        namespace   = "AWS/DynamoDB"
        metric_name = "ThrottledRequests"
        dimensions  = { TableName = var.table_name, Operation = metric_query.value }
        stat        = "Sum"
        period      = 60
      }
    }
  }

  tags = var.tags
}

resource "aws_cloudwatch_metric_alarm" "table_write_throttles" {
  alarm_name          = "${var.name_prefix}-${var.region}-table-write-throttles"
  alarm_description   = "The ${var.region} replica of ${var.table_name} throttles writes (WriteThrottleEvents). Pre-warm the table before a peak."
  namespace           = "AWS/DynamoDB"
  metric_name         = "WriteThrottleEvents"
  dimensions          = { TableName = var.table_name }
  statistic           = "Sum"
  period              = 60
  evaluation_periods  = 3
  datapoints_to_alarm = 2
  threshold           = var.throttle_alarm_threshold
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  actions_enabled     = true
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions

  tags = var.tags
}

resource "aws_cloudwatch_metric_alarm" "replication_latency" {
  for_each = toset(var.peer_regions)

  alarm_name          = "${var.name_prefix}-${var.region}-replication-to-${each.value}"
  alarm_description   = "Writes of ${var.region} reach the ${each.value} replica of ${var.table_name} more than ${var.replication_latency_alarm_ms} ms late: live tallies there lag, the final tally must wait."
  namespace           = "AWS/DynamoDB"
  metric_name         = "ReplicationLatency"
  dimensions          = { TableName = var.table_name, ReceivingRegion = each.value }
  statistic           = "Average"
  period              = 60
  evaluation_periods  = 5
  threshold           = var.replication_latency_alarm_ms
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  actions_enabled     = true
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions

  tags = var.tags
}
