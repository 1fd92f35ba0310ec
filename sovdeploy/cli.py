"""The ``sovdeploy`` command: parse, call the library, render. The only place that exits."""

from __future__ import annotations

import functools
import json
import ssl
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from sovdeploy import __version__, catalogue, options, phases, policy, session, views
from sovdeploy import inventory as inv
from sovdeploy.errors import (
    EXIT_INTERRUPTED,
    EXIT_INVALID,
    InterruptedRunError,
    InvalidInventoryError,
    SovdeployError,
    UsageError,
)
from sovdeploy.findings import Finding, Severity
from sovdeploy.hardware import facts as discover
from sovdeploy.hardware import plan as hostplan
from sovdeploy.hardware import preflight
from sovdeploy.ledger import archive as ledger_archive
from sovdeploy.ledger import audit as ledger_audit
from sovdeploy.ledger import local as ledger_local
from sovdeploy.ledger import note as ledger_note
from sovdeploy.runbook import drill
from sovdeploy.runbook.write import write_runbook
from sovdeploy.state import StateDir
from sovdeploy.steps import playbooks
from sovdeploy.steps.credentials import apt_mirror

P = ParamSpec("P")
R = TypeVar("R")

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def handle_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Turn sovdeploy's typed errors into messages and exit codes."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except InvalidInventoryError as exc:
            views.render_findings(exc.findings, err)
            blocking = sum(1 for f in exc.findings if f.severity is Severity.ERROR)
            err.print(f"[red]{exc}: {blocking} problem(s); nothing was touched[/red]")
            sys.exit(exc.exit_code)
        except InterruptedRunError as exc:
            err.print(f"[yellow]interrupted:[/yellow] {exc}. Run the same command again to resume.")
            sys.exit(exc.exit_code)
        except KeyboardInterrupt:
            err.print("[yellow]interrupted[/yellow]. Run the same command again to resume.")
            sys.exit(EXIT_INTERRUPTED)
        except SovdeployError as exc:
            err.print(f"[red]error:[/red] {escape(str(exc))}")
            sys.exit(exc.exit_code)

    return wrapper


@click.group()
@click.version_option(__version__, prog_name="sovdeploy")
def main() -> None:
    """Deploy a sovereign AI platform on hardware you own, in a jurisdiction you choose."""


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


@main.command()
@options.inventory
@options.as_json
@handle_errors
def status(inventory: Path, as_json: bool) -> None:
    """Show each phase and each host of the deployment."""
    loaded = inv.load(inventory)
    state = StateDir(loaded.path)
    done = state.phases()
    digest = phases.source_digest(loaded)
    addresses = state.provisioned_addresses()
    rows = []
    for name in phases.PHASE_NAMES:
        rec = done.get(name)
        if rec is None:
            label = "pending"
        elif rec.digest != digest:
            label = "stale (inputs changed)"
        else:
            label = rec.status
        rows.append(
            {
                "phase": name,
                "status": label,
                "finished": rec.finished if rec else None,
                "run": rec.run_id if rec else None,
            }
        )
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
    if as_json:
        report: dict[str, Any] = {
            "deployment": loaded.deployment.name,
            "phases": rows,
            "hosts": hosts,
        }
        if cluster is not None:
            report["kubernetes"] = cluster
        click.echo(json.dumps(report, indent=2))
        return
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


def _cluster_status(loaded: inv.LoadedInventory, state: StateDir) -> dict[str, Any] | None:
    """The Kubernetes nodes' readiness through the operator's kubeconfig; None without k8s."""
    from sovdeploy.kubernetes import client as kube

    d = loaded.deployment
    if not (d.hosts_in("k8s_control") or d.hosts_in("k8s_worker")):
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
@options.verbose
@handle_errors
def verify(target: str, inventory: Path, verbose: int) -> None:
    """Check the cloud as a new user would, through its API; clean up after.

    openstack (the default): token, catalog, a locally built image, flavor, network,
    subnet, router, port, a server that boots, a volume attached to it. Each check
    prints pass or fail with its time. Also the last phase of `up`.

    kubernetes: every [Conformance] test, run with hydrophone from the mirror against the
    cluster; writes the cncf/k8s-conformance bundle into the state dir and its digest into
    the ledger. Refuses while the artifact manifest does not pin the suite (it does not
    yet), saying what is missing.
    """
    if target == "kubernetes":
        from sovdeploy.kubernetes import artifacts as mirror
        from sovdeploy.kubernetes import conformance

        conformance.require_pins(mirror.load())
        with session.open_session(
            inventory, verbose, "verify-kubernetes", console=out, err=err
        ) as ctx:
            out_dir = conformance.run(ctx, ctx.state.kubeconfig)
        out.print(f"[green]conformant[/green]: {ctx.deployment.name}; the bundle is in {out_dir}")
        return
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
    from sovdeploy import secrets as sec

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
    from sovdeploy import secrets as sec

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
def mirror() -> None:
    """The Kubernetes artifacts, pinned by digest, and the inventory's mirrors of them."""


