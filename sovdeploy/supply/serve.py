"""The mirror tree served to the hosts, as a site's own mirror would serve it.

Two processes on the deployer, bound to the address the inventory names
(``sovdeploy_supply.serve``), both with a certificate of the deployment's CA:

- Debian's ``docker-registry`` (the CNCF distribution registry) holds the built images,
  pushed from the tree's OCI layouts under the names kubeadm and the manifests expect
  (``registry.k8s.io/kube-proxy:v1.37.2``, ...);
- ``sovdeploy.supply.fileserver`` serves ``files/`` and ``providers/`` (each artifact and
  its provenance statement) over HTTPS, read-only.

They run detached from the command that starts them (their pid files and logs are in
the state dir's ``mirror-service/``) until ``sovdeploy mirror serve --stop`` or
``sovdeploy down``. ``check`` fetches every built artifact back through them and
compares it with what the tree's statements vouch for.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from sovdeploy.fsutil import atomic_write
from sovdeploy.model import Deployment
from sovdeploy.supply import oci
from sovdeploy.supply.recipes import Recipe, RecipeKind, SupplyError
from sovdeploy.supply.tree import Tree

__all__ = [
    "Served",
    "Service",
    "check",
    "ensure_ca",
    "of_deployment",
    "publish",
    "start",
    "status",
    "stop",
]

_READY_SECONDS = 30
_CERT_DAYS = 398
_RENEW_DAYS = 30
_CHUNK = 1 << 20
_TIMEOUT = 60


@dataclass(frozen=True)
class Service:
    """Where the service keeps its state, what it serves, and where it listens."""

    state: Path
    tree: Tree
    address: str
    files_port: int
    registry_port: int

    @property
    def files_url(self) -> str:
        return f"https://{_host(self.address)}:{self.files_port}"

    @property
    def registry_url(self) -> str:
        return f"https://{_host(self.address)}:{self.registry_port}"

    @property
    def ca_file(self) -> Path:
        """The deployment's CA certificate, which clients verify the service with."""
        return self.state / "ca.crt"

    def context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_file))


def of_deployment(deployment: Deployment, state_root: Path) -> Service | None:
    """The deployment's mirror service (``sovdeploy_supply.serve``), where it declares one."""
    s = deployment.settings
    if s.supply.serve is None:
        return None
    return Service(
        state=state_root / "mirror-service",
        tree=Tree(Path(s.supply.dir)),
        address=s.supply.serve.address,
        files_port=s.supply.serve.files_port,
        registry_port=s.supply.serve.registry_port,
    )


def _host(address: str) -> str:
    return f"[{address}]" if ":" in address else address


# -- certificates ----------------------------------------------------------------------


def ensure_ca(path: Path, key_pem: str, common_name: str) -> x509.Certificate:
    """The deployment's CA certificate at ``path``, made from its key if not there yet.

    It is made as the pki role makes it (self-signed, CA:TRUE pathlen 0, keyCertSign and
    cRLSign, ten years), so that the role finds it and keeps it.
    """
    key = serialization.load_pem_private_key(key_pem.encode(), password=None)
    if path.is_file():
        cert = x509.load_pem_x509_certificate(path.read_bytes())
        if cert.public_key().public_numbers() != key.public_key().public_numbers():  # type: ignore[union-attr]
            raise SupplyError(
                f"{path} is not the certificate of the vault's pki_ca_private_key: the "
                "deployment's CA and its key disagree; nothing was served"
            )
        return cert
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise SupplyError("pki_ca_private_key is not an elliptic-curve key")
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, cert.public_bytes(serialization.Encoding.PEM))
    return cert


