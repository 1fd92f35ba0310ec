variable "ironic_url" {
  description = "URL of the standalone Ironic API, e.g. https://ironic.oob.example:6385/v1."
  type        = string
  validation {
    condition     = can(regex("^https?://", var.ironic_url))
    error_message = "ironic_url must be an http(s) URL."
  }
}

variable "hosts" {
  description = "Servers to enroll and deploy, with their BMC and boot NIC."
  type = list(object({
    name        = string
    driver      = string
    bmc_address = string
    boot_mac    = string
    groups      = list(string)
  }))
  validation {
    condition     = alltrue([for h in var.hosts : contains(["ipmi", "redfish"], h.driver)])
    error_message = "driver must be ipmi or redfish."
  }
  validation {
    condition     = alltrue([for h in var.hosts : can(regex("^([0-9a-f]{2}:){5}[0-9a-f]{2}$", h.boot_mac))])
    error_message = "boot_mac must be a lower-case MAC address."
  }
}

variable "bmc_credentials" {
  description = "BMC username and password per host name (from the deployment's vault)."
  type = map(object({
    username = string
    password = string
  }))
  sensitive = true
}

variable "image_url" {
  description = "Debian 13 disk image served from the inventory's artifact mirror."
  type        = string
}

variable "image_checksum" {
  description = "SHA-256 of the disk image."
  type        = string
  validation {
    condition     = can(regex("^[0-9a-f]{64}$", var.image_checksum))
    error_message = "image_checksum must be a SHA-256 hex digest."
  }
}

variable "ssh_public_key" {
  description = "Public key installed for root through the config drive."
  type        = string
}
