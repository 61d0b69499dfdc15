# A template for terraform.tfvars (git ignores *.tfvars except this file). Every variable
# without a default in variables.tf appears here; the values are placeholders.

regions = ["eu-west-1", "us-east-1", "ap-southeast-1"]

public_domain_name         = "vote.example.org"
origin_domain_name         = "origin.vote.example.org"
route53_zone_id            = "Z0123456789EXAMPLE"
cloudfront_certificate_arn = "arn:aws:acm:us-east-1:123456789012:certificate/00000000-0000-0000-0000-000000000000"

origin_certificate_arns = {
  "eu-west-1"      = "arn:aws:acm:eu-west-1:123456789012:certificate/00000000-0000-0000-0000-000000000001"
  "us-east-1"      = "arn:aws:acm:us-east-1:123456789012:certificate/00000000-0000-0000-0000-000000000002"
  "ap-southeast-1" = "arn:aws:acm:ap-southeast-1:123456789012:certificate/00000000-0000-0000-0000-000000000003"
}

# Better from the environment: TF_VAR_origin_verify_secret=$(openssl rand -hex 32)
origin_verify_secret = "replace-with-64-random-hex-characters-000000000000000000000000000"

networks = {
  "eu-west-1" = {
    vpc_id             = "vpc-0123456789abcdef0"
    public_subnet_ids  = ["subnet-0000000000000000a", "subnet-0000000000000000b"]
    private_subnet_ids = ["subnet-0000000000000000c", "subnet-0000000000000000d"]
  }
  "us-east-1" = {
    vpc_id             = "vpc-0123456789abcdef1"
    public_subnet_ids  = ["subnet-0000000000000001a", "subnet-0000000000000001b"]
    private_subnet_ids = ["subnet-0000000000000001c", "subnet-0000000000000001d"]
  }
  "ap-southeast-1" = {
    vpc_id             = "vpc-0123456789abcdef2"
    public_subnet_ids  = ["subnet-0000000000000002a", "subnet-0000000000000002b"]
    private_subnet_ids = ["subnet-0000000000000002c", "subnet-0000000000000002d"]
  }
}

collector_image = "123456789012.dkr.ecr.{region}.amazonaws.com/edgevote:1.0.0"
edge_image      = "123456789012.dkr.ecr.{region}.amazonaws.com/edgevote-edge:1.0.0"
ecr_repository_names = ["edgevote", "edgevote-edge"]

# The published key set and the signed manifests. A .tfvars file cannot call file(); pass the
# real documents from the environment instead:
#   export TF_VAR_keyset_json="$(cat edgevote-keys/keyset.json)"
#   export TF_VAR_election_manifests="[\"$(cat election.jws)\"]"
keyset_json        = "{\"keys\":[]}"
election_manifests = ["<contents of election.jws>"]

edge_key_secret_arns = {
  "eu-west-1"      = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:edgevote/edge-key-AbCdEf"
  "us-east-1"      = "arn:aws:secretsmanager:us-east-1:123456789012:secret:edgevote/edge-key-GhIjKl"
  "ap-southeast-1" = "arn:aws:secretsmanager:ap-southeast-1:123456789012:secret:edgevote/edge-key-MnOpQr"
}

alarm_emails = ["oncall@example.org"]
