# Apply against a real OpenStack: tests/integration/test_terraform.py runs this directory
# (`tofu test -test-directory=tests/cloud`) only where the sandbox cloud is up, with
# OS_CLOUD and the clouds.yaml sovdeploy writes. `tofu test` destroys what it made.

variables {
  flavors = [
    {
      name        = "sovdeploy-tftest.x1"
      vcpus       = 1
      ram         = 128
      disk        = 0
      extra_specs = { "scs:cpu-type" = "crowded-core" }
      description = "made and destroyed by the tenancy module's tofu test"
    },
  ]
  networks = []
}

run "creates_a_flavor_the_cloud_reports_back" {
  command = apply

  assert {
    condition     = length(output.flavors["sovdeploy-tftest.x1"]) > 0
    error_message = "the cloud gave the flavor an ID"
  }

  assert {
    condition     = openstack_compute_flavor_v2.this["sovdeploy-tftest.x1"].extra_specs["scs:cpu-type"] == "crowded-core"
    error_message = "the cloud stored the flavor's extra_specs"
  }

  assert {
    condition     = openstack_compute_flavor_v2.this["sovdeploy-tftest.x1"].vcpus == 1 && openstack_compute_flavor_v2.this["sovdeploy-tftest.x1"].ram == 128
    error_message = "the cloud stored the flavor's size"
  }
}