def _artifact_json(artifact: Any, url: str | None) -> dict[str, Any]:
    return {**artifact.model_dump(mode="json", by_alias=True), "mirror_url": url}


@mirror.command("list")
@options.inventory
@options.as_json
@handle_errors
def mirror_list(inventory: Path, as_json: bool) -> None:
    """Print every artifact: version, digest, upstream origin, and where the mirror must hold it.

    An operator fills an in-jurisdiction mirror from this list; the roles install
    nothing else.
    """
    from sovdeploy.kubernetes import artifacts as mir

    manifest = mir.load()
    mirrors = mir.sources(inv.load(inventory).deployment)
    if as_json:
        doc = {
            "kubernetes_version": manifest.kubernetes_version,
            "artifacts": [_artifact_json(a, mir.location(a, mirrors)) for a in manifest.artifacts],
        }
        out.print_json(data=doc)
        return
    out.print(f"Kubernetes {manifest.kubernetes_version}: {len(manifest.artifacts)} artifact(s)")
    for a in manifest.artifacts:
        out.print(f"{a.kind:<5} {a.name} {a.version} (for {a.needed_on}) {a.digest}", markup=False)
        out.print(f"      upstream: {a.origin}", markup=False)
        out.print(
            f"      mirror:   {mir.location(a, mirrors) or '(no source of this kind)'}",
            markup=False,
        )


@mirror.command("check")
@options.inventory
@click.option(
    "--only", "names", multiple=True, metavar="NAME", help="Check only this artifact; repeat."
)
@click.option(
    "--all", "check_all", is_flag=True, help="Check the whole manifest, not what the hosts need."
)
@handle_errors
def mirror_check(inventory: Path, names: tuple[str, ...], check_all: bool) -> None:
    """Verify that the inventory's mirrors hold each artifact with its pinned digest.

    Touches no host. Every artifact is fetched and hashed (debs are also looked up in
    their suite's Packages index); a missing or wrong one fails the check. `up` runs
    the same check in its preflight when the inventory has Kubernetes hosts.
    """
    from sovdeploy.kubernetes import artifacts as mir

    deployment = inv.load(inventory).deployment
    manifest = mir.load()
    if names:
        artifacts = [manifest.get(n) for n in names]
    elif check_all:
        artifacts = list(manifest.artifacts)
    else:
        artifacts = mir.needed(manifest, deployment)
    if not artifacts:
        out.print(f"{deployment.name} has no Kubernetes hosts: no artifact to check")
        return
    results = check_mirrors(artifacts, mir.sources(deployment), out)
    mir.require_all(results)
    out.print(f"[green]mirrors hold all {len(results)} artifact(s)[/green], digests verified")


def check_mirrors(artifacts: list[Any], mirrors: dict[Any, str], console: Console) -> list[Any]:
    """Run the mirror check with a line per artifact and a spinner while one downloads."""
    from sovdeploy.kubernetes import artifacts as mir

    with console.status("") as status:

        def start(artifact: mir.Artifact) -> None:
            status.update(f"fetching {artifact.kind} {artifact.name} {artifact.version}")

        def done(r: mir.CheckResult) -> None:
            mark = "[green]ok[/green]  " if r.ok else "[red]FAIL[/red]"
            console.print(
                f"{mark} {r.artifact.kind:<5} {escape(r.artifact.name)} "
                f"{escape(r.artifact.version)}: {escape(r.detail)}"
            )
            if not r.ok and r.url:
                console.print(f"       {escape(r.url)}", style="dim")

        return mir.check(artifacts, mirrors, on_result=done, on_start=start)


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
    from sovdeploy.kubernetes import artifacts as mir

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
    from sovdeploy import sandbox as sb

    loaded = inv.load(inventory)
    mirror = apt_mirror(loaded.deployment)

    def log(line: str) -> None:
        out.print(line, markup=False)

    out.print(sb.build_image(mirror, rebuild=rebuild, log=log), markup=False)
    if loaded.deployment.settings.sandbox.vms:
        out.print(str(sb.build_vm_image(mirror, rebuild=rebuild, log=log)), markup=False)


@main.group()
def audit() -> None:
    """The tamper-evident ledger: verify a log, prove an entry is in it."""


def _vkeys(values: tuple[str, ...]) -> list[ledger_note.Verifier]:
    keys = []
    for value in values:
        text = Path(value).read_text() if Path(value).is_file() else value
        try:
            keys.append(ledger_note.Verifier.parse(text))
        except ledger_note.NoteError as exc:
            raise UsageError(f"{value}: {exc}") from None
    return keys


def _tamper_epilog() -> str:
    lines = ["Exit codes: 0 every check holds;"]
    lines += [f"{t.value} {t.name}: {d};" for t, d in ledger_audit.DESCRIPTIONS.items()]
    return "\b\n" + "\n".join(lines)


