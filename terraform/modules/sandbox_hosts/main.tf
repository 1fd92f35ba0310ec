locals {
  hosts = {
    for index, host in var.hosts : host.name => {
      name    = host.name
      groups  = host.groups
      address = cidrhost(var.subnet, 10 + index)
    }
  }
  labels = "--label sovdeploy.deployment=${var.deployment} --label sovdeploy.managed=true"
}

resource "terraform_data" "network" {
  input = {
    name     = var.network
    subnet   = var.subnet
    labels   = local.labels
    conf     = var.containers_conf
    gateway  = cidrhost(var.subnet, 1)
    hostpath = var.apt_cache_dir
  }

  provisioner "local-exec" {
    interpreter = ["/bin/sh", "-ec"]
    environment = { CONTAINERS_CONF = self.input.conf }
    command     = <<-EOT
      if [ -n "${self.input.hostpath}" ]; then mkdir -p "${self.input.hostpath}/partial"; fi
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
  for_each = local.hosts

  # Any change to these recreates the container: the sandbox is cattle.
  triggers_replace = [each.value.address, var.image, var.privileged, var.apt_cache_dir, terraform_data.network.id]

  input = {
    name       = each.key
    address    = each.value.address
    deployment = var.deployment
    conf       = var.containers_conf
    command = join(" ", compact([
      "podman run --detach --name ${each.key} --hostname ${each.key}",
      "--network ${var.network} --ip ${each.value.address}",
      "--systemd=always --stop-signal SIGRTMIN+3",
      var.privileged ? "--privileged" : "--cap-add SYS_ADMIN,NET_ADMIN",
      "--volume ${var.ssh_authorized_keys}:/root/.ssh/authorized_keys:ro",
      var.apt_cache_dir != "" ? "--volume ${var.apt_cache_dir}:/var/cache/apt/archives" : "",
      local.labels,
      "--label sovdeploy.groups=${join(",", each.value.groups)}",
      var.image,
    ]))
  }

  provisioner "local-exec" {
    interpreter = ["/bin/sh", "-ec"]
    environment = { CONTAINERS_CONF = self.input.conf }
    # A leftover container of this deployment (state lost, earlier failure) is replaced;
    # a container of the same name that is not ours is never touched.
    command = <<-EOT
      if podman container exists ${self.input.name}; then
        owner=$(podman container inspect --format '{{ index .Config.Labels "sovdeploy.deployment" }}' ${self.input.name})
        if [ "$owner" != "${self.input.deployment}" ]; then
          echo "container ${self.input.name} exists and does not belong to deployment ${self.input.deployment}" >&2
          exit 1
        fi
        podman rm --force ${self.input.name}
      fi
      ${self.input.command}
      state=$(timeout ${var.boot_timeout} podman exec ${self.input.name} systemctl is-system-running --wait || true)
      case "$state" in
        running|degraded) ;;
        *) echo "${self.input.name}: systemd did not finish booting (state: $state)" >&2; exit 1 ;;
      esac
    EOT
  }

  provisioner "local-exec" {
    when        = destroy
    interpreter = ["/bin/sh", "-ec"]
    environment = { CONTAINERS_CONF = self.input.conf }
    command     = "podman rm --force --ignore ${self.input.name}"
  }
}
