"""Write the runbook: Markdown, one self-contained HTML page, the topology, the SBOM.

Everything comes from the deployment model, the findings, ``runbook/facts.json`` and
the last drill's ``runbook/drill.json``; nothing reads the clock, so the same state
gives the same bytes, and the files' digests go into the ledger.
"""

from __future__ import annotations

import hashlib
import html
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
from markdown_it import MarkdownIt

from sovdeploy import __version__, policy
from sovdeploy.findings import Finding
from sovdeploy.fsutil import atomic_write, read_json
from sovdeploy.model import Deployment
from sovdeploy.runbook import facts as facts_mod
from sovdeploy.runbook import register, sbom, stores, topology

MARKDOWN = "runbook.md"
HTML = "runbook.html"
SVG = "topology.svg"
SBOM = "sbom.cdx.json"
#: Written together, in this order; the ledger records each one's SHA-256.
FILES = (MARKDOWN, HTML, SVG, SBOM, "topology.dot", "register.json", "attestation.json")
TEMPLATES = Path(__file__).parent / "templates"


def human(size: int | None) -> str:
    """Bytes in binary units, with the exact count."""
    if size is None:
        return "unknown"
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            shown = f"{value:.0f}" if unit == "B" else f"{value:.1f}"
            return f"{shown} {unit}" if unit == "B" else f"{shown} {unit} ({size:,} B)"
        value /= 1024
    raise AssertionError("unreachable")


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "not measured"
    if seconds < 120:
        return f"{seconds:.1f} s"
    return f"{seconds / 60:.1f} min"


def _cell(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


@dataclass(frozen=True)
class StoreView:
    """A store as the runbook shows it: where, how big now, whether it answered, how out."""

    store: stores.DataStore
    where: str
    size: int | None
    error: str | None
    steps: list[stores.Step]
    detail: dict[str, Any]


def _reading(store: stores.DataStore, facts: Mapping[str, Any]) -> tuple[dict[str, Any], str]:
    """The probe's reading of ``store`` and the host it came from."""
    if not store.hosts:
        return dict(facts["deployer"].get(store.key, {})), "deployer"
    host = store.hosts[0]
    found = facts["hosts"].get(host, {})
    reading = found.get("stores", {}).get(facts_mod.PROBE.get(store.kind, ""), {})
    if not reading and "unreachable" in found:
        reading = {"ok": False, "error": found["unreachable"]}
    return dict(reading), host


def _size(store: stores.DataStore, reading: Mapping[str, Any]) -> int | None:
    if store.kind == "database":
        found = reading.get("databases", {}).get(store.key.split("/", 1)[1])
        return int(found) if found is not None else None
    if store.kind == "ceph-pool":
        pool = reading.get("pools", {}).get(store.key.split("/", 1)[1])
        return int(pool["stored"]) if pool else None
    size = reading.get("bytes")
    return int(size) if size is not None else None


def views(
    deployment: Deployment, facts: Mapping[str, Any], *, inventory: str, state: str
) -> list[StoreView]:
    """Every store with its reading and export steps."""
    found = []
    all_stores = stores.data_stores(deployment)
    # Glance's records (in its database) say which RBD images of the pool are images.
    glance = next((s for s in all_stores if s.key == "mariadb/glance"), None)
    images = _reading(glance, facts)[0].get("images", []) if glance else []
    for store in all_stores:
        reading, host = _reading(store, facts)
        if store.key == "ceph/images" and reading.get("ok"):
            reading["images"] = images
        error = None
        # A store outside the hosts (the archive) is not probed: its own keys export it.
        if store.service is None and not reading:
            error = f"{host} reported nothing about it"
        elif store.service is None and not reading.get("ok", False):
            error = str(reading.get("error", "unreadable"))
        size = None if error or store.service else _size(store, reading)
        if store.kind == "database" and not error and size is None:
            error = f"MariaDB on {host} has no database {store.key.split('/', 1)[1]}"
        steps = (
            []
            if error
            else stores.steps(store, reading, inventory=inventory, state=state, snap="exit")
        )
        where = ", ".join(store.hosts) if store.hosts else store.service or "deployer"
        found.append(StoreView(store, where, size, error, steps, reading))
    return found


def _env() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,  # noqa: S701 - Markdown; the HTML is escaped by markdown-it
    )
    env.filters.update(cell=_cell, human=human, duration=duration, shell=_shell)
    return env


