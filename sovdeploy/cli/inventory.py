"""Inventory and host commands: validate, discover, jurisdiction, secrets, extravars, sandbox."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
from rich.table import Table

from sovdeploy import catalogue, options, policy, session, views
from sovdeploy import inventory as inv
from sovdeploy import sandbox as sb
from sovdeploy import secrets as sec
from sovdeploy.cli.base import err, handle_errors, main, out
from sovdeploy.errors import (
    EXIT_INVALID,
    InvalidInventoryError,
    UsageError,
)
from sovdeploy.findings import Finding, Severity
from sovdeploy.hardware import facts as discover
from sovdeploy.hardware import plan as hostplan
from sovdeploy.hardware import preflight
from sovdeploy.kubernetes import artifacts as mir
from sovdeploy.state import StateDir
from sovdeploy.steps import playbooks
from sovdeploy.steps.credentials import apt_mirror


@main.command()
@options.inventory
@options.as_json
@handle_errors
def validate(inventory: Path, as_json: bool) -> None:
    """Check an inventory and the jurisdiction policy; never contacts a host.

    Exits 0 when the inventory is valid, 2 with every problem listed otherwise.
    """
    try:
        loaded = inv.load(inventory)
    except InvalidInventoryError as exc:
        if as_json:
            click.echo(json.dumps(views.findings_json(exc.findings, valid=False), indent=2))
            sys.exit(exc.exit_code)
        raise
    plans = hostplan.host_plans(loaded.deployment, loaded.facts)
    if as_json:
        report = views.findings_json(list(loaded.findings), valid=True)
        report["plans"] = {p.host: {"cmdline": p.cmdline, **p.as_vars()} for p in plans}
        click.echo(json.dumps(report, indent=2))
        return
    views.render_findings(list(loaded.findings), out)
    for plan in plans:
        views.render_plan(plan, out)
    d = loaded.deployment
    out.print(
        f"[green]valid[/green]: {d.name}, {len(d.hosts)} host(s) in {len(d.settings.sites)} site(s)"
    )


@main.command("discover")
@options.inventory
@click.option(
    "--sysfs-root",
    type=click.Path(path_type=Path, exists=True, file_okay=False),
    help="Read this sysfs tree on this machine (/sys, or a recorded one) instead of the hosts.",
)
@click.option(
    "--host",
    "hosts",
    multiple=True,
    help="Inventory host to discover (repeat); with --sysfs-root, the host the tree belongs to.",
)
@options.as_json
@handle_errors
def discover_cmd(
    inventory: Path, sysfs_root: Path | None, hosts: tuple[str, ...], as_json: bool
) -> None:
    """Read hosts' hardware from sysfs: accelerators, ports, CPUs, IOMMU groups.

    With --sysfs-root and no --host, reads that tree and prints what it found and a
    suggested sovdeploy_hardware block. Otherwise it reads the inventory's hosts (through
    Ansible, or the tree as the one --host), keeps their facts in the state dir for the
    hardware preflight, writes discovery/<host>.host_vars.yml there, and reports drift
    from the inventory and preflight findings. Exits 2 when the preflight refuses a host.
    """
    if sysfs_root is not None and not hosts:
        _discover_here(sysfs_root, catalogue.load(), as_json)
        return
    if sysfs_root is not None and len(hosts) != 1:
        raise UsageError("--sysfs-root is one host's tree: name that host with one --host")
    loaded = inv.load(inventory, hardware=False)
    cat = catalogue.for_deployment(loaded.deployment)
    known = {h.name for h in loaded.deployment.hosts}
    unknown = [h for h in hosts if h not in known]
    if unknown:
        raise UsageError(f"not hosts of {loaded.path}: {', '.join(unknown)}")
    if sysfs_root is not None:
        found = {hosts[0]: discover.read(sysfs_root)}
    else:
        with session.open_session(
            inventory,
            0,
            "discover",
            secrets="skip",
            hardware=False,
            console=err if as_json else out,
            err=err,
        ) as ctx:
            found = playbooks.discover_hosts(ctx, hosts)
    state = StateDir(loaded.path)
    suggestions = {h: discover.save(state, h, f, cat) for h, f in found.items()}
    findings = _host_findings(inventory, set(found))
    if as_json:
        click.echo(
            json.dumps(
                {
                    "hosts": {
                        h: {"facts": f, "suggested": discover.suggest(f, cat)}
                        for h, f in found.items()
                    },
                    "findings": [f.as_dict() for f in findings],
                },
                indent=2,
            )
        )
    else:
        for host, facts in found.items():
            views.render_discovery(host, facts, cat, out)
            out.print(f"suggested host_vars: {suggestions[host]}")
        views.render_findings(findings, out)
    if any(f.severity is Severity.ERROR for f in findings):
        sys.exit(EXIT_INVALID)


def _discover_here(sysfs_root: Path, cat: catalogue.Catalogue, as_json: bool) -> None:
    facts = discover.read(sysfs_root)
    # The rules that need no inventory: what the preflight would refuse for this host.
    findings = preflight.host_findings(str(sysfs_root), facts, cat)
    if as_json:
        click.echo(
            json.dumps(
                {
                    "facts": facts,
                    "suggested": discover.suggest(facts, cat),
                    "findings": [f.as_dict() for f in findings],
                }
            )
        )
    else:
        views.render_discovery(str(sysfs_root), facts, cat, out)
        out.print(discover.host_vars_text("this host", facts, cat), markup=False)
        views.render_findings(findings, out)
    if any(f.severity is Severity.ERROR for f in findings):
        sys.exit(EXIT_INVALID)


def _host_findings(inventory: Path, hosts: set[str]) -> list[Finding]:
    """Every finding of the inventory, with the new facts, that is about one of ``hosts``."""
    try:
        findings = list(inv.load(inventory).findings)
    except InvalidInventoryError as exc:
        findings = exc.findings
    return [
        f
        for f in findings
        if f.subject and f.subject.split(".")[:2] in (["hosts", h] for h in hosts)
    ]


@main.group()
def jurisdiction() -> None:
    """Where every part of the deployment is."""


@jurisdiction.command("report")
@options.inventory
@options.as_json
@handle_errors
def jurisdiction_report(inventory: Path, as_json: bool) -> None:
    """Attest where every component and data store will be (JSON and a table)."""
    loaded = inv.load(inventory)
    report = policy.attestation(loaded.deployment, list(loaded.findings))
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    table = Table(
        title=f"Jurisdiction attestation: {report['deployment']} "
        f"(allowed: {', '.join(report['allowed_jurisdictions'])})"
    )
    for col in ("kind", "subject", "country", "in jurisdiction", "detail"):
        table.add_column(col)
    for p in report["placements"]:
        mark = (
            "waived"
            if p["waived"]
            else "yes"
            if p["in_jurisdiction"]
            else "-"
            if p["in_jurisdiction"] is None
            else "NO"
        )
        country = f"{p['country']} {p['country_name']}" if p["country"] else "-"
        table.add_row(p["kind"], p["subject"], country, mark, p["detail"])
    out.print(table)
    views.render_findings([f for f in loaded.findings if f.severity is Severity.INFO], out)


@main.group("secrets")
def secrets_group() -> None:
    """The deployment's generated secrets (an ansible-vault file in the inventory)."""


