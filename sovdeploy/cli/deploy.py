"""Commands that act on a deployment: up, plan, status, down, verify, runbook, exit-drill."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click
from rich.markup import escape
from rich.table import Table

from sovdeploy import inventory as inv
from sovdeploy import options, phases, session, views
from sovdeploy.cli.base import err, handle_errors, main, out
from sovdeploy.errors import SovdeployError, UsageError
from sovdeploy.kubernetes import artifacts as k8s_artifacts
from sovdeploy.kubernetes import client as kube
from sovdeploy.kubernetes import conformance
from sovdeploy.runbook import drill
from sovdeploy.runbook.write import write_runbook
from sovdeploy.state import StateDir
from sovdeploy.supply import build as supply_build
from sovdeploy.supply import serve


@main.command()
@options.inventory
@options.from_phase
@options.only_phase
@options.verbose
@handle_errors
def up(inventory: Path, from_phase: str | None, only_phase: str | None, verbose: int) -> None:
    """Bring the deployment to the state the inventory describes, phase by phase.

    Resumes after the last phase completed with the same inputs.
    """
    if from_phase is not None and only_phase is not None:
        raise UsageError(
            "--from and --only cannot be used together: --from runs that phase and every "
            "later one, --only runs that phase alone; give one of them"
        )
    with session.open_session(
        inventory, verbose, "up", secrets="create", console=out, err=err
    ) as ctx:
        ran = phases.up(ctx, start=from_phase, only=only_phase)
    changed = [p for p in ran if p != "preflight"]
    out.print(
        f"[green]up to date[/green]: {ctx.deployment.name}"
        + (f" (ran {', '.join(changed)})" if changed else " (nothing to do)")
    )


@main.command()
@options.inventory
@options.verbose
@handle_errors
def plan(inventory: Path, verbose: int) -> None:
    """Show what Terraform and Ansible would change; change nothing."""
    with session.open_session(inventory, verbose, "plan", console=out, err=err) as ctx:
        phases.plan(ctx)


def _engine_status(deployment: Any) -> dict[str, str]:
    """Which engine and version apply the modules, or why none can."""
    try:
        found = supply_build.iac_engine(deployment)
    except SovdeployError as exc:
        return {"error": str(exc)}
    return {
        "name": found.name,
        "version": found.version,
        "path": found.path,
        "describe": found.describe(),
    }


@main.command()
@options.inventory
@options.as_json
@handle_errors
def status(inventory: Path, as_json: bool) -> None:
    """Show each phase and each host of the deployment."""
    loaded = inv.load(inventory)
    state = StateDir(loaded.path)
    rows = [row.__dict__ for row in phases.status(state.phases(), phases.source_digest(loaded))]
    addresses = state.provisioned_addresses()
    hosts: list[dict[str, Any]] = [
        {
            "host": h.name,
            "site": h.site,
            "country": loaded.deployment.settings.sites[h.site].country,
            "roles": list(h.roles),
            "address": addresses.get(h.name, h.address),
        }
        for h in loaded.deployment.hosts
    ]
    cluster = _cluster_status(loaded, state)
    engine = _engine_status(loaded.deployment)
    mirror = _mirror_status(loaded.deployment, state)
    if as_json:
        report: dict[str, Any] = {
            "deployment": loaded.deployment.name,
            "iac_engine": engine,
            "phases": rows,
            "hosts": hosts,
        }
        if mirror is not None:
            report["mirror_service"] = mirror
        if cluster is not None:
            report["kubernetes"] = cluster
        click.echo(json.dumps(report, indent=2))
        return
    if "error" in engine:
        out.print(f"IaC engine: [red]{escape(engine['error'])}[/red]")
    else:
        out.print(f"IaC engine: {engine['describe']}", markup=False)
    if mirror is not None:
        running = [n for n, pid in mirror["processes"].items() if pid is not None]
        state_text = "running" if len(running) == len(mirror["processes"]) else "not running"
        out.print(
            f"mirror service: {state_text} (files {mirror['files']}, registry "
            f"{mirror['registry']})",
            markup=False,
        )
    table = Table(title=f"{loaded.deployment.name}: phases")
    for col in ("phase", "status", "finished", "run"):
        table.add_column(col)
    for r in rows:
        style = "green" if r["status"] == "done" else "yellow"
        table.add_row(
            r["phase"], f"[{style}]{r['status']}[/{style}]", r["finished"] or "-", r["run"] or "-"
        )
    out.print(table)
    htable = Table(title="hosts")
    for col in ("host", "site", "country", "roles", "address"):
        htable.add_column(col)
    for h in hosts:
        htable.add_row(
            h["host"], h["site"], h["country"], ", ".join(h["roles"]), h["address"] or "-"
        )
    out.print(htable)
    if cluster is not None:
        views.render_cluster(cluster, out)


def _mirror_status(deployment: Any, state: StateDir) -> dict[str, Any] | None:
    """The deployer's mirror service: where it serves, and which of its processes run."""
    service = serve.of_deployment(deployment, state.root)
    if service is None:
        return None
    return {
        "files": service.files_url,
        "registry": service.registry_url,
        "processes": serve.status(service),
    }


