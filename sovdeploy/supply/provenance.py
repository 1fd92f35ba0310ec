"""in-toto statements with SLSA v1 provenance for what sovdeploy builds.

One statement a built artifact, stored beside it as ``<file>.intoto.json``: the subject
is the artifact and its sha256; the build definition names the source module, its
version, the go.sum line that pins it, the wrapper module's go.mod and go.sum, the flags
and the toolchain; the run details name the builder and when it ran. An auditor
rebuilds from the same definition and compares digests: the statement is what to check.
"""

from __future__ import annotations

import hashlib
import json
import platform
import socket
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sovdeploy import __version__
from sovdeploy.supply.gobuild import ModuleInfo
from sovdeploy.supply.recipes import BUILDER_VERSION, Base, Recipe

__all__ = ["BUILD_TYPE", "PREDICATE_TYPE", "STATEMENT_TYPE", "statement", "subject_digest"]

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://slsa.dev/provenance/v1"
#: What the build definition's parameters mean: a module built by `go build`, or C sources
#: of a module compiled by the deployer's gcc (``-c-module``).
BUILD_TYPE = f"urn:sovdeploy:build-type:go-module:v{BUILDER_VERSION}"
C_BUILD_TYPE = f"urn:sovdeploy:build-type:c-module:v{BUILDER_VERSION}"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def statement(
    recipe: Recipe,
    *,
    subject: str,
    sha256: str,
    info: ModuleInfo,
    go_sum_line: str,
    wrapper: Path,
    go_version: str,
    flags: list[str],
    key: str,
    started: datetime,
    finished: datetime,
    invocation: str,
    base: Base | None = None,
) -> dict[str, Any]:
    """The statement for one build of ``recipe`` (on ``base``, its Debian packages)."""
    return {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": subject, "digest": {"sha256": sha256}}],
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "buildDefinition": {
                "buildType": C_BUILD_TYPE if recipe.builder == "c" else BUILD_TYPE,
                "externalParameters": {
                    "module": recipe.module,
                    "version": recipe.version,
                    "package": recipe.package,
                    "flags": flags,
                    "goos": "linux",
                    "goarch": "amd64",
                    "cgo": recipe.cgo,
                    "builder": recipe.builder,
                    **(
                        {"image": recipe.image.model_dump(mode="json", by_alias=True)}
                        if recipe.image is not None
                        else {}
                    ),
                },
                "internalParameters": {
                    "toolchain": go_version,
                    "GOFLAGS": "-mod=readonly",
                    "SOURCE_DATE_EPOCH": info.epoch,
                    "inputsKey": key,
                },
                "resolvedDependencies": [
                    {
                        "uri": f"pkg:golang/{recipe.module}@{recipe.version}",
                        "digest": {
                            "goModuleH1": info.h1.removeprefix("h1:"),
                            **({"gitCommit": info.commit} if info.commit else {}),
                        },
                        "annotations": {"goSum": go_sum_line},
                    },
                    *(
                        {
                            "uri": f"file:supply/go/{recipe.wrapper}/{name}",
                            "digest": {"sha256": _sha256(wrapper / name)},
                        }
                        for name in ("go.mod", "go.sum")
                    ),
                    *_debs(base),
                ],
            },
            "runDetails": {
                "builder": {
                    "id": f"urn:sovdeploy:builder:{socket.gethostname()}",
                    "version": {"sovdeploy": __version__, "python": platform.python_version()},
                },
                "metadata": {
                    "invocationId": invocation,
                    "startedOn": started.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "finishedOn": finished.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                },
            },
        },
    }


def _debs(base: Base | None) -> list[dict[str, Any]]:
    """The Debian packages of an image's base, as package URLs with their sha256."""
    if base is None:
        return []
    return [
        {
            "uri": f"pkg:deb/debian/{deb.name}@{deb.version}?arch=amd64&distro=debian-{base.suite}",
            "digest": {"sha256": deb.sha256},
            "annotations": {"path": deb.path, "base": base.name},
        }
        for deb in base.packages
    ]


def subject_digest(doc: dict[str, Any]) -> str:
    """The sha256 a statement vouches for (its one subject)."""
    subjects = doc.get("subject") or []
    if doc.get("_type") != STATEMENT_TYPE or len(subjects) != 1:
        raise ValueError("not an in-toto v1 statement with one subject")
    return str(subjects[0]["digest"]["sha256"])


def dumps(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=2, sort_keys=True) + "\n"
