"""The deployer's mirror tree that ``sovdeploy mirror build`` fills.

::

    <dir>/files/<path>                    a built file (tofu, kubeadm, kubelet, ...)
    <dir>/files/<path>.intoto.json        its provenance statement
    <dir>/providers/<host>/<ns>/<type>/<version>/<os_arch>/terraform-provider-...
                                          OpenTofu's unpacked filesystem-mirror layout
    <dir>/.supply/<name>.json             what was built from which inputs (the cache)
    <dir>/.supply/work/                   builds in progress; never served

An artifact is published only when whole: it is built under ``.supply/work``, hashed,
its statement written, and then renamed into place. A Ctrl-C or a failed build leaves
what was served before, and the next build starts that artifact again.
"""

from __future__ import annotations

import contextlib
import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sovdeploy.fsutil import atomic_write, sha256_file
from sovdeploy.supply import provenance
from sovdeploy.supply.recipes import Recipe, RecipeKind, SupplyError

__all__ = ["Tree", "digest"]

_TREES = {RecipeKind.FILE: "files", RecipeKind.PROVIDER: "providers", RecipeKind.IMAGE: "images"}


def digest(path: Path) -> str | None:
    """A file's sha256; an OCI image layout's index digest, once its blob checks out."""
    if path.is_file():
        return sha256_file(path)
    try:
        top = json.loads((path / "index.json").read_text())["manifests"][0]["digest"]
    except (OSError, ValueError, KeyError, IndexError, TypeError):
        return None
    value = str(top).removeprefix("sha256:")
    blob = path / "blobs" / "sha256" / value
    if not blob.is_file() or sha256_file(blob) != value:
        return None
    return value


@dataclass(frozen=True)
class Tree:
    root: Path

    @property
    def providers(self) -> Path:
        return self.root / "providers"

    @property
    def files(self) -> Path:
        return self.root / "files"

    def target(self, recipe: Recipe) -> Path:
        return self.root / _TREES[recipe.kind] / recipe.path

    def relative(self, recipe: Recipe) -> str:
        return f"{_TREES[recipe.kind]}/{recipe.path}"

    def statement_path(self, recipe: Recipe) -> Path:
        """Beside a file or an image's layout; beside a provider's package directory."""
        target = self.target(recipe)
        if recipe.kind is RecipeKind.PROVIDER:
            return target.parent.with_name(target.parent.name + ".intoto.json")
        return target.with_name(target.name + ".intoto.json")

    def _record_path(self, recipe: Recipe) -> Path:
        return self.root / ".supply" / f"{recipe.name}.json"

    def record(self, recipe: Recipe) -> dict[str, Any] | None:
        try:
            doc = json.loads(self._record_path(recipe).read_text())
        except (OSError, ValueError):
            return None
        return doc if isinstance(doc, dict) else None

    def cached(self, recipe: Recipe, key: str) -> str | None:
        """The sha256 of the artifact built from ``key``, if the tree still holds it whole."""
        record = self.record(recipe)
        if record is None or record.get("key") != key:
            return None
        ok, detail = self.verify(recipe)
        found = detail.removeprefix("sha256:")
        return found if ok and found == record.get("sha256") else None

    @contextlib.contextmanager
    def workspace(self, recipe: Recipe) -> Iterator[Path]:
        """A fresh directory to build ``recipe`` in; removed afterwards, whatever happens."""
        work = self.root / ".supply" / "work" / recipe.name
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        try:
            yield work
        finally:
            shutil.rmtree(work, ignore_errors=True)

    def publish(
        self, recipe: Recipe, built: Path, statement: dict[str, Any], key: str, sha256: str
    ) -> None:
        """Move ``built`` into place with its statement, and remember what it was built from."""
        if digest(built) != sha256:
            raise SupplyError(f"{recipe.name}: {built} changed while it was published")
        target = self.target(recipe)
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(self.statement_path(recipe), provenance.dumps(statement))
        if built.is_dir():
            # An image layout: the old one moves aside, the new one in, the old one goes.
            old = target.with_name(target.name + ".old")
            shutil.rmtree(old, ignore_errors=True)
            if target.exists():
                target.replace(old)
            built.replace(target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            # Executables every user of the mirror runs; only root writes them.
            built.chmod(0o755)
            built.replace(target)
        atomic_write(
            self._record_path(recipe),
            json.dumps(
                {"key": key, "sha256": sha256, "path": self.relative(recipe)}, sort_keys=True
            )
            + "\n",
        )

    def verified(self, recipe: Recipe) -> Path:
        """The published artifact, once its bytes match its statement; else a clear error."""
        ok, detail = self.verify(recipe)
        if not ok:
            raise SupplyError(
                f"{recipe.name} ({recipe.module} {recipe.version}) in {self.root}: {detail}. "
                "Run `sovdeploy mirror build` to build it again."
            )
        return self.target(recipe)

    def verify(self, recipe: Recipe) -> tuple[bool, str]:
        """Is the artifact there, and does its statement vouch for its bytes?"""
        target = self.target(recipe)
        if not target.exists():
            return False, f"{self.relative(recipe)} is missing"
        found = digest(target)
        if found is None:
            return False, f"{self.relative(recipe)} is not a whole image layout"
        try:
            doc = json.loads(self.statement_path(recipe).read_text())
            vouched = provenance.subject_digest(doc)
        except (OSError, ValueError, KeyError) as exc:
            return False, f"no readable provenance statement beside it ({exc})"
        if vouched != found:
            return False, f"sha256 {found} but its statement vouches for {vouched}"
        return True, f"sha256:{found}"
