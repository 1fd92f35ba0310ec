"""The mirror service the hosts fetch from: started, published into, stopped."""

from __future__ import annotations

from sovdeploy.context import Context
from sovdeploy.steps.credentials import vault_values
from sovdeploy.supply import serve
from sovdeploy.supply.recipes import load as load_recipes

__all__ = ["mirror_service", "start_mirror_service"]


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
