# CloudFront in front of the regional edge hosts.
#
#   POST /v1/elections/{id}/votes  never cached; origin votes.<origin domain>, latency-routed
#                                  by Route 53 over the regions whose edge hosts are healthy.
#                                  (CloudFront fails over only GET, HEAD and OPTIONS, and
#                                  refuses an origin group on a behavior that allows POST.)
#   everything else (GET)          the origin group: the first region, failing over to the
#                                  second on 500, 502, 503, 504; cached briefly.
#
# HTTPS only, viewer to CloudFront and CloudFront to the load balancers. A web ACL in front.

locals {
  read_origins = {
    primary  = var.regions[0]
    failover = var.regions[1]
  }

  origin_header = "X-Edgevote-Origin"
}

data "aws_cloudfront_cache_policy" "caching_disabled" {
  name = "Managed-CachingDisabled"
}

# Every viewer header, cookie and query string except Host reaches the edge with the body.
data "aws_cloudfront_origin_request_policy" "all_viewer_except_host" {
  name = "Managed-AllViewerExceptHostHeader"
}

resource "aws_cloudfront_cache_policy" "reads" {
  name        = "${var.name_prefix}-reads"
  comment     = "edgevote manifests and key sets: short-lived, nothing from the viewer in the key"
  min_ttl     = 0
  default_ttl = var.read_cache_default_ttl_seconds
  max_ttl     = 300

  parameters_in_cache_key_and_forwarded_to_origin {
    enable_accept_encoding_gzip   = true
    enable_accept_encoding_brotli = true

    cookies_config {
      cookie_behavior = "none"
    }

    headers_config {
      header_behavior = "none"
    }

    query_strings_config {
      query_string_behavior = "none"
    }
  }
}

resource "aws_cloudfront_response_headers_policy" "security" {
  name    = "${var.name_prefix}-security-headers"
  comment = "edgevote API answers: HSTS, no sniffing, no framing, no referrer"

  security_headers_config {
    strict_transport_security {
      access_control_max_age_sec = 63072000
      include_subdomains         = true
      preload                    = true
      override                   = true
    }

    content_type_options {
      override = true
    }

    frame_options {
      frame_option = "DENY"
      override     = true
    }

    referrer_policy {
      referrer_policy = "no-referrer"
      override        = true
    }

    content_security_policy {
      content_security_policy = "default-src 'none'; frame-ancestors 'none'"
      override                = true
    }
  }
}

resource "aws_cloudfront_distribution" "edge" {
  #checkov:skip=CKV_AWS_86:no access log on purpose: it would record every voter's address next to the election and the second they voted; the web ACL logs blocked requests, CloudWatch has the rates
  #checkov:skip=CKV_AWS_374:voters abroad vote too; eligibility comes from the signed vote token, not from the address
  #checkov:skip=CKV_AWS_305:an API with no document at /; a default root object would only turn / into another API path
  enabled         = true
  is_ipv6_enabled = true
  http_version    = "http2and3"
  comment         = "edgevote: votes and reads for ${var.public_domain_name}"
  price_class     = var.cloudfront_price_class
  aliases         = [var.public_domain_name]
  web_acl_id      = aws_wafv2_web_acl.edge.arn

  # The two regional origins of the read origin group.
  dynamic "origin" {
    for_each = local.read_origins

    content {
      origin_id           = "edge-${origin.value}"
      domain_name         = "${origin.value}.${var.origin_domain_name}"
      connection_attempts = 2
      connection_timeout  = 3

      custom_origin_config {
        http_port                = 80
        https_port               = 443
        origin_protocol_policy   = "https-only"
        origin_ssl_protocols     = ["TLSv1.2"]
        origin_read_timeout      = 10
        origin_keepalive_timeout = 5
      }

      custom_header {
        name  = local.origin_header
        value = var.origin_verify_secret
      }
    }
  }

  # Votes: the nearest healthy region (Route 53 latency records of modules/region/alb.tf).
  origin {
    origin_id           = "edge-votes"
    domain_name         = "votes.${var.origin_domain_name}"
    connection_attempts = 3
    connection_timeout  = 3

    custom_origin_config {
      http_port                = 80
      https_port               = 443
      origin_protocol_policy   = "https-only"
      origin_ssl_protocols     = ["TLSv1.2"]
      origin_read_timeout      = 10
      origin_keepalive_timeout = 5
    }

    custom_header {
      name  = local.origin_header
      value = var.origin_verify_secret
    }
  }

  origin_group {
    origin_id = "edge-reads"

    failover_criteria {
      status_codes = [500, 502, 503, 504]
    }

    member {
      origin_id = "edge-${local.read_origins.primary}"
    }

    member {
      origin_id = "edge-${local.read_origins.failover}"
    }
  }

  # Reads: manifests (GET /v1/elections/{id}), key set (GET /v1/keys), /healthz.
  default_cache_behavior {
    target_origin_id           = "edge-reads"
    allowed_methods            = ["GET", "HEAD", "OPTIONS"]
    cached_methods             = ["GET", "HEAD"]
    viewer_protocol_policy     = "https-only"
    compress                   = true
    cache_policy_id            = aws_cloudfront_cache_policy.reads.id
    response_headers_policy_id = aws_cloudfront_response_headers_policy.security.id
  }

  # Votes: POST allowed (CloudFront only offers it with the full method set; the edge answers
  # 405 to the others), never cached, everything from the viewer forwarded.
  ordered_cache_behavior {
    path_pattern               = "/v1/elections/*/votes"
    target_origin_id           = "edge-votes"
    allowed_methods            = ["DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT"]
    cached_methods             = ["GET", "HEAD"]
    viewer_protocol_policy     = "https-only"
    compress                   = false
    cache_policy_id            = data.aws_cloudfront_cache_policy.caching_disabled.id
    origin_request_policy_id   = data.aws_cloudfront_origin_request_policy.all_viewer_except_host.id
    response_headers_policy_id = aws_cloudfront_response_headers_policy.security.id
  }

  restrictions {
    geo_restriction {
      restriction_type = "none"
    }
  }

  viewer_certificate {
    acm_certificate_arn      = var.cloudfront_certificate_arn
    ssl_support_method       = "sni-only"
    minimum_protocol_version = "TLSv1.2_2021"
  }

  tags = var.tags
}

