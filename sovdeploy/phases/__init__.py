"""The ordered phase table and the resume logic; one module a phase beside it.

A phase is one Terraform module apply or one playbook run (preflight aside, which
only checks). ``up`` runs the phases in order and records each one done together
with the digest of its inputs (the inventory and sovdeploy's own roles, playbooks
and modules). A later ``up`` skips the phases done for the same digest, so it
resumes after an interruption or failure; a changed digest starts again from the
first phase, and every phase is idempotent, so nothing done is lost.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from sovdeploy.context import Context
from sovdeploy.engines import terraform
from sovdeploy.errors import InterruptedRunError, UsageError
from sovdeploy.inventory import LoadedInventory, digest_files
from sovdeploy.ledger import forward as ledger_forward
from sovdeploy.model import Provisioner
from sovdeploy.paths import project_root
from sovdeploy.phases import (
    accelerators,
    kubernetes,
    logging,
    openstack,
    preflight,
    provision,
    runbook,
    tenancy,
    verify,
)
from sovdeploy.state import PhaseRecord, PhaseState, now
from sovdeploy.steps import workspaces
from sovdeploy.steps.mirror import mirror_service
from sovdeploy.steps.playbooks import playbook_phase
from sovdeploy.supply import serve


@dataclass(frozen=True)
class Phase:
    name: str
    description: str
    apply: Callable[[Context], str]
    plan: Callable[[Context], str]
    always: bool = False


PHASES: tuple[Phase, ...] = (
    Phase(
        "preflight",
        "check tools, policy and prerequisites; touch nothing",
        preflight.run,
        preflight.plan,
        always=True,
    ),
    Phase(
        "provision",
        "create the sandbox hosts (OpenTofu) or enroll and deploy bare metal (Ironic)",
        provision.run,
        provision.plan,
    ),
    Phase(
        "baseline",
        "apt sources, time, sysctl and identity on every host (Ansible)",
        playbook_phase("baseline", check=False),
        playbook_phase("baseline", check=True),
    ),
    Phase(
        "accelerators",
        "kernel command line, vfio, hugepages and SR-IOV VFs on accelerated hosts (Ansible)",
        accelerators.run,
        playbook_phase("accelerators", check=True, extravars=accelerators.accel_vars),
    ),
    Phase(
        "openstack",
        "CA, MariaDB, RabbitMQ, memcached, HAProxy and the OpenStack services (Ansible)",
        openstack.run,
        playbook_phase("openstack", check=True, extravars=accelerators.accel_vars),
    ),
    Phase(
        "tenancy",
        "standard and accelerator flavors; SR-IOV networks (OpenTofu or Ansible)",
        tenancy.run,
        tenancy.plan,
    ),
    Phase(
        "kubernetes",
        "a kubeadm cluster from pinned artifacts: containerd, the cluster's CAs and API "
        "server policy, the API address, init and join, the pod network, the device plugins "
        "(Ansible)",
        kubernetes.run,
        kubernetes.plan,
    ),
    Phase(
        "logging",
        "the ledger service on the log hosts; every host's journal shipped to it (Ansible)",
        logging.run,
        playbook_phase("logging", check=True, extravars=logging.logging_vars),
    ),
    Phase(
        "verify",
        "use the cloud as a new user would: token, catalog, image, network, server, volume",
        verify.run,
        lambda ctx: "verify runs against a deployed cloud only",
    ),
    Phase(
        "runbook",
        "the exit and portability runbook: data stores, exports, SBOM, register (Markdown, HTML)",
        runbook.run,
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
            fresh = rec is not None and rec.status == PhaseState.DONE and rec.digest == digest
            needed = phase.always or cascade or not fresh
            cascade = cascade or (needed and not phase.always)
            yield phase, needed


@dataclass(frozen=True)
class PhaseStatus:
    """What `status` says of a phase: the same rule `up` follows to choose what to run."""

    phase: str
    status: str
    finished: str | None
    run: str | None


def status(done: dict[str, PhaseRecord], digest: str) -> list[PhaseStatus]:
    """Each phase's state, and whether the next ``up`` runs it again, by :func:`select`."""
    rows = []
    for phase, needed in select(done, digest, None, None):
        rec = done.get(phase.name)
        if rec is None:
            label = "pending"
        elif rec.digest != digest:
            label = "stale (inputs changed)"
        elif rec.status != PhaseState.DONE:
            label = rec.status
        elif needed and not phase.always:
            label = "done; runs again (an earlier phase runs)"
        else:
            label = "done"
        rows.append(
            PhaseStatus(
                phase.name, label, rec.finished if rec else None, rec.run_id if rec else None
            )
        )
    return rows


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
        ctx.state.mark(phase.name, PhaseRecord(PhaseState.RUNNING, None, ctx.run.id, digest))
        try:
            _run_phase(ctx, phase, phase.apply)
        except InterruptedRunError:
            ctx.state.mark(
                phase.name, PhaseRecord(PhaseState.INTERRUPTED, now(), ctx.run.id, digest)
            )
            raise
        except Exception:
            ctx.state.mark(phase.name, PhaseRecord(PhaseState.FAILED, now(), ctx.run.id, digest))
            raise
        ctx.state.mark(phase.name, PhaseRecord(PhaseState.DONE, now(), ctx.run.id, digest))
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
    if ctx.deployment.settings.provisioner is not Provisioner.SANDBOX:
        raise UsageError(
            "`down` destroys sandbox hosts only: bare-metal servers stay deployed. Release "
            "one with `openstack baremetal node undeploy HOST` (Ironic cleans it), then "
            "`openstack baremetal node delete HOST`"
        )
    ws = workspaces.workspace(ctx)
    if not (ws.workdir / "main.tf.json").exists():
        ctx.progress.console.print("nothing was provisioned for this deployment")
    else:
        ctx.progress.phase_start("down", "destroy what Terraform created")
        terraform.init(ws, on_line=ctx.progress.step)
        terraform.destroy(ws, on_line=ctx.progress.step)
        ctx.run.record("terraform_destroy", module=ws.module.name)
        ctx.progress.phase_end(True)
    service = mirror_service(ctx)
    if service is not None and serve.stop(service):
        ctx.run.record("mirror_service", action="stop")
    ctx.state.generated_inventory.unlink(missing_ok=True)
    # The log host went with the rest; an enrolled one gets a new endpoint from the
    # next logging phase.
    ledger_forward.forget(ctx.state.root)
    ctx.state.reset()
