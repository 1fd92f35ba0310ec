terraform {
  required_version = ">= 1.6"
  required_providers {
    # Installed from the filesystem mirror named in the inventory, never a public registry.
    openstack = {
      source  = "terraform-provider-openstack/openstack"
      version = "~> 3.0"
    }
  }
}