resource "aws_route53_record" "public_a" {
  zone_id = var.route53_zone_id
  name    = var.public_domain_name
  type    = "A"

  alias {
    name                   = aws_cloudfront_distribution.edge.domain_name
    zone_id                = aws_cloudfront_distribution.edge.hosted_zone_id
    evaluate_target_health = false
  }
}

resource "aws_route53_record" "public_aaaa" {
  zone_id = var.route53_zone_id
  name    = var.public_domain_name
  type    = "AAAA"

  alias {
    name                   = aws_cloudfront_distribution.edge.domain_name
    zone_id                = aws_cloudfront_distribution.edge.hosted_zone_id
    evaluate_target_health = false
  }
}

# ---------------------------------------------------------------------------------------------
# Web ACL (us-east-1, as CloudFront requires): known bad inputs (Log4j and the like) blocked,
# anonymous addresses counted, and a per-address rate limit, which the edge hosts cannot apply
# themselves behind the load balancer.
# ---------------------------------------------------------------------------------------------

resource "aws_wafv2_web_acl" "edge" {
  provider = aws.us_east_1

  name        = "${var.name_prefix}-edge"
  description = "edgevote edge: known bad inputs, anonymous addresses counted, per-address rate limit"
  scope       = "CLOUDFRONT"

  default_action {
    allow {}
  }

  rule {
    name     = "known-bad-inputs"
    priority = 0

    override_action {
      none {}
    }

    statement {
      managed_rule_group_statement {
        vendor_name = "AWS"
        name        = "AWSManagedRulesKnownBadInputsRuleSet"
      }
    }

    visibility_config {
      cloudwatch_metrics_enabled = true
      metric_name                = "${var.name_prefix}-known-bad-inputs"
      sampled_requests_enabled   = true
    }
  }

  # Counted, never blocked: voters behind VPNs, Tor or relay services have the same right to
  # vote. The count shows in CloudWatch; during an attack ops may switch it to block.
  rule {
    name     = "anonymous-addresses-counted"
    priority = 1

    override_action {
      count {}
    }

    statement {
      managed_rule_group_statement {
        vendor_name = "AWS"
        name        = "AWSManagedRulesAnonymousIpList"
      }
    }

    visibility_config {
      cloudwatch_metrics_enabled = true
      metric_name                = "${var.name_prefix}-anonymous-addresses"
      sampled_requests_enabled   = false
    }
  }

  rule {
    name     = "rate-per-address"
    priority = 2

    action {
      block {}
    }

    statement {
      rate_based_statement {
        limit              = var.waf_rate_limit_per_5min
        aggregate_key_type = "IP"
      }
    }

    visibility_config {
      cloudwatch_metrics_enabled = true
      metric_name                = "${var.name_prefix}-rate-per-address"
      sampled_requests_enabled   = true
    }
  }

  visibility_config {
    cloudwatch_metrics_enabled = true
    metric_name                = "${var.name_prefix}-edge"
    sampled_requests_enabled   = false
  }

  tags = var.tags
}

