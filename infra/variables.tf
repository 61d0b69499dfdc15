# Inputs of the edgevote AWS deployment. Every variable has a description and a type; those
# without a default must be set (for example in a terraform.tfvars file, see README.md).

# ---------------------------------------------------------------------------------------------
# Regions and names
# ---------------------------------------------------------------------------------------------

variable "regions" {
  description = "The three AWS regions that run edges, queues, collectors and a replica of the ballot table. The first one also holds the table's primary definition and is the preferred origin for reads through CloudFront."
  type        = list(string)
  default     = ["eu-west-1", "us-east-1", "ap-southeast-1"]

  validation {
    condition     = length(var.regions) == 3 && length(distinct(var.regions)) == 3
    error_message = "Exactly three distinct regions: each one has its own provider configuration and module block in main.tf."
  }
}

variable "name_prefix" {
  description = "Prefix of every resource name (queues, roles, cluster, load balancer, alarms)."
  type        = string
  default     = "edgevote"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,15}$", var.name_prefix))
    error_message = "2-16 characters: lower-case letters, digits and '-', starting with a letter (load balancer names are short)."
  }
}

variable "table_name" {
  description = "Name of the DynamoDB global table of ballots and live counters ([store] table_name in the collector configuration)."
  type        = string
  default     = "edgevote-ballots"
}

variable "ballot_table_consistency" {
  description = "Multi-region consistency of the ballot table: EVENTUAL (the default: a condition is checked in the writing region, replication is last-writer-wins) or STRONG (conditions are checked against every region, so a voter's limit holds across regions; writes pay a cross-region round trip). Fixed when the table is created. See ARCHITECTURE.md, \"Which consistency mode a policy needs\"."
  type        = string
  default     = "EVENTUAL"

  validation {
    condition     = contains(["EVENTUAL", "STRONG"], var.ballot_table_consistency)
    error_message = "ballot_table_consistency must be EVENTUAL or STRONG."
  }
}

variable "tags" {
  description = "Tags added to every resource that takes tags."
  type        = map(string)
  default     = {}
}

# ---------------------------------------------------------------------------------------------
# DNS, certificates and the CloudFront distribution
# ---------------------------------------------------------------------------------------------

variable "public_domain_name" {
  description = "The name voters use, e.g. vote.example.org. It is an alias of the CloudFront distribution and must be covered by cloudfront_certificate_arn."
  type        = string
}

variable "origin_domain_name" {
  description = "DNS suffix of the regional origins, e.g. origin.vote.example.org. Each region gets <region>.<suffix>, and votes.<suffix> is latency-routed over the healthy regions."
  type        = string
}

variable "route53_zone_id" {
  description = "Route 53 hosted zone that holds public_domain_name and origin_domain_name."
  type        = string
}

variable "cloudfront_certificate_arn" {
  description = "ACM certificate in us-east-1 for public_domain_name (CloudFront only takes certificates from us-east-1)."
  type        = string
}

variable "origin_certificate_arns" {
  description = "ACM certificate per region (keyed by region name) covering *.<origin_domain_name>, for the HTTPS listener of that region's load balancer."
  type        = map(string)
}

variable "origin_verify_secret" {
  description = "Random string CloudFront sends to the load balancers in the X-Edgevote-Origin header; a request without it is refused, so the edges only answer through CloudFront. At least 32 characters."
  type        = string
  sensitive   = true

  validation {
    condition     = length(var.origin_verify_secret) >= 32
    error_message = "Use at least 32 random characters."
  }
}

variable "cloudfront_price_class" {
  description = "CloudFront price class. PriceClass_All serves every voter from the nearest edge location."
  type        = string
  default     = "PriceClass_All"

  validation {
    condition     = contains(["PriceClass_All", "PriceClass_200", "PriceClass_100"], var.cloudfront_price_class)
    error_message = "One of PriceClass_All, PriceClass_200, PriceClass_100."
  }
}

variable "read_cache_default_ttl_seconds" {
  description = "How long CloudFront keeps GET answers (election manifests, /v1/keys) when the origin sends no Cache-Control. Votes are never cached."
  type        = number
  default     = 30
}

variable "waf_rate_limit_per_5min" {
  description = "Requests one client address may send in five minutes before the CloudFront web ACL blocks it. Keep it generous: carrier-grade NAT puts many voters behind one address."
  type        = number
  default     = 30000
}

# ---------------------------------------------------------------------------------------------
# Networks
# ---------------------------------------------------------------------------------------------

variable "networks" {
  description = "Existing VPC per region (keyed by region name): public subnets for the load balancer, private subnets (with a NAT gateway or VPC endpoints for SQS, DynamoDB, ECR, CloudWatch Logs and Secrets Manager) for the tasks."
  type = map(object({
    vpc_id             = string
    public_subnet_ids  = list(string)
    private_subnet_ids = list(string)
  }))
}

variable "edge_trusted_principal_arns" {
  description = "IAM principals (besides ECS tasks) that may assume every region's edge role: the credential broker of edges outside AWS (Spin, Cloudflare Workers), which then get short-lived sqs:SendMessage credentials."
  type        = list(string)
  default     = []
}

variable "metrics_cidrs" {
  description = "Address ranges (your Prometheus) allowed to scrape /metrics on the collectors (port 9100) and the edge hosts (port 8080) inside the VPC."
  type        = list(string)
  default     = []
}

# ---------------------------------------------------------------------------------------------
# Container images and the documents they serve
# ---------------------------------------------------------------------------------------------

variable "collector_image" {
  description = "Image that runs `edgevote collector run`. The text {region} is replaced by each region's name, e.g. 123456789012.dkr.ecr.{region}.amazonaws.com/edgevote:1.4.0."
  type        = string
}

