# This file is maintained automatically by "tofu init".
# Manual edits may be lost in future updates.

provider "registry.opentofu.org/terraform-provider-openstack/openstack" {
  version     = "3.4.0"
  constraints = "~> 3.0"
  hashes = [
    "h1:VOKbRDHLCyJw2Y8glTqjI25urrdU/bmRj0FveZwsNOM=",
  ]
}
