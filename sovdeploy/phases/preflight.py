"""preflight: check tools, policy and prerequisites; touch nothing."""

from __future__ import annotations

import shutil
from pathlib import Path

from sovdeploy import sandbox
from sovdeploy.context import Context
from sovdeploy.engines import terraform
from sovdeploy.errors import UsageError
from sovdeploy.kubernetes import artifacts
from sovdeploy.model import Provisioner
from sovdeploy.paths import project_root
from sovdeploy.steps import workspaces
from sovdeploy.steps.credentials import apt_mirror, bmc_credentials_problem, ensure_ssh_key
from sovdeploy.steps.mirror import check_kubernetes_mirrors, mirror_service


def run(ctx: Context) -> str:
    """Checks that touch nothing: tools present, sandbox image and SSH key ready."""
    engine = workspaces.engine(ctx)
    ctx.progress.note(f"IaC engine: {engine.describe()}", True)
    ctx.run.record("iac_engine", name=engine.name, version=engine.version, path=engine.path)
    _check_locked_providers(ctx)
    if ctx.deployment.settings.provisioner is Provisioner.SANDBOX:
        for tool in ("podman", "ssh-keygen"):
            if shutil.which(tool) is None:
                raise UsageError(f"`{tool}` is not installed; `make up` installs it (make deps)")
        ensure_ssh_key(ctx.state)
        sb = ctx.deployment.settings.sandbox
        if not sandbox.image_exists(sb.image):
            ctx.progress.step("building the sandbox image")
            sandbox.build_image(apt_mirror(ctx.deployment), log=ctx.progress.step)
        if sb.vms:
            for tool in ("qemu-system-x86_64", "qemu-img"):
                if shutil.which(tool) is None:
                    raise UsageError(
                        f"`{tool}` is not installed, and sovdeploy_sandbox.vms names hosts "
                        "that run as virtual machines; `make up` installs it (make deps)"
                    )
            if not (Path(sb.vm_image) / "disk.qcow2").exists():
                ctx.progress.step("building the virtual machine image")
                sandbox.build_vm_image(apt_mirror(ctx.deployment), log=ctx.progress.step)
    else:
        ensure_ssh_key(ctx.state)
        # Bare metal: the BMC credentials must all be in the vault before Ironic is asked.
        bmc_credentials_problem(ctx)
    waived = [f for f in ctx.inventory.findings if f.severity == "info"]
    summary = f"policy clean, {len(waived)} waiver(s) in force"
    if mirror_service(ctx) is not None and artifacts.needed(artifacts.load(), ctx.deployment):
        # The deployer serves the mirrors itself: checked once the kubernetes phase has
        # started the service, before any Kubernetes host is touched.
        summary += "; the Kubernetes artifacts are checked when their mirror service starts"
    else:
        checked = check_kubernetes_mirrors(ctx)
        if checked:
            summary += f"; the mirrors hold all {checked} Kubernetes artifact(s)"
    return summary


def _check_locked_providers(ctx: Context) -> None:
    """The provider mirror holds what each module's lock file pins, byte for byte."""
    mirror = workspaces.configured_mirror(ctx)
    if mirror is None:
        return
    modules = [project_root() / "terraform" / "modules" / "tenancy"]
    problems = [
        p
        for module in modules
        if (lock := workspaces.lock_file(module)) is not None
        for p in terraform.check_locked(lock, mirror)
    ]
    if problems:
        raise UsageError(
            "the provider mirror does not hold what the modules' lock files pin; nothing "
            "was touched:\n  "
            + "\n  ".join(problems)
            + "\nRebuild it (`sovdeploy mirror build`) or, after reviewing a new provider "
            "release, update the lock files (docs/supply.md)."
        )
    ctx.progress.note(f"provider mirror {mirror}: every locked provider hash matches", True)


def plan(ctx: Context) -> str:
    engine = workspaces.engine(ctx)
    return f"inventory and jurisdiction policy checked; {engine.describe()}"
