"""The Kubernetes hosts, up to where the Kubernetes binaries would take over.

No mirror serves this scenario the binaries built from source (containerd, runc, kubeadm,
the kubelet) or the images, so the checks stop where they would start: the kernel and
swap as the kubelet needs them, containerd's configuration (the systemd cgroup driver,
the pause image by digest, every upstream registry mirrored by the deployment's), the
cluster's CAs signing, the API server's policy files, and the API address moving between
the control hosts' HAProxies. The cluster scenario runs them.
"""

import base64
import json
import os
import shlex
import time
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[5]
MANIFEST = yaml.safe_load((ROOT / "sovdeploy" / "data" / "kubernetes.yml").read_text())
ARTIFACTS = {a["name"]: a for a in MANIFEST["artifacts"]}
DEBS = ["iptables", "conntrack", "socat", "ethtool"]
VIP = "10.88.255.250"
CA_DIR = Path(os.environ["MOLECULE_INVENTORY_FILE"]).parent / ".sovdeploy" / "pki" / "kubernetes"


def _host(name):
    import testinfra

    return testinfra.get_host(
        f"ansible://{name}", ansible_inventory=os.environ["MOLECULE_INVENTORY_FILE"]
    )


@pytest.fixture(scope="module")
def control():
    return [_host("k8s-cp1"), _host("k8s-cp2")]


def _address(host):
    facts = host.ansible("setup", "gather_subset=network")["ansible_facts"]
    return facts["ansible_default_ipv4"]["address"]


def test_bridged_traffic_goes_through_iptables_and_is_forwarded(host):
    for key in ("net/bridge/bridge-nf-call-iptables", "net/bridge/bridge-nf-call-ip6tables"):
        assert host.file(f"/proc/sys/{key}").content_string.strip() == "1"
    assert host.file("/proc/sys/net/ipv4/ip_forward").content_string.strip() == "1"
    assert "overlay" in host.file("/proc/filesystems").content_string
    assert host.file("/etc/modules-load.d/kubernetes.conf").content_string.split()[-2:] == [
        "overlay",
        "br_netfilter",
    ]


def test_swap_is_off_and_stays_off(host):
    assert host.file("/proc/swaps").content_string.strip().splitlines()[1:] == []
    assert host.run("systemctl is-enabled swap.target").stdout.strip() == "masked"


def test_the_pinned_packages_are_installed_and_held(host):
    held = set(host.check_output("apt-mark showhold").split())
    # Both instances are control hosts sharing the API address: HAProxy and keepalived too.
    for name in [*DEBS, "haproxy", "keepalived", "rsyslog"]:
        assert host.package(name).version == ARTIFACTS[name]["version"], name
        assert name in held


def test_containerd_is_configured_for_the_systemd_cgroup_driver_and_the_mirror(host):
    config = tomllib.loads(host.file("/etc/containerd/config.toml").content_string)
    assert config["version"] == 3
    images = config["plugins"]["io.containerd.cri.v1.images"]
    pause = ARTIFACTS["pause"]
    # Upstream names, by digest: the registry mirror sends the pull to the deployment's.
    assert images["pinned_images"]["sandbox"] == f"{pause['path']}@sha256:{pause['sha256']}"
    assert images["registry"]["config_path"] == "/etc/containerd/certs.d"
    runtime = config["plugins"]["io.containerd.cri.v1.runtime"]
    runc = runtime["containerd"]["runtimes"]["runc"]
    assert runc["options"] == {"BinaryName": "/usr/local/bin/runc", "SystemdCgroup": True}
    assert runtime["cni"]["bin_dirs"] == ["/opt/cni/bin"]
    # These hosts may lower OOM scores: containerd is not told otherwise.
    assert "restrict_oom_score_adj" not in runtime
    upstreams = {a["path"].split("/")[0] for a in ARTIFACTS.values() if a["kind"] == "image"}
    assert set(host.check_output("ls /etc/containerd/certs.d").split()) == upstreams
    for upstream in upstreams:
        hosts = tomllib.loads(
            host.file(f"/etc/containerd/certs.d/{upstream}/hosts.toml").content_string
        )
        # The deployment's registry is the only server: no fallback to the upstream one.
        assert hosts == {
            "server": f"https://registry.lab.invalid/v2/{upstream}",
            "override_path": True,
            "capabilities": ["pull", "resolve"],
        }


