"""``sovdeploy mirror build``: the inventory's artifacts, built from pinned source.

For each recipe the inventory asks for: work out its inputs key; if the tree holds an
artifact built from that key (its bytes and its statement check out), reuse it;
otherwise download the module through the inventory's Go source (checked against the
wrapper's go.sum), build it reproducibly, hash it, write its provenance statement and
publish both. Every artifact's digest, and its statement's, is appended to the ledger.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sovdeploy.engines import terraform
from sovdeploy.errors import LedgerError
from sovdeploy.kubernetes.artifacts import cluster_hosts
from sovdeploy.ledger import local as ledger_local
from sovdeploy.ledger import records as ledger_records
from sovdeploy.model import Deployment, IacEngine, SourceKind
from sovdeploy.progress import Progress
from sovdeploy.state import Run
from sovdeploy.supply import cbuild, debian, gobuild, oci, provenance
from sovdeploy.supply.recipes import Base, Group, Recipe, Supply, SupplyError, wrapper_dir
from sovdeploy.supply.recipes import load as load_recipes
from sovdeploy.supply.tree import Tree
from sovdeploy.supply.tree import digest as tree_digest

__all__ = [
    "Built",
    "TreeCheck",
    "apt_sources",
    "build",
    "check",
    "go_env",
    "iac_engine",
    "needed_groups",
    "pinned_differently",
    "tree",
]


@dataclass(frozen=True)
class Built:
    recipe: Recipe
    sha256: str
    cached: bool
    seconds: float

    @property
    def upstream(self) -> str:
        """Whether the rebuild is upstream's bytes, where upstream publishes a digest."""
        if self.recipe.upstream_sha256 is None:
            return "no upstream digest to compare"
        if self.recipe.upstream_sha256 == self.sha256:
            return "matches upstream's published digest byte for byte"
        return f"differs from upstream's published digest {self.recipe.upstream_sha256}"


def needed_groups(deployment: Deployment) -> tuple[Group, ...]:
    """What the deployment needs built from source, of what its inventory asks to build."""
    s = deployment.settings
    needed: list[Group] = []
    if s.iac_engine is IacEngine.TOFU:
        needed.append(Group.OPENTOFU)
    if deployment.has_openstack():
        needed.append(Group.PROVIDERS)
    if cluster_hosts(deployment):
        needed += [Group.KUBERNETES, Group.CONFORMANCE]
    return tuple(g for g in needed if g.value in s.supply.build)


def go_env(deployment: Deployment, supply: Supply) -> gobuild.GoEnv:
    """The inventory's Go source, and the pinned toolchain."""
    proxies = [
        src.url.rstrip("/")
        for src in deployment.settings.artifact_sources.values()
        if src.kind is SourceKind.GO
    ]
    if not proxies:
        raise SupplyError(
            "building from source needs a Go module source: declare an artifact source of "
            "kind 'go' (your Athens or goproxy instance) in sovdeploy_artifact_sources"
        )
    return gobuild.GoEnv(proxy=",".join(proxies), toolchain=supply.toolchain)


def apt_sources(deployment: Deployment) -> tuple[str, ...]:
    """The inventory's Debian mirrors, which image bases are made from."""
    return tuple(
        src.url.rstrip("/")
        for src in deployment.settings.artifact_sources.values()
        if src.kind is SourceKind.APT
    )


def tree(deployment: Deployment) -> Tree:
    """The deployer-side tree the inventory's builds go into."""
    return Tree(Path(deployment.settings.supply.dir))


def iac_engine(deployment: Deployment) -> terraform.Engine:
    """The deployment's IaC engine: OpenTofu built into the tree, else the one on PATH."""
    s = deployment.settings
    if s.iac_engine is IacEngine.TOFU and Group.OPENTOFU.value in s.supply.build:
        built = tree(deployment).verified(load_recipes().get("tofu"))
        return terraform.engine("tofu", str(built))
    return terraform.engine(s.iac_engine.value)


