# edgevote on AWS: three regions, each with a vote queue and dead-letter queue, edge hosts and
# collectors on ECS Fargate, a regional key, roles and alarms (modules/region); one DynamoDB
# global table replicated to all three; CloudFront in front of the edges (cloudfront.tf).
#
# OpenTofu 1.6 cannot create modules per provider with for_each, so each region has its own
# provider configuration and module block. The first region uses the default provider.

provider "aws" {
  region = var.regions[0]

  default_tags {
    tags = local.tags
  }
}

provider "aws" {
  alias  = "r1"
  region = var.regions[1]

  default_tags {
    tags = local.tags
  }
}

provider "aws" {
  alias  = "r2"
  region = var.regions[2]

  default_tags {
    tags = local.tags
  }
}

# CloudFront's web ACL, its log group and the CloudFront alarm live in us-east-1.
provider "aws" {
  alias  = "us_east_1"
  region = "us-east-1"

  default_tags {
    tags = local.tags
  }
}

locals {
  tags = merge({ Application = "edgevote" }, var.tags)

  # ARN of the table in each replica region, keyed by region.
  replica_arns = { for replica in aws_dynamodb_table.ballots.replica : replica.region_name => replica.arn }
}

# ---------------------------------------------------------------------------------------------
# The ballot table: one DynamoDB global table, a replica in every region.
#
# Layout of collector/aws/src/dynamo (DynamoStore): partition key `pk` and sort key `sk`, both
# strings, no secondary index.
#   ballot        pk = ballot#{election}#{voter}   sk = vote id
#   live counter  pk = tally#{election}#{shard}    sk = region
#   limit slot    pk = claim#{election}#{voter}    sk = slot number (STRONG consistency only)
# Ballots are immutable and written with attribute_not_exists(pk), so last-writer-wins
# replication never loses one (see ARCHITECTURE.md, "Store design").
# ---------------------------------------------------------------------------------------------

resource "aws_dynamodb_table" "ballots" {
  name                        = var.table_name
  billing_mode                = "PAY_PER_REQUEST"
  hash_key                    = "pk"
  range_key                   = "sk"
  stream_enabled              = true
  stream_view_type            = "NEW_AND_OLD_IMAGES"
  deletion_protection_enabled = var.table_deletion_protection

  attribute {
    name = "pk"
    type = "S"
  }

  attribute {
    name = "sk"
    type = "S"
  }

  point_in_time_recovery {
    enabled = true
  }

  server_side_encryption {
    enabled     = true
    kms_key_arn = module.region_0.kms_key_arn
  }

  replica {
    region_name            = var.regions[1]
    consistency_mode       = var.ballot_table_consistency
    kms_key_arn            = module.region_1.kms_key_arn
    point_in_time_recovery = true
    propagate_tags         = true
  }

  replica {
    region_name            = var.regions[2]
    consistency_mode       = var.ballot_table_consistency
    kms_key_arn            = module.region_2.kms_key_arn
    point_in_time_recovery = true
    propagate_tags         = true
  }

  # The table is the record of the vote: never let a plan destroy it.
  lifecycle {
    prevent_destroy = true
  }

  tags = var.tags
}

# ---------------------------------------------------------------------------------------------
# Regions. Each region's edges may fail over to the next region's queue (0 -> 1 -> 2 -> 0).
# ---------------------------------------------------------------------------------------------

module "region_0" {
  source    = "./modules/region"
  providers = { aws = aws }

  region      = var.regions[0]
  name_prefix = var.name_prefix
  tags        = var.tags

  table_name   = aws_dynamodb_table.ballots.name
  table_arn    = aws_dynamodb_table.ballots.arn
  peer_regions = [var.regions[1], var.regions[2]]

  failover_queue_arns              = [module.region_1.queue_arn]
  edge_trusted_principal_arns      = var.edge_trusted_principal_arns
  queue_visibility_timeout_seconds = var.queue_visibility_timeout_seconds
  max_receive_count                = var.max_receive_count

  vpc_id             = var.networks[var.regions[0]].vpc_id
  public_subnet_ids  = var.networks[var.regions[0]].public_subnet_ids
  private_subnet_ids = var.networks[var.regions[0]].private_subnet_ids
  metrics_cidrs      = var.metrics_cidrs

  route53_zone_id         = var.route53_zone_id
  origin_domain_name      = var.origin_domain_name
  origin_certificate_arn  = var.origin_certificate_arns[var.regions[0]]
  origin_verify_secret    = var.origin_verify_secret
  alb_deletion_protection = var.alb_deletion_protection

  collector_image           = var.collector_image
  edge_image                = var.edge_image
  ecr_repository_names      = var.ecr_repository_names
  cpu_architecture          = var.cpu_architecture
  edge_component_path       = var.edge_component_path
  edge_bundle_manifest_path = var.edge_bundle_manifest_path
  keyset_json               = var.keyset_json
  election_manifests        = var.election_manifests
  edge_key_secret_arn       = var.edge_key_secret_arns[var.regions[0]]
  log_level                 = var.log_level

  edge_task_count                  = var.edge_task_count
  edge_task_max_count              = var.edge_task_max_count
  edge_cpu                         = var.edge_cpu
  edge_memory                      = var.edge_memory
  edge_max_concurrent_requests     = var.edge_max_concurrent_requests
  collector_task_count             = var.collector_task_count
  collector_task_max_count         = var.collector_task_max_count
  collector_cpu                    = var.collector_cpu
  collector_memory                 = var.collector_memory
  collector_receivers              = var.collector_receivers
  dynamodb_max_concurrent_requests = var.dynamodb_max_concurrent_requests
  store_consistency                = lower(var.ballot_table_consistency)

