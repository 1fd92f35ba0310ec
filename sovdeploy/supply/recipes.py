"""What sovdeploy builds from pinned source: ``sovdeploy/data/supply.yml``.

Each recipe is one artifact built by ``go build`` from a Go module fetched through the
inventory's Go source (a module proxy). The module and its whole dependency graph are
pinned by a small wrapper module under ``supply/go/<wrapper>/`` whose ``go.sum`` holds
the hash of every module in the build; ``-mod=readonly`` makes any difference fatal.
The recipe's inputs (itself, the wrapper's go.mod and go.sum, the toolchain) hash to a
key: an artifact built from the same key is the same bytes, so it is built once.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from enum import StrEnum
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from sovdeploy.errors import SovdeployError
from sovdeploy.paths import project_root

__all__ = [
    "Base",
    "Deb",
    "Group",
    "Recipe",
    "RecipeKind",
    "Supply",
    "SupplyError",
    "load",
    "wrapper_dir",
]

#: Flags every build gets: no paths of this machine, no VCS stamp, no build ID, no symbols.
BASE_LDFLAGS = ("-s", "-w", "-buildid=")
#: Bumped when the way an artifact is built changes, so that every cache key changes.
BUILDER_VERSION = "1"


class SupplyError(SovdeployError):
    """A build from source failed, or its inputs are not what the pins say."""


class Group(StrEnum):
    """What an inventory asks to build from source (``sovdeploy_supply.build``)."""

    OPENTOFU = "opentofu"
    PROVIDERS = "providers"
    KUBERNETES = "kubernetes"
    #: The conformance suite: e2e.test, ginkgo and the images its tests run.
    CONFORMANCE = "conformance"


class RecipeKind(StrEnum):
    #: A file in the files tree (``files/<path>``).
    FILE = "file"
    #: A provider in the OpenTofu filesystem mirror (``providers/<path>``).
    PROVIDER = "provider"
    #: An OCI image layout (``images/<path>/``) holding the built binary alone.
    IMAGE = "image"


#: A relative path that does not end in a slash (in a tree, in an image).
_RELATIVE_PATH = r"^[^/].*[^/]$"


class ImageSpec(BaseModel):
    """How the image is made, from what, and how it runs."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    file: str | None = Field(
        default=None,
        pattern=_RELATIVE_PATH,
        description="the binary's path in the image (none for an image of its base alone)",
    )
    mode: str = Field(default="0755", pattern=r"^[0-7]{4}$", description="the binary's mode")
    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    user: str = ""
    tag: str = Field(description="the tag the image is known by")
    base: str | None = Field(
        default=None, description="the Debian base layer under it (supply.yml's debian.bases)"
    )
    copy_: dict[str, str] = Field(
        default_factory=dict,
        alias="copy",
        description="files from the module's source: path in the image -> path in the module",
    )
    built: dict[str, str] = Field(
        default_factory=dict,
        description="files built by other recipes (kind file): path in the image -> recipe",
    )
    links: dict[str, str] = Field(
        default_factory=dict, description="symbolic links: path in the image -> target"
    )
    dirs: tuple[str, ...] = Field(default=(), description="empty directories (0755)")


class Deb(BaseModel):
    """One package, as the suite's Packages index lists it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9+.-]+$")
    version: str
    path: str = Field(pattern=r"^pool/[^ ]+\.deb$", description="its pool path (Filename)")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class Base(BaseModel):
    """A base layer: packages, and what their maintainer scripts would have made."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    suite: str = Field(description="the Debian suite whose index the pins come from")
    packages: tuple[Deb, ...]
    links: dict[str, str] = Field(
        default_factory=dict, description="symbolic links: path -> target (alternatives)"
    )
    files: dict[str, str] = Field(
        default_factory=dict, description="small files: path -> text (/etc/passwd, ...)"
    )
    applets: str | None = Field(
        default=None,
        description="a busybox in the base: a link for each applet `--list-full` names that "
        "no package ships (as `busybox --install -s` would make)",
    )
    applets_dir: str | None = Field(
        default=None,
        description="put every applet's link in this directory instead of where "
        "`--list-full` names it (upstream's busybox image has them all in /bin)",
    )


