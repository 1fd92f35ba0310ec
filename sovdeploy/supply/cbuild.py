"""A static C program from a Go module's source tree, with the deployer's compiler.

Kubernetes' pause container is C (``build/pause/linux/pause.c``), built by upstream with
``-Os -Wall -Werror -static``. The module is fetched and checked against go.sum like any
Go build; the compiler and the C library it links statically are the deployer's Debian
packages, whose versions the provenance statement records (the same packages give the
same bytes).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from sovdeploy.errors import tail
from sovdeploy.supply.recipes import Recipe, SupplyError

__all__ = ["build", "toolchain"]

#: The Debian packages whose versions decide a static C build's bytes.
_PACKAGES = ("gcc", "libc6-dev", "binutils")


def toolchain(extra: tuple[str, ...] = ()) -> str:
    """``gcc --version``'s first line and the versions of the packages that link the binary.

    ``extra`` are more Debian packages the build links in (libseccomp-dev for runc); a
    missing one is an error that names it.
    """
    try:
        gcc = subprocess.run(
            ["gcc", "--version"], capture_output=True, text=True, check=True
        ).stdout.splitlines()[0]
    except (OSError, subprocess.CalledProcessError, IndexError) as exc:
        raise SupplyError(f"no working C compiler (gcc) on this machine: {exc}") from exc
    proc = subprocess.run(
        ["dpkg-query", "-W", "-f=${Package}=${Version} ", *_PACKAGES, *extra],
        capture_output=True,
        text=True,
        check=False,
    )
    found = proc.stdout.strip()
    missing = [p for p in extra if f"{p}=" not in found]
    if missing:
        raise SupplyError(
            f"the build links in {', '.join(missing)}, which is not installed: "
            f"apt-get install {' '.join(missing)} (make deps installs it)"
        )
    return f"{gcc}; {found or 'package versions unknown'}"


def build(recipe: Recipe, module_dir: Path, out: Path) -> list[str]:
    """Compile the recipe's sources into ``out``; return the compiler's arguments."""
    rel = recipe.package.removeprefix(recipe.module).strip("/")
    sources = [module_dir / rel / source for source in recipe.sources]
    missing = [str(s) for s in sources if not s.is_file()]
    if missing:
        raise SupplyError(
            f"{recipe.name}: {recipe.module} {recipe.version} has no {', '.join(missing)}"
        )
    flags = [flag.format(version=recipe.version) for flag in recipe.cflags]
    # Paths relative to the package directory, so that none of this machine's is recorded.
    args = ["gcc", *flags, "-o", str(out), *recipe.sources]
    proc = subprocess.run(args, cwd=module_dir / rel, capture_output=True, text=True, check=False)
    if proc.returncode != 0 or not out.is_file():
        raise SupplyError(
            f"{recipe.name}: {recipe.module} {recipe.version}: gcc failed.\n"
            + tail(proc.stdout + proc.stderr, 15)
        )
    return [*flags, *recipe.sources]