def _cluster_status(loaded: inv.LoadedInventory, state: StateDir) -> dict[str, Any] | None:
    """The Kubernetes nodes' readiness through the operator's kubeconfig; None without k8s."""
    d = loaded.deployment
    if not k8s_artifacts.cluster_hosts(d):
        return None
    config = state.kubeconfig
    found: dict[str, Any] = {"kubeconfig": str(config)}
    if not config.exists():
        found["error"] = "no kubeconfig yet: the kubernetes phase writes it"
        return found
    try:
        found["nodes"] = [n.as_dict() for n in kube.nodes(config)]
    except kube.KubeError as exc:
        found["error"] = str(exc)
        return found
    # An inventory host that is no node (its join failed or has not run) is said so.
    joined = {n["name"] for n in found["nodes"]}
    declared = {h.name for h in k8s_artifacts.cluster_hosts(d)}
    found["not_joined"] = sorted(declared - joined)
    return found


@main.command()
@options.inventory
@options.yes
@options.verbose
@handle_errors
def down(inventory: Path, yes: bool, verbose: int) -> None:
    """Destroy everything the provision phase created (asks first)."""
    loaded = inv.load(inventory)
    names = ", ".join(h.name for h in loaded.deployment.hosts)
    if not yes and not click.confirm(
        f"Destroy the hosts of '{loaded.deployment.name}' ({names})?", default=False
    ):
        err.print("aborted; nothing was destroyed")
        sys.exit(1)
    with session.open_session(
        inventory, verbose, "down", secrets="skip", console=out, err=err
    ) as ctx:
        phases.down(ctx)
    out.print(f"[green]down[/green]: {loaded.deployment.name}")


@main.command()
@click.argument("target", type=click.Choice(["openstack", "kubernetes"]), default="openstack")
@options.inventory
@click.option(
    "--subset",
    type=click.Choice(sorted(conformance.SUBSETS)),
    help="kubernetes: run only this named subset of the conformance tests (no bundle).",
)
@click.option(
    "--parallel",
    type=click.IntRange(1, 32),
    default=1,
    show_default=True,
    help="kubernetes: ginkgo processes (1, as upstream's certified runs).",
)
@options.verbose
@handle_errors
def verify(target: str, inventory: Path, subset: str | None, parallel: int, verbose: int) -> None:
    """Check the cloud as a new user would, through its API; clean up after.

    openstack (the default): token, catalog, a locally built image, flavor, network,
    subnet, router, port, a server that boots, a volume attached to it. Each check
    prints pass or fail with its time. Also the last phase of `up`.

    kubernetes: every [Conformance] test of the release (serial ones included), run by
    ginkgo with e2e.test from the mirror tree against the cluster, the tests' images from
    the deployment's registry; writes the cncf/k8s-conformance bundle into the state dir
    and its digest into the ledger. `--subset ci` runs the subset `make test` runs.
    """
    if target == "kubernetes":
        with session.open_session(
            inventory, verbose, "verify-kubernetes", console=out, err=err
        ) as ctx:
            found = conformance.run(ctx, ctx.state.kubeconfig, subset=subset, procs=parallel)
        what = f"the {subset} subset passed" if subset else "conformant"
        out.print(f"[green]{what}[/green]: {ctx.deployment.name}; the results are in {found}")
        return
    if subset is not None or parallel != 1:
        raise UsageError("--subset and --parallel apply to `verify kubernetes` only")
    with session.open_session(inventory, verbose, "verify", console=out, err=err) as ctx:
        phases.up(ctx, only="verify")
    out.print(f"[green]verified[/green]: {ctx.deployment.name}")


@main.command()
@options.inventory
@click.option(
    "--no-gather",
    is_flag=True,
    help="Render again from the facts gathered last time, without reading the hosts.",
)
@options.verbose
@handle_errors
def runbook(inventory: Path, no_gather: bool, verbose: int) -> None:
    """Write the exit and portability runbook into the state dir (also the last phase of `up`).

    Reads every host's data stores, packages and images (read-only), then writes
    runbook.md, runbook.html (one self-contained page), topology.svg, sbom.cdx.json
    (CycloneDX), register.json (DORA's register of third parties) and attestation.json
    into <inventory>/.sovdeploy/runbook/, and their SHA-256 into the ledger. The same
    facts give the same bytes: --no-gather renders again from the last facts.
    """
    with session.open_session(inventory, verbose, "runbook", console=out, err=err) as ctx:
        paths = write_runbook(ctx, gather=not no_gather)
    out.print(f"[green]runbook[/green]: {paths[0].parent}")
    for path in paths:
        out.print(f"  {path.name}")


@main.command("exit-drill")
@options.inventory
@click.option(
    "--target",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Directory the exports go to (default: <inventory>/.sovdeploy/exit/<drill-id>/).",
)
@options.verbose
@handle_errors
def exit_drill(inventory: Path, target: Path | None, verbose: int) -> None:
    """Run the runbook's exports, check every file, and restore some on a fresh host.

    Exports every data store with the runbook's own commands (each file under a
    temporary name until its SHA-256 is checked on this machine), restores a database
    dump, an image and a volume on a new sandbox container to prove them usable, and
    writes the measured sizes, times, RTO and RPO into the runbook and the ledger.
    Where the cloud holds no image or volume, a small canary is made through the APIs
    and deleted afterwards. Fails if any store cannot be read or any step fails.
    """
    with session.open_session(inventory, verbose, "exit-drill", console=out, err=err) as ctx:
        record = drill.run(ctx, target)
    out.print(
        f"[green]exit drill passed[/green]: {record['exported']} file(s), "
        f"{record['restored']} restore(s) proven, RTO {record['rto_seconds']} s, "
        f"RPO {record['rpo_seconds']} s; exports in {record['target']}"
    )
