"""What phases and commands do to the world, one kind of step a module, given a Context.

- :mod:`playbooks`: run a phase's playbook or a tool playbook (discover, runbook, the
  drill), each task shown and recorded; render what a playbook would write (plan);
- :mod:`workspaces`: the Terraform workspaces (provision, tenancy) and their apply;
- :mod:`credentials`: the vault, the deployment's SSH key, clouds.yaml, the apt source.

The phases (:mod:`sovdeploy.phases`) and the commands that are not phases (the exit
drill, conformance, discover) are made of these; nothing here knows the phase order.
"""
