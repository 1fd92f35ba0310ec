"""The ordered phase table and the resume logic.

A phase is one Terraform module apply or one playbook run (preflight aside, which
only checks). ``up`` runs the phases in order and records each one done together
with the digest of its inputs (the inventory and sovdeploy's own roles, playbooks
and modules). A later ``up`` skips the phases done for the same digest, so it
resumes after an interruption or failure; a changed digest starts again from the
first phase, and every phase is idempotent, so nothing done is lost.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from sovdeploy import inventory as inv
from sovdeploy import sandbox, secrets
from sovdeploy.engines import ansible, terraform
from sovdeploy.errors import InterruptedRunError, LedgerError, UsageError
from sovdeploy.fsutil import atomic_write
from sovdeploy.inventory import LoadedInventory, digest_files
from sovdeploy.ledger import forward as ledger_forward
from sovdeploy.model import Deployment, Provisioner
from sovdeploy.paths import containers_conf, project_root
from sovdeploy.progress import Progress
from sovdeploy.state import PhaseRecord, Run, StateDir, now


@dataclass
class Context:
    """Everything a phase needs: the checked inventory, the state dir, the run and the display."""

    inventory: LoadedInventory
    state: StateDir
    run: Run
    progress: Progress

    @property
    def deployment(self) -> Any:
        return self.inventory.deployment


@dataclass(frozen=True)
class Phase:
    name: str
    description: str
    apply: Callable[[Context], str]
    plan: Callable[[Context], str]
    always: bool = False


# -- preflight -----------------------------------------------------------------


def _preflight(ctx: Context) -> str:
    """Checks that touch nothing: tools present, sandbox image and SSH key ready."""
    terraform.terraform_bin()
    if ctx.deployment.settings.provisioner is Provisioner.SANDBOX:
        for tool in ("podman", "ssh-keygen"):
            if shutil.which(tool) is None:
                raise UsageError(f"`{tool}` is not installed; `make up` installs it (make deps)")
        _ensure_ssh_key(ctx.state)
        sb = ctx.deployment.settings.sandbox
        if not sandbox.image_exists(sb.image):
            ctx.progress.step("building the sandbox image")
            sandbox.build_image(_apt_mirror(ctx), log=ctx.progress.step)
        if sb.vms:
            for tool in ("qemu-system-x86_64", "qemu-img"):
                if shutil.which(tool) is None:
                    raise UsageError(
                        f"`{tool}` is not installed, and sovdeploy_sandbox.vms names hosts "
                        "that run as virtual machines; `make up` installs it (make deps)"
                    )
            if not (Path(sb.vm_image) / "disk.qcow2").exists():
                ctx.progress.step("building the virtual machine image")
                sandbox.build_vm_image(_apt_mirror(ctx), log=ctx.progress.step)
    waived = [f for f in ctx.inventory.findings if f.severity == "info"]
    summary = f"policy clean, {len(waived)} waiver(s) in force"
    checked = _check_kubernetes_mirrors(ctx)
    if checked:
        summary += f"; the mirrors hold all {checked} Kubernetes artifact(s)"
    return summary


def _check_kubernetes_mirrors(ctx: Context) -> int:
    """Verify the mirrors hold every Kubernetes artifact the hosts need; return how many.

    Raises:
        MirrorError: naming each artifact that is missing or not the pinned one.

    """
    from sovdeploy.kubernetes import artifacts as mirror

    needed = mirror.needed(mirror.load(), ctx.deployment)
    if not needed:
        return 0

    def done(r: mirror.CheckResult) -> None:
        ctx.progress.note(
            f"{r.artifact.kind} {r.artifact.name} {r.artifact.version}: {r.detail}", r.ok
        )

    results = mirror.check(
        needed,
        mirror.sources(ctx.deployment),
        on_result=done,
        on_start=lambda a: ctx.progress.step(f"mirror check: {a.kind} {a.name}"),
    )
    bad = [r.artifact.name for r in results if not r.ok]
    ctx.run.record("mirror_check", artifacts=len(results), failed=bad)
    if bad:
        raise mirror.MirrorError(
            f"the mirrors fail {len(bad)} of {len(results)} Kubernetes artifact(s): "
            f"{', '.join(bad)}; nothing was touched (see `sovdeploy mirror check`)"
        )
    return len(results)


def _preflight_plan(ctx: Context) -> str:
    terraform.terraform_bin()
    return "inventory and jurisdiction policy checked"


def _apt_mirror(ctx: Context) -> str:
    return apt_mirror(ctx.deployment)


def apt_mirror(deployment: Deployment) -> str:
    """The URL of the deployment's declared apt source."""
    for source in deployment.settings.artifact_sources.values():
        if source.kind == "apt":
            return str(source.url)
    raise UsageError("the inventory declares no artifact source of kind 'apt'")


def _ensure_ssh_key(state: StateDir) -> None:
    key = state.ssh_key
    if key.exists():
        return
    key.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "sovdeploy", "-f", str(key)],
        check=True,
    )
    shutil.copyfile(key.with_suffix(".pub"), key.parent / "authorized_keys")


