# What operators copy into edgevote configurations, and where to look.

locals {
  region_modules = {
    (var.regions[0]) = module.region_0
    (var.regions[1]) = module.region_1
    (var.regions[2]) = module.region_2
  }

  # Region -> the next region, whose queue is that region's failover queue.
  failover_region = {
    (var.regions[0]) = var.regions[1]
    (var.regions[1]) = var.regions[2]
    (var.regions[2]) = var.regions[0]
  }
}

output "public_url" {
  description = "Where voters send POST /v1/elections/{election}/votes."
  value       = "https://${var.public_domain_name}"
}

output "cloudfront_distribution_id" {
  description = "The CloudFront distribution in front of the edge hosts."
  value       = aws_cloudfront_distribution.edge.id
}

output "cloudfront_domain_name" {
  description = "The distribution's own domain name (public_domain_name is an alias of it)."
  value       = aws_cloudfront_distribution.edge.domain_name
}

output "table_name" {
  description = "[store] table_name of every collector."
  value       = aws_dynamodb_table.ballots.name
}

output "table_arn" {
  description = "ARN of the table in the first region."
  value       = aws_dynamodb_table.ballots.arn
}

output "table_stream_arn" {
  description = "Stream of the table in the first region (NEW_AND_OLD_IMAGES)."
  value       = aws_dynamodb_table.ballots.stream_arn
}

output "queue_urls" {
  description = "[queue] queue_url per region."
  value       = { for region, m in local.region_modules : region => m.queue_url }
}

output "dead_letter_queue_urls" {
  description = "[queue] dead_letter_queue_url per region."
  value       = { for region, m in local.region_modules : region => m.dead_letter_queue_url }
}

output "edge_queues" {
  description = "EDGEVOTE_QUEUES of a Spin or Cloudflare edge placed in each region: its own queue first, then the failover region's (region=queue_url,...). The same pairs serve as forward_queues of an edge host."
  value = {
    for region, m in local.region_modules :
    region => "${region}=${m.queue_url},${local.failover_region[region]}=${local.region_modules[local.failover_region[region]].queue_url}"
  }
}

output "edge_role_arns" {
  description = "Edge role per region (sqs:SendMessage only)."
  value       = { for region, m in local.region_modules : region => m.edge_role_arn }
}

output "collector_role_arns" {
  description = "Collector task role per region."
  value       = { for region, m in local.region_modules : region => m.collector_role_arn }
}

output "alarm_topic_arns" {
  description = "SNS topic of each region's alarms, and of the CloudFront alarm (global)."
  value = merge(
    { for region, m in local.region_modules : region => m.alarm_topic_arn },
    { global = aws_sns_topic.global_alarms.arn },
  )
}

output "cluster_names" {
  description = "ECS cluster per region."
  value       = { for region, m in local.region_modules : region => m.cluster_name }
}

output "collector_configs" {
  description = "The collector.toml each region's collectors run with."
  value       = { for region, m in local.region_modules : region => m.collector_config }
}

output "edge_configs" {
  description = "The edge.toml each region's edge hosts run with."
  value       = { for region, m in local.region_modules : region => m.edge_config }
}
