# The region's origin for CloudFront: a public Application Load Balancer in front of the edge
# hosts, reachable only from CloudFront's origin-facing addresses and only with the origin
# header CloudFront adds. Plus the security groups of the tasks and the origin's DNS names.

data "aws_ec2_managed_prefix_list" "cloudfront_origin_facing" {
  name = "com.amazonaws.global.cloudfront.origin-facing"
}

# ---------------------------------------------------------------------------------------------
# Security groups
# ---------------------------------------------------------------------------------------------

resource "aws_security_group" "alb" {
  name        = "${var.name_prefix}-edge-alb"
  description = "edgevote origin load balancer: HTTPS from CloudFront only"
  vpc_id      = var.vpc_id

  tags = var.tags
}

resource "aws_vpc_security_group_ingress_rule" "alb_from_cloudfront" {
  security_group_id = aws_security_group.alb.id
  description       = "HTTPS from CloudFront origin-facing addresses"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  prefix_list_id    = data.aws_ec2_managed_prefix_list.cloudfront_origin_facing.id
}

resource "aws_vpc_security_group_egress_rule" "alb_to_edge" {
  security_group_id            = aws_security_group.alb.id
  description                  = "To the edge hosts"
  ip_protocol                  = "tcp"
  from_port                    = 8080
  to_port                      = 8080
  referenced_security_group_id = aws_security_group.edge.id
}

resource "aws_security_group" "edge" {
  name        = "${var.name_prefix}-edge"
  description = "edgevote edge hosts: HTTP from the load balancer, HTTPS out to SQS"
  vpc_id      = var.vpc_id

  tags = var.tags
}

resource "aws_vpc_security_group_ingress_rule" "edge_from_alb" {
  security_group_id            = aws_security_group.edge.id
  description                  = "Votes and reads from the load balancer"
  ip_protocol                  = "tcp"
  from_port                    = 8080
  to_port                      = 8080
  referenced_security_group_id = aws_security_group.alb.id
}

resource "aws_vpc_security_group_ingress_rule" "edge_metrics" {
  for_each = toset(var.metrics_cidrs)

  security_group_id = aws_security_group.edge.id
  description       = "Prometheus scrapes /metrics"
  ip_protocol       = "tcp"
  from_port         = 8080
  to_port           = 8080
  cidr_ipv4         = each.value
}

resource "aws_vpc_security_group_egress_rule" "edge_https" {
  security_group_id = aws_security_group.edge.id
  description       = "HTTPS to the AWS APIs (SQS, ECR, CloudWatch Logs, Secrets Manager)"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv4         = "0.0.0.0/0"
}

resource "aws_security_group" "collector" {
  name        = "${var.name_prefix}-collector"
  description = "edgevote collectors: metrics in, HTTPS out to SQS and DynamoDB"
  vpc_id      = var.vpc_id

  tags = var.tags
}

resource "aws_vpc_security_group_ingress_rule" "collector_metrics" {
  for_each = toset(var.metrics_cidrs)

  security_group_id = aws_security_group.collector.id
  description       = "Prometheus scrapes /metrics, teams read /v1/results"
  ip_protocol       = "tcp"
  from_port         = 9100
  to_port           = 9100
  cidr_ipv4         = each.value
}

resource "aws_vpc_security_group_egress_rule" "collector_https" {
  security_group_id = aws_security_group.collector.id
  description       = "HTTPS to the AWS APIs (SQS, DynamoDB, ECR, CloudWatch Logs)"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv4         = "0.0.0.0/0"
}

# ---------------------------------------------------------------------------------------------
# Load balancer
# ---------------------------------------------------------------------------------------------

resource "aws_lb" "edge" {
  #checkov:skip=CKV_AWS_91:its only client is CloudFront (prefix list plus origin header), so its log would repeat CloudFront's requests with CloudFront's addresses; request counts and 5xx come from its CloudWatch metrics
  #checkov:skip=CKV2_AWS_28:not reachable except from CloudFront, whose web ACL (cloudfront.tf) filters every request first
  name                       = "${var.name_prefix}-edge"
  load_balancer_type         = "application"
  internal                   = false
  security_groups            = [aws_security_group.alb.id]
  subnets                    = var.public_subnet_ids
  drop_invalid_header_fields = true
  desync_mitigation_mode     = "defensive"
  enable_deletion_protection = var.alb_deletion_protection
  idle_timeout               = 60

  tags = var.tags
}

resource "aws_lb_target_group" "edge" {
  #checkov:skip=CKV_AWS_378:the edge host serves plain HTTP on 8080 inside the private subnets; TLS ends at the load balancer
  name                 = "${var.name_prefix}-edge"
  port                 = 8080
  protocol             = "HTTP"
  target_type          = "ip"
  vpc_id               = var.vpc_id
  deregistration_delay = 30

  health_check {
    enabled             = true
    path                = "/healthz"
    protocol            = "HTTP"
    matcher             = "200"
    interval            = 10
    timeout             = 5
    healthy_threshold   = 2
    unhealthy_threshold = 3
  }

  tags = var.tags
}

resource "aws_lb_listener" "https" {
  load_balancer_arn = aws_lb.edge.arn
  port              = 443
  protocol          = "HTTPS"
  ssl_policy        = "ELBSecurityPolicy-TLS13-1-2-2021-06"
  certificate_arn   = var.origin_certificate_arn

  # Anything that is not an edgevote request from CloudFront.
  default_action {
    type = "fixed-response"

    fixed_response {
      content_type = "text/plain"
      message_body = "forbidden"
      status_code  = "403"
    }
  }

  tags = var.tags
}

# Forwards the public API (and /healthz) when the request carries CloudFront's origin header.
# /metrics stays inside the VPC.
resource "aws_lb_listener_rule" "edge_through_cloudfront" {
  listener_arn = aws_lb_listener.https.arn
  priority     = 10

  condition {
    http_header {
      http_header_name = "X-Edgevote-Origin"
      values           = [var.origin_verify_secret]
    }
  }

  condition {
    path_pattern {
      values = ["/v1/*", "/healthz"]
    }
  }

  action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.edge.arn
  }

  tags = var.tags
}

# ---------------------------------------------------------------------------------------------
# DNS: <region>.<origin domain> for the read origin group, and this region's member of the
# latency-routed votes.<origin domain>. evaluate_target_health drops a region whose edge hosts
# are all unhealthy, so votes (which CloudFront cannot fail over) move to the next region.
# ---------------------------------------------------------------------------------------------

resource "aws_route53_record" "regional_origin" {
  zone_id = var.route53_zone_id
  name    = "${var.region}.${var.origin_domain_name}"
  type    = "A"

  alias {
    name                   = aws_lb.edge.dns_name
    zone_id                = aws_lb.edge.zone_id
    evaluate_target_health = true
  }
}

resource "aws_route53_record" "votes_origin" {
  zone_id        = var.route53_zone_id
  name           = "votes.${var.origin_domain_name}"
  type           = "A"
  set_identifier = var.region

  latency_routing_policy {
    region = var.region
  }

  alias {
    name                   = aws_lb.edge.dns_name
    zone_id                = aws_lb.edge.zone_id
    evaluate_target_health = true
  }
}