def _shell(step: stores.Step) -> str:
    import shlex

    lines = [_argv(a) for a in step.before]
    lines.append(f"{_argv(step.argv)} > {shlex.quote(step.file)}.part")
    lines.append(f"sha256sum {shlex.quote(step.file)}.part | sed 's/[.]part$//' >> SHA256SUMS")
    lines.append(f"mv {shlex.quote(step.file)}.part {shlex.quote(step.file)}")
    lines += [_argv(a) for a in step.after]
    return "\n".join(lines)


def _argv(argv: tuple[str, ...]) -> str:
    import shlex

    if argv[:2] == ("sh", "-c"):
        return argv[2]
    return shlex.join(argv)


@dataclass(frozen=True)
class Runbook:
    files: dict[str, bytes]

    def digests(self) -> dict[str, str]:
        return {name: hashlib.sha256(data).hexdigest() for name, data in self.files.items()}


def _measured(drill: Mapping[str, Any] | None) -> dict[str, float | None]:
    if not drill:
        return {"rto": None, "rpo": None}
    return {"rto": drill.get("rto_seconds"), "rpo": drill.get("rpo_seconds")}


def build(
    deployment: Deployment,
    findings: list[Finding],
    facts: Mapping[str, Any],
    drill: Mapping[str, Any] | None,
    *,
    inventory: str,
    state: str,
    conformance: Mapping[str, Mapping[str, Any]] | None = None,
) -> Runbook:
    """Render every file of the runbook.

    ``conformance``: the latest conformance run of each kind (``full``, a subset's name),
    as `sovdeploy verify kubernetes` left them (:func:`load_conformance`).
    """
    store_views = views(deployment, facts, inventory=inventory, state=state)
    dot = topology.dot(deployment, [v.store for v in store_views])
    svg = topology.svg(dot)
    bom = sbom.build(deployment, facts)
    entries = register.entries(deployment)
    attestation = policy.attestation(deployment, findings)
    hosts = facts["hosts"]
    context = {
        "d": deployment,
        "s": deployment.settings,
        "facts": facts,
        "version": __version__,
        "views": store_views,
        "state": state,
        "unreachable": [v for v in store_views if v.error],
        "hosts": hosts,
        "register": entries,
        "attestation": attestation,
        "country_name": policy.country_name,
        "bom_counts": _bom_counts(bom),
        "components": components(facts),
        "drill": drill,
        "measured": _measured(drill),
        "workloads": workloads(store_views),
        "evidence": _evidence(deployment, facts),
        "conformance": dict(sorted((conformance or {}).items())),
    }
    markdown = _env().get_template("runbook.md.j2").render(**context)
    page = _html(deployment.name, markdown, svg)
    files = {
        MARKDOWN: markdown.encode(),
        HTML: page.encode(),
        SVG: svg,
        SBOM: (json.dumps(bom, indent=1, sort_keys=True) + "\n").encode(),
        "topology.dot": dot.encode(),
        "register.json": (
            json.dumps([{**e.__dict__, "country_name": e.country_name} for e in entries], indent=1)
            + "\n"
        ).encode(),
        "attestation.json": (json.dumps(attestation, indent=1, sort_keys=True) + "\n").encode(),
    }
    return Runbook(files)


#: The packages that say which release of each component runs, in the runbook's table.
KEY_PACKAGES = (
    ("OpenStack Keystone", "keystone"),
    ("OpenStack Nova", "nova-common"),
    ("OpenStack Neutron", "neutron-common"),
    ("OpenStack Glance", "glance-common"),
    ("OpenStack Cinder", "cinder-common"),
    ("OpenStack Placement", "placement-common"),
    ("OpenStack Horizon", "openstack-dashboard"),
    ("Ceph", "ceph-common"),
    ("MariaDB", "mariadb-server"),
    ("RabbitMQ", "rabbitmq-server"),
    ("HAProxy", "haproxy"),
    ("Open vSwitch", "openvswitch-common"),
    ("OVN", "ovn-common"),
    ("libvirt", "libvirt-daemon"),
    ("QEMU", "qemu-system-x86"),
    ("containerd", "containerd"),
    ("systemd (journal)", "systemd"),
    ("auditd", "auditd"),
    ("Linux kernel", "linux-image-amd64"),
)


