"""``go build``, reproducibly, through the inventory's Go source and nothing else.

The environment is made, not inherited: ``GOPROXY`` is the inventory's proxy with no
``direct`` fallback, ``GOFLAGS=-mod=readonly`` (a module whose hash differs from the
wrapper's go.sum stops the build), ``GONOSUMDB``, ``GONOSUMCHECK``, ``GOPRIVATE``,
``GONOPROXY`` and ``GOINSECURE`` are removed, ``GOTOOLCHAIN`` is the pinned release. The
binary carries no path of this machine (``-trimpath``), no VCS stamp and an empty build
ID, so two builds from the same inputs are the same bytes.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sovdeploy.errors import tail
from sovdeploy.supply.recipes import BASE_LDFLAGS, Recipe, SupplyError

__all__ = ["GoEnv", "ModuleInfo", "build", "go_sum_line", "go_version", "module_info"]

#: Inherited settings that would weaken the pins or send requests elsewhere.
_DROPPED = ("GONOSUMDB", "GONOSUMCHECK", "GOPRIVATE", "GONOPROXY", "GOINSECURE", "GOWORK")
_UNREACHABLE = re.compile(
    r"dial tcp|no such host|connection refused|i/o timeout|proxyconnect|TLS handshake"
    r"|Service Unavailable|Bad Gateway|network is unreachable"
)


@dataclass(frozen=True)
class GoEnv:
    """Where modules come from and which Go builds them."""

    proxy: str
    toolchain: str

    def environ(self, recipe: Recipe | None = None) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in _DROPPED and not k.startswith(("GOFLAGS", "CGO_"))
        }
        if env.get("GOSUMDB") == "off":
            # The checksum database is how a first download is checked against upstream.
            del env["GOSUMDB"]
        env.update(
            GOPROXY=self.proxy,
            GOFLAGS="-mod=readonly",
            GOTOOLCHAIN=self.toolchain,
            GOOS="linux",
            GOARCH="amd64",
            GOAMD64="v1",
            CGO_ENABLED="1" if recipe is not None and recipe.cgo else "0",
            GOWORK="off",
        )
        return env


@dataclass(frozen=True)
class ModuleInfo:
    """What the proxy says of a module version, and what go.sum pins it to."""

    path: str
    version: str
    h1: str
    time: datetime
    commit: str
    #: The module's source, in the module cache (read-only).
    dir: Path

    @property
    def epoch(self) -> int:
        """SOURCE_DATE_EPOCH: the release's commit time."""
        return int(self.time.timestamp())


def _fail(recipe: Recipe, what: str, output: str) -> SupplyError:
    text = tail(output, 15)
    where = f"{recipe.name}: {recipe.module} {recipe.version}"
    if "checksum mismatch" in output or "SECURITY ERROR" in output:
        return SupplyError(
            f"{where}: a module's source differs from the hash pinned in "
            f"supply/go/{recipe.wrapper}/go.sum. Nothing was built or published. The "
            f"Go source served other bytes than upstream's: do not use it until its "
            f"operator explains why.\n{text}"
        )
    if "missing go.sum entry" in output or "updates to go.mod needed" in output:
        return SupplyError(
            f"{where}: the wrapper module supply/go/{recipe.wrapper} does not pin this "
            f"build's whole graph; regenerate its go.sum (docs/supply.md).\n{text}"
        )
    if _UNREACHABLE.search(output) or "404 Not Found" in output or "410 Gone" in output:
        return SupplyError(
            f"{where}: the Go source cannot serve it ({what}). Check that the inventory's "
            f"go artifact source is reachable and holds this module version.\n{text}"
        )
    return SupplyError(f"{where}: {what} failed.\n{text}")


