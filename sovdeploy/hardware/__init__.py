"""The hosts' hardware: what sysfs says, what a host needs, and what cannot work.

- :mod:`facts`: discovered sysfs facts, saved per host; the suggested host_vars block;
  drift from the declaration;
- :mod:`plan`: each accelerated host's derived plan (kernel arguments, vfio IDs, CPU
  sets, nova and OVS settings) and the accelerator flavors;
- :mod:`preflight`: the rules that refuse a plan the hardware cannot carry.

The sysfs reader itself runs on the hosts: :mod:`sovdeploy.hostside.sysfs`.
"""