def components(facts: Mapping[str, Any]) -> list[dict[str, str]]:
    """The key components' versions and the hosts that run each version."""
    found: dict[tuple[str, str], list[str]] = {}
    for host, reading in sorted(facts["hosts"].items()):
        installed = {p[0]: p[1] for p in reading.get("packages", [])}
        for title, package in KEY_PACKAGES:
            if package in installed:
                found.setdefault((title, installed[package]), []).append(host)
    order = {title: i for i, (title, _) in enumerate(KEY_PACKAGES)}
    return [
        {"component": title, "version": version, "hosts": ", ".join(hosts)}
        for (title, version), hosts in sorted(
            found.items(), key=lambda kv: (order[kv[0][0]], kv[0][1])
        )
    ]


def _bom_counts(bom: Mapping[str, Any]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for component in bom["components"]:
        kind = "deb" if component.get("purl", "").startswith("pkg:deb/") else component["type"]
        counts[kind] = counts.get(kind, 0) + 1
    return dict(sorted(counts.items()))


def workloads(store_views: list[StoreView]) -> dict[str, list[dict[str, Any]]]:
    for view in store_views:
        if view.store.kind == "database" and not view.error:
            return {k: list(view.detail.get(k, [])) for k in ("images", "volumes", "servers")}
    return {"images": [], "volumes": [], "servers": []}


def _evidence(deployment: Deployment, facts: Mapping[str, Any]) -> dict[str, Any]:
    """What the logging duties point at: checkpoints, retention, the sources covered."""
    ledger = facts["deployer"].get("run-ledger", {})
    logs = [h.name for h in deployment.hosts_in("logging")]
    log_checkpoint = None
    for host in logs:
        reading = facts["hosts"].get(host, {}).get("stores", {}).get("ledger", {})
        if reading.get("checkpoint"):
            log_checkpoint = (host, reading["checkpoint"])
            break
    return {
        "run_checkpoint": ledger.get("checkpoint"),
        "log_checkpoint": log_checkpoint,
        "log_hosts": logs,
        "sources": sorted(h.name for h in deployment.hosts),
        "k8s": bool(deployment.hosts_in("k8s_control")),
        "openstack": bool(deployment.hosts_in("control")) and deployment.settings.endpoint,
    }


_STYLE = """
body{font-family:Helvetica,Arial,sans-serif;max-width:64rem;margin:2rem auto;padding:0 1rem;
color:#1d1d1f;line-height:1.45}
h1{border-bottom:3px solid #003399;padding-bottom:.3rem}h2{margin-top:2.2rem;color:#003399}
table{border-collapse:collapse;margin:.8rem 0;font-size:.9rem}
th,td{border:1px solid #c8c8d0;padding:.3rem .5rem;text-align:left;vertical-align:top}
th{background:#eef1f8}code{background:#f3f3f6;padding:0 .2rem;font-size:.85rem}
pre{background:#f3f3f6;padding:.6rem;overflow-x:auto}pre code{padding:0}
.topology svg{max-width:100%;height:auto}strong{color:#7a0019}
"""


def _html(name: str, markdown: str, svg: bytes) -> str:
    md = MarkdownIt("commonmark", {"html": False}).enable("table")
    body = md.render(markdown)
    # The picture goes inline, so the page is one file; its XML prolog and doctype go.
    picture = re.sub(rb"^.*?(<svg)", rb"\1", svg, flags=re.DOTALL).decode()
    body = body.replace(
        f'<p><img src="{SVG}" alt="topology" /></p>', f'<div class="topology">{picture}</div>'
    )
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>Exit and portability runbook: {html.escape(name)}</title>\n"
        f"<style>{_STYLE}</style>\n</head>\n<body>\n{body}</body>\n</html>\n"
    )


def write(directory: Path, runbook: Runbook) -> list[Path]:
    """Write every file atomically; return their paths."""
    paths = []
    for name in FILES:
        path = directory / name
        atomic_write(path, runbook.files[name])
        paths.append(path)
    return paths


def load_conformance(directory: Path) -> dict[str, dict[str, Any]]:
    """The latest conformance results of each kind in ``directory`` (none: empty)."""
    found: dict[str, dict[str, Any]] = {}
    for path in sorted(directory.glob("*.json")):
        found[path.stem] = read_json(
            path, "run `sovdeploy verify kubernetes` again, or move the file away"
        )
    return found


def load_drill(directory: Path) -> dict[str, Any] | None:
    path = directory / "drill.json"
    if not path.exists():
        return None
    loaded: dict[str, Any] = read_json(
        path, "run `sovdeploy exit-drill` again, or move the file away to leave the drill out"
    )
    return loaded
