"""The mirror service the hosts fetch from: started, published into, stopped."""

from __future__ import annotations

from sovdeploy.context import Context
from sovdeploy.kubernetes import artifacts
from sovdeploy.steps.credentials import vault_values
from sovdeploy.supply import serve
from sovdeploy.supply.recipes import load as load_recipes

__all__ = ["check_kubernetes_mirrors", "mirror_service", "start_mirror_service"]


def mirror_service(ctx: Context) -> serve.Service | None:
    """The inventory's mirror service, where it declares one."""
    return serve.of_deployment(ctx.deployment, ctx.state.root)


def start_mirror_service(ctx: Context, service: serve.Service) -> list[str]:
    """Start the service with a certificate of the deployment's CA; publish the images."""
    values = vault_values(ctx)
    started = serve.start(
        service,
        ca_key_pem=str(values["pki_ca_private_key"]),
        ca_common_name=f"{ctx.deployment.settings.deployment} internal CA",
        ca_path=ctx.state.root / "pki" / "ca.crt",
    )
    serve.publish(service, load_recipes().recipes)
    return started


def check_kubernetes_mirrors(ctx: Context) -> int:
    """Verify the mirrors hold every Kubernetes artifact the hosts need; return how many.

    Raises:
        MirrorError: naming each artifact that is missing or not the pinned one.

    """
    needed = artifacts.needed(artifacts.load(), ctx.deployment)
    if not needed:
        return 0

    def done(r: artifacts.CheckResult) -> None:
        ctx.progress.note(
            f"{r.artifact.kind} {r.artifact.name} {r.artifact.version}: {r.detail}", r.ok
        )

    results = artifacts.check(
        needed,
        artifacts.sources(ctx.deployment),
        on_result=done,
        on_start=lambda a: ctx.progress.step(f"mirror check: {a.kind} {a.name}"),
        ca_file=ctx.state.root / "pki" / "ca.crt",
    )
    ctx.run.record(
        "mirror_check",
        artifacts=len(results),
        failed=[r.artifact.name for r in results if not r.ok],
    )
    artifacts.require_all(
        results,
        "Kubernetes artifact(s)",
        "; nothing was touched (see `sovdeploy mirror check`)",
    )
    return len(results)
