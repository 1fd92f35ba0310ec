locals {
  hosts = { for h in var.hosts : h.name => h }
  # Ironic's driver_info keys differ per hardware type.
  driver_info = {
    for name, h in local.hosts : name => h.driver == "redfish" ? {
      redfish_address  = h.bmc_address
      redfish_username = var.bmc_credentials[name].username
      redfish_password = var.bmc_credentials[name].password
      } : {
      ipmi_address  = h.bmc_address
      ipmi_username = var.bmc_credentials[name].username
      ipmi_password = var.bmc_credentials[name].password
    }
  }
}

resource "ironic_node_v1" "host" {
  for_each = local.hosts

  name           = each.key
  driver         = each.value.driver
  driver_info    = local.driver_info[each.key]
  resource_class = "baremetal"
  inspect        = true
  clean          = true
  available      = true

  ports = [{
    address     = each.value.boot_mac
    pxe_enabled = "true"
  }]
}

resource "ironic_deployment" "host" {
  for_each = local.hosts

  node_uuid = ironic_node_v1.host[each.key].id
  instance_info = {
    image_source   = var.image_url
    image_checksum = var.image_checksum
  }
  user_data = <<-EOT
    #cloud-config
    hostname: ${each.key}
    disable_root: false
    ssh_authorized_keys:
      - ${var.ssh_public_key}
  EOT
}