def _server_certificate(service: Service, ca: x509.Certificate, ca_key_pem: str) -> None:
    """The service's own certificate for its address, issued by the CA (renewed when due)."""
    cert_path, key_path = service.state / "server.crt", service.state / "server.key"
    if cert_path.is_file() and key_path.is_file():
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        fresh = cert.not_valid_after_utc - dt.datetime.now(dt.UTC) > dt.timedelta(_RENEW_DAYS)
        if fresh and cert.issuer == ca.subject and _san(service.address) in list(names):
            return
    ca_key = serialization.load_pem_private_key(ca_key_pem.encode(), password=None)
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, service.address)]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=_CERT_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName([_san(service.address)]), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.public_key()),  # type: ignore[arg-type]
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())  # type: ignore[arg-type]
    )
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    atomic_write(key_path, pem, mode=0o600)
    atomic_write(cert_path, cert.public_bytes(serialization.Encoding.PEM))


def _san(address: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(address))
    except ValueError:
        return x509.DNSName(address)


# -- processes -------------------------------------------------------------------------


def _pid(service: Service, name: str) -> int | None:
    """The pid of the running ``name`` process of this service, if it runs."""
    try:
        pid = int((service.state / f"{name}.pid").read_text())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return None
    return pid if str(service.state).encode() in cmdline else None


def status(service: Service) -> dict[str, int | None]:
    """Each process of the service and its pid, or None where it does not run."""
    return {name: _pid(service, name) for name in ("registry", "files")}


def _commands(service: Service) -> dict[str, list[str]]:
    registry = shutil.which("docker-registry")
    if registry is None:
        raise SupplyError(
            "docker-registry is not installed: the registry the hosts pull images from is "
            "Debian's docker-registry package (`make deps` installs it)"
        )
    return {
        "registry": [registry, "serve", str(service.state / "registry.yml")],
        "files": [
            sys.executable,
            "-m",
            "sovdeploy.supply.fileserver",
            "--root",
            str(service.tree.root),
            "--listen",
            f"{service.address}:{service.files_port}",
            "--cert",
            str(service.state / "server.crt"),
            "--key",
            str(service.state / "server.key"),
        ],
    }


def _registry_config(service: Service) -> str:
    return yaml.safe_dump(
        {
            "version": 0.1,
            "log": {"level": "info", "formatter": "text"},
            "storage": {
                "filesystem": {"rootdirectory": str(service.tree.root / ".registry")},
                "delete": {"enabled": False},
            },
            "http": {
                "addr": f"{_host(service.address)}:{service.registry_port}",
                "tls": {
                    "certificate": str(service.state / "server.crt"),
                    "key": str(service.state / "server.key"),
                },
            },
        },
        sort_keys=True,
    )


def _answers(url: str, context: ssl.SSLContext) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5, context=context):  # noqa: S310 - https
            return True
    except urllib.error.HTTPError:
        return True  # it answered, over TLS the CA vouches for
    except OSError:
        return False


def _bindable(address: str) -> None:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((address, 0))
        except OSError as exc:
            raise SupplyError(
                f"the mirror service cannot listen on {address} ({exc.strerror}): that "
                "address is not this machine's. For the sandbox it is the sandbox "
                "network's gateway, which exists once `sovdeploy up` has provisioned"
            ) from exc


#: Starts a program in a session of its own and exits at once, so that the program is
#: handed to init: it is no longer the command's, and outlives it (see engines/guard.py).
_LAUNCHER = """
import subprocess, sys
with open(sys.argv[1], "ab") as log:
    proc = subprocess.Popen(sys.argv[3:], stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                            start_new_session=True, cwd=sys.argv[2])
print(proc.pid)
"""


