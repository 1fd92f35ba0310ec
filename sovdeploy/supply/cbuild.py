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


def toolchain() -> str:
    """``gcc --version``'s first line and the versions of the packages that link the binary."""
    try:
        gcc = subprocess.run(
            ["gcc", "--version"], capture_output=True, text=True, check=True
        ).stdout.splitlines()[0]
    except (OSError, subprocess.CalledProcessError, IndexError) as exc:
        raise SupplyError(f"no working C compiler (gcc) on this machine: {exc}") from exc
    proc = subprocess.run(
        ["dpkg-query", "-W", "-f=${Package}=${Version} ", *_PACKAGES],
        capture_output=True,
        text=True,
        check=False,
    )
    return f"{gcc}; {proc.stdout.strip() or 'package versions unknown'}"


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
