"""The cluster itself, bootstrapped from the mirror named by SOVDEPLOY_K8S_MIRROR.

Runs where such a mirror is reachable; `make test` reports the scenario skipped
elsewhere. Every check goes through the API with the kubeconfig the role wrote on the
deployer, or looks at what the hosts hold.
"""

import json
import os
import time
from pathlib import Path

import pytest

KUBECONFIG = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "admin.conf"
NODES = {"k8s-c1", "k8s-c2", "k8s-w1"}


def _host(name):
    import testinfra

    return testinfra.get_host(
        f"ansible://{name}", ansible_inventory=os.environ["MOLECULE_INVENTORY_FILE"]
    )


def _kubectl(args):
    # kubectl on the first control host, as the cluster administrator.
    return _host("k8s-c1").check_output(f"kubectl --kubeconfig /etc/kubernetes/admin.conf {args}")


def _wait(check, timeout=600, every=5):
    deadline = time.monotonic() + timeout
    while True:
        try:
            return check()
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(every)


def test_the_operators_kubeconfig_is_private():
    assert KUBECONFIG.stat().st_mode & 0o777 == 0o600


def test_every_node_joins_and_is_ready():
    def ready():
        nodes = json.loads(_kubectl("get nodes -o json"))["items"]
        found = {
            n["metadata"]["name"]: next(
                c["status"] for c in n["status"]["conditions"] if c["type"] == "Ready"
            )
            for n in nodes
        }
        assert found == dict.fromkeys(NODES, "True"), found

    _wait(ready)


def test_kube_system_runs_cilium_and_coredns():
    def running():
        pods = json.loads(_kubectl("get pods -n kube-system -o json"))["items"]
        phases = {p["metadata"]["name"]: p["status"]["phase"] for p in pods}
        for prefix in ("cilium-", "cilium-operator-", "coredns-", "multus-", "sriov-cni-"):
            matching = [n for n in phases if n.startswith(prefix)]
            assert matching and all(phases[n] == "Running" for n in matching), (prefix, phases)

    _wait(running)


def test_worker_labels_come_from_declared_hardware():
    labels = json.loads(_kubectl("get node k8s-w1 -o json"))["metadata"]["labels"]
    assert labels["sovdeploy.io/sriov-fabric"] == "true"


def test_secrets_are_encrypted_in_etcd():
    name = f"molecule-{time.time_ns()}"
    _kubectl(f"create secret generic {name} -n default --from-literal=k=plain-text-value")
    try:
        host = _host("k8s-c1")
        etcd = host.check_output("crictl ps --name etcd -q").split()[0]
        raw = host.check_output(
            "crictl exec %s etcdctl --cacert /etc/kubernetes/pki/etcd/ca.crt "
            "--cert /etc/kubernetes/pki/etcd/server.crt --key /etc/kubernetes/pki/etcd/server.key "
            "get /registry/secrets/default/%s --print-value-only",
            etcd,
            name,
        )
        assert raw.startswith("k8s:enc:secretbox:v1:key1:"), raw[:40]
        assert "plain-text-value" not in raw
    finally:
        _kubectl(f"delete secret {name} -n default")


def test_api_requests_reach_the_journal_as_audit_events():
    host = _host("k8s-c1")

    def logged():
        out = host.check_output("journalctl -q -t kube-apiserver-audit -o cat -n 50 --no-pager")
        events = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
        assert any(e.get("kind") == "Event" and e.get("auditID") for e in events), out[-500:]

    _wait(logged, timeout=120)


def test_the_cluster_passes_the_conformance_suite():
    # Every [Conformance] test, with hydrophone and the images from the mirror by digest,
    # through the kubeconfig the role wrote on the deployer: `sovdeploy verify kubernetes`.
    from sovdeploy.kubernetes import artifacts as mirror
    from sovdeploy.kubernetes import conformance

    manifest = mirror.load()
    missing = conformance.unpinned(manifest)
    if missing:
        pytest.skip(f"the artifact manifest does not pin {', '.join(missing)}")
    base = os.environ["SOVDEPLOY_K8S_MIRROR"].rstrip("/")
    mirrors = {
        mirror.ArtifactKind.FILE: f"{base}/files",
        mirror.ArtifactKind.IMAGE: base.split("://", 1)[-1],
    }
    work = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "conformance"
    results, code = conformance.execute(manifest, mirrors, KUBECONFIG, work, print)
    assert conformance.failures(results / "junit_01.xml") == 0
    assert code == 0