def _detached(command: list[str], log: Path, cwd: Path) -> int:
    """Start ``command`` detached from this process; its pid."""
    done = subprocess.run(
        [sys.executable, "-c", _LAUNCHER, str(log), str(cwd), *command],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SupplyError(f"cannot start {command[0]}: {done.stderr.strip()}")
    return int(done.stdout.strip())


def start(service: Service, ca_key_pem: str, ca_common_name: str, ca_path: Path) -> list[str]:
    """Start what does not run yet (after renewing the certificate if due); say what ran."""
    _bindable(service.address)
    service.state.mkdir(parents=True, exist_ok=True, mode=0o700)
    ca = ensure_ca(ca_path, ca_key_pem, ca_common_name)
    atomic_write(service.ca_file, ca.public_bytes(serialization.Encoding.PEM))
    _server_certificate(service, ca, ca_key_pem)
    atomic_write(service.state / "registry.yml", _registry_config(service))
    (service.tree.root / ".registry").mkdir(parents=True, exist_ok=True)
    started = []
    for name, command in _commands(service).items():
        if _pid(service, name) is not None:
            continue
        pid = _detached(command, service.state / f"{name}.log", service.state)
        atomic_write(service.state / f"{name}.pid", f"{pid}\n")
        started.append(name)
    context = service.context()
    probes = {"registry": f"{service.registry_url}/v2/", "files": f"{service.files_url}/files/"}
    deadline = time.monotonic() + _READY_SECONDS
    for name, url in probes.items():
        while not _answers(url, context):
            if _pid(service, name) is None or time.monotonic() > deadline:
                tail = (service.state / f"{name}.log").read_text(errors="replace")[-800:]
                stop(service)
                raise SupplyError(f"the mirror's {name} did not come up at {url}:\n{tail}")
            time.sleep(0.3)
    return started


def stop(service: Service) -> list[str]:
    """Stop the service's processes; say which were running."""
    stopped = []
    for name in ("registry", "files"):
        pid = _pid(service, name)
        if pid is None:
            continue
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while _pid(service, name) is not None and time.monotonic() < deadline:
            time.sleep(0.1)
        if _pid(service, name) is not None:
            os.kill(pid, signal.SIGKILL)
        (service.state / f"{name}.pid").unlink(missing_ok=True)
        stopped.append(name)
    return stopped


# -- what is served ----------------------------------------------------------------------


def publish(service: Service, recipes: Iterable[Recipe]) -> list[str]:
    """Push each built image of ``recipes`` into the registry; return their references."""
    pushed = []
    for recipe in recipes:
        if recipe.kind is not RecipeKind.IMAGE or not service.tree.verify(recipe)[0]:
            continue
        assert recipe.image is not None
        img = oci.read_layout(service.tree.target(recipe))
        oci.push(service.registry_url, recipe.repository, recipe.image.tag, img, service.context())
        pushed.append(f"{recipe.repository}:{recipe.image.tag}@{img.index.digest}")
    return pushed


@dataclass(frozen=True)
class Served:
    recipe: Recipe
    url: str
    ok: bool
    detail: str


def _sha256(url: str, context: ssl.SSLContext, accept: str = "") -> str:
    request = urllib.request.Request(url, headers={"Accept": accept} if accept else {})  # noqa: S310
    digest = hashlib.sha256()
    with urllib.request.urlopen(request, timeout=_TIMEOUT, context=context) as response:  # noqa: S310
        while chunk := response.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def check(service: Service, recipes: Iterable[Recipe]) -> list[Served]:
    """Fetch each built artifact back through the service and compare it with the tree."""
    context = service.context()
    results = []
    for recipe in recipes:
        ok, detail = service.tree.verify(recipe)
        if not ok and not service.tree.target(recipe).exists():
            continue  # not built (`mirror check` names what the deployment needs)
        if not ok:
            results.append(Served(recipe, "", False, f"not served: the tree's copy: {detail}"))
            continue
        want = detail.removeprefix("sha256:")
        if recipe.kind is RecipeKind.IMAGE:
            assert recipe.image is not None
            url = f"{service.registry_url}/v2/{recipe.repository}/manifests/{recipe.image.tag}"
            accept = oci.INDEX
        else:
            url = f"{service.files_url}/{service.tree.relative(recipe)}"
            accept = ""
        try:
            found = _sha256(url, context, accept)
        except (urllib.error.URLError, OSError) as exc:
            results.append(Served(recipe, url, False, f"not served: {exc}"))
            continue
        if found != want:
            results.append(Served(recipe, url, False, f"serves sha256 {found}, the tree {want}"))
        else:
            results.append(Served(recipe, url, True, f"served, sha256:{found}"))
    return results
