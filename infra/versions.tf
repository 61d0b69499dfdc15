# Tool and provider versions. OpenTofu 1.6 is the oldest release this configuration is written
# for (it uses nothing newer); the AWS provider stays on the 5.x series.
terraform {
  required_version = ">= 1.6.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.80"
    }
  }
}
