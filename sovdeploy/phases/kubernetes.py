"""kubernetes: a kubeadm cluster from pinned artifacts, its add-ons, the operator's kubeconfig."""

from __future__ import annotations

from typing import Any

from sovdeploy import catalogue
from sovdeploy.context import Context
from sovdeploy.kubernetes import artifacts, nodes
from sovdeploy.steps.mirror import check_kubernetes_mirrors, mirror_service, start_mirror_service
from sovdeploy.steps.playbooks import playbook_phase


def needed_artifacts(ctx: Context) -> list[artifacts.Artifact]:

    return artifacts.needed(artifacts.load(), ctx.deployment)


def kubernetes_vars(ctx: Context) -> dict[str, Any]:
    """The artifact manifest and what the hardware says, as the kubernetes role reads them."""
    return {
        **artifacts.role_vars(artifacts.load()),
        **nodes.kubernetes_vars(ctx.deployment, catalogue.for_deployment(ctx.deployment)),
        "kubernetes_kubeconfig": str(ctx.state.kubeconfig),
    }


def run(ctx: Context) -> str:
    if not needed_artifacts(ctx):
        return "no Kubernetes hosts in this deployment"
    service = mirror_service(ctx)
    if service is not None:
        # The hosts fetch from the deployer's mirror: it runs before they are asked to.
        ctx.progress.step(f"mirror service {service.files_url}, {service.registry_url}")
        start_mirror_service(ctx, service)
        # Every artifact the hosts will fetch, by digest, before any host is touched.
        checked = check_kubernetes_mirrors(ctx)
        ctx.progress.note(f"the mirror service holds all {checked} Kubernetes artifact(s)", True)
    summary = playbook_phase("kubernetes", check=False, extravars=kubernetes_vars)(ctx)
    config = ctx.state.kubeconfig
    if config.exists():
        ctx.record_artifact(config)
        summary += f"; the operator's kubeconfig is {config}"
    return summary


def plan(ctx: Context) -> str:

    needed = needed_artifacts(ctx)
    if not needed:
        return "no Kubernetes hosts in this deployment"
    mirrors = artifacts.sources(ctx.deployment)
    for a in needed:
        ctx.progress.console.print(
            f"    {a.kind:<5} {a.name} {a.version} ({a.needed_on}) {a.digest}", markup=False
        )
        where = (
            artifacts.location(a, mirrors) or f"no {artifacts.SOURCE_OF[a.kind]} source declared"
        )
        ctx.progress.console.print(f"          from {where}", markup=False)
    d = ctx.deployment
    rendered = playbook_phase("kubernetes", check=True, extravars=kubernetes_vars)(ctx)
    return (
        f"Kubernetes {artifacts.load().kubernetes_version} on {len(d.hosts_in('k8s_control'))} "
        f"control and {len(d.hosts_in('k8s_worker'))} worker host(s): {len(needed)} pinned "
        f"artifact(s) from the inventory's mirrors; `up` checks each digest before any host; "
        f"{rendered}"
    )