# Only blocked requests are logged: allowed votes leave no address behind.
resource "aws_wafv2_web_acl_logging_configuration" "edge" {
  provider = aws.us_east_1

  resource_arn            = aws_wafv2_web_acl.edge.arn
  log_destination_configs = [aws_cloudwatch_log_group.waf.arn]

  logging_filter {
    default_behavior = "DROP"

    filter {
      behavior    = "KEEP"
      requirement = "MEETS_ANY"

      condition {
        action_condition {
          action = "BLOCK"
        }
      }
    }
  }
}

# WAF only logs to groups named aws-waf-logs-*.
resource "aws_cloudwatch_log_group" "waf" {
  provider = aws.us_east_1

  name              = "aws-waf-logs-${var.name_prefix}-edge"
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.global.arn

  tags = var.tags
}

# ---------------------------------------------------------------------------------------------
# us-east-1: the key of the WAF log group and of the global alarm topic, the topic, and the
# CloudFront alarm (CloudFront publishes its metrics there).
# ---------------------------------------------------------------------------------------------

data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}

resource "aws_kms_key" "global" {
  provider = aws.us_east_1

  description             = "${var.name_prefix} global: web ACL log group, CloudFront alarm topic"
  enable_key_rotation     = true
  deletion_window_in_days = 30
  is_enabled              = true

  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid       = "AccountAdministersTheKey"
        Effect    = "Allow"
        Principal = { AWS = "arn:${data.aws_partition.current.partition}:iam::${data.aws_caller_identity.current.account_id}:root" }
        Action    = "kms:*"
        Resource  = "*"
      },
      {
        Sid       = "CloudWatchLogsEncryptsTheWafLogGroup"
        Effect    = "Allow"
        Principal = { Service = "logs.us-east-1.amazonaws.com" }
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
            "kms:EncryptionContext:aws:logs:arn" = "arn:${data.aws_partition.current.partition}:logs:us-east-1:${data.aws_caller_identity.current.account_id}:log-group:aws-waf-logs-${var.name_prefix}-edge"
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
          StringEquals = { "aws:SourceAccount" = data.aws_caller_identity.current.account_id }
        }
      },
    ]
  })

  tags = var.tags
}

resource "aws_sns_topic" "global_alarms" {
  provider = aws.us_east_1

  name              = "${var.name_prefix}-global-alarms"
  kms_master_key_id = aws_kms_key.global.arn

  tags = var.tags
}

data "aws_iam_policy_document" "global_alarms_topic" {
  statement {
    sid       = "CloudWatchAlarmsOfThisAccount"
    effect    = "Allow"
    actions   = ["sns:Publish"]
    resources = [aws_sns_topic.global_alarms.arn]

    principals {
      type        = "Service"
      identifiers = ["cloudwatch.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [data.aws_caller_identity.current.account_id]
    }
  }
}

resource "aws_sns_topic_policy" "global_alarms" {
  provider = aws.us_east_1

  arn    = aws_sns_topic.global_alarms.arn
  policy = data.aws_iam_policy_document.global_alarms_topic.json
}

resource "aws_sns_topic_subscription" "global_alarm_email" {
  provider = aws.us_east_1
  for_each = toset(var.alarm_emails)

  topic_arn = aws_sns_topic.global_alarms.arn
  protocol  = "email"
  endpoint  = each.value
}

resource "aws_cloudwatch_metric_alarm" "cloudfront_5xx" {
  provider = aws.us_east_1

  alarm_name          = "${var.name_prefix}-cloudfront-5xx"
  alarm_description   = "More than ${var.cloudfront_5xx_alarm_percent}% of the answers to voters are 5xx: edges or queues failing in every region CloudFront reaches."
  namespace           = "AWS/CloudFront"
  metric_name         = "5xxErrorRate"
  dimensions          = { DistributionId = aws_cloudfront_distribution.edge.id, Region = "Global" }
  statistic           = "Average"
  period              = 60
  evaluation_periods  = 3
  threshold           = var.cloudfront_5xx_alarm_percent
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  actions_enabled     = true
  alarm_actions       = [aws_sns_topic.global_alarms.arn]
  ok_actions          = [aws_sns_topic.global_alarms.arn]

  tags = var.tags
}
