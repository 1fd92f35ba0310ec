# Native tests in plan mode: the module uses only built-in resources, so these run offline.

variables {
  deployment          = "unit"
  network             = "unit-net"
  subnet              = "10.89.77.0/24"
  image               = "localhost/sovdeploy/debian13-sandbox:latest"
  ssh_authorized_keys = "/tmp/authorized_keys"
  containers_conf     = "/tmp/containers.conf"
  hosts = [
    { name = "ctl1", groups = ["control"] },
    { name = "cmp1", groups = ["compute"] },
  ]
}

run "addresses_follow_host_order" {
  command = plan

  assert {
    condition     = output.hosts["ctl1"].address == "10.89.77.10" && output.hosts["cmp1"].address == "10.89.77.11"
    error_message = "hosts must get consecutive addresses from .10 in list order"
  }

  assert {
    condition     = strcontains(terraform_data.host["cmp1"].input.command, "--ip 10.89.77.11")
    error_message = "the container must be started with its planned address"
  }

  assert {
    condition     = strcontains(terraform_data.host["ctl1"].input.command, "--privileged")
    error_message = "hosts are privileged by default"
  }
}

run "apt_cache_is_mounted_only_when_set" {
  command = plan

  variables {
    apt_cache_dir = "/var/cache/sovdeploy/apt"
    privileged    = false
  }

  assert {
    condition     = strcontains(terraform_data.host["ctl1"].input.command, "/var/cache/sovdeploy/apt/ctl1:/var/cache/apt/archives")
    error_message = "the apt cache must be bind-mounted"
  }

  assert {
    condition     = !strcontains(terraform_data.host["ctl1"].input.command, "--privileged")
    error_message = "privileged=false must drop --privileged"
  }
}

run "a_kubernetes_node_gets_what_its_container_runtime_needs" {
  command = plan

  variables {
    hosts = [
      { name = "ctl1", groups = ["control"] },
      { name = "k8s1", groups = ["k8s_control"], container_runtime = true },
    ]
  }

  assert {
    condition     = strcontains(terraform_data.host["k8s1"].input.command, "--cgroupns=private --device /dev/kmsg --volume /var/lib/containerd")
    error_message = "a host with container_runtime needs its own cgroups, /dev/kmsg and a volume for containerd's store"
  }

  assert {
    condition     = !strcontains(terraform_data.host["ctl1"].input.command, "--cgroupns")
    error_message = "other hosts keep podman's defaults"
  }
}

run "rejects_bad_host_name" {
  command = plan

  variables {
    hosts = [{ name = "Bad_Name", groups = [] }]
  }

  expect_failures = [var.hosts]
}

run "rejects_duplicate_hosts" {
  command = plan

  variables {
    hosts = [{ name = "a", groups = [] }, { name = "a", groups = [] }]
  }

  expect_failures = [var.hosts]
}

run "rejects_ipv6_subnet" {
  command = plan

  variables {
    subnet = "fd00::/64"
  }

  expect_failures = [var.subnet]
}

run "a_vm_host_is_a_vm_on_the_same_network" {
  command = plan

  variables {
    vm_image = "/var/lib/sovdeploy/vm-images/abc"
    hosts = [
      { name = "ctl1", groups = ["control"] },
      { name = "log1", groups = ["logging"], vm = true },
    ]
  }

  assert {
    condition     = !contains(keys(terraform_data.host), "log1") && contains(keys(terraform_data.vm), "log1")
    error_message = "a vm host must be a VM, not a container"
  }

  assert {
    condition = (
      terraform_data.vm["log1"].input.environment.VM_ADDRESS == "10.89.77.11" &&
      terraform_data.vm["log1"].input.environment.VM_PREFIX == "24" &&
      terraform_data.vm["log1"].input.environment.VM_GATEWAY == "10.89.77.1" &&
      terraform_data.vm["log1"].input.environment.VM_NETWORK == "unit-net"
    )
    error_message = "the VM must get its planned address, the subnet's prefix and gateway, and the sandbox network"
  }

  assert {
    condition     = output.hosts["log1"].vm && output.hosts["log1"].container == null && !output.hosts["ctl1"].vm
    error_message = "the hosts output must say which host is a VM"
  }
}

run "a_vm_host_needs_the_vm_image" {
  command = plan

  variables {
    hosts = [{ name = "log1", groups = ["logging"], vm = true }]
  }

  expect_failures = [terraform_data.vm["log1"]]
}

run "a_vm_boots_from_its_disk_with_extra_devices_when_asked" {
  command = plan

  variables {
    vm_image = "/var/lib/sovdeploy/vm-images/abc"
    hosts = [
      { name = "log1", groups = ["logging"], vm = true },
      {
        name         = "cmp1", groups = ["compute"], vm = true, vm_boot = "disk",
        vm_qemu_args = ["-device", "intel-iommu", "-device", "pci-testdev,addr=0x10"]
      },
    ]
  }

  assert {
    condition = (
      terraform_data.vm["log1"].input.environment.VM_BOOT == "kernel" &&
      terraform_data.vm["log1"].input.environment.VM_QEMU_ARGS == "" &&
      terraform_data.vm["cmp1"].input.environment.VM_BOOT == "disk" &&
      terraform_data.vm["cmp1"].input.environment.VM_QEMU_ARGS == "-device\nintel-iommu\n-device\npci-testdev,addr=0x10"
    )
    error_message = "a VM boots its kernel directly unless asked to boot from disk, and gets its extra QEMU arguments one a line"
  }
}

run "a_vm_boot_mode_is_kernel_or_disk" {
  command = plan

  variables {
    vm_image = "/var/lib/sovdeploy/vm-images/abc"
    hosts    = [{ name = "cmp1", groups = ["compute"], vm = true, vm_boot = "pxe" }]
  }

  expect_failures = [var.hosts]
}
