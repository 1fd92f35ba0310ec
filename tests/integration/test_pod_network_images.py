"""The pod network's images, built from pinned source, doing their job under podman.

`mirror build` builds etcd and flanneld (on the Debian netfilter base) into a tree of
the test's own; podman runs etcd and two flanneld "nodes" on one bridge network. Each
flanneld must lease its own subnet from etcd, write it for the CNI bridge plugin,
route the other node's subnet through that node (host-gw), and program masquerading
with the base's iptables. Uses the machine's Go build cache (a cold one adds minutes).
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from sovdeploy.supply import build as supply_build
from sovdeploy.supply import recipes

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        not all(shutil.which(t) for t in ("go", "podman", "nsenter")),
        reason="needs go, podman and nsenter",
    ),
]

ROOT = Path(__file__).resolve().parents[2]
NETWORK = {"Network": "10.244.0.0/16", "Backend": {"Type": "host-gw"}}


def _podman(*args: str, check: bool = True) -> str:
    env = dict(os.environ, CONTAINERS_CONF=str(ROOT / ".config/containers/containers.conf"))
    done = subprocess.run(["podman", *args], env=env, capture_output=True, text=True, check=False)
    if check and done.returncode != 0:
        raise AssertionError(f"podman {' '.join(args)}: {done.stderr}")
    return done.stdout.strip()


def _in_netns(container: str, *command: str) -> str:
    pid = _podman("inspect", "--format", "{{.State.Pid}}", container)
    return subprocess.run(
        ["nsenter", "-t", pid, "-n", *command], capture_output=True, text=True, check=True
    ).stdout


def _wait_for(what: str, probe, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(1)


@pytest.fixture(scope="module")
def images(built_tree) -> dict[str, str]:
    tree = supply_build.Tree(built_tree("podnet", "etcd", "flanneld-image"))
    pulled = {}
    for name in ("etcd", "flanneld-image"):
        recipe = recipes.load().get(name)
        assert recipe.image is not None
        pulled[name] = _podman("pull", "-q", f"oci:{tree.target(recipe)}:{recipe.image.tag}")
    yield pulled
    for image in pulled.values():
        _podman("rmi", "-f", image, check=False)


def test_flanneld_leases_routes_and_masquerades_between_two_nodes(images, tmp_path):
    tag = f"sovdeploy-podnet-{os.getpid()}"
    names = [f"{tag}-etcd", f"{tag}-a", f"{tag}-b"]
    try:
        _podman(
            "run", "-d", "--name", names[0], images["etcd"],
            "--data-dir=/tmp/etcd", "--listen-client-urls=http://0.0.0.0:2379",
            "--advertise-client-urls=http://127.0.0.1:2379",
        )  # fmt: skip
        etcd_ip = _podman("inspect", "--format", "{{.NetworkSettings.IPAddress}}", names[0])
        url = f"http://{etcd_ip}:2379/v3/kv/put"
        body = json.dumps(
            {
                "key": base64.b64encode(b"/coreos.com/network/config").decode(),
                "value": base64.b64encode(json.dumps(NETWORK).encode()).decode(),
            }
        ).encode()

        def put() -> bool:
            try:
                with urllib.request.urlopen(url, data=body, timeout=5) as response:
                    return response.status == 200
            except OSError:
                return False

        _wait_for("etcd to take the network's configuration", put)
        leases = {}
        for node in names[1:]:
            run = tmp_path / node
            run.mkdir()
            _podman(
                "run", "-d", "--name", node, "--cap-add", "NET_ADMIN,NET_RAW",
                "-v", f"{run}:/run/flannel", images["flanneld-image"],
                f"--etcd-endpoints=http://{etcd_ip}:2379", "--ip-masq",
            )  # fmt: skip
            env = _wait_for(
                f"{node} to write its subnet",
                lambda run=run: (run / "subnet.env").is_file() and (run / "subnet.env").read_text(),
            )
            subnet = re.search(r"^FLANNEL_SUBNET=(\S+)$", env, re.M)
            assert subnet, env
            assert "FLANNEL_NETWORK=10.244.0.0/16" in env
            leases[node] = subnet.group(1)
        a, b = names[1:]
        assert leases[a] != leases[b], "two nodes leased the same subnet"
        b_ip = _podman("inspect", "--format", "{{.NetworkSettings.IPAddress}}", b)
        b_net = re.sub(r"\.1/24$", ".0/24", leases[b])
        # host-gw: node a reaches b's pods through b itself.
        route = _wait_for(
            f"{a} to route {b_net}",
            lambda: [
                line for line in _in_netns(a, "ip", "route").splitlines() if line.startswith(b_net)
            ],
        )
        assert f"via {b_ip}" in route[0], route
        # Masquerading for traffic leaving the pod network, through the base's iptables.
        rules = _in_netns(a, "iptables-nft-save", "-t", "nat")
        assert "FLANNEL-POSTRTG" in rules, rules
        assert "MASQUERADE" in rules, rules
    finally:
        for name in names:
            _podman("rm", "-f", "-t", "0", name, check=False)
