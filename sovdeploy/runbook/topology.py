"""The deployment's topology as a Graphviz graph, and as SVG from Debian's graphviz.

Sites (with their country and city) hold their hosts (with their roles); data stores sit
next to the hosts that hold them, and edges show the data flows: every host's journal
to the log hosts, the ledger to its WORM archive, the services' databases and disks.
The DOT text is built in a fixed order, so the same deployment gives the same bytes.
"""

from __future__ import annotations

import shutil
import subprocess

from sovdeploy.errors import SovdeployError
from sovdeploy.model import Deployment
from sovdeploy.runbook.stores import DataStore

DEPLOYER = "deployer"


class TopologyError(SovdeployError):
    """Graphviz is missing or refused the graph."""


def _q(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _label(kind: str, members: list[DataStore]) -> str:
    """One node a kind of store on the same hosts: the databases together, the pools too."""
    names = [m.key.split("/", 1)[-1] for m in members]
    rows = [", ".join(names[i : i + 3]) for i in range(0, len(names), 3)]
    if kind == "database":
        return "MariaDB\\n" + "\\n".join(rows)
    if kind == "ceph-pool":
        return "Ceph pools\\n" + "\\n".join(rows)
    return members[0].title


def _node(kind: str, holders: tuple[str, ...]) -> str:
    return f"{kind}@{','.join(holders)}"


def grouped(stores: list[DataStore]) -> dict[tuple[str, tuple[str, ...]], list[DataStore]]:
    """Stores on hosts, by kind and holders, in catalogue order."""
    groups: dict[tuple[str, tuple[str, ...]], list[DataStore]] = {}
    for store in stores:
        if store.hosts:
            groups.setdefault((store.kind, store.hosts), []).append(store)
    return groups


def _sites(deployment: Deployment, stores: list[DataStore]) -> list[str]:
    settings = deployment.settings
    site_of = {h.name: h.site for h in deployment.hosts}
    lines = []
    for site_name in sorted(settings.sites):
        site = settings.sites[site_name]
        lines.append(f"  subgraph {_q('cluster_' + site_name)} {{")
        lines.append(f"    label={_q(f'{site_name}: {site.city}, {site.country}')};")
        for host in sorted(deployment.hosts, key=lambda h: h.name):
            if host.site == site_name:
                label = host.name + "\\n" + (", ".join(host.roles) or "-")
                lines.append(f'    {_q(host.name)} [shape=box, label="{label}"];')
        # A store sits in the site of the first host that holds it.
        for (kind, holders), members in grouped(stores).items():
            if site_of.get(holders[0]) == site_name:
                node = _node(kind, holders)
                lines.append(f'    {_q(node)} [shape=cylinder, label="{_label(kind, members)}"];')
        lines.append("  }")
    return lines


def _stores(deployment: Deployment, stores: list[DataStore]) -> list[str]:
    lines = [
        f"  subgraph {_q('cluster_' + DEPLOYER)} {{",
        f"    label={_q(f'deployer ({deployment.settings.operator.name})')};",
        f'    {_q(DEPLOYER)} [shape=box, style=rounded, label="sovdeploy"];',
    ]
    on_deployer = [s for s in stores if not s.hosts and s.service is None]
    lines += [f"    {_q(s.key)} [shape=cylinder, label={_q(s.title)}];" for s in on_deployer]
    lines.append("  }")
    for store in stores:
        if store.service is not None:
            lines.append(f"  subgraph {_q('cluster_' + store.key)} {{")
            lines.append(f"    label={_q(store.service)};")
            lines.append(f"    {_q(store.key)} [shape=cylinder, label={_q(store.title)}];")
            lines.append("  }")
        elif not store.hosts:
            lines.append(f"  {_q(DEPLOYER)} -> {_q(store.key)} [arrowhead=none, style=dashed];")
    for kind, holders in grouped(stores):
        for holder in holders:
            node = _node(kind, holders)
            lines.append(f"  {_q(holder)} -> {_q(node)} [arrowhead=none, style=dashed];")
    return lines


def _flows(deployment: Deployment, stores: list[DataStore]) -> list[str]:
    logs = sorted(h.name for h in deployment.hosts_in("logging"))
    if not logs:
        return []
    # One journal edge a site, from the site's box to the first log host.
    lines = []
    for site_name in sorted(deployment.settings.sites):
        senders = sorted(
            h.name for h in deployment.hosts if h.site == site_name and h.name != logs[0]
        )
        if not senders:
            continue
        # Graphviz cannot start an edge at a cluster that holds its head.
        local = any(h.name == logs[0] and h.site == site_name for h in deployment.hosts)
        tail = "" if local else f", ltail={_q('cluster_' + site_name)}"
        lines.append(f'  {_q(senders[0])} -> {_q(logs[0])} [label="journals"{tail}];')
    ledger = next((s for s in stores if s.key == "ledger" and s.hosts), None)
    if ledger is not None and any(s.key == "ledger-archive" for s in stores):
        source = _node(ledger.kind, ledger.hosts)
        lines.append(f'  {_q(source)} -> {_q("ledger-archive")} [label="tiles (WORM)"];')
    lines.append(f'  {_q(DEPLOYER)} -> {_q(logs[0])} [label="run ledger"];')
    return lines


def dot(deployment: Deployment, stores: list[DataStore]) -> str:
    """The graph as DOT text."""
    lines = [
        f"digraph {_q(deployment.name)} {{",
        "  graph [rankdir=LR, fontname=Helvetica, fontsize=11, compound=true];",
        "  node [fontname=Helvetica, fontsize=10];",
        "  edge [fontname=Helvetica, fontsize=9, color=gray40];",
        *_sites(deployment, stores),
        *_stores(deployment, stores),
        *_flows(deployment, stores),
        "}",
    ]
    return "\n".join(lines) + "\n"


def svg(dot_text: str) -> bytes:
    """Render DOT text to SVG with Graphviz's `dot`."""
    binary = shutil.which("dot")
    if binary is None:
        raise TopologyError("Graphviz's `dot` is not installed (Debian: apt-get install graphviz)")
    result = subprocess.run(
        [binary, "-Tsvg"], input=dot_text.encode(), capture_output=True, check=False
    )
    if result.returncode != 0:
        raise TopologyError(f"dot refused the graph: {result.stderr.decode().strip()}")
    return result.stdout