def prepare_secrets(loaded: LoadedInventory, *, create: bool) -> LoadedInventory:
    """Make sure the vault holds every secret the roles need, before any host is touched.

    With ``create`` (``up`` on the sandbox) a missing vault and password file are
    generated, and secrets a newer sovdeploy needs are added to an existing vault (its
    values are kept); otherwise a missing vault or secret is an error naming the
    command that adds it. Returns the inventory reloaded when the vault changed.
    """
    needed = secrets.required()
    vault = secrets.vault_file(loaded.path)
    password_file = loaded.vault_password_file or secrets.password_file(loaded.deployment.name)
    if create:
        existed = vault.exists()
        if not existed:
            secrets.ensure_password_file(password_file)
        added = secrets.generate(loaded.path, secrets.read_password(password_file), needed)
        if added or not existed:
            return inv.load(loaded.path, vault_password_file=password_file)
    secrets.check(loaded.path, password_file, needed)
    return loaded


# -- provision -----------------------------------------------------------------


def workspace(ctx: Context) -> terraform.Workspace:
    """The Terraform workspace of the deployment's provisioner."""
    s = ctx.deployment.settings
    modules = project_root() / "terraform" / "modules"
    backend = (s.terraform_backend.type, dict(s.terraform_backend.config))
    hosts: list[dict[str, Any]] = [
        {"name": h.name, "groups": list(h.roles)} for h in ctx.deployment.hosts
    ]
    if s.provisioner is Provisioner.SANDBOX:
        sb = s.sandbox
        for host in hosts:
            host["vm"] = host["name"] in sb.vms
        return terraform.Workspace(
            workdir=ctx.state.terraform_dir("sandbox_hosts"),
            module=modules / "sandbox_hosts",
            inputs={
                "deployment": s.deployment,
                "hosts": hosts,
                # Resolved, so that a new image recreates the VMs built on the old one.
                "vm_image": str(Path(sb.vm_image).resolve()) if sb.vms else "",
                "vm_memory": sb.vm_memory,
                "network": sb.network,
                "subnet": sb.subnet,
                "image": sb.image,
                "privileged": sb.privileged,
                "apt_cache_dir": sb.apt_cache or "",
                "ssh_authorized_keys": str(ctx.state.ssh_key.parent / "authorized_keys"),
                "containers_conf": os.environ.get("CONTAINERS_CONF", str(containers_conf())),
            },
            backend=backend,
        )
    mirror = _provider_mirror(ctx)
    return terraform.Workspace(
        workdir=ctx.state.terraform_dir("baremetal"),
        module=modules / "baremetal",
        inputs={
            "hosts": [
                {**h, "driver": b.driver, "bmc_address": b.address, "boot_mac": b.boot_mac}
                for h, b in (
                    (h, host.bmc) for h, host in zip(hosts, ctx.deployment.hosts, strict=True)
                )
                if b is not None
            ]
        },
        backend=backend,
        plugin_mirror=mirror,
    )


def _provider_mirror(ctx: Context) -> Path:
    env = os.environ.get("SOVDEPLOY_TF_PLUGIN_MIRROR")
    if env:
        return Path(env)
    for source in ctx.deployment.settings.artifact_sources.values():
        if source.kind == "terraform_providers":
            return Path(source.url)
    raise UsageError(
        "bare-metal provisioning needs the Ironic provider: declare an artifact source of "
        "kind 'terraform_providers' (a filesystem mirror path)"
    )


def apply_workspace(ctx: Context, ws: terraform.Workspace) -> terraform.PlanSummary:
    """init, plan and (when it changes something) apply ``ws``, each step recorded."""
    ctx.progress.step("terraform init")
    terraform.init(ws, on_line=ctx.progress.step)
    ctx.progress.step("terraform plan")
    summary = terraform.plan(ws, on_line=ctx.progress.step)
    record_artifact(ctx, ws.workdir / "main.tf.json")
    ctx.run.record(
        "terraform_plan",
        module=ws.module.name,
        add=summary.add,
        change=summary.change,
        destroy=summary.destroy,
    )
    if summary.changes:
        ctx.progress.step(f"terraform apply: {summary.describe()}")
        terraform.apply(ws, on_line=ctx.progress.step)
        ctx.run.record("terraform_apply", module=ws.module.name, summary=summary.describe())
    return summary


def _provision(ctx: Context) -> str:
    ws = workspace(ctx)
    summary = apply_workspace(ctx, ws)
    write_generated_inventory(ctx, terraform.outputs(ws))
    return f"terraform: {summary.describe()}"


def _provision_plan(ctx: Context) -> str:
    if ctx.deployment.settings.provisioner is Provisioner.BAREMETAL:
        # A plan is a preview: say what cannot be shown, and go on to the next phase.
        try:
            mirror = _provider_mirror(ctx)
        except UsageError as exc:
            return f"skipped: {exc}"
        if not mirror.is_dir():
            return (
                f"skipped: the Terraform provider mirror {mirror} is not on this machine "
                "(bare-metal provisioning needs the Ironic provider from it)"
            )
    ws = workspace(ctx)
    terraform.init(ws)
    summary = terraform.plan(ws)
    for verb, items in (("+", summary.add), ("~", summary.change), ("-", summary.destroy)):
        for address in items:
            ctx.progress.console.print(f"    {verb} {address}", markup=False)
    return f"terraform would: {summary.describe()}"