  log_retention_days           = var.log_retention_days
  alarm_emails                 = var.alarm_emails
  queue_age_alarm_seconds      = var.queue_age_alarm_seconds
  throttle_alarm_threshold     = var.throttle_alarm_threshold
  replication_latency_alarm_ms = var.replication_latency_alarm_ms
}

module "region_1" {
  source    = "./modules/region"
  providers = { aws = aws.r1 }

  region      = var.regions[1]
  name_prefix = var.name_prefix
  tags        = var.tags

  table_name   = aws_dynamodb_table.ballots.name
  table_arn    = local.replica_arns[var.regions[1]]
  peer_regions = [var.regions[0], var.regions[2]]

  failover_queue_arns              = [module.region_2.queue_arn]
  edge_trusted_principal_arns      = var.edge_trusted_principal_arns
  queue_visibility_timeout_seconds = var.queue_visibility_timeout_seconds
  max_receive_count                = var.max_receive_count

  vpc_id             = var.networks[var.regions[1]].vpc_id
  public_subnet_ids  = var.networks[var.regions[1]].public_subnet_ids
  private_subnet_ids = var.networks[var.regions[1]].private_subnet_ids
  metrics_cidrs      = var.metrics_cidrs

  route53_zone_id         = var.route53_zone_id
  origin_domain_name      = var.origin_domain_name
  origin_certificate_arn  = var.origin_certificate_arns[var.regions[1]]
  origin_verify_secret    = var.origin_verify_secret
  alb_deletion_protection = var.alb_deletion_protection

  collector_image           = var.collector_image
  edge_image                = var.edge_image
  ecr_repository_names      = var.ecr_repository_names
  cpu_architecture          = var.cpu_architecture
  edge_component_path       = var.edge_component_path
  edge_bundle_manifest_path = var.edge_bundle_manifest_path
  keyset_json               = var.keyset_json
  election_manifests        = var.election_manifests
  edge_key_secret_arn       = var.edge_key_secret_arns[var.regions[1]]
  log_level                 = var.log_level

  edge_task_count                  = var.edge_task_count
  edge_task_max_count              = var.edge_task_max_count
  edge_cpu                         = var.edge_cpu
  edge_memory                      = var.edge_memory
  edge_max_concurrent_requests     = var.edge_max_concurrent_requests
  collector_task_count             = var.collector_task_count
  collector_task_max_count         = var.collector_task_max_count
  collector_cpu                    = var.collector_cpu
  collector_memory                 = var.collector_memory
  collector_receivers              = var.collector_receivers
  dynamodb_max_concurrent_requests = var.dynamodb_max_concurrent_requests
  store_consistency                = lower(var.ballot_table_consistency)

  log_retention_days           = var.log_retention_days
  alarm_emails                 = var.alarm_emails
  queue_age_alarm_seconds      = var.queue_age_alarm_seconds
  throttle_alarm_threshold     = var.throttle_alarm_threshold
  replication_latency_alarm_ms = var.replication_latency_alarm_ms
}

module "region_2" {
  source    = "./modules/region"
  providers = { aws = aws.r2 }

  region      = var.regions[2]
  name_prefix = var.name_prefix
  tags        = var.tags

  table_name   = aws_dynamodb_table.ballots.name
  table_arn    = local.replica_arns[var.regions[2]]
  peer_regions = [var.regions[0], var.regions[1]]

  failover_queue_arns              = [module.region_0.queue_arn]
  edge_trusted_principal_arns      = var.edge_trusted_principal_arns
  queue_visibility_timeout_seconds = var.queue_visibility_timeout_seconds
  max_receive_count                = var.max_receive_count

  vpc_id             = var.networks[var.regions[2]].vpc_id
  public_subnet_ids  = var.networks[var.regions[2]].public_subnet_ids
  private_subnet_ids = var.networks[var.regions[2]].private_subnet_ids
  metrics_cidrs      = var.metrics_cidrs

  route53_zone_id         = var.route53_zone_id
  origin_domain_name      = var.origin_domain_name
  origin_certificate_arn  = var.origin_certificate_arns[var.regions[2]]
  origin_verify_secret    = var.origin_verify_secret
  alb_deletion_protection = var.alb_deletion_protection

  collector_image           = var.collector_image
  edge_image                = var.edge_image
  ecr_repository_names      = var.ecr_repository_names
  cpu_architecture          = var.cpu_architecture
  edge_component_path       = var.edge_component_path
  edge_bundle_manifest_path = var.edge_bundle_manifest_path
  keyset_json               = var.keyset_json
  election_manifests        = var.election_manifests
  edge_key_secret_arn       = var.edge_key_secret_arns[var.regions[2]]
  log_level                 = var.log_level

  edge_task_count                  = var.edge_task_count
  edge_task_max_count              = var.edge_task_max_count
  edge_cpu                         = var.edge_cpu
  edge_memory                      = var.edge_memory
  edge_max_concurrent_requests     = var.edge_max_concurrent_requests
  collector_task_count             = var.collector_task_count
  collector_task_max_count         = var.collector_task_max_count
  collector_cpu                    = var.collector_cpu
  collector_memory                 = var.collector_memory
  collector_receivers              = var.collector_receivers
  dynamodb_max_concurrent_requests = var.dynamodb_max_concurrent_requests
  store_consistency                = lower(var.ballot_table_consistency)

  log_retention_days           = var.log_retention_days
  alarm_emails                 = var.alarm_emails
  queue_age_alarm_seconds      = var.queue_age_alarm_seconds
  throttle_alarm_threshold     = var.throttle_alarm_threshold
  replication_latency_alarm_ms = var.replication_latency_alarm_ms
}