def test_every_control_host_has_the_deployers_ca_certificates(control):
    for name in ("ca", "front-proxy-ca", "etcd-ca"):
        wanted = (CA_DIR / f"{name}.crt").read_bytes()
        remote = f"/etc/kubernetes/pki/{name.replace('etcd-ca', 'etcd/ca')}.crt"
        for host in control:
            assert host.file(remote).content == wanted, (host.backend.hostname, remote)


@pytest.mark.parametrize("ca", ["ca", "front-proxy-ca", "etcd/ca"])
def test_each_ca_signs_a_certificate_that_verifies_against_it(host, ca):
    pki = "/etc/kubernetes/pki"
    text = host.check_output(f"openssl x509 -in {pki}/{ca}.crt -noout -text")
    assert "CA:TRUE" in text
    assert "Certificate Sign" in text
    assert host.file(f"{pki}/{ca}.key").mode == 0o600
    # Sign a throwaway leaf the way kubeadm will, and check the chain.
    script = (
        "set -e; d=$(mktemp -d); cd $d; "
        "openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-384 -nodes "
        "-subj /CN=leaf -keyout leaf.key -out leaf.csr 2>/dev/null; "
        f"openssl x509 -req -in leaf.csr -CA {pki}/{ca}.crt -CAkey {pki}/{ca}.key "
        "-CAcreateserial -days 1 -out leaf.crt 2>/dev/null; "
        f"openssl verify -CAfile {pki}/{ca}.crt leaf.crt; rm -rf $d"
    )
    assert host.check_output(f"bash -c '{script}'").endswith("leaf.crt: OK")


def test_the_service_account_keys_are_a_pair(host):
    pki = "/etc/kubernetes/pki"
    derived = host.check_output(f"openssl pkey -in {pki}/sa.key -pubout")
    assert derived.strip() == host.file(f"{pki}/sa.pub").content_string.strip()
    assert host.file(f"{pki}/sa.key").mode == 0o600


def test_secrets_are_encrypted_with_a_32_byte_secretbox_key_first(host):
    path = host.file("/etc/kubernetes/encryption-config.yaml")
    assert path.mode == 0o600
    config = yaml.safe_load(path.content_string)
    [entry] = config["resources"]
    assert entry["resources"] == ["secrets"]
    first, fallback = entry["providers"]
    assert len(base64.b64decode(first["secretbox"]["keys"][0]["secret"])) == 32
    assert fallback == {"identity": {}}


def test_the_audit_policy_keeps_secrets_out_and_writes_in(host):
    policy = yaml.safe_load(host.file("/etc/kubernetes/audit-policy.yaml").content_string)
    assert policy["omitStages"] == ["RequestReceived"]
    rules = policy["rules"]
    # The first rule that matches decides: Secrets, ConfigMaps and tokens before writes.
    assert rules[0]["level"] == "Metadata"
    core = next(r for r in rules[0]["resources"] if r["group"] == "")
    assert {"secrets", "configmaps", "serviceaccounts/token"} <= set(core["resources"])
    writes = next(i for i, r in enumerate(rules) if r["level"] == "RequestResponse")
    assert set(rules[writes]["verbs"]) >= {"create", "update", "patch", "delete"}
    assert writes > 0
    assert rules[-1] == {"level": "Metadata"}
    assert host.file("/var/log/kubernetes/audit").mode == 0o700


def _audit_entries(host, marker):
    out = host.check_output("journalctl -q -t kube-apiserver-audit -o cat --no-pager")
    return [line for line in out.splitlines() if marker in line]


def _wait_for_entries(host, marker, count, timeout=30):
    deadline = time.monotonic() + timeout
    while len(found := _audit_entries(host, marker)) < count:
        assert time.monotonic() < deadline, found
        time.sleep(1)
    return found


def test_audit_events_reach_the_journal_through_rotation_and_restarts(host):
    # What the API server writes: one JSON event a line, into a file it rotates by rename.
    marker = f"molecule-{time.time_ns()}"
    log = "/var/log/kubernetes/audit/audit.log"

    def event(n):
        line = json.dumps({"kind": "Event", "auditID": f"{marker}-{n}", "verb": "create"})
        host.check_output("bash -c %s", f"echo {shlex.quote(line)} >> {log}")

    assert host.service("sovdeploy-kube-audit").is_running
    event(1)
    [first] = _wait_for_entries(host, marker, 1)
    assert json.loads(first)["auditID"] == f"{marker}-1"
    # Rotation: the file is renamed and a new one begun; the new one is followed.
    host.check_output(f"mv {log} {log}.1")
    event(2)
    _wait_for_entries(host, marker, 2)
    # A restart neither repeats what was forwarded nor loses what came meanwhile.
    host.check_output("systemctl stop sovdeploy-kube-audit")
    event(3)
    host.check_output("systemctl start sovdeploy-kube-audit")
    found = _wait_for_entries(host, marker, 3)
    time.sleep(3)
    assert sorted(json.loads(e)["auditID"] for e in _audit_entries(host, marker)) == [
        f"{marker}-{n}" for n in (1, 2, 3)
    ], found