def write_generated_inventory(ctx: Context, outputs: dict[str, Any]) -> None:
    """Layer the provisioned addresses (and, in the sandbox, the SSH key) over the inventory."""
    hosts: dict[str, dict[str, Any]] = {}
    common: dict[str, Any] = {}
    if ctx.deployment.settings.provisioner is Provisioner.SANDBOX:
        for name, host in outputs.get("hosts", {}).items():
            hosts[name] = {"ansible_host": host["address"]}
        # Sandbox containers get new host keys whenever they are recreated.
        common = {
            "ansible_user": "root",
            "ansible_ssh_private_key_file": str(ctx.state.ssh_key),
            "ansible_ssh_common_args": (
                "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null"
            ),
        }
    doc = {"all": {"hosts": hosts, "vars": common}}
    header = "# Generated by sovdeploy's provision phase; do not edit.\n"
    atomic_write(ctx.state.generated_inventory, header + yaml.safe_dump(doc, sort_keys=True))
    record_artifact(ctx, ctx.state.generated_inventory)


def record_artifact(ctx: Context, *paths: Path) -> None:
    """Put the digest of each file the orchestrator generated into the run record and ledger."""
    for path in paths:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        ctx.run.record("artifact", path=str(path.relative_to(ctx.state.root)), sha256=digest)


# -- playbook phases -------------------------------------------------------------


def inventories(ctx: Context) -> list[Path]:
    sources = [ctx.inventory.path]
    if ctx.state.generated_inventory.exists():
        sources.append(ctx.state.generated_inventory)
    return sources


def ansible_env(ctx: Context) -> dict[str, str]:
    root = project_root()
    env = {
        "ANSIBLE_CONFIG": str(root / "ansible.cfg"),
        "ANSIBLE_ROLES_PATH": str(root / "roles"),
        "ANSIBLE_FORCE_COLOR": "0",
    }
    if ctx.inventory.vault_password_file is not None:
        env["ANSIBLE_VAULT_PASSWORD_FILE"] = str(ctx.inventory.vault_password_file)
    return env


def playbook_phase(
    name: str,
    *,
    check: bool,
    extravars: Callable[[Context], dict[str, Any]] | None = None,
) -> Callable[[Context], str]:
    """A phase that runs ``playbooks/<name>.yml`` (in check+diff mode when ``check``)."""

    def run(ctx: Context) -> str:
        def on_result(result: ansible.TaskResult) -> None:
            ctx.progress.result(result.host, result.status, result.message)
            artifact = {"dest": result.dest, "sha1": result.checksum} if result.checksum else {}
            ctx.run.record(
                "task",
                phase=name,
                host=result.host,
                task=result.task,
                status=result.status,
                changed=result.changed,
                **artifact,
            )

        if check and not ctx.state.generated_inventory.exists():
            return _render(ctx, name, extravars(ctx) if extravars else None)
        outcome = ansible.run_playbook(
            project_root() / "playbooks" / f"{name}.yml",
            inventories(ctx),
            ctx.run.path / (("check-" if check else "") + name),
            ansible.Callbacks(task_start=ctx.progress.task_start, result=on_result),
            extravars=extravars(ctx) if extravars else None,
            envvars=ansible_env(ctx),
            check=check,
            diff=check,
        )
        verb = "would change" if check else "changed"
        return (
            f"{outcome.changed} task(s) {verb} on {len({r.host for r in outcome.results})} host(s)"
        )

    return run


def run_tool_playbook(
    ctx: Context,
    playbook: str,
    extravars: dict[str, Any],
    *,
    sources: Sequence[Path] | None = None,
    limit: str | None = None,
) -> ansible.PlaybookRun:
    """Run ``playbooks/<playbook>.yml``, which is not a phase (discover, runbook, the drill).

    Each task result is shown and recorded under the playbook's name; ``sources``
    defaults to the deployment's inventories.

    Raises:
        AnsibleRunError: when a task fails or a host cannot be reached.

    """

    def on_result(result: ansible.TaskResult) -> None:
        ctx.progress.result(result.host, result.status, result.message)
        ctx.run.record(
            "task", phase=playbook, host=result.host, task=result.task, status=result.status
        )

    return ansible.run_playbook(
        project_root() / "playbooks" / f"{playbook}.yml",
        inventories(ctx) if sources is None else sources,
        ctx.run.path / playbook,
        ansible.Callbacks(task_start=ctx.progress.task_start, result=on_result),
        extravars=extravars,
        envvars=ansible_env(ctx),
        limit=limit,
    )


