"""``sovdeploy verify``: use the cloud as a new user would, through its public API.

Every check prints pass or fail with its time. What the checks create carries a
per-run name prefix and is deleted at the end, whether the checks passed or not.
The operator's ``clouds.yaml`` (written by ``up``) is the only way in: no shortcut
through a host, so a pass means a user with those credentials gets a working cloud.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from sovdeploy.errors import SovdeployError
from sovdeploy.fsutil import atomic_write
from sovdeploy.guest import BOOT_MARKER

#: Service types the catalog must list once the openstack phase is done.
CATALOG = ("identity", "image", "placement", "compute", "network", "block-storage")


class VerifyError(SovdeployError):
    """At least one check failed."""


@dataclass
class Check:
    name: str
    ok: bool
    seconds: float
    detail: str = ""


@dataclass
class Report:
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(c.ok for c in self.checks)


def write_clouds_yaml(
    state_dir: Path, *, cloud: str, endpoint: str, region: str, ca_file: Path, password: str
) -> tuple[Path, Path]:
    """Write clouds.yaml (no secret, 0644) and secure.yaml (the password, 0600)."""
    clouds = {
        "clouds": {
            cloud: {
                "auth": {
                    "auth_url": f"https://{endpoint}:5000/v3",
                    "username": "admin",
                    "project_name": "admin",
                    "user_domain_name": "Default",
                    "project_domain_name": "Default",
                },
                "region_name": region,
                "interface": "public",
                "identity_api_version": 3,
                "cacert": str(ca_file),
            }
        }
    }
    secure = {"clouds": {cloud: {"auth": {"password": password}}}}
    clouds_file, secure_file = state_dir / "clouds.yaml", state_dir / "secure.yaml"
    atomic_write(clouds_file, yaml.safe_dump(clouds, sort_keys=False), mode=0o644)
    atomic_write(secure_file, yaml.safe_dump(secure, sort_keys=False), mode=0o600)
    return clouds_file, secure_file


def connect(clouds_file: Path, secure_file: Path, cloud: str) -> Any:
    import openstack
    from openstack.config import OpenStackConfig

    config = OpenStackConfig(config_files=[str(clouds_file)], secure_files=[str(secure_file)])
    return openstack.connection.Connection(config=config.get_one(cloud=cloud))


class Verifier:
    """The checks, in order; each one may use what an earlier one created."""

    def __init__(
        self,
        conn: Any,
        image_file: Path,
        prefix: str,
        report: Callable[[Check], None],
        boot_timeout: float = 900,
    ) -> None:
        self.conn = conn
        self.image_file = image_file
        self.prefix = prefix
        self.report = report
        self.boot_timeout = boot_timeout
        self.result = Report()
        self.made: dict[str, Any] = {}

    @contextmanager
    def check(self, name: str) -> Iterator[list[str]]:
        detail: list[str] = []
        started = time.monotonic()
        try:
            yield detail
        except Exception as exc:
            c = Check(name, False, time.monotonic() - started, f"{type(exc).__name__}: {exc}")
            self.result.checks.append(c)
            self.report(c)
            raise _StopError from exc
        c = Check(name, True, time.monotonic() - started, "; ".join(detail))
        self.result.checks.append(c)
        self.report(c)

    def run(self) -> Report:
        try:
            self._checks()
        except _StopError:
            pass
        finally:
            self._cleanup()
        return self.result

    def _checks(self) -> None:
        self._identity()
        self._image_and_network()
        self._server()
        self._volume()

    def _identity(self) -> None:
        conn = self.conn
        with self.check("a token is issued") as d:
            token = conn.auth_token
            d.append(f"token of {len(token)} characters")
        with self.check("the catalog lists every service") as d:
            types = {s.type for s in conn.identity.services()}
            missing = [t for t in CATALOG if t not in types and not _aliased(t, types)]
            if missing:
                raise AssertionError(f"missing from the catalog: {', '.join(missing)}")
            d.append(", ".join(sorted(types)))

    def _image_and_network(self) -> None:
        conn, p = self.conn, self.prefix
        with self.check("an image built locally uploads") as d:
            image = conn.image.create_image(
                name=f"{p}image",
                filename=str(self.image_file),
                disk_format="raw",
                container_format="bare",
                wait=True,
                timeout=600,
            )
            self.made["image"] = image
            image = conn.image.wait_for_status(image, status="active", wait=600)
            d.append(f"{image.size} bytes, {image.status}")
        with self.check("a flavor, network, subnet, router and port are created") as d:
            self.made["flavor"] = conn.compute.create_flavor(
                name=f"{p}flavor", ram=256, vcpus=1, disk=1
            )
            net = self.made["network"] = conn.network.create_network(name=f"{p}net")
            subnet = self.made["subnet"] = conn.network.create_subnet(
                name=f"{p}subnet", network_id=net.id, ip_version=4, cidr="192.0.2.0/24"
            )
            router = self.made["router"] = conn.network.create_router(name=f"{p}router")
            conn.network.add_interface_to_router(router, subnet_id=subnet.id)
            self.made["router_subnet"] = subnet.id
            port = self.made["port"] = conn.network.create_port(name=f"{p}port", network_id=net.id)
            d.append(f"port {port.fixed_ips[0]['ip_address']}")

    def _server(self) -> None:
        conn, p = self.conn, self.prefix
        with self.check("a server boots to ACTIVE") as d:
            server = conn.compute.create_server(
                name=f"{p}server",
                image_id=self.made["image"].id,
                flavor_id=self.made["flavor"].id,
                networks=[{"port": self.made["port"].id}],
            )
            self.made["server"] = server
            try:
                server = conn.compute.wait_for_server(
                    server, status="ACTIVE", wait=int(self.boot_timeout)
                )
            except Exception as exc:
                fault = (conn.compute.get_server(server.id).fault or {}).get("message", "")
                raise AssertionError(f"{exc}; fault: {fault or 'none reported'}") from exc
            d.append(f"on {server.hypervisor_hostname or server.compute_host or 'a compute host'}")
        with self.check("its console log shows it booted") as d:
            deadline = time.monotonic() + self.boot_timeout
            log = ""
            while time.monotonic() < deadline:
                log = conn.compute.get_server_console_output(self.made["server"])["output"] or ""
                if BOOT_MARKER in log:
                    break
                time.sleep(5)
            line = next((x for x in log.splitlines() if BOOT_MARKER in x), None)
            if line is None:
                raise AssertionError(f"no '{BOOT_MARKER}' in the console log: {log[-300:]!r}")
            d.append(line.strip())

    def _volume(self) -> None:
        conn, p = self.conn, self.prefix
        with self.check("a volume is created and attached") as d:
            volume = self.made["volume"] = conn.block_storage.create_volume(
                name=f"{p}volume", size=1
            )
            conn.block_storage.wait_for_status(volume, status="available", wait=300)
            conn.compute.create_volume_attachment(self.made["server"], volume_id=volume.id)
            volume = conn.block_storage.wait_for_status(volume, status="in-use", wait=300)
            d.append(f"attached as {volume.attachments[0].get('device', '?')}")

    def _cleanup(self) -> None:
        conn, made = self.conn, self.made
        started = time.monotonic()
        errors: list[str] = []

        def attempt(fn: Callable[[], Any]) -> None:
            try:
                fn()
            except Exception as exc:  # noqa: BLE001  (clean up everything that can be)
                errors.append(f"{type(exc).__name__}: {exc}")

        if "server" in made:
            attempt(lambda: conn.compute.delete_server(made["server"]))
            attempt(lambda: conn.compute.wait_for_delete(made["server"], wait=300))
        if "volume" in made:
            attempt(
                lambda: conn.block_storage.wait_for_status(
                    made["volume"], status="available", wait=300
                )
            )
            attempt(lambda: conn.block_storage.delete_volume(made["volume"]))
        if "port" in made:
            attempt(lambda: conn.network.delete_port(made["port"]))
        if "router_subnet" in made:
            attempt(
                lambda: conn.network.remove_interface_from_router(
                    made["router"], subnet_id=made["router_subnet"]
                )
            )
        for kind in ("router", "subnet", "network"):
            if kind in made:
                attempt(functools.partial(getattr(conn.network, f"delete_{kind}"), made[kind]))
        if "flavor" in made:
            attempt(lambda: conn.compute.delete_flavor(made["flavor"]))
        if "image" in made:
            attempt(lambda: conn.image.delete_image(made["image"]))
        if made:
            c = Check(
                "everything is deleted again",
                not errors,
                time.monotonic() - started,
                "; ".join(errors),
            )
            self.result.checks.append(c)
            self.report(c)


class _StopError(Exception):
    """A check failed: skip the later checks (they depend on it), then clean up."""


def _aliased(kind: str, types: set[str]) -> bool:
    # Cinder registers its API as volumev3 in many deployments; both name block storage.
    return kind == "block-storage" and "volumev3" in types
