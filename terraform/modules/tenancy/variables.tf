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