def discover_hosts(ctx: Context, hosts: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Read the sysfs of ``hosts`` (all hosts when empty) through Ansible; nothing changes.

    Raises:
        AnsibleRunError: when a host cannot be reached or read.

    """
    from sovdeploy.hardware import facts as discover
    from sovdeploy.hostside import sysfs

    incoming = ctx.run.path / "discovery"
    incoming.mkdir(parents=True, exist_ok=True)

    ctx.progress.phase_start("discover", f"read sysfs on {', '.join(hosts) or 'every host'}")
    try:
        run_tool_playbook(
            ctx,
            "discover",
            {"discover_reader": sysfs.__file__, "discover_dir": str(incoming)},
            limit=",".join(hosts) or None,
        )
    except BaseException:
        ctx.progress.phase_end(ok=False)
        raise
    ctx.progress.phase_end(ok=True)
    return {path.stem: discover.load_facts(path) for path in sorted(incoming.glob("*.json"))}


def _render(ctx: Context, name: str, extravars: dict[str, Any] | None = None) -> str:
    """Without hosts to compare against, render what the playbook would write on each."""
    from sovdeploy import render

    out = ctx.state.root / "plan" / name
    if out.exists():
        shutil.rmtree(out)
    report = render.render(
        inv.open_ansible(ctx.inventory),
        ctx.inventory.path,
        project_root() / "playbooks" / f"{name}.yml",
        out,
        extravars,
    )
    for skipped in report.skipped:
        ctx.progress.console.print(
            f"    not rendered: {skipped.host}:{skipped.dest} ({skipped.reason})", markup=False
        )
    ctx.run.record(
        "render",
        phase=name,
        files=len(report.rendered),
        hosts=len(report.hosts),
        skipped=[f"{s.host}:{s.dest}" for s in report.skipped],
        digests={
            f"{r.host}:{r.dest}": hashlib.sha256(r.path.read_bytes()).hexdigest()
            for r in report.rendered
        },
    )
    summary = (
        f"hosts are not provisioned yet: rendered {len(report.rendered)} file(s) "
        f"for {len(report.hosts)} host(s) into {out}"
    )
    if report.skipped:
        summary += f"; {len(report.skipped)} need the host's state"
    return summary


# -- logging -----------------------------------------------------------------------


def accel_vars(ctx: Context) -> dict[str, Any]:
    """The derived plans and flavors of the deployment's hosts.

    ``accel_plans`` (one plan a host) is read by the host roles and nova; ``accel_flavors``
    are the flavors tenants ask for accelerators through.
    """
    from sovdeploy.hardware import plan

    return plan.tenancy_vars(ctx.deployment, ctx.inventory.facts)


def _accelerators(ctx: Context) -> str:
    found = accel_vars(ctx)
    if not found["accel_plans"]:
        return "no host declares GPUs, SR-IOV VFs or DPDK"
    return playbook_phase("accelerators", check=False, extravars=lambda _ctx: found)(ctx)


def logging_keys_dir(ctx: Context) -> Path:
    """Where the logging phase writes the log hosts' keys (``<host>.vkey``, witnesses', seals)."""
    return ctx.state.root / "logging" / "keys"


def logging_vars(ctx: Context) -> dict[str, Any]:
    """Pack the ledger service's code for the log hosts; say where their keys go."""
    from sovdeploy import bundle

    out = ctx.state.root / "logging"
    path = out / "sovdeploy-ledger.tar.gz"
    bundle.write(path)
    record_artifact(ctx, path)
    return {
        "logging_bundle": str(path),
        "logging_keys_dir": str(logging_keys_dir(ctx)),
        "logging_client_dir": str(ctx.state.root / ledger_forward.CLIENT_DIR),
    }


def _logging(ctx: Context) -> str:
    summary = playbook_phase("logging", check=False, extravars=logging_vars)(ctx)
    keys_dir = logging_keys_dir(ctx)
    keys = sorted(keys_dir.glob("*.vkey"))
    witnesses = [k for k in keys if k.name.endswith(".witness.vkey")]
    seals = sorted(keys_dir.glob("*.fss"))
    record_artifact(ctx, *keys, *seals)
    summary += (
        f"; in {keys_dir}: {len(keys) - len(witnesses)} log key(s), {len(witnesses)} "
        f"witness key(s), {len(seals)} journal verification key(s)"
    )
    ep = ledger_forward.endpoint(ctx.state.root)
    if ep is not None:
        record_artifact(ctx, ep.cert)
        summary += f"; the orchestrator's ledger goes to {ep.host} after each command"
    return summary


# -- openstack and verify ----------------------------------------------------------


def _has_openstack(ctx: Context) -> bool:
    return ctx.deployment.settings.endpoint is not None and any(
        "control" in h.roles for h in ctx.deployment.hosts
    )


def _openstack(ctx: Context) -> str:
    # nova reads the accelerator plans: PCI aliases and device specs, vGPU types, CPU sets.
    summary = playbook_phase("openstack", check=False, extravars=accel_vars)(ctx)
    if _has_openstack(ctx):
        clouds, secure = write_clouds(ctx, vault_values(ctx))
        record_artifact(ctx, clouds, secure)
        summary += f"; credentials in {clouds}"
    return summary


def _configured_mirror(ctx: Context) -> Path | None:
    """The provider mirror, where one is declared and on this machine."""
    try:
        mirror = _provider_mirror(ctx)
    except UsageError:
        return None
    return mirror if mirror.is_dir() else None


