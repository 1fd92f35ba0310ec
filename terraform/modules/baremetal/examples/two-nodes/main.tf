module "baremetal" {
  source = "../.."

  ironic_url     = "https://ironic.oob.example:6385/v1"
  image_url      = "http://mirror.example/images/debian-13-generic-amd64.qcow2"
  image_checksum = var.image_checksum
  ssh_public_key = var.ssh_public_key
  hosts = [
    { name = "ctl01", driver = "redfish", bmc_address = "https://bmc-ctl01", boot_mac = "52:54:00:10:00:01", groups = ["control"] },
    { name = "gpu01", driver = "redfish", bmc_address = "https://bmc-gpu01", boot_mac = "52:54:00:10:00:21", groups = ["compute"] },
  ]
  bmc_credentials = var.bmc_credentials
}

provider "ironic" {
  url = "https://ironic.oob.example:6385/v1"
}

variable "image_checksum" {
  description = "SHA-256 of the image."
  type        = string
}

variable "ssh_public_key" {
  description = "Root's public key."
  type        = string
}

variable "bmc_credentials" {
  description = "BMC credentials per host."
  type        = map(object({ username = string, password = string }))
  sensitive   = true
}