def go_version(env: GoEnv) -> str:
    """``go version`` of the pinned toolchain (fetched through the proxy when not local)."""
    proc = subprocess.run(
        ["go", "version"], env=env.environ(), capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise SupplyError(
            f"the Go toolchain {env.toolchain} cannot be run (is `go` on PATH, and does "
            f"the Go source serve golang.org/toolchain?):\n{tail(proc.stderr, 10)}"
        )
    found = proc.stdout.strip()
    if f" {env.toolchain} " not in f" {found} ":
        # A Go older than 1.21 ignores GOTOOLCHAIN and would build with itself.
        raise SupplyError(
            f"`go version` says {found!r}, not the pinned {env.toolchain}: the go on PATH "
            "cannot switch toolchains (Go >= 1.21 can); install a newer Go from your mirror"
        )
    return found


def module_info(recipe: Recipe, wrapper: Path, env: GoEnv) -> ModuleInfo:
    """Download the recipe's module (checked against go.sum) and read its release time."""
    proc = subprocess.run(
        ["go", "mod", "download", "-json", f"{recipe.module}@{recipe.version}"],
        cwd=wrapper,
        env=env.environ(recipe),
        capture_output=True,
        text=True,
        check=False,
    )
    try:
        doc = json.loads(proc.stdout)
    except json.JSONDecodeError:
        doc = {}
    if proc.returncode != 0 or "Error" in doc or not doc.get("Info"):
        raise _fail(recipe, "go mod download", proc.stdout + proc.stderr)
    info = json.loads(Path(doc["Info"]).read_text())
    pinned = go_sum_line(wrapper, recipe.module, recipe.version)
    if pinned.split()[-1] != doc.get("Sum"):
        raise _fail(recipe, "go mod download", f"checksum mismatch: {pinned} != {doc.get('Sum')}")
    origin = info.get("Origin") or doc.get("Origin") or {}
    return ModuleInfo(
        path=recipe.module,
        version=recipe.version,
        h1=doc["Sum"],
        time=datetime.fromisoformat(info["Time"].replace("Z", "+00:00")).astimezone(UTC),
        commit=str(origin.get("Hash", "")),
        dir=Path(doc["Dir"]),
    )


def go_sum_line(wrapper: Path, module: str, version: str) -> str:
    """The go.sum line that pins ``module@version``'s source."""
    for line in (wrapper / "go.sum").read_text().splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0] == module and parts[1] == version:
            return line
    raise SupplyError(f"{wrapper}/go.sum does not pin {module} {version}")


def build_flags(recipe: Recipe, info: ModuleInfo) -> list[str]:
    """The arguments of ``go build`` after ``build``: also what provenance records."""
    date = info.time.strftime("%Y-%m-%dT%H:%M:%SZ")
    ldflags = " ".join((*BASE_LDFLAGS, *recipe.ldflag_values(info.commit, date)))
    flags = ["-trimpath", "-buildvcs=false", f"-ldflags={ldflags}"]
    if recipe.tags:
        flags.append("-tags=" + ",".join(recipe.tags))
    return flags


def _stop_group(proc: subprocess.Popen[str]) -> None:
    """SIGINT to the build's process group, then SIGKILL to what is left of it."""
    for sig, grace in ((signal.SIGINT, 10.0), (signal.SIGKILL, 0.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and _group_alive(proc.pid):
            time.sleep(0.1)
    proc.wait()
    while _group_alive(proc.pid):
        time.sleep(0.05)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def build(
    recipe: Recipe,
    *,
    wrapper: Path,
    env: GoEnv,
    info: ModuleInfo,
    out: Path,
    on_line: Callable[[str], None],
    extra_env: Mapping[str, str] | None = None,
) -> list[str]:
    """Build ``recipe`` into ``out``; return the ``go build`` arguments it ran with."""
    flags = build_flags(recipe, info)
    # A test binary (e2e.test) is `go test -c`, which takes the same build flags.
    verb = ["test", "-c"] if recipe.builder == "go-test" else ["build", "-v"]
    args = ["go", *verb, *flags, "-o", str(out), recipe.package]
    environ = {**env.environ(recipe), "SOURCE_DATE_EPOCH": str(info.epoch), **(extra_env or {})}
    # Its own process group: on Ctrl-C (or any error here) go and the compilers it
    # started are stopped together, and none outlives the command.
    proc = subprocess.Popen(
        args,
        cwd=wrapper,
        env=environ,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    lines: list[str] = []
    assert proc.stdout is not None
    try:
        for line in proc.stdout:
            lines.append(line)
            on_line(line.strip())
        code = proc.wait()
    except BaseException:
        _stop_group(proc)
        raise
    if code != 0 or not out.is_file():
        raise _fail(recipe, "go build", "".join(lines[-200:]))
    return flags