def tenancy_workspace(
    ctx: Context, found: dict[str, Any], mirror: Path, clouds: tuple[Path, Path]
) -> terraform.Workspace:
    """terraform/modules/tenancy, reaching the cloud as the operator does.

    ``clouds`` are the clouds.yaml and secure.yaml that ``write_clouds`` wrote.
    """
    s = ctx.deployment.settings
    return terraform.Workspace(
        workdir=ctx.state.terraform_dir("tenancy"),
        module=project_root() / "terraform" / "modules" / "tenancy",
        inputs={"flavors": found["accel_flavors"], "networks": found["accel_networks"]},
        backend=(s.terraform_backend.type, dict(s.terraform_backend.config)),
        plugin_mirror=mirror,
        env={
            "OS_CLOUD": s.deployment,
            "OS_CLIENT_CONFIG_FILE": str(clouds[0]),
            "OS_CLIENT_SECURE_FILE": str(clouds[1]),
        },
    )


def _tenancy(ctx: Context) -> str:
    if not _has_openstack(ctx):
        return "no OpenStack in this deployment"
    found = accel_vars(ctx)
    made = [f["name"] for f in found["accel_flavors"]] + [
        n["name"] for n in found["accel_networks"]
    ]
    if not made:
        return "no compute host declares GPUs or DPDK, no SR-IOV network is declared"
    mirror = _configured_mirror(ctx)
    if mirror is None:
        # No provider mirror: the same from the same data, through openstack.cloud.
        ran = playbook_phase("tenancy", check=False, extravars=lambda _ctx: found)(ctx)
        return f"{', '.join(made)} (openstack.cloud); {ran}"
    clouds = write_clouds(ctx, vault_values(ctx))
    summary = apply_workspace(ctx, tenancy_workspace(ctx, found, mirror, clouds))
    return f"{', '.join(made)} (terraform: {summary.describe()})"


def _tenancy_plan(ctx: Context) -> str:
    if not _has_openstack(ctx):
        return "no OpenStack in this deployment"
    found = accel_vars(ctx)
    flavors, networks = found["accel_flavors"], found["accel_networks"]
    for flavor in flavors:
        specs = ", ".join(f"{k}={v}" for k, v in flavor["extra_specs"].items())
        ctx.progress.console.print(
            f"    flavor {flavor['name']}: {flavor['vcpus']} vCPU, {flavor['ram']} MB, "
            f"{flavor['disk']} GB; {specs}",
            markup=False,
        )
    for net in networks:
        segment = f"vlan {net['vlan']}" if net["type"] == "vlan" else "flat"
        ctx.progress.console.print(
            f"    network {net['name']}: {net['physnet']} {segment}, subnet {net['cidr']}",
            markup=False,
        )
    path = "terraform" if _configured_mirror(ctx) else "openstack.cloud"
    return f"would ensure {len(flavors)} flavor(s), {len(networks)} network(s) ({path})"


def _kubernetes_artifacts(ctx: Context) -> list[Any]:
    from sovdeploy.kubernetes import artifacts as mirror

    return mirror.needed(mirror.load(), ctx.deployment)


def kubernetes_vars(ctx: Context) -> dict[str, Any]:
    """The artifact manifest and what the hardware says, as the kubernetes role reads them."""
    from sovdeploy import catalogue
    from sovdeploy.kubernetes import artifacts as mirror
    from sovdeploy.kubernetes import nodes

    return {
        **mirror.role_vars(mirror.load()),
        **nodes.kubernetes_vars(ctx.deployment, catalogue.for_deployment(ctx.deployment)),
        "kubernetes_kubeconfig": str(kubeconfig_path(ctx)),
    }


#: The operator's kubeconfig, in the state dir (mode 0600).
KUBECONFIG = Path("kubernetes") / "admin.conf"


def kubeconfig_path(ctx: Context) -> Path:
    """Where `up` writes the operator's kubeconfig."""
    return ctx.state.root / KUBECONFIG


def _kubernetes(ctx: Context) -> str:
    if not _kubernetes_artifacts(ctx):
        return "no Kubernetes hosts in this deployment"
    summary = playbook_phase("kubernetes", check=False, extravars=kubernetes_vars)(ctx)
    config = kubeconfig_path(ctx)
    if config.exists():
        record_artifact(ctx, config)
        summary += f"; the operator's kubeconfig is {config}"
    return summary


def _kubernetes_plan(ctx: Context) -> str:
    from sovdeploy.kubernetes import artifacts as mirror

    needed = _kubernetes_artifacts(ctx)
    if not needed:
        return "no Kubernetes hosts in this deployment"
    mirrors = mirror.sources(ctx.deployment)
    for a in needed:
        ctx.progress.console.print(
            f"    {a.kind:<5} {a.name} {a.version} ({a.needed_on}) {a.digest}", markup=False
        )
        where = mirror.location(a, mirrors) or f"no {mirror.SOURCE_OF[a.kind]} source declared"
        ctx.progress.console.print(f"          from {where}", markup=False)
    d = ctx.deployment
    rendered = playbook_phase("kubernetes", check=True, extravars=kubernetes_vars)(ctx)
    return (
        f"Kubernetes {mirror.load().kubernetes_version} on {len(d.hosts_in('k8s_control'))} "
        f"control and {len(d.hosts_in('k8s_worker'))} worker host(s): {len(needed)} pinned "
        f"artifact(s) from the inventory's mirrors; `up` checks each digest before any host; "
        f"{rendered}"
    )