def build(
    supply: Supply,
    recipes: Iterable[Recipe],
    *,
    where: Tree,
    env: gobuild.GoEnv,
    progress: Progress,
    run: Run,
    apt: tuple[str, ...] = (),
) -> list[Built]:
    """Build (or reuse) each recipe, in order; stop at the first failure.

    ``apt`` are the Debian mirrors an image's base packages are fetched from.
    """
    recipes = list(recipes)
    toolchain: str | None = None
    bases: dict[str, debian.Layer] = {}
    done: list[Built] = []
    for n, recipe in enumerate(recipes, 1):
        key = supply.key(recipe)
        label = f"[{n}/{len(recipes)}] {recipe.name}"
        cached = where.cached(recipe, key)
        if cached is not None:
            progress.console.print(
                f"[green]✔[/green] {label} {recipe.module} {recipe.version}: cached "
                f"(sha256:{cached[:16]}…)",
                highlight=False,
            )
            done.append(Built(recipe, cached, cached=True, seconds=0.0))
            _record(run, where, recipe, cached, cached=True)
            continue
        if toolchain is None:
            toolchain = gobuild.go_version(env)
        started = time.monotonic()
        progress.phase_start(label, f"{recipe.module} {recipe.version} ({recipe.package})")
        ok = False
        try:
            built = _build_one(
                supply,
                recipe,
                key=key,
                where=where,
                env=env,
                toolchain=toolchain,
                progress=progress,
                invocation=run.id,
                base=_base_layer(
                    recipe, supply.base(recipe), apt=apt, where=where, progress=progress, made=bases
                ),
            )
            ok = True
        finally:
            if not ok:
                progress.phase_end(False, "nothing published; the mirror is as it was")
        result = Built(recipe, built, cached=False, seconds=time.monotonic() - started)
        progress.phase_end(True, f"sha256:{built[:16]}…; {result.upstream}")
        _record(run, where, recipe, built, cached=False)
        done.append(result)
    return done


def _base_layer(
    recipe: Recipe,
    base: Base | None,
    *,
    apt: tuple[str, ...],
    where: Tree,
    progress: Progress,
    made: dict[str, debian.Layer],
) -> tuple[Base, debian.Layer] | None:
    """The recipe's Debian base as a layer, made once a build (its packages cached)."""
    if base is None:
        return None
    if base.name not in made:
        progress.task_start(f"base {base.name}: {len(base.packages)} Debian packages")
        try:
            made[base.name] = debian.layer(base, apt, where.root / ".supply" / "debs")[0]
        except SupplyError as exc:
            raise SupplyError(
                f"{recipe.name}: {recipe.module} {recipe.version}, its image base {base.name}: "
                f"{exc} Nothing was built or published."
            ) from exc
    return base, made[base.name]


def _build_one(
    supply: Supply,
    recipe: Recipe,
    *,
    key: str,
    where: Tree,
    env: gobuild.GoEnv,
    toolchain: str,
    progress: Progress,
    invocation: str,
    base: tuple[Base, debian.Layer] | None,
) -> str:
    wrapper = wrapper_dir(recipe)
    begun = datetime.now(UTC)
    progress.task_start(f"go mod download {recipe.module}@{recipe.version}")
    info = gobuild.module_info(recipe, wrapper, env)
    go_sum = gobuild.go_sum_line(wrapper, recipe.module, recipe.version)
    with where.workspace(recipe) as work:
        name = recipe.image.file if recipe.image and recipe.image.file else recipe.path
        out = work / name.rsplit("/", 1)[-1]
        flags: list[str] = []
        if recipe.builder == "c":
            progress.task_start(f"gcc {' '.join(recipe.sources)} ({recipe.package})")
            toolchain = cbuild.toolchain(recipe.c_packages)
            flags = cbuild.build(recipe, info.dir, out)
        elif recipe.builder == "none":
            toolchain = "none: nothing compiled"
        else:
            if recipe.cgo:
                # cgo links C: its compiler and libraries decide bytes too.
                toolchain = f"{toolchain}; {cbuild.toolchain(recipe.c_packages)}"
            verb = "go test -c" if recipe.builder == "go-test" else "go build"
            progress.task_start(f"{verb} {recipe.package}")
            flags = gobuild.build(
                recipe,
                wrapper=wrapper,
                env=env,
                info=info,
                out=out,
                on_line=lambda line: progress.step(f"compile {line}"),
            )
        if recipe.image is not None:
            progress.task_start(f"OCI image {recipe.path}")
            below: tuple[tuple[oci.Blob, str, str], ...] = ()
            if base is not None:
                layer = base[1]
                _not_under_links(recipe, base[0].name, layer.links)
                below = ((layer.blob, layer.diff_id, layer.created_by),)
            img = oci.image(
                _image_entries(supply, recipe, out, info.dir, where),
                epoch=info.epoch,
                entrypoint=list(recipe.image.entrypoint),
                cmd=list(recipe.image.cmd),
                user=recipe.image.user,
                below=below,
            )
            out = work / "layout"
            oci.write_layout(out, img, recipe.image.tag)
        sha256 = tree_digest(out) or ""
        statement = provenance.statement(
            recipe,
            subject=where.relative(recipe),
            sha256=sha256,
            info=info,
            go_sum_line=go_sum,
            wrapper=wrapper,
            go_version=toolchain,
            flags=flags,
            key=key,
            started=begun,
            finished=datetime.now(UTC),
            invocation=invocation,
            base=base[0] if base is not None else None,
        )
        progress.task_start("publish")
        where.publish(recipe, out, statement, key, sha256)
    return sha256


