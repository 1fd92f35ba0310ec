# Plan-mode tests with a mocked Ironic provider. `terraform init` must still install the
# provider schema, so these run only where SOVDEPLOY_TF_PLUGIN_MIRROR names a mirror.

mock_provider "ironic" {}

variables {
  ironic_url     = "https://ironic.oob.example:6385/v1"
  image_url      = "http://mirror.example/images/debian-13.qcow2"
  image_checksum = "0000000000000000000000000000000000000000000000000000000000000000"
  ssh_public_key = "ssh-ed25519 AAAA test"
  hosts = [
    { name = "gpu01", driver = "redfish", bmc_address = "https://bmc-gpu01", boot_mac = "52:54:00:00:00:01", groups = ["compute"] },
    { name = "ctl01", driver = "ipmi", bmc_address = "10.0.0.1", boot_mac = "52:54:00:00:00:02", groups = ["control"] },
  ]
  bmc_credentials = {
    gpu01 = { username = "admin", password = "pw1" }
    ctl01 = { username = "admin", password = "pw2" }
  }
}

run "driver_info_follows_driver" {
  command = plan

  assert {
    condition     = ironic_node_v1.host["gpu01"].driver_info["redfish_address"] == "https://bmc-gpu01"
    error_message = "redfish hosts need redfish_* driver_info"
  }

  assert {
    condition     = ironic_node_v1.host["ctl01"].driver_info["ipmi_address"] == "10.0.0.1"
    error_message = "ipmi hosts need ipmi_* driver_info"
  }
}

run "rejects_unknown_driver" {
  command = plan

  variables {
    hosts = [{ name = "x", driver = "ilo", bmc_address = "a", boot_mac = "52:54:00:00:00:03", groups = [] }]
  }

  expect_failures = [var.hosts]
}
