"""`sovdeploy status` reads node readiness through the operator's kubeconfig.

No cluster runs on this machine, so the API here is a local HTTPS server that answers
GET /api/v1/nodes with a NodeList, behind mutual TLS like a real API server: the client
under test is the Kubernetes Python client, with the kubeconfig's CA and client key.
"""

from __future__ import annotations

import base64
import http.server
import json
import shutil
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from sovdeploy import cli
from sovdeploy.kubernetes import client as kube
from sovdeploy.state import StateDir

ROOT = Path(__file__).resolve().parents[2]


def _node_info() -> dict[str, str]:
    # Every field a v1.34 kubelet reports (the client requires them all).
    return {
        "architecture": "amd64",
        "bootID": "7c1e3b8e-2c51-4d5e-9f1a-3c0a4b6d8e21",
        "containerRuntimeVersion": "containerd://1.7.24",
        "kernelVersion": "6.12.48+deb13-amd64",
        "kubeProxyVersion": "",
        "kubeletVersion": "v1.34.1",
        "machineID": "4f0c2b1e9d8a4c7b8e6f5a4b3c2d1e0f",
        "operatingSystem": "linux",
        "osImage": "Debian GNU/Linux 13 (trixie)",
        "systemUUID": "4c4c4544-0042-3510-8056-b4c04f4e3432",
    }


NODES = {
    "kind": "NodeList",
    "apiVersion": "v1",
    "metadata": {"resourceVersion": "42"},
    "items": [
        {
            "metadata": {
                "name": "k8s-wk01",
                "labels": {"kubernetes.io/hostname": "k8s-wk01"},
            },
            "status": {
                "conditions": [
                    {
                        "type": "Ready",
                        "status": "False",
                        "reason": "KubeletNotReady",
                        "message": "container runtime network not ready",
                    }
                ],
                "nodeInfo": _node_info(),
            },
        },
        {
            "metadata": {
                "name": "k8s-cp01",
                "labels": {"node-role.kubernetes.io/control-plane": ""},
            },
            "status": {
                "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}],
                "nodeInfo": _node_info(),
            },
        },
    ],
}


def _pem(obj: Any) -> bytes:
    if isinstance(obj, x509.Certificate):
        return obj.public_bytes(serialization.Encoding.PEM)
    return obj.private_bytes(  # type: ignore[no-any-return]
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


class _Pki:
    def __init__(self, issue_cert: Callable[..., Any]) -> None:
        self.issue = issue_cert
        self.ca, self.ca_key = issue_cert("kubernetes", None, ca=True)

    def leaf(self, name: str) -> tuple[Any, Any]:
        cert, key = self.issue(name, (self.ca, self.ca_key), ca=False)
        return key, cert


@pytest.fixture(scope="module")
def api(
    tmp_path_factory: pytest.TempPathFactory, issue_cert: Callable[..., Any]
) -> Iterator[tuple[_Pki, str]]:
    pki = _Pki(issue_cert)
    root = tmp_path_factory.mktemp("api")
    key, cert = pki.leaf("kube-apiserver")
    (root / "server.pem").write_bytes(_pem(cert) + _pem(key))
    (root / "ca.pem").write_bytes(_pem(pki.ca))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(root / "server.pem")
    context.load_verify_locations(root / "ca.pem")
    context.verify_mode = ssl.CERT_REQUIRED

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.split("?")[0] != "/api/v1/nodes":
                self.send_error(404)
                return
            body = json.dumps(NODES).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield pki, f"https://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def _kubeconfig(path: Path, server: str, ca: Any, key: Any, cert: Any) -> Path:
    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode()

    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "c",
                "cluster": {"server": server, "certificate-authority-data": b64(_pem(ca))},
            }
        ],
        "users": [
            {
                "name": "admin",
                "user": {
                    "client-certificate-data": b64(_pem(cert)),
                    "client-key-data": b64(_pem(key)),
                },
            }
        ],
        "contexts": [{"name": "admin@c", "context": {"cluster": "c", "user": "admin"}}],
        "current-context": "admin@c",
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    return path


def test_nodes_are_read_with_their_readiness_and_roles(
    api: tuple[_Pki, str], tmp_path: Path
) -> None:
    pki, server = api
    key, cert = pki.leaf("kubernetes-admin")
    found = kube.nodes(_kubeconfig(tmp_path / "admin.conf", server, pki.ca, key, cert))
    assert [n.name for n in found] == ["k8s-cp01", "k8s-wk01"]
    cp, wk = found
    assert cp.ready and cp.roles == ("control-plane",) and cp.reason == ""
    assert not wk.ready
    assert wk.reason == "KubeletNotReady: container runtime network not ready"
    assert wk.kubelet == "v1.34.1"


def test_a_client_the_api_does_not_trust_is_refused(api: tuple[_Pki, str], tmp_path: Path) -> None:
    pki, server = api
    stranger = _Pki(pki.issue)
    key, cert = stranger.leaf("kubernetes-admin")
    with pytest.raises(kube.KubeError, match="cannot reach the API at"):
        kube.nodes(_kubeconfig(tmp_path / "admin.conf", server, pki.ca, key, cert), timeout=2)


def test_an_api_that_does_not_answer_is_reported(api: tuple[_Pki, str], tmp_path: Path) -> None:
    pki, _ = api
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    key, cert = pki.leaf("kubernetes-admin")
    config = _kubeconfig(tmp_path / "admin.conf", f"https://127.0.0.1:{port}", pki.ca, key, cert)
    with pytest.raises(kube.KubeError, match=f"cannot reach the API at https://127.0.0.1:{port}"):
        kube.nodes(config, timeout=2)


def test_status_shows_node_readiness(api: tuple[_Pki, str], tmp_path: Path) -> None:
    pki, server = api
    inventory = tmp_path / "inventory"
    shutil.copytree(ROOT / "inventories" / "example-eu", inventory)
    runner = CliRunner()
    before = runner.invoke(cli.main, ["status", "-i", str(inventory), "--json"])
    assert before.exit_code == 0, before.output
    assert "no kubeconfig yet" in json.loads(before.output)["kubernetes"]["error"]
    key, cert = pki.leaf("kubernetes-admin")
    _kubeconfig(StateDir(inventory).kubeconfig, server, pki.ca, key, cert)
    result = runner.invoke(cli.main, ["status", "-i", str(inventory)], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "kubernetes nodes" in result.output
    [cp] = [line for line in result.output.splitlines() if "k8s-cp01" in line and "Ready" in line]
    assert "NotReady" not in cp and "control-plane" in cp
    [wk] = [line for line in result.output.splitlines() if "k8s-wk01" in line and "Ready" in line]
    assert "NotReady KubeletNotReady" in wk
    # The inventory's other Kubernetes hosts are no nodes here: said, not hidden.
    report = json.loads(runner.invoke(cli.main, ["status", "-i", str(inventory), "--json"]).output)
    declared = {"k8s-cp01", "k8s-cp02", "k8s-cp03", "k8s-wk01", "k8s-wk02"}
    assert report["kubernetes"]["not_joined"] == sorted(declared - {"k8s-cp01", "k8s-wk01"})
    [missing] = [
        line for line in result.output.splitlines() if "k8s-wk02" in line and "joined" in line
    ]
    assert "not joined (no node of this name)" in missing
