"""Kubernetes: the pinned artifacts and their mirrors, node labels, the cluster, conformance.

- :mod:`artifacts`: the manifest of every binary, package and image, pinned by digest,
  and the check of the inventory's mirrors against it;
- :mod:`nodes`: what the kubernetes role derives from declared hardware (labels,
  taints, SR-IOV pools);
- :mod:`client`: the cluster's nodes through the operator's kubeconfig;
- :mod:`conformance`: the certified-conformance run and its evidence bundle.
"""