def test_pod_security_enforces_restricted_by_default_but_for_the_add_ons(host):
    config = yaml.safe_load(host.file("/etc/kubernetes/admission-config.yaml").content_string)
    [plugin] = config["plugins"]
    assert plugin["name"] == "PodSecurity"
    assert plugin["configuration"]["defaults"]["enforce"] == "restricted"
    # The add-ons (pod network, device plugins, CoreDNS) run in kube-system.
    assert plugin["configuration"]["exemptions"]["namespaces"] == ["kube-system"]


def test_kubeadm_is_configured_for_the_pinned_release_and_the_api_address(control):
    first, other = control
    docs = list(
        yaml.safe_load_all(first.file("/etc/kubernetes/kubeadm/config.yaml").content_string)
    )
    cluster = next(d for d in docs if d["kind"] == "ClusterConfiguration")
    init = next(d for d in docs if d["kind"] == "InitConfiguration")
    kubelet = next(d for d in docs if d["kind"] == "KubeletConfiguration")
    assert cluster["kubernetesVersion"] == ARTIFACTS["kubeadm"]["version"]
    assert cluster["controlPlaneEndpoint"] == "k8s.lab.invalid:6443"
    # Upstream names: containerd's registry mirror sends the pulls to the deployment's.
    assert cluster["imageRepository"] == "registry.k8s.io"
    assert init["localAPIEndpoint"] == {"advertiseAddress": _address(first), "bindPort": 6444}
    # k8s-cp1 is no worker: it keeps the control-plane taint.
    assert init["nodeRegistration"]["taints"] == [
        {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}
    ]
    assert kubelet["cgroupDriver"] == "systemd"
    # These hosts are not told to accept cgroup v1: the kubelet's default refusal stands.
    assert "failCgroupV1" not in kubelet
    assert "ignorePreflightErrors" not in init["nodeRegistration"]
    # The second control host joins; it does not initialise a cluster of its own.
    assert not other.file("/etc/kubernetes/kubeadm/config.yaml").exists


def _spki_pin(host):
    der = (
        "openssl x509 -in /etc/kubernetes/pki/ca.crt -pubkey -noout"
        " | openssl pkey -pubin -outform der"
    )
    return "sha256:" + host.check_output(f"bash -c '{der} | sha256sum'").split()[0]


def test_the_second_control_host_joins_pinning_the_cluster_ca(control):
    other = control[1]
    path = other.file("/etc/kubernetes/kubeadm/join.yaml")
    assert path.mode == 0o600
    join = yaml.safe_load(path.content_string)
    assert join["kind"] == "JoinConfiguration"
    discovery = join["discovery"]["bootstrapToken"]
    assert discovery["apiServerEndpoint"] == "k8s.lab.invalid:6443"
    # The pin is the hash of the CA certificate's key as the host has it.
    assert discovery["caCertHashes"] == [_spki_pin(other)]
    assert join["controlPlane"]["localAPIEndpoint"] == {
        "advertiseAddress": _address(other),
        "bindPort": 6444,
    }
    registration = join["nodeRegistration"]
    # A control host that is also a GPU worker: the GPU taint, not the control-plane one.
    assert registration["taints"] == [
        {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}
    ]
    args = {a["name"]: a["value"] for a in registration["kubeletExtraArgs"]}
    assert set(args["node-labels"].split(",")) == {
        "nvidia.com/gpu.present=true",
        "sovdeploy.io/gpu=nvidia-l40s",
        "sovdeploy.io/sriov-fabric=true",
    }