variable "edge_image" {
  description = "Image that runs `edgevote edge run` and contains the signed edge component and its bundle manifest. The text {region} is replaced by each region's name."
  type        = string
}

variable "ecr_repository_names" {
  description = "ECR repositories (present in every region, e.g. through ECR replication) the tasks may pull the images from."
  type        = list(string)
  default     = ["edgevote"]
}

variable "edge_component_path" {
  description = "Path of the edge component (wasm32-wasip2) inside edge_image (component_path in the edge host configuration)."
  type        = string
  default     = "/opt/edgevote/edgevote_edge_spin.wasm"
}

variable "edge_bundle_manifest_path" {
  description = "Path of the component's signed bundle manifest inside edge_image (bundle_manifest_path in the edge host configuration)."
  type        = string
  default     = "/opt/edgevote/edge.bundle.jws"
}

variable "keyset_json" {
  description = "The published JWK Set (edgevote-keys/keyset.json): ops keys verify the bundle, authority keys the manifests and tokens, edge keys the envelopes."
  type        = string
}

variable "election_manifests" {
  description = "Signed election manifests (the contents of each election.jws) that edges serve and collectors count."
  type        = list(string)

  validation {
    condition     = length(var.election_manifests) >= 1
    error_message = "At least one election manifest."
  }
}

variable "edge_key_secret_arns" {
  description = "Secrets Manager secret per region (keyed by region name) holding that region's private edge JWK (edgevote-keys/private/<kid>.jwk). Only the task execution role may read it."
  type        = map(string)
}

variable "cpu_architecture" {
  description = "CPU architecture of the images: X86_64 or ARM64."
  type        = string
  default     = "X86_64"

  validation {
    condition     = contains(["X86_64", "ARM64"], var.cpu_architecture)
    error_message = "X86_64 or ARM64."
  }
}

variable "log_level" {
  description = "RUST_LOG of the edge hosts and collectors."
  type        = string
  default     = "info"
}

# ---------------------------------------------------------------------------------------------
# Sizing
# ---------------------------------------------------------------------------------------------

variable "edge_task_count" {
  description = "Edge host tasks per region at start, and the autoscaling minimum."
  type        = number
  default     = 3
}

variable "edge_task_max_count" {
  description = "Most edge host tasks per region (CPU target tracking scales between the two)."
  type        = number
  default     = 60
}

variable "edge_cpu" {
  description = "CPU units of one edge host task (1024 = one vCPU)."
  type        = number
  default     = 2048
}

variable "edge_memory" {
  description = "Memory of one edge host task, MiB."
  type        = number
  default     = 4096
}

variable "edge_max_concurrent_requests" {
  description = "max_concurrent_requests of each edge host (also its component instance pool size)."
  type        = number
  default     = 256
}

variable "collector_task_count" {
  description = "Collector tasks per region at start, and the autoscaling minimum."
  type        = number
  default     = 2
}

variable "collector_task_max_count" {
  description = "Most collector tasks per region."
  type        = number
  default     = 40
}

variable "collector_cpu" {
  description = "CPU units of one collector task (1024 = one vCPU)."
  type        = number
  default     = 2048
}

variable "collector_memory" {
  description = "Memory of one collector task, MiB."
  type        = number
  default     = 4096
}

variable "collector_receivers" {
  description = "[processing] receivers: concurrent receive loops per collector."
  type        = number
  default     = 8
}

variable "dynamodb_max_concurrent_requests" {
  description = "[store] max_concurrent_requests: DynamoDB requests one collector batch keeps in flight."
  type        = number
  default     = 64
}

# ---------------------------------------------------------------------------------------------
# Queues and the ballot table
# ---------------------------------------------------------------------------------------------

variable "queue_visibility_timeout_seconds" {
  description = "Visibility timeout of each regional queue; also [processing] visibility_timeout_secs of the collectors."
  type        = number
  default     = 30
}

variable "max_receive_count" {
  description = "Receives of one message before SQS moves it to the dead-letter queue (the redrive policy's maxReceiveCount; the embedded queue calls it max_receives)."
  type        = number
  default     = 5
}

variable "table_deletion_protection" {
  description = "Deletion protection of the ballot table. Leave it on: the table is the record of the vote."
  type        = bool
  default     = true
}

variable "alb_deletion_protection" {
  description = "Deletion protection of the regional load balancers."
  type        = bool
  default     = true
}

# ---------------------------------------------------------------------------------------------
# Logs and alarms
# ---------------------------------------------------------------------------------------------

variable "log_retention_days" {
  description = "Retention of every CloudWatch log group, in days (at least a year)."
  type        = number
  default     = 365

  validation {
    condition     = contains([365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "A CloudWatch retention of at least 365 days (365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653)."
  }
}

variable "alarm_emails" {
  description = "Addresses subscribed to every region's alarm topic (each must confirm by mail). Add other subscriptions to the topics outside this configuration if needed."
  type        = list(string)
  default     = []
}

variable "queue_age_alarm_seconds" {
  description = "Alarm when the oldest message of a regional queue is older than this (collectors fall behind or stopped)."
  type        = number
  default     = 120
}

variable "throttle_alarm_threshold" {
  description = "Alarm when a region's replica of the table throttles more than this many requests (or write events) a minute, in 2 of 3 minutes."
  type        = number
  default     = 0
}

variable "replication_latency_alarm_ms" {
  description = "Alarm when the average replication latency from one region to another stays above this many milliseconds for five minutes."
  type        = number
  default     = 30000
}

variable "cloudfront_5xx_alarm_percent" {
  description = "Alarm when more than this percentage of the distribution's answers are 5xx, for three minutes."
  type        = number
  default     = 1
}