@secrets_group.command("generate")
@options.inventory
@handle_errors
def secrets_generate(inventory: Path) -> None:
    """Add the secrets the roles need and the vault lacks; keep every existing one.

    Creates the vault password file (outside the repository) if there is none.
    """
    loaded = inv.load(inventory)
    password_file = loaded.vault_password_file or sec.password_file(loaded.deployment.name)
    if sec.ensure_password_file(password_file):
        out.print(f"created the vault password file {password_file} (keep it safe)", markup=False)
    added = sec.generate(loaded.path, sec.read_password(password_file), sec.required())
    vault = sec.vault_file(loaded.path)
    for name in added:
        out.print(f"  + {name}", markup=False)
    out.print(f"{vault}: {len(added)} secret(s) added", markup=False)


@secrets_group.command("list")
@options.inventory
@handle_errors
def secrets_list(inventory: Path) -> None:
    """List the secrets the roles need and whether the vault has each (never the values)."""
    loaded = inv.load(inventory)
    vault = sec.vault_file(loaded.path)
    have: set[str] = set()
    if loaded.vault_password_file is not None:
        have = set(sec.decrypt(vault, sec.read_password(loaded.vault_password_file)))
    table = Table(title=f"secrets of {loaded.deployment.name} ({vault})")
    for col in ("variable", "role", "in vault"):
        table.add_column(col)
    for name, secret in sorted(sec.required().items()):
        table.add_row(name, secret.role, "yes" if name in have else "[red]missing[/red]")
    out.print(table)


@main.group()
def extravars() -> None:
    """What sovdeploy hands a playbook, as JSON for `ansible-playbook -e @FILE` by hand."""


@extravars.command("accelerators")
@options.inventory
@handle_errors
def extravars_accelerators(inventory: Path) -> None:
    """accel_plans, accel_flavors and accel_networks (accelerators, openstack, tenancy)."""
    loaded = inv.load(inventory)
    click.echo(json.dumps(hostplan.tenancy_vars(loaded.deployment, loaded.facts), indent=1))


@extravars.command("kubernetes")
@handle_errors
def extravars_kubernetes() -> None:
    """kubernetes_artifacts, the pinned manifest by name (kubernetes)."""
    click.echo(json.dumps(mir.role_vars(mir.load()), indent=2, sort_keys=True))


@main.group()
def sandbox() -> None:
    """The sandbox: podman containers (and QEMU VMs) standing in for servers."""


@sandbox.command("image")
@options.inventory
@click.option("--rebuild", is_flag=True, help="Build even if the image is up to date.")
@handle_errors
def sandbox_image(inventory: Path, rebuild: bool) -> None:
    """Build the Debian 13 host images (debootstrap from the inventory's apt mirror), cached.

    The container image always; the virtual machine image when sovdeploy_sandbox.vms
    names a host.
    """
    loaded = inv.load(inventory)
    mirror = apt_mirror(loaded.deployment)

    def log(line: str) -> None:
        out.print(line, markup=False)

    out.print(sb.build_image(mirror, rebuild=rebuild, log=log), markup=False)
    if loaded.deployment.settings.sandbox.vms:
        out.print(str(sb.build_vm_image(mirror, rebuild=rebuild, log=log)), markup=False)