@audit.command("verify", epilog=_tamper_epilog())
@click.argument("log", required=False)
@options.inventory
@click.option("--key", "keys", multiple=True, help="The log's verifier key (vkey, or a file).")
@click.option("--witness", "witnesses", multiple=True, help="A witness's verifier key; repeat.")
@click.option(
    "--quorum", type=click.IntRange(0), help="Witness cosignatures required [default: all]."
)
@click.option(
    "--trusted",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    multiple=True,
    help="A checkpoint saved earlier; the log must extend it. Repeatable.",
)
@click.option("--expect-source", "expected", multiple=True, help="A source that must appear.")
@click.option(
    "--cacert", type=click.Path(exists=True, path_type=Path), help="CA for an https or s3 LOG."
)
@click.option("--s3-endpoint", help="S3 endpoint URL of an s3://BUCKET/PREFIX LOG (the archive).")
@click.option("--client-cert", type=click.Path(exists=True, path_type=Path))
@click.option("--client-key", type=click.Path(exists=True, path_type=Path))
@options.as_json
@handle_errors
def audit_verify(  # noqa: PLR0917 - click passes each option as a keyword
    log: str | None,
    inventory: Path,
    keys: tuple[str, ...],
    witnesses: tuple[str, ...],
    quorum: int | None,
    trusted: tuple[Path, ...],
    expected: tuple[str, ...],
    cacert: Path | None,
    client_cert: Path | None,
    client_key: Path | None,
    s3_endpoint: str | None,
    as_json: bool,
) -> None:
    """Verify a log: signatures, witnesses, the whole tree, history, sources.

    LOG is a directory (a copy of the log), an https:// prefix, or the WORM archive,
    s3://BUCKET/PREFIX with --s3-endpoint (credentials from AWS_ACCESS_KEY_ID and
    AWS_SECRET_ACCESS_KEY): the bucket's Object Lock and every object's versions are
    checked too, and the log is read from each object's first version. Without LOG,
    the orchestrator's ledger of the deployment is checked, with the verifier key from
    its state dir unless --key names one; an auditor passes the key they were given.
    """
    files: ledger_audit.LogFiles
    archived = ledger_audit.Report()
    if log is not None and log.startswith("s3://"):
        files = _archive_files(log, s3_endpoint, cacert, archived)
        log_keys = _vkeys(keys)
    elif log is None:
        root = StateDir(inv.load(inventory).path).root
        files = ledger_audit.DirectoryFiles(ledger_local.ledger_dir(root))
        log_keys = _vkeys(keys) or [ledger_local.load_verifier(root)]
    elif log.startswith("https://"):
        context = ssl.create_default_context(cafile=str(cacert) if cacert else None)
        if client_cert is not None:
            context.load_cert_chain(client_cert, client_key)
        files = ledger_audit.HttpFiles(log, context)
        log_keys = _vkeys(keys)
    else:
        files = ledger_audit.DirectoryFiles(Path(log))
        log_keys = _vkeys(keys)
    if not log_keys:
        raise UsageError("give the log's verifier key with --key")
    witness_keys = _vkeys(witnesses)
    report = ledger_audit.verify(
        files,
        log_keys,
        witnesses=witness_keys,
        quorum=len(witness_keys) if quorum is None else quorum,
        trusted=[t.read_bytes() for t in trusted],
        expected_sources=expected,
    )
    report.findings[:0] = archived.findings
    if as_json:
        click.echo(json.dumps(views.audit_json(report), indent=2))
    else:
        views.render_audit(report, out, err)
    sys.exit(report.exit_code)


class ArchiveUnreadableError(SovdeployError):
    """The archive cannot be read at all: audit verify's UNREADABLE."""

    exit_code = int(ledger_audit.Tamper.UNREADABLE)


def _archive_files(
    url: str, endpoint: str | None, cacert: Path | None, report: ledger_audit.Report
) -> ledger_audit.LogFiles:
    """Check the archive's lock and versions into ``report``; return it read as a log."""
    from botocore.exceptions import BotoCoreError, ClientError

    if not endpoint:
        raise UsageError("an s3:// LOG needs --s3-endpoint")
    name, _, prefix = url.removeprefix("s3://").partition("/")
    bucket = ledger_archive.Bucket(endpoint, name, prefix, str(cacert) if cacert else None)
    try:
        s3 = bucket.client()
        versions = ledger_archive.check(bucket, s3, report)
    except (BotoCoreError, ClientError) as exc:
        raise ArchiveUnreadableError(f"the archive {url} at {endpoint}: {exc}") from None
    return ledger_archive.ArchiveFiles(bucket, s3, versions)


@audit.command("prove")
@click.argument("entry", type=click.IntRange(0))
@options.inventory
@click.option(
    "-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="Write it here."
)
@handle_errors
def audit_prove(entry: int, inventory: Path, output: Path | None) -> None:
    """Print an inclusion receipt (c2sp.org/tlog-proof) for ENTRY, by index.

    The receipt holds the entry, its inclusion proof and the signed checkpoint: with
    the ledger's verifier key alone, anyone can check that the entry is in the log.
    """
    root = StateDir(inv.load(inventory).path).root
    receipt = ledger_local.prove(root, entry)
    text = receipt.encode()
    if output is None:
        click.echo(text, nl=False)
    else:
        output.write_text(text)
        out.print(f"receipt for entry {entry} of {receipt.checkpoint.checkpoint.size} -> {output}")