def _not_under_links(recipe: Recipe, base: str, links: frozenset[str]) -> None:
    """Refuse an image path below a base's symbolic link (it would replace the link)."""
    assert recipe.image is not None
    spec = recipe.image
    paths = [spec.file or "", *spec.copy_, *spec.built, *spec.links, *spec.dirs]
    for path in filter(None, paths):
        parents = path.split("/")[:-1]
        for depth in range(1, len(parents) + 1):
            if "/".join(parents[:depth]) in links:
                raise SupplyError(
                    f"{recipe.name}: {path} lies under a symbolic link of base {base}; name "
                    "the path it points to"
                )


def _image_entries(
    supply: Supply, recipe: Recipe, out: Path, source: Path, where: Tree
) -> list[oci.Entry]:
    """The image's own layer: the built binary, the module's files, other recipes' files."""
    spec = recipe.image
    assert spec is not None
    entries = []
    if spec.file is not None:
        entries.append(oci.Entry(spec.file, out.read_bytes(), int(spec.mode, 8)))
    for path, relative in spec.copy_.items():
        file = source / relative
        if not file.is_file():
            raise SupplyError(
                f"{recipe.name}: {relative} is not a file in {recipe.module} {recipe.version}"
            )
        mode = 0o755 if file.stat().st_mode & 0o111 else 0o644
        entries.append(oci.Entry(path, file.read_bytes(), mode))
    for path, name in spec.built.items():
        entries.append(oci.Entry(path, where.verified(supply.get(name)).read_bytes(), 0o755))
    entries += [oci.Entry(path, None, link=target) for path, target in spec.links.items()]
    entries += [oci.Entry(path, None, 0o755) for path in spec.dirs]
    return entries


def _record(run: Run, where: Tree, recipe: Recipe, sha256: str, *, cached: bool) -> None:
    statement = where.statement_path(recipe)
    run.record(
        "supply_artifact",
        name=recipe.name,
        path=where.relative(recipe),
        module=recipe.module,
        version=recipe.version,
        sha256=sha256,
        statement=str(statement.relative_to(where.root)),
        statement_sha256=hashlib.sha256(statement.read_bytes()).hexdigest(),
        cached=cached,
    )


@dataclass(frozen=True)
class TreeCheck:
    recipe: Recipe
    ok: bool
    detail: str


def pinned_differently(
    pins: Iterable[tuple[str, str, str]], supply: Supply, where: Tree
) -> list[str]:
    """Each pin ``(artifact, recipe, sha256)`` whose recipe's build in the tree differs.

    The Kubernetes manifest pins the digests of what is built from source: a build that
    gives other bytes means a build is not reproducible or its inputs changed, and the
    hosts would refuse what the mirror serves.
    """
    problems = []
    for artifact, name, sha256 in pins:
        ok, detail = where.verify(supply.get(name))
        built = detail.removeprefix("sha256:")
        if ok and built != sha256:
            problems.append(
                f"{artifact}: the build of recipe {name} is sha256:{built}, the manifest pins "
                f"sha256:{sha256}"
            )
    return problems


def _ledgered(state_root: Path) -> set[tuple[str, str, str]]:
    """(name, sha256, statement sha256) of every supply_artifact record in the ledger."""
    found: set[tuple[str, str, str]] = set()
    try:
        for entry in ledger_local.entries(state_root):
            try:
                rec = ledger_records.decode(entry)
            except ValueError:
                continue
            if rec.get("kind") == "supply_artifact":
                found.add(
                    (str(rec.get("name")), str(rec.get("sha256")), str(rec.get("statement_sha256")))
                )
    except LedgerError:
        return found
    return found


def check(recipes: Iterable[Recipe], where: Tree, state_root: Path) -> list[TreeCheck]:
    """Each built artifact is whole, vouched for by its statement, and in the ledger."""
    ledgered = _ledgered(state_root)
    results = []
    for recipe in recipes:
        ok, detail = where.verify(recipe)
        if ok:
            digest = detail.removeprefix("sha256:")
            statement = hashlib.sha256(where.statement_path(recipe).read_bytes()).hexdigest()
            if (recipe.name, digest, statement) not in ledgered:
                ok, detail = False, f"{detail}, but the deployment's ledger has no record of it"
            else:
                detail = f"{detail}, provenance statement and ledger record match"
        results.append(TreeCheck(recipe, ok, detail))
    return results
