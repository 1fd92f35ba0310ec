locals {
  hosts = {
    for index, host in var.hosts : host.name => {
      name    = host.name
      groups  = host.groups
      address = cidrhost(var.subnet, 10 + index)
      vm      = host.vm
      boot    = host.vm_boot
      args    = host.vm_qemu_args
      runtime = host.container_runtime
    }
  }
  containers = { for name, host in local.hosts : name => host if !host.vm }
  vms        = { for name, host in local.hosts : name => host if host.vm }
  run_commands = {
    for name, host in local.containers : name => join(" ", compact([
      "podman run --detach --name ${name} --hostname ${name}",
      "--network ${var.network} --ip ${host.address}",
      "--systemd=always --stop-signal SIGRTMIN+3",
      var.privileged ? "--privileged" : "--cap-add SYS_ADMIN,NET_ADMIN",
      # A host that runs containers itself (a Kubernetes node): cgroups of its own, the
      # kernel log the kubelet reads, and its image store on a volume (overlayfs does
      # not mount on the container's own overlay).
      host.runtime ? "--cgroupns=private --device /dev/kmsg --volume /var/lib/containerd" : "",
      "--volume ${var.ssh_authorized_keys}:/root/.ssh/authorized_keys:ro",
      # One cache dir per host: apt's archive lock does not wait across containers.
      var.apt_cache_dir != "" ? "--volume ${var.apt_cache_dir}/${name}:/var/cache/apt/archives" : "",
      local.labels,
      "--label sovdeploy.groups=${join(",", host.groups)}",
      var.image,
    ]))
  }
  labels = "--label sovdeploy.deployment=${var.deployment} --label sovdeploy.managed=true"
}

resource "terraform_data" "network" {
  input = {
    name    = var.network
    subnet  = var.subnet
    labels  = local.labels
    conf    = var.containers_conf
    gateway = cidrhost(var.subnet, 1)
  }

  provisioner "local-exec" {
    interpreter = ["/bin/sh", "-ec"]
    environment = { CONTAINERS_CONF = self.input.conf }
    command     = <<-EOT
      podman network exists ${self.input.name} ||
        podman network create ${self.input.labels} --subnet ${self.input.subnet} --gateway ${self.input.gateway} ${self.input.name}
    EOT
  }

  provisioner "local-exec" {
    when        = destroy
    interpreter = ["/bin/sh", "-ec"]
    environment = { CONTAINERS_CONF = self.input.conf }
    command     = "! podman network exists ${self.input.name} || podman network rm ${self.input.name}"
  }
}

resource "terraform_data" "host" {
  for_each = local.containers

  # Any change to how the container is run recreates it: the sandbox is cattle.
  triggers_replace = [local.run_commands[each.key], terraform_data.network.id]

  input = {
    name       = each.key
    address    = each.value.address
    cache      = var.apt_cache_dir != "" ? "${var.apt_cache_dir}/${each.key}" : ""
    deployment = var.deployment
    conf       = var.containers_conf
    command    = local.run_commands[each.key]
  }

  provisioner "local-exec" {
    interpreter = ["/bin/sh", "-ec"]
    environment = { CONTAINERS_CONF = self.input.conf }
    # A leftover container of this deployment (state lost, earlier failure) is replaced;
    # a container of the same name that is not ours is never touched.
    command = <<-EOT
      if [ -n "${self.input.cache}" ]; then mkdir -p "${self.input.cache}/partial"; fi
      if podman container exists ${self.input.name}; then
        owner=$(podman container inspect --format '{{ index .Config.Labels "sovdeploy.deployment" }}' ${self.input.name})
        if [ "$owner" != "${self.input.deployment}" ]; then
          echo "container ${self.input.name} exists and does not belong to deployment ${self.input.deployment}" >&2
          exit 1
        fi
        podman rm --force --volumes ${self.input.name}
      fi
      ${self.input.command}
      # systemd's bus appears a moment after the container starts: retry until booted.
      deadline=$(( $(date +%s) + ${var.boot_timeout} ))
      while :; do
        state=$(podman exec ${self.input.name} systemctl is-system-running --wait 2>/dev/null || true)
        case "$state" in running|degraded) break ;; esac
        if [ "$(date +%s)" -ge "$deadline" ]; then
          echo "${self.input.name}: systemd did not finish booting in ${var.boot_timeout}s (state: $state)" >&2
          exit 1
        fi
        sleep 1
      done
    EOT
  }

  provisioner "local-exec" {
    when        = destroy
    interpreter = ["/bin/sh", "-ec"]
    environment = { CONTAINERS_CONF = self.input.conf }
    command     = "podman rm --force --ignore --volumes ${self.input.name}"
  }
}

# A host whose kernel matters (auditd) runs as a QEMU virtual machine, on a tap port of
# the same podman network's bridge: the containers and Ansible reach it at its address.
resource "terraform_data" "vm" {
  for_each = local.vms

  # A new image or size recreates the VM, as a new image recreates a container.
  triggers_replace = [
    var.vm_image, var.vm_memory, var.vm_cpus, var.vm_accel, each.value.address,
    each.value.boot, join("\n", each.value.args), terraform_data.network.id,
  ]

  input = {
    name = each.key
    environment = {
      VM_NAME         = each.key
      VM_DEPLOYMENT   = var.deployment
      VM_STATE_DIR    = var.vm_state_dir
      VM_ADDRESS      = each.value.address
      VM_PREFIX       = split("/", var.subnet)[1]
      VM_GATEWAY      = cidrhost(var.subnet, 1)
      VM_NETWORK      = var.network
      VM_IMAGE        = var.vm_image
      VM_KEYS         = var.ssh_authorized_keys
      VM_MEMORY       = tostring(var.vm_memory)
      VM_CPUS         = tostring(var.vm_cpus)
      VM_ACCEL        = var.vm_accel
      VM_BOOT_TIMEOUT = tostring(var.vm_boot_timeout)
      VM_BOOT         = each.value.boot
      VM_QEMU_ARGS    = join("\n", each.value.args)
      CONTAINERS_CONF = var.containers_conf
    }
    script = "${path.module}/scripts/vm.sh"
  }

  lifecycle {
    precondition {
      condition     = var.vm_image != ""
      error_message = "host ${each.key} is a virtual machine: set vm_image."
    }
  }

  provisioner "local-exec" {
    environment = self.input.environment
    command     = "sh ${self.input.script} start"
  }

  provisioner "local-exec" {
    when        = destroy
    environment = self.input.environment
    command     = "sh ${self.input.script} stop"
  }
}