def test_the_add_ons_are_rendered_on_the_first_control_host_with_pinned_images(control):
    first, other = control
    addons = "/etc/kubernetes/addons"
    files = set(first.check_output(f"ls {addons}").split())
    # flannel is the default pod network; Cilium's values are written only when chosen.
    assert files == {
        "coredns.yaml",
        "flannel.yaml",
        "nvidia-device-plugin.yaml",
        "multus.yaml",
        "sriov.yaml",
    }
    assert not other.file(addons).exists
    images = []
    for name in files:
        for doc in yaml.safe_load_all(first.file(f"{addons}/{name}").content_string):
            pod = doc.get("spec", {}).get("template", {}).get("spec", {})
            images += [
                c["image"] for c in pod.get("initContainers", []) + pod.get("containers", [])
            ]
    wanted = {
        f"{ARTIFACTS[n]['path']}@sha256:{ARTIFACTS[n]['sha256']}"
        for n in (
            "flannel",
            "nvidia-device-plugin",
            "multus",
            "sriov-network-device-plugin",
            "sriov-cni",
        )
    }
    assert set(images) == wanted


def test_flannel_routes_the_pod_subnet_host_to_host(control):
    docs = yaml.safe_load_all(control[0].file("/etc/kubernetes/addons/flannel.yaml").content_string)
    config = next(d for d in docs if d["kind"] == "ConfigMap")
    net = json.loads(config["data"]["net-conf.json"])
    assert net == {
        "Network": "10.244.0.0/16",
        "EnableNFTables": False,
        "Backend": {"Type": "host-gw"},
    }
    daemon = next(
        d
        for d in yaml.safe_load_all(
            control[0].file("/etc/kubernetes/addons/flannel.yaml").content_string
        )
        if d["kind"] == "DaemonSet"
    )
    container = daemon["spec"]["template"]["spec"]["containers"][0]
    assert "--kube-subnet-mgr" in container["args"]
    assert "--ip-masq" in container["args"]
    # The node's own address, never one it would route through its loopback.
    assert "--iface=$(NODE_IP)" in container["args"]
    node_ip = next(e for e in container["env"] if e["name"] == "NODE_IP")
    assert node_ip["valueFrom"] == {"fieldRef": {"fieldPath": "status.hostIP"}}
    assert daemon["spec"]["template"]["spec"]["hostNetwork"] is True


def test_the_sriov_device_plugin_pools_the_declared_pfs(control):
    docs = yaml.safe_load_all(control[0].file("/etc/kubernetes/addons/sriov.yaml").content_string)
    config = next(d for d in docs if d["kind"] == "ConfigMap")
    assert json.loads(config["data"]["config.json"]) == {
        "resourceList": [
            {
                "resourceName": "sriov_fabric",
                "resourcePrefix": "sovdeploy.io",
                "selectors": {"pfNames": ["ens1f0", "ens1f1"]},
            }
        ]
    }


def test_without_bootstrap_no_kubernetes_binary_is_fetched(host):
    # kubernetes_bootstrap is false here: nothing claims a cluster that is not there.
    for name in ("kubeadm", "kubelet", "kubectl", "crictl", "helm", "containerd", "runc"):
        assert not host.file(f"/usr/local/bin/{name}").exists, name
    assert not host.file("/opt/cni/bin/bridge").exists


def _holders(control):
    return [h for h in control if VIP in h.check_output("ip -4 -o addr show dev eth0")]


def _wait_for_one_holder(control, not_on=None, timeout=30):
    deadline = time.monotonic() + timeout
    while True:
        holders = _holders(control)
        if len(holders) == 1 and holders[0] is not not_on:
            return holders[0]
        assert time.monotonic() < deadline, [h.backend.hostname for h in holders]
        time.sleep(1)


def _get(host, url):
    script = f"import urllib.request; print(urllib.request.urlopen('{url}', timeout=5).status)"
    return host.run("python3 -c %s", script)


def test_haproxy_forwards_the_api_address_and_keepalived_moves_it(control):
    holder = _wait_for_one_holder(control)
    # A stand-in listener where the API servers will listen: HAProxy passes TCP through.
    backend = control[1]
    address = _address(backend)
    backend.run(
        "systemd-run --unit=apiserver-stand-in --collect "
        f"python3 -m http.server --bind {address} 6444"
    )
    try:
        deadline = time.monotonic() + 30
        while (result := _get(holder, f"http://{VIP}:6443/")).stdout.strip() != "200":
            assert time.monotonic() < deadline, result.stderr
            time.sleep(2)
        # Stop HAProxy where the address is: keepalived hands the address on.
        holder.run("systemctl stop haproxy")
        try:
            other = _wait_for_one_holder(control, not_on=holder)
            assert other is not holder
        finally:
            holder.run("systemctl start haproxy")
    finally:
        backend.run("systemctl stop apiserver-stand-in")