def vault_values(ctx: Context) -> dict[str, Any]:
    """The deployment's secrets, decrypted (never logged, never recorded)."""
    password_file = ctx.inventory.vault_password_file
    if password_file is None:
        raise UsageError("the inventory has no vault; run `sovdeploy secrets generate`")
    return secrets.decrypt(
        secrets.vault_file(ctx.inventory.path), secrets.read_password(password_file)
    )


def write_clouds(ctx: Context, values: dict[str, Any]) -> tuple[Path, Path]:
    """clouds.yaml and secure.yaml for the operator, from the vault's admin password."""
    from sovdeploy import verify

    s = ctx.deployment.settings
    assert s.endpoint is not None
    return verify.write_clouds_yaml(
        ctx.state.root,
        cloud=s.deployment,
        endpoint=s.endpoint.name or str(s.endpoint.address),
        region=s.region,
        ca_file=ctx.state.root / "pki" / "ca.crt",
        password=str(values["keystone_admin_password"]),
    )


def _served_size(log_host: ledger_forward.Endpoint, wait: float = 60) -> int | str:
    """Where the log host's ledger ends, or why it cannot be read.

    Tried for ``wait`` seconds: the service may be restarting as the logging phase
    leaves it (a log host that has to catch up on every host's journal first is slow).
    """
    deadline = time.monotonic() + wait
    while True:
        try:
            return ledger_forward.served_size(log_host)
        except (LedgerError, OSError, ValueError) as exc:
            if time.monotonic() >= deadline:
                return f"its ledger could not be read before the checks: {exc}"
            time.sleep(3)


def _audit_trail_check(
    log_host: ledger_forward.Endpoint, start: int | str, server_id: str, timeout: float = 120
) -> Any:
    """The log host's ledger holds the CADF events of verify's requests for its server.

    ``start``: where the log ended before the requests, or why it could not be read.
    """
    from sovdeploy import verify

    started = time.monotonic()
    seen: set[str] = set()
    wanted = {"audit.http.request", "audit.http.response"}
    problem = start if isinstance(start, str) else ""
    while isinstance(start, int):
        try:
            start, recs = ledger_forward.served_records(log_host, start)
        except (LedgerError, OSError, ValueError) as exc:
            problem = f"its ledger cannot be read: {exc}"
            break
        seen |= {
            str(r.get("event_type"))
            for r in recs
            if r.get("kind") == "cadf" and server_id in str(r.get("payload", {}).get("requestPath"))
        }
        if wanted <= seen or time.monotonic() - started > timeout:
            break
        time.sleep(3)
    ok = wanted <= seen
    if ok:
        detail = f"{log_host.host} holds the request and response events of /servers/{server_id}"
    else:
        found = ", ".join(sorted(seen)) or "no"
        detail = (
            f"{log_host.host}: {problem}"
            if problem
            else f"{log_host.host} holds {found} CADF event(s) for /servers/{server_id}"
        )
    return verify.Check(
        "the API calls reached the log host as CADF events",
        ok,
        time.monotonic() - started,
        detail,
    )


def _leak_check(ctx: Context, values: dict[str, Any]) -> Any:
    """No generated secret appears in a run record, an ansible-runner artifact or the ledger."""
    from sovdeploy import verify

    started = time.monotonic()
    leaks = secrets.scan(ctx.state.root / "runs", values)
    leaks += secrets.scan(ctx.state.root / "ledger", values)
    names = sorted({name for name, _ in leaks})
    detail = (
        f"{len(leaks)} file(s) hold {', '.join(names)}; first: {leaks[0][1]}"
        if leaks
        else f"{len(values)} secrets, none found"
    )
    return verify.Check(
        "no secret in any run record or the ledger",
        not leaks,
        time.monotonic() - started,
        detail,
    )


