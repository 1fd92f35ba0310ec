"""What the terminal shows: findings, host plans, discovered hardware, audit reports.

Rendering only (rich tables and lines); the commands in :mod:`sovdeploy.cli` decide what
to show and where, and nothing here reads state or exits.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from sovdeploy import catalogue
from sovdeploy.findings import Finding, Severity
from sovdeploy.hardware import facts as discover
from sovdeploy.hardware import plan as hostplan
from sovdeploy.ledger import audit as ledger_audit


def render_findings(findings: list[Finding], console: Console) -> None:
    styles = {Severity.ERROR: "red", Severity.WARNING: "yellow", Severity.INFO: "cyan"}
    for f in findings:
        label = "waived" if f.severity is Severity.INFO else f.severity.value
        console.print(
            f"[{styles[f.severity]}]{label}[/] {escape(f'[{f.code}]')} {escape(f.location)}"
        )
        console.print(f"    {f.message}", markup=False)
        if f.key:
            value = f" = {f.value}" if f.value is not None else ""
            console.print(f"    key: {f.key}{value}", markup=False)
        if f.hint:
            console.print(f"    hint: {f.hint}", markup=False)


def findings_json(findings: list[Finding], valid: bool) -> dict[str, Any]:
    return {"valid": valid, "findings": [f.as_dict() for f in findings]}


def render_plan(plan: hostplan.HostPlan, console: Console) -> None:
    """One accelerated host's derived settings, as a two-column table."""
    source = plan.topology.source if plan.topology else "unknown"
    table = Table(title=f"{plan.host}: derived plan (CPU layout {source})", show_header=False)
    table.add_column("what", style="bold")
    table.add_column("value", overflow="fold")
    for what, value in plan_rows(plan):
        table.add_row(escape(what), escape(value))
    console.print(table)


def plan_rows(plan: hostplan.HostPlan) -> Iterator[tuple[str, str]]:
    yield "kernel command line", plan.cmdline or "-"
    if plan.vfio_ids:
        yield "vfio-pci IDs", ", ".join(plan.vfio_ids)
        yield "early modules", ", ".join(plan.early_modules)
    if plan.blacklist:
        yield "drivers kept off", ", ".join(plan.blacklist)
    if plan.hugepages:
        yield "hugepages", f"{plan.hugepages['count']} x {plan.hugepages['size']}"
    for vfs in plan.vfs:
        yield (
            f"VFs on {vfs.nic}",
            f"{vfs.count} (physnet {vfs.physnet or '-'}, trust {'on' if vfs.trust else 'off'}, "
            f"spoofchk {'on' if vfs.spoofchk else 'off'})",
        )
    if plan.cpus is not None:
        for key, value in plan.cpus.as_dict().items():
            if value:
                yield f"CPUs: {key.replace('_', ' ')}", value
    yield from nova_rows(plan.nova)
    for key, value in plan.neutron_sriov.items():
        yield f"neutron sriov {key}", str(value)
    for key, value in plan.ovs_dpdk.items():
        text = (
            ", ".join(f"{k}: {v}" for k, v in value.items()) if isinstance(value, dict) else value
        )
        yield f"ovs {key}", str(text)
    for note in plan.notes:
        yield "note", note


def nova_rows(nova: dict[str, Any]) -> Iterator[tuple[str, str]]:
    for section, values in nova.items():
        if section == "filters":
            yield "nova scheduler filters", ", ".join(values)
            continue
        for key, value in values.items():
            items = value if isinstance(value, list) else [value]
            text = "\n".join(json.dumps(v) if isinstance(v, dict | bool) else str(v) for v in items)
            if text:
                yield f"nova [{section}] {key}", text


