"""`sovdeploy mirror`: the pinned artifacts, what is built from source, and the mirrors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.markup import escape

from sovdeploy import inventory as inv
from sovdeploy import options, session
from sovdeploy.cli.base import err, handle_errors, main, out
from sovdeploy.errors import UsageError
from sovdeploy.kubernetes import artifacts as mir
from sovdeploy.state import StateDir
from sovdeploy.steps import mirror as mirror_steps
from sovdeploy.supply import build as supply_build
from sovdeploy.supply import recipes, serve


@main.group()
def mirror() -> None:
    """The pinned artifacts, what is built from source, and the inventory's mirrors."""


@mirror.command("build")
@options.inventory
@click.option(
    "--artifact", "names", multiple=True, metavar="NAME", help="Build only this recipe; repeat."
)
@options.verbose
@handle_errors
def mirror_build(inventory: Path, names: tuple[str, ...], verbose: int) -> None:
    """Build from pinned source what the deployment needs and the inventory asks to build.

    Modules come through the inventory's Go source, checked against the pinned go.sum,
    and an image's Debian base packages through its apt source, checked against their
    pinned sha256; each artifact is built reproducibly, published with its provenance statement into
    the tree `sovdeploy_supply.dir` names, and its digest appended to the ledger. An
    artifact already built from the same inputs is reused. Touches no host.
    """
    with session.open_session(
        inventory, verbose, "mirror build", secrets="skip", hardware=False, console=out, err=err
    ) as ctx:
        supply = recipes.load()
        if names:
            chosen = supply.with_inputs(supply.get(n) for n in names)
        else:
            groups = supply_build.needed_groups(ctx.deployment)
            chosen = supply.in_groups(groups)
        if not chosen:
            out.print(
                f"{ctx.deployment.name}: nothing to build from source "
                f"(sovdeploy_supply.build: {list(ctx.deployment.settings.supply.build)})"
            )
            return
        where = supply_build.tree(ctx.deployment)
        env = supply_build.go_env(ctx.deployment, supply)
        built = supply_build.build(
            supply,
            chosen,
            where=where,
            env=env,
            progress=ctx.progress,
            run=ctx.run,
            apt=supply_build.apt_sources(ctx.deployment),
        )
    fresh = [b for b in built if not b.cached]
    out.print(
        f"[green]mirror built[/green]: {len(built)} artifact(s) in {where.root} "
        f"({len(fresh)} built, {len(built) - len(fresh)} cached)"
    )
    for b in built:
        took = "cached" if b.cached else f"{b.seconds:.0f}s"
        out.print(
            f"  {b.recipe.name:<28} {b.recipe.version:<9} sha256:{b.sha256}  {took:>7}  "
            f"{b.upstream}",
            markup=False,
            highlight=False,
        )


@mirror.command("serve")
@options.inventory
@click.option("--stop", is_flag=True, help="Stop the service instead.")
@options.verbose
@handle_errors
def mirror_serve(inventory: Path, stop: bool, verbose: int) -> None:
    """Serve the mirror tree to the hosts over HTTPS, with the deployment's CA.

    Starts (where they do not run) Debian's docker-registry with the built images pushed
    into it under their upstream names, and an HTTPS server of the tree's files and
    provider mirror, both on `sovdeploy_supply.serve`'s address with a certificate the
    deployment's CA issued; then fetches every built artifact back through them and
    compares it with the tree. `--stop` stops them (`sovdeploy down` does too).
    """
    secrets = "skip" if stop else "check"
    with session.open_session(
        inventory, verbose, "mirror serve", secrets=secrets, hardware=False, console=out, err=err
    ) as ctx:
        service = mirror_steps.mirror_service(ctx)
        if service is None:
            raise UsageError(
                f"{ctx.deployment.name} declares no mirror service: set "
                "sovdeploy_supply.serve.address (the deployer's address the hosts reach)"
            )
        if stop:
            stopped = serve.stop(service)
            ctx.run.record("mirror_service", action="stop", stopped=stopped)
            out.print(f"mirror service: stopped {', '.join(stopped) or 'nothing (not running)'}")
            return
        ctx.progress.phase_start("mirror serve", f"{service.files_url}, {service.registry_url}")
        ok = False
        try:
            started = mirror_steps.start_mirror_service(ctx, service)
            served = serve.check(service, recipes.load().recipes)
            ok = all(r.ok for r in served)
        finally:
            ctx.progress.phase_end(ok, "" if ok else "see above")
        ctx.run.record(
            "mirror_service",
            action="start",
            started=started,
            files=service.files_url,
            registry=service.registry_url,
            served=[{"name": r.recipe.name, "ok": r.ok, "url": r.url} for r in served],
        )
    for r in served:
        mark = "[green]ok[/green]  " if r.ok else "[red]FAIL[/red]"
        out.print(f"{mark} {escape(r.recipe.name)}: {escape(r.detail)}  [dim]{escape(r.url)}[/dim]")
    if not ok:
        raise mir.MirrorError("the mirror service does not serve what the tree holds")
    out.print(
        f"[green]mirror served[/green]: files {service.files_url}, registry "
        f"{service.registry_url} ({len(served)} artifact(s) verified through them; CA "
        f"{service.ca_file})"
    )


def _artifact_json(artifact: Any, url: str | None) -> dict[str, Any]:
    return {**artifact.model_dump(mode="json", by_alias=True), "mirror_url": url}