def _verify(ctx: Context) -> str:
    from sovdeploy import guest, verify

    if not _has_openstack(ctx):
        return "no OpenStack in this inventory (no endpoint or no control hosts): nothing to verify"
    s = ctx.deployment.settings
    values = vault_values(ctx)
    clouds, secure = write_clouds(ctx, values)
    if not sandbox.image_exists(s.sandbox.image):
        ctx.progress.step("building the sandbox base image (for the guest image)")
        sandbox.build_image(_apt_mirror(ctx), log=ctx.progress.step)
    ctx.progress.step("building the guest image")
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "sovdeploy"
    apt_cache = Path(s.sandbox.apt_cache) / "guest-image" if s.sandbox.apt_cache else None
    image = guest.build(cache, s.sandbox.image, apt_cache)

    def report(check: verify.Check) -> None:
        mark = "pass" if check.ok else "FAIL"
        detail = f": {check.detail}" if check.detail else ""
        ctx.progress.note(f"{mark} {check.name} ({check.seconds:.1f}s){detail}", check.ok)
        ctx.run.record(
            "verify_check", check=check.name, ok=check.ok, seconds=round(check.seconds, 2)
        )

    conn = verify.connect(clouds, secure, s.deployment)
    log_host = ledger_forward.endpoint(ctx.state.root)
    log_start = _served_size(log_host) if log_host else 0
    verifier = verify.Verifier(conn, image, f"sovdeploy-verify-{ctx.run.id[-6:]}-", report)
    result = verifier.run()
    server = verifier.made.get("server")
    if log_host is not None and server is not None:
        result.checks.append(_audit_trail_check(log_host, log_start, str(server.id)))
        report(result.checks[-1])
    result.checks.append(_leak_check(ctx, values))
    report(result.checks[-1])
    failed = [c for c in result.checks if not c.ok]
    if failed:
        raise verify.VerifyError(
            "verify failed: " + "; ".join(f"{c.name}: {c.detail}" for c in failed)
        )
    return f"{len(result.checks)} check(s) passed"


# -- runbook -------------------------------------------------------------------


def gather_runbook_facts(ctx: Context) -> dict[str, Any]:
    """Read every host's stores, packages and images, and the deployer's stores.

    Read-only. A host that does not answer is recorded as such (its stores unreadable)
    rather than failing the command: the runbook must say what it could not read.
    """
    from sovdeploy.errors import AnsibleRunError
    from sovdeploy.hostside import probe
    from sovdeploy.runbook import facts, stores

    asked = facts.probe_stores(stores.data_stores(ctx.deployment))
    incoming = ctx.run.path / "runbook-facts"
    incoming.mkdir(parents=True, exist_ok=True)

    ctx.progress.step("reading every host's data stores, packages and images")
    try:
        run_tool_playbook(
            ctx,
            "runbook",
            {
                "runbook_reader": probe.__file__,
                "runbook_dir": str(incoming),
                "runbook_stores": asked,
            },
        )
    except AnsibleRunError as exc:
        # What answered is kept; the rest is named unreadable in the document.
        ctx.progress.note(f"not every host answered: {exc}", ok=False)
    probed = {path.stem: json.loads(path.read_text()) for path in sorted(incoming.glob("*.json"))}
    found = facts.assemble(
        ctx.deployment,
        asked,
        probed,
        facts.local(ctx.state, ctx.inventory.path),
        facts.stamp(),
        addresses={
            **{h.name: h.address for h in ctx.deployment.hosts if h.address},
            **ctx.state.provisioned_addresses(),
        },
    )
    facts.save(ctx.state, found)
    return found


def write_runbook(ctx: Context, *, gather: bool = True) -> list[Path]:
    """Write the runbook into the state dir and record its files' digests in the ledger.

    Raises:
        UsageError: without ``gather``, when no facts have been gathered yet.

    """
    from sovdeploy.runbook import document, facts

    found = gather_runbook_facts(ctx) if gather else facts.load(ctx.state)
    if found is None:
        raise UsageError(
            "no facts gathered for this deployment yet: run `sovdeploy runbook` without "
            "--no-gather first"
        )
    directory = ctx.state.root / "runbook"
    runbook = document.build(
        ctx.deployment,
        list(ctx.inventory.findings),
        found,
        document.load_drill(directory),
        inventory=str(ctx.inventory.path),
        state=str(ctx.state.root),
    )
    paths = document.write(directory, runbook)
    ctx.run.record("runbook_written", directory=str(directory), sha256=runbook.digests())
    return paths


def _runbook(ctx: Context) -> str:
    paths = write_runbook(ctx)
    return f"runbook in {paths[0].parent} ({', '.join(p.name for p in paths[:3])})"


# -- the table ------------------------------------------------------------------

PHASES: tuple[Phase, ...] = (
    Phase(
        "preflight",
        "check tools, policy and prerequisites; touch nothing",
        _preflight,
        _preflight_plan,
        always=True,
    ),
    Phase("provision", "create or enroll the hosts (Terraform)", _provision, _provision_plan),
    Phase(
        "baseline",
        "apt sources, time, sysctl and identity on every host (Ansible)",
        playbook_phase("baseline", check=False),
        playbook_phase("baseline", check=True),
    ),
    Phase(
        "accelerators",
        "kernel command line, vfio, hugepages and SR-IOV VFs on accelerated hosts (Ansible)",
        _accelerators,
        playbook_phase("accelerators", check=True, extravars=accel_vars),
    ),
    Phase(
        "openstack",
        "CA, MariaDB, RabbitMQ, memcached, HAProxy and the OpenStack services (Ansible)",
        _openstack,
        playbook_phase("openstack", check=True, extravars=accel_vars),
    ),
    Phase(
        "tenancy",
        "flavors for the GPUs, vGPU types and DPDK hosts; SR-IOV networks (Terraform or Ansible)",
        _tenancy,
        _tenancy_plan,
    ),
    Phase(
        "kubernetes",
        "a kubeadm cluster from pinned artifacts: containerd, the cluster's CAs and API "
        "server policy, the API address, init and join, Cilium, the device plugins (Ansible)",
        _kubernetes,
        _kubernetes_plan,
    ),
    Phase(
        "logging",
        "the ledger service on the log hosts; every host's journal shipped to it (Ansible)",
        _logging,
        playbook_phase("logging", check=True, extravars=logging_vars),
    ),
    Phase(
        "verify",
        "use the cloud as a new user would: token, catalog, image, network, server, volume",
        _verify,
        lambda ctx: "verify runs against a deployed cloud only",
    ),
    Phase(
        "runbook",
        "the exit and portability runbook: data stores, exports, SBOM, register (Markdown, HTML)",
        _runbook,
        lambda ctx: "the runbook is written from a deployed site's hosts",
    ),
)
PHASE_NAMES = tuple(p.name for p in PHASES)