def render_discovery(
    name: str, facts: dict[str, Any], cat: catalogue.Catalogue, out: Console
) -> None:
    """What one host's sysfs holds, as tables."""
    layout = discover.cpu_layout(facts)
    iommu = facts["iommu"]
    topo = hostplan.Topology.discovered(facts)
    memory = f"{topo.memory_gib:.0f} GiB" if topo.memory_gib else "unknown"
    out.print(
        f"[bold]{escape(name)}[/bold]: CPU {layout.get('vendor', 'unknown vendor')}, "
        f"{layout['numa_nodes']} NUMA node(s) x {layout['cores_per_node']} cores x "
        f"{layout['threads_per_core']} threads; memory {memory}; IOMMU "
        + (
            f"on ({iommu['kind'] or 'unknown'}, {len(iommu['groups'])} groups)"
            if iommu["enabled"]
            else "[red]off[/red]"
        )
    )
    pages = ", ".join(
        f"{int(size) // 1024} MiB: {v['total']}" if int(size) < 1 << 20 else f"1 GiB: {v['total']}"
        for size, v in facts["hugepages"].items()
    )
    out.print(f"hugepage sizes (pages reserved): {pages or 'none'}")
    gpus = discover.gpus(facts, cat)
    if gpus:
        table = Table(title="accelerators")
        for col in ("address", "id", "model", "NUMA", "IOMMU", "driver"):
            table.add_column(col, no_wrap=col == "model")
        for g in gpus:
            table.add_row(
                g["address"],
                g["id"],
                g["name"],
                str(g["numa_node"]),
                str(g["iommu_group"]),
                g["driver"] or "-",
            )
        out.print(table)
    ports = discover.ports(facts, cat)
    if ports:
        table = Table(title="network ports")
        for col in ("name", "address", "id", "model", "NUMA", "VFs", "driver"):
            table.add_column(col, no_wrap=col in {"name", "model"})
        for p in ports:
            table.add_row(
                p["name"] or "-",
                p["address"],
                p["id"],
                p["model"] or "-",
                str(p["numa_node"]),
                str(p["sriov_totalvfs"]),
                p["driver"] or "-",
            )
        out.print(table)


def audit_json(report: ledger_audit.Report) -> dict[str, Any]:
    return {
        "ok": report.ok,
        "exit_code": report.exit_code,
        "origin": report.origin,
        "size": report.size,
        "root": report.root.hex(),
        "witnesses": report.witnesses,
        "checkpoints_checked": report.checkpoints_checked,
        "sources": [s.__dict__ for s in report.sources.values()],
        "findings": [{"class": f.tamper.name, "code": int(f.tamper), "message": f.message}
                     for f in report.findings],
    }  # fmt: skip


def render_audit(report: ledger_audit.Report, out: Console, err: Console) -> None:
    if report.sources:
        table = Table(title=f"{report.origin}: sources")
        for col in ("source", "records", "last seq", "last record", "heartbeat"):
            table.add_column(col)
        for src in report.sources.values():
            beat = f"{src.heartbeat:g}s" if src.heartbeat else "-"
            table.add_row(src.name, str(src.records), str(src.last_seq), src.last_time or "-", beat)
        out.print(table)
    for f in report.findings:
        err.print(f"[red]{f.tamper.name}[/red] ({int(f.tamper)}) {escape(f.message)}")
    summary = (
        f"{report.origin}: {report.size} entries, root {report.root.hex()[:16]}…, "
        f"{len(report.witnesses)} witness cosignature(s), "
        f"{report.checkpoints_checked} other checkpoint(s) checked"
    )
    if report.ok:
        out.print(f"[green]verified[/green]: {summary}")
    else:
        err.print(f"[red]NOT verified[/red]: {summary}; {len(report.findings)} finding(s)")


def render_cluster(cluster: dict[str, Any], out: Console) -> None:
    if "error" in cluster:
        out.print(f"kubernetes: {cluster['error']}", markup=False)
        return
    table = Table(title=f"kubernetes nodes ({cluster['kubeconfig']})")
    for col in ("node", "ready", "roles", "kubelet"):
        table.add_column(col)
    for n in cluster["nodes"]:
        ready = "[green]Ready[/green]" if n["ready"] else f"[red]NotReady[/red] {n['reason']}"
        table.add_row(n["name"], ready, ", ".join(n["roles"]) or "-", n["kubelet"])
    for name in cluster.get("not_joined", []):
        table.add_row(name, "[red]not joined[/red] (no node of this name)", "-", "-")
    out.print(table)
