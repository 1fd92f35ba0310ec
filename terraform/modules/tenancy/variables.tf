variable "flavors" {
  description = "Flavors to create, as sovdeploy derives them from the hosts' hardware (accel_flavors)."
  type = list(object({
    name        = string
    vcpus       = number
    ram         = number
    disk        = number
    extra_specs = map(string)
    description = optional(string)
  }))
  validation {
    condition     = length(distinct([for f in var.flavors : f.name])) == length(var.flavors)
    error_message = "flavor names must be unique."
  }
  validation {
    condition     = alltrue([for f in var.flavors : f.vcpus >= 1 && f.ram >= 64 && f.disk >= 0])
    error_message = "a flavor needs at least 1 vCPU, 64 MB of memory and a disk of 0 GB or more."
  }
}

variable "networks" {
  description = "SR-IOV provider networks, each with one subnet of its name (accel_networks)."
  type = list(object({
    name    = string
    physnet = string
    type    = string
    vlan    = optional(number)
    cidr    = string
    gateway = optional(string)
    dhcp    = bool
    shared  = bool
  }))
  default = []
  validation {
    condition     = alltrue([for n in var.networks : contains(["vlan", "flat"], n.type) && (n.type == "vlan") == (n.vlan != null)])
    error_message = "a network is vlan (with its vlan ID) or flat (without one)."
  }
}
