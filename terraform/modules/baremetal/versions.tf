terraform {
  required_version = ">= 1.6"
  required_providers {
    # Installed from the filesystem mirror named in the inventory, never a public registry.
    ironic = {
      source  = "openshift-metal3/ironic"
      version = "~> 0.6"
    }
  }
}
