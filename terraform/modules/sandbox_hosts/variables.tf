variable "deployment" {
  description = "Deployment name; every container and the network carry it as a label."
  type        = string
  validation {
    condition     = can(regex("^[A-Za-z0-9][A-Za-z0-9_.-]*$", var.deployment))
    error_message = "deployment must be letters, digits, '_', '.', '-'."
  }
}

variable "hosts" {
  description = "Hosts to create: systemd podman containers, or QEMU virtual machines where vm is true. Addresses follow list order. A VM boots its kernel directly (vm_boot = kernel) or through its disk's GRUB (disk: the guest's own command line applies, reboots work); vm_qemu_args are more QEMU arguments (an emulated IOMMU, an SR-IOV NIC). A container with container_runtime (a Kubernetes node) gets a private cgroup namespace, /dev/kmsg and a volume for /var/lib/containerd."
  type = list(object({
    name         = string
    groups       = list(string)
    vm           = optional(bool, false)
    vm_boot      = optional(string, "kernel")
    vm_qemu_args = optional(list(string), [])
    # A container host that runs a container runtime of its own (a Kubernetes node).
    container_runtime = optional(bool, false)
  }))
  validation {
    condition     = alltrue([for h in var.hosts : contains(["kernel", "disk"], h.vm_boot)])
    error_message = "vm_boot must be kernel or disk."
  }
  validation {
    condition     = alltrue(flatten([for h in var.hosts : [for a in h.vm_qemu_args : !strcontains(a, "\n")]]))
    error_message = "a vm_qemu_args element must be one line."
  }
  validation {
    condition     = alltrue([for h in var.hosts : can(regex("^[a-z0-9][a-z0-9-]{0,62}$", h.name))])
    error_message = "host names must be lower-case DNS labels (a-z, 0-9, '-')."
  }
  validation {
    condition     = length(distinct([for h in var.hosts : h.name])) == length(var.hosts)
    error_message = "host names must be unique."
  }
}

variable "network" {
  description = "Name of the podman network the hosts share."
  type        = string
  validation {
    condition     = can(regex("^[A-Za-z0-9][A-Za-z0-9_.-]*$", var.network))
    error_message = "network must be letters, digits, '_', '.', '-'."
  }
}

variable "subnet" {
  description = "IPv4 CIDR of the podman network; hosts get addresses from .10 on."
  type        = string
  validation {
    condition     = can(cidrhost(var.subnet, 10)) && !can(regex(":", var.subnet))
    error_message = "subnet must be an IPv4 CIDR with room for at least 10 addresses."
  }
}

variable "image" {
  description = "Container image with systemd as init (built by `sovdeploy sandbox image`)."
  type        = string
}

variable "ssh_authorized_keys" {
  description = "Path of an authorized_keys file bind-mounted read-only for root."
  type        = string
  validation {
    condition     = startswith(var.ssh_authorized_keys, "/")
    error_message = "ssh_authorized_keys must be an absolute path."
  }
}

variable "privileged" {
  description = "Run hosts as privileged containers (needed later for OVS, libvirt, Ceph)."
  type        = bool
  default     = true
}

variable "apt_cache_dir" {
  description = "Host directory for apt caches; each host mounts <dir>/<name> as its archive cache. Empty disables it."
  type        = string
  default     = ""
}

variable "containers_conf" {
  description = "Podman configuration file (CONTAINERS_CONF) with runtime and ulimits."
  type        = string
}

variable "boot_timeout" {
  description = "Seconds to wait for systemd in a new container to finish booting."
  type        = number
  default     = 120
}

variable "vm_image" {
  description = "Directory of the virtual machine image (disk.qcow2, vmlinuz, initrd.img; built by `sovdeploy sandbox image`). Needed when a host is a VM."
  type        = string
  default     = ""
  validation {
    condition     = var.vm_image == "" || startswith(var.vm_image, "/")
    error_message = "vm_image must be an absolute path."
  }
}

variable "vm_state_dir" {
  description = "Directory for the VMs' disk overlays, console logs and PID files (one subdirectory per deployment and host)."
  type        = string
  default     = "/var/lib/sovdeploy/vms"
}

variable "vm_memory" {
  description = "Memory of each virtual machine, in MiB."
  type        = number
  default     = 3072
}

variable "vm_cpus" {
  description = "Virtual CPUs of each virtual machine."
  type        = number
  default     = 2
}

variable "vm_accel" {
  description = "QEMU accelerator: tcg (works everywhere, slow) or kvm (where the host can run guests with it)."
  type        = string
  default     = "tcg"
  validation {
    condition     = contains(["tcg", "kvm"], var.vm_accel)
    error_message = "vm_accel must be tcg or kvm."
  }
}

variable "vm_boot_timeout" {
  description = "Seconds to wait for a new virtual machine's SSH port to answer."
  type        = number
  default     = 300
}