@mirror.command("path")
@options.inventory
@click.argument("name")
@handle_errors
def mirror_path(inventory: Path, name: str) -> None:
    """Print where the built artifact NAME lies, once its bytes match its provenance."""
    deployment = inv.load(inventory, hardware=False).deployment
    recipe = recipes.load().get(name)
    click.echo(str(supply_build.tree(deployment).verified(recipe)))


@mirror.command("list")
@options.inventory
@options.as_json
@handle_errors
def mirror_list(inventory: Path, as_json: bool) -> None:
    """Print every artifact: version, digest, upstream origin, and where the mirror must hold it.

    Then every recipe built from pinned source: its Go module and version, and where the
    inventory's tree holds it (with its sha256 once built). An operator fills an
    in-jurisdiction mirror from this list; the roles install nothing else.
    """
    manifest = mir.load()
    deployment = inv.load(inventory).deployment
    mirrors = mir.sources(deployment)
    where = supply_build.tree(deployment)
    built = []
    for recipe in recipes.load().recipes:
        ok, detail = where.verify(recipe)
        built.append(
            {
                **recipe.model_dump(mode="json"),
                "tree_path": str(where.target(recipe)),
                "sha256": detail.removeprefix("sha256:") if ok else None,
            }
        )
    if as_json:
        doc = {
            "kubernetes_version": manifest.kubernetes_version,
            "artifacts": [_artifact_json(a, mir.location(a, mirrors)) for a in manifest.artifacts],
            "built_from_source": built,
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
    out.print(f"Built from pinned source: {len(built)} recipe(s) ({where.root})")
    for b in built:
        state = f"sha256:{b['sha256']}" if b["sha256"] else "(not built)"
        out.print(f"{b['group']:<10} {b['name']} {b['version']} {state}", markup=False)
        out.print(f"      source:   {b['module']}@{b['version']} ({b['package']})", markup=False)


@mirror.command("check")
@options.inventory
@click.option(
    "--artifact", "names", multiple=True, metavar="NAME", help="Check only this artifact; repeat."
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
    loaded = inv.load(inventory)
    deployment = loaded.deployment
    supply = recipes.load()
    built_names = {r.name for r in supply.recipes}
    manifest = mir.load()
    if names:
        # A name both pinned and built (containerd, kubelet) is checked in the tree
        # and in the inventory's mirror; an unknown name fails in manifest.get.
        pinned = {a.name for a in manifest.artifacts}
        artifacts = [manifest.get(n) for n in names if n in pinned or n not in built_names]
        built = [supply.get(n) for n in names if n in built_names]
    elif check_all:
        artifacts, built = list(manifest.artifacts), list(supply.recipes)
    else:
        artifacts = mir.needed(manifest, deployment)
        built = list(supply.in_groups(supply_build.needed_groups(deployment)))
    failed = _check_built(built, deployment, StateDir(loaded.path).root)
    drifted = supply_build.pinned_differently(
        ((a.name, a.recipe, a.sha256) for a in manifest.artifacts if a.recipe in built_names),
        supply,
        supply_build.tree(deployment),
    )
    for problem in drifted:
        out.print(f"[red]FAIL[/red] pin {escape(problem)}")
    ca_file = StateDir(loaded.path).root / "pki" / "ca.crt"
    results = check_mirrors(artifacts, mir.sources(deployment), out, ca_file) if artifacts else []
    if failed:
        raise mir.MirrorError(
            f"the mirror tree lacks or does not vouch for: {', '.join(failed)}; "
            "run `sovdeploy mirror build`"
        )
    if drifted:
        raise mir.MirrorError(
            f"{len(drifted)} build(s) differ from the Kubernetes manifest's pins: find out "
            "why (a build that is not reproducible, or changed inputs) before pinning the "
            "new digest in sovdeploy/data/kubernetes.yml"
        )
    if not artifacts:
        if built:
            out.print(f"[green]the mirror tree holds all {len(built)} built artifact(s)[/green]")
        else:
            out.print(f"{deployment.name}: no Kubernetes hosts, nothing built: nothing to check")
        return
    mir.require_all(results)
    out.print(f"[green]mirrors hold all {len(results)} artifact(s)[/green], digests verified")


def _check_built(built: list[recipes.Recipe], deployment: Any, state_root: Path) -> list[str]:
    """Check the built artifacts in the tree; print a line each; return those that fail."""
    where = supply_build.tree(deployment)
    failed = []
    for r in supply_build.check(built, where, state_root):
        mark = "[green]ok[/green]  " if r.ok else "[red]FAIL[/red]"
        out.print(
            f"{mark} built {escape(r.recipe.name)} {escape(r.recipe.version)}: {escape(r.detail)}"
        )
        if not r.ok:
            failed.append(r.recipe.name)
    return failed


def check_mirrors(
    artifacts: list[mir.Artifact],
    mirrors: dict[mir.ArtifactKind, str],
    console: Console,
    ca_file: Path | None = None,
) -> list[mir.CheckResult]:
    """Run the mirror check with a line per artifact and a spinner while one downloads.

    HTTPS mirrors are trusted through the system's CAs and ``ca_file``, the deployment's.
    """
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

        return mir.check(artifacts, mirrors, on_result=done, on_start=start, ca_file=ca_file)
