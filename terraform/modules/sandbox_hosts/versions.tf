terraform {
  # Only built-in resources (terraform_data): `terraform init` needs no provider download.
  required_version = ">= 1.6"
}
