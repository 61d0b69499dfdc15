# What the root module and the operators need from one region.

output "queue_url" {
  description = "URL of the regional vote queue ([queue] queue_url)."
  value       = aws_sqs_queue.votes.url
}

output "queue_arn" {
  description = "ARN of the regional vote queue (other regions' edges may send to it as their failover queue)."
  value       = aws_sqs_queue.votes.arn
}

output "dead_letter_queue_url" {
  description = "URL of the regional dead-letter queue ([queue] dead_letter_queue_url)."
  value       = aws_sqs_queue.dlq.url
}

output "dead_letter_queue_arn" {
  description = "ARN of the regional dead-letter queue."
  value       = aws_sqs_queue.dlq.arn
}

output "kms_key_arn" {
  description = "The regional customer managed key (table replica, log groups, alarm topic)."
  value       = aws_kms_key.regional.arn
}

output "edge_role_arn" {
  description = "Role of the edge hosts; edges outside AWS (Spin, Cloudflare Workers) may assume it when listed in edge_trusted_principal_arns."
  value       = aws_iam_role.edge.arn
}

output "collector_role_arn" {
  description = "Task role of the collectors."
  value       = aws_iam_role.collector.arn
}

output "alarm_topic_arn" {
  description = "SNS topic of the region's alarms."
  value       = aws_sns_topic.alarms.arn
}

output "cluster_name" {
  description = "ECS cluster of the region."
  value       = aws_ecs_cluster.this.name
}

output "load_balancer_dns_name" {
  description = "DNS name of the region's origin load balancer."
  value       = aws_lb.edge.dns_name
}

output "origin_domain_name" {
  description = "Name of this region's origin (<region>.<origin domain>), as CloudFront reaches it."
  value       = aws_route53_record.regional_origin.fqdn
}

output "collector_config" {
  description = "The collector configuration file the tasks run with (collector.toml)."
  value       = local.collector_config
}

output "edge_config" {
  description = "The edge host configuration file the tasks run with (edge.toml)."
  value       = local.edge_config
}
