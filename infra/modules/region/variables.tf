# Inputs of one region. The root module (infra/main.tf) fills them from its own variables.

variable "region" {
  description = "The region this instance deploys to; it must be the region of the provider passed in."
  type        = string
}

variable "name_prefix" {
  description = "Prefix of every resource name."
  type        = string
}

variable "tags" {
  description = "Tags added to every resource that takes tags."
  type        = map(string)
  default     = {}
}

# --- the ballot table (created by the root module as a global table) -------------------------

variable "table_name" {
  description = "Name of the DynamoDB global table; the same in every region."
  type        = string
}

variable "table_arn" {
  description = "ARN of this region's replica of the table (the only table the collectors may use)."
  type        = string
}

variable "peer_regions" {
  description = "The other regions holding a replica, watched by this region's ReplicationLatency alarms."
  type        = list(string)
}

# --- queues ------------------------------------------------------------------------------------

variable "failover_queue_arns" {
  description = "Queues of other regions the edge role may also send to (the edges' failover queues)."
  type        = list(string)
  default     = []
}

variable "edge_trusted_principal_arns" {
  description = "IAM principals (besides ECS tasks) that may assume the edge role, to give edges outside AWS short-lived credentials."
  type        = list(string)
  default     = []
}

variable "queue_visibility_timeout_seconds" {
  description = "Visibility timeout of the main queue, and the collectors' visibility_timeout_secs."
  type        = number
}

variable "max_receive_count" {
  description = "Receives of one message before SQS moves it to the dead-letter queue."
  type        = number
}

# --- network -----------------------------------------------------------------------------------

variable "vpc_id" {
  description = "VPC of this region."
  type        = string
}

variable "public_subnet_ids" {
  description = "Public subnets of the load balancer (two or more availability zones)."
  type        = list(string)
}

variable "private_subnet_ids" {
  description = "Private subnets of the tasks (two or more availability zones), with a route to the AWS APIs."
  type        = list(string)
}

variable "metrics_cidrs" {
  description = "Address ranges allowed to scrape the collectors (9100) and edge hosts (8080)."
  type        = list(string)
  default     = []
}

# --- origin (load balancer, DNS) ---------------------------------------------------------------

variable "route53_zone_id" {
  description = "Hosted zone of origin_domain_name."
  type        = string
}

variable "origin_domain_name" {
  description = "Suffix of the origin names: <region>.<suffix> and the latency-routed votes.<suffix>."
  type        = string
}

variable "origin_certificate_arn" {
  description = "ACM certificate in this region covering *.<origin_domain_name>."
  type        = string
}

variable "origin_verify_secret" {
  description = "Value CloudFront sends in X-Edgevote-Origin; the listener forwards only requests that carry it."
  type        = string
  sensitive   = true
}

variable "alb_deletion_protection" {
  description = "Deletion protection of the load balancer."
  type        = bool
  default     = true
}

# --- tasks ---------------------------------------------------------------------------------------

variable "collector_image" {
  description = "Image of the collector (edgevote collector run)."
  type        = string
}

variable "edge_image" {
  description = "Image of the edge host (edgevote edge run) with the signed component."
  type        = string
}

variable "ecr_repository_names" {
  description = "ECR repositories in this region the execution role may pull from."
  type        = list(string)
}

variable "cpu_architecture" {
  description = "X86_64 or ARM64."
  type        = string
}

variable "edge_component_path" {
  description = "Path of the component inside the edge image."
  type        = string
}

variable "edge_bundle_manifest_path" {
  description = "Path of the bundle manifest inside the edge image."
  type        = string
}

variable "keyset_json" {
  description = "The published JWK Set."
  type        = string
}

variable "election_manifests" {
  description = "Signed election manifests."
  type        = list(string)
}

variable "edge_key_secret_arn" {
  description = "Secrets Manager secret with this region's private edge JWK."
  type        = string
}

variable "log_level" {
  description = "RUST_LOG of the tasks."
  type        = string
}

variable "edge_task_count" {
  description = "Edge host tasks at start and autoscaling minimum."
  type        = number
}

variable "edge_task_max_count" {
  description = "Most edge host tasks."
  type        = number
}

variable "edge_cpu" {
  description = "CPU units of an edge host task."
  type        = number
}

variable "edge_memory" {
  description = "Memory of an edge host task, MiB."
  type        = number
}

variable "edge_max_concurrent_requests" {
  description = "max_concurrent_requests of the edge host."
  type        = number
}

variable "collector_task_count" {
  description = "Collector tasks at start and autoscaling minimum."
  type        = number
}

variable "collector_task_max_count" {
  description = "Most collector tasks."
  type        = number
}

variable "collector_cpu" {
  description = "CPU units of a collector task."
  type        = number
}

variable "collector_memory" {
  description = "Memory of a collector task, MiB."
  type        = number
}

variable "collector_receivers" {
  description = "[processing] receivers of the collector."
  type        = number
}

variable "dynamodb_max_concurrent_requests" {
  description = "[store] max_concurrent_requests of the collector."
  type        = number
}

variable "store_consistency" {
  description = "[store] consistency of the collector: eventual or strong, as the ballot table was created."
  type        = string
}

# --- logs and alarms -----------------------------------------------------------------------------

variable "log_retention_days" {
  description = "Retention of the log groups, days."
  type        = number
}

variable "alarm_emails" {
  description = "Addresses subscribed to the region's alarm topic."
  type        = list(string)
  default     = []
}

variable "queue_age_alarm_seconds" {
  description = "Threshold of the queue age alarm, seconds."
  type        = number
}

variable "throttle_alarm_threshold" {
  description = "Threshold of the DynamoDB throttling alarms, per minute."
  type        = number
}

variable "replication_latency_alarm_ms" {
  description = "Threshold of the replication latency alarms, milliseconds."
  type        = number
}