def source_digest(inventory: LoadedInventory) -> str:
    """Digest of everything a phase's result depends on: the inventory and our own code."""
    root = project_root()
    files = [
        f
        for d in ("roles", "playbooks", "terraform/modules")
        for f in sorted((root / d).rglob("*"))
        if f.is_file() and ".terraform" not in f.parts and "molecule" not in f.parts
    ]
    return digest_files(files, root) + ":" + inventory.digest


def select(
    done: dict[str, PhaseRecord],
    digest: str,
    start: str | None,
    only: str | None,
) -> Iterator[tuple[Phase, bool]]:
    """Yield each phase with whether it must run this time."""
    for name in (start, only):
        if name is not None and name not in PHASE_NAMES:
            raise UsageError(f"unknown phase '{name}'; phases: {', '.join(PHASE_NAMES)}")
    started = start is None
    # Once a phase runs, every later one runs too: its input (the hosts) may have changed.
    cascade = False
    for phase in PHASES:
        started = started or phase.name == start
        if only is not None:
            yield phase, phase.name == only or phase.always
        elif start is not None:
            yield phase, started or phase.always
        else:
            rec = done.get(phase.name)
            fresh = rec is not None and rec.status == "done" and rec.digest == digest
            needed = phase.always or cascade or not fresh
            cascade = cascade or (needed and not phase.always)
            yield phase, needed


def up(ctx: Context, start: str | None = None, only: str | None = None) -> list[str]:
    """Run the selected phases in order; return the names of those run."""
    digest = source_digest(ctx.inventory)
    done = ctx.state.phases()
    ran = []
    for phase, needed in list(select(done, digest, start, only)):
        if not needed:
            ctx.progress.console.print(f"[dim]✔ {phase.name}: done earlier, inputs unchanged[/dim]")
            continue
        # A phase that starts is no longer done until it ends: a failure or Ctrl-C
        # leaves it marked so, and the next run does it again.
        ctx.state.mark(phase.name, PhaseRecord("running", None, ctx.run.id, digest))
        try:
            _run_phase(ctx, phase, phase.apply)
        except InterruptedRunError:
            ctx.state.mark(phase.name, PhaseRecord("interrupted", now(), ctx.run.id, digest))
            raise
        except Exception:
            ctx.state.mark(phase.name, PhaseRecord("failed", now(), ctx.run.id, digest))
            raise
        ctx.state.mark(phase.name, PhaseRecord("done", now(), ctx.run.id, digest))
        ran.append(phase.name)
    return ran


def plan(ctx: Context, phases: Sequence[Phase] = PHASES) -> None:
    for phase in phases:
        _run_phase(ctx, phase, phase.plan, mode="plan")


def _run_phase(ctx: Context, phase: Phase, fn: Callable[[Context], str], mode: str = "up") -> None:
    ctx.progress.phase_start(phase.name, phase.description)
    ctx.run.record("phase_start", phase=phase.name, mode=mode)
    started = time.monotonic()
    try:
        summary = fn(ctx)
    except BaseException as exc:
        ctx.progress.phase_end(False)
        ctx.run.record(
            "phase_end",
            phase=phase.name,
            mode=mode,
            status="failed",
            error=type(exc).__name__,
            seconds=round(time.monotonic() - started, 2),
        )
        raise
    ctx.progress.phase_end(True, summary)
    ctx.run.record(
        "phase_end",
        phase=phase.name,
        mode=mode,
        status="done",
        summary=summary,
        seconds=round(time.monotonic() - started, 2),
    )


def down(ctx: Context) -> None:
    """Destroy what the provision phase created; forget every phase."""
    ws = workspace(ctx)
    if not (ws.workdir / "main.tf.json").exists():
        ctx.progress.console.print("nothing was provisioned for this deployment")
    else:
        ctx.progress.phase_start("down", "destroy what Terraform created")
        terraform.init(ws, on_line=ctx.progress.step)
        terraform.destroy(ws, on_line=ctx.progress.step)
        ctx.run.record("terraform_destroy", module=ws.module.name)
        ctx.progress.phase_end(True)
    ctx.state.generated_inventory.unlink(missing_ok=True)
    # The log host went with the rest; an enrolled one gets a new endpoint from the
    # next logging phase.
    ledger_forward.forget(ctx.state.root)
    ctx.state.reset()
