"""Thin typed wrappers over the engines sovdeploy drives: Terraform and Ansible."""
