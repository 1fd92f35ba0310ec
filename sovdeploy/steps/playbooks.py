"""Playbook runs: a phase's, a tool's (discover, runbook, the drill), or a rendered preview."""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from sovdeploy import inventory as inv
from sovdeploy import preview
from sovdeploy.context import Context
from sovdeploy.engines import ansible
from sovdeploy.hardware import facts as discover
from sovdeploy.hostside import sysfs
from sovdeploy.paths import project_root


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
            return preview_playbook(ctx, name, extravars(ctx) if extravars else None)
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


def preview_playbook(ctx: Context, name: str, extravars: dict[str, Any] | None = None) -> str:
    """Without hosts to compare against, render what the playbook would write on each."""
    out = ctx.state.root / "plan" / name
    if out.exists():
        shutil.rmtree(out)
    report = preview.render(
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