class Recipe(BaseModel):
    """One artifact and how to build it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9.-]*$")
    group: Group
    kind: RecipeKind = RecipeKind.FILE
    module: str = Field(description="the Go module whose source is built")
    version: str = Field(pattern=r"^v\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?$")
    wrapper: str = Field(pattern=r"^[a-z0-9-]+$", description="directory under supply/go")
    package: str = Field(
        description="the main package built (go), or the directory of the sources (c)"
    )
    builder: Literal["go", "go-test", "c", "none"] = Field(
        default="go",
        description="go build; go test -c (a test binary: e2e.test); the deployer's C "
        "compiler, static; or none (an image of its base and the module's files)",
    )
    sources: tuple[str, ...] = Field(default=(), description="C sources, in the package")
    cflags: tuple[str, ...] = Field(default=(), description="C flags; {version} filled")
    c_packages: tuple[str, ...] = Field(
        default=(),
        description="Debian packages a C or cgo build links in, beyond the C toolchain: "
        "checked to be installed, and their versions recorded in the provenance",
    )
    image: ImageSpec | None = None
    ldflags: tuple[str, ...] = Field(
        default=(),
        description="more -ldflags; {version}, {major}, {minor}, {commit} and {date} "
        "are filled from the module's version and its commit time",
    )
    tags: tuple[str, ...] = ()
    cgo: bool = False
    path: str = Field(pattern=_RELATIVE_PATH, description="where it lies in its tree")
    upstream: str | None = Field(default=None, description="where upstream publishes it")
    upstream_sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")

    @model_validator(mode="after")
    def _package_in_module(self) -> Recipe:
        if not (self.package == self.module or self.package.startswith(self.module + "/")):
            raise ValueError(f"{self.name}: {self.package} is not in module {self.module}")
        if (self.builder == "c") != bool(self.sources):
            raise ValueError(f"{self.name}: a C build names its sources, a Go build none")
        if (self.kind is RecipeKind.IMAGE) != (self.image is not None):
            raise ValueError(f"{self.name}: an image recipe says how to make the image")
        if self.builder == "none" and (self.image is None or self.image.file is not None):
            raise ValueError(f"{self.name}: a recipe that builds nothing is an image, no file")
        if self.builder != "none" and self.image is not None and self.image.file is None:
            raise ValueError(f"{self.name}: say where the built binary lies in the image")
        if self.image is not None and not self.path.endswith("/" + self.image.tag):
            raise ValueError(f"{self.name}: an image's path is its repository, then its tag")
        return self

    @property
    def repository(self) -> str:
        """An image's repository in a registry (its path without the tag)."""
        return self.path.rsplit("/", 1)[0]

    def ldflag_values(self, commit: str, date: str) -> tuple[str, ...]:
        """The recipe's -ldflags with the version, commit and date put in."""
        m = re.match(r"^v(\d+)\.(\d+)", self.version)
        assert m is not None  # the field's pattern
        values = {
            "version": self.version,
            "major": m.group(1),
            "minor": m.group(2),
            "commit": commit,
            "date": date,
        }
        return tuple(flag.format(**values) for flag in self.ldflags)


class Supply(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    toolchain: str = Field(pattern=r"^go\d+\.\d+\.\d+$", description="GOTOOLCHAIN of every build")
    bases: tuple[Base, ...] = Field(default=(), description="image bases of Debian packages")
    recipes: tuple[Recipe, ...]

    @model_validator(mode="after")
    def _unique(self) -> Supply:
        for what, names in (
            ("recipes", [r.name for r in self.recipes]),
            ("bases", [b.name for b in self.bases]),
        ):
            dupes = sorted({n for n in names if names.count(n) > 1})
            if dupes:
                raise ValueError(f"{what} named twice: {', '.join(dupes)}")
        bases = {b.name for b in self.bases}
        files_before: set[str] = set()
        for recipe in self.recipes:
            if recipe.kind is RecipeKind.FILE:
                files_before.add(recipe.name)
            if recipe.image is None:
                continue
            if recipe.image.base not in (None, *bases):
                raise ValueError(f"{recipe.name}: no base named {recipe.image.base}")
            for name in recipe.image.built.values():
                if name not in files_before:
                    raise ValueError(
                        f"{recipe.name}: its image takes {name}'s file: name a recipe of kind "
                        "file listed before it"
                    )
        return self

    def base(self, recipe: Recipe) -> Base | None:
        """The Debian base under ``recipe``'s image, if it has one."""
        if recipe.image is None or recipe.image.base is None:
            return None
        return next(b for b in self.bases if b.name == recipe.image.base)

    def get(self, name: str) -> Recipe:
        for recipe in self.recipes:
            if recipe.name == name:
                return recipe
        raise SupplyError(
            f"no recipe '{name}' in supply.yml; it has: " + ", ".join(r.name for r in self.recipes)
        )

    def in_groups(self, groups: tuple[Group, ...]) -> tuple[Recipe, ...]:
        return self.with_inputs(r for r in self.recipes if r.group in groups)

    def with_inputs(self, chosen: Iterable[Recipe]) -> tuple[Recipe, ...]:
        """``chosen`` and the recipes whose files their images take, in supply.yml's order."""
        names = {r.name for r in chosen}
        for recipe in reversed(self.recipes):
            if recipe.name in names and recipe.image is not None:
                names.update(recipe.image.built.values())
        return tuple(r for r in self.recipes if r.name in names)

    def key(self, recipe: Recipe) -> str:
        """The hash of everything that decides the artifact's bytes."""
        wrapper = wrapper_dir(recipe)
        h = hashlib.sha256()
        h.update(BUILDER_VERSION.encode())
        h.update(self.toolchain.encode())
        # Fields left at their defaults are left out: a new optional field keeps the keys.
        h.update(json.dumps(_dump(recipe), sort_keys=True).encode())
        base = self.base(recipe)
        if base is not None:
            h.update(json.dumps(_dump(base), sort_keys=True).encode())
        if recipe.image is not None:
            for path, name in sorted(recipe.image.built.items()):
                h.update(f"\0{path}\0{self.key(self.get(name))}".encode())
        for name in ("go.mod", "go.sum"):
            h.update(b"\0" + name.encode() + b"\0")
            h.update((wrapper / name).read_bytes())
        return h.hexdigest()


def _dump(model: BaseModel) -> dict[str, object]:
    return model.model_dump(mode="json", by_alias=True, exclude_defaults=True)


def wrapper_dir(recipe: Recipe) -> Path:
    """The wrapper module that pins ``recipe``'s build graph."""
    path = project_root() / "supply" / "go" / recipe.wrapper
    if not (path / "go.mod").is_file() or not (path / "go.sum").is_file():
        raise SupplyError(f"{recipe.name}: {path} has no go.mod and go.sum")
    return path


@cache
def load() -> Supply:
    """The recipes shipped with sovdeploy."""
    text = resources.files("sovdeploy").joinpath("data/supply.yml").read_text("utf-8")
    return Supply.model_validate(yaml.safe_load(text))
