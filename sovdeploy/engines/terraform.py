"""Typed wrapper over python-terraform, for OpenTofu (the default) or Terraform.

The engine is a binary of either: both read the same modules, state and CLI
configuration. python-terraform (0.10.1, 2019) builds the argument lists; the process itself is run
here because its ``cmd()`` cannot add environment variables, returns output only at
the end, and on Ctrl-C leaves Terraform running and holding the state lock. Quirks
of the library against Terraform 1.x (``-force`` on destroy, ``output NAME``) stay
inside this module.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from python_terraform import IsFlagged, IsNotFlagged, Terraform

from sovdeploy.errors import InterruptedRunError, TerraformError, UsageError, tail
from sovdeploy.fsutil import sha256_file

MIN_VERSION = (1, 6)
#: How long Terraform gets to stop cleanly (and write its state) after Ctrl-C.
INTERRUPT_GRACE_S = 120

LineSink = Callable[[str], None]


def _ignore(_line: str) -> None:
    """Default sink: drop output lines."""


@dataclass(frozen=True)
class PlanSummary:
    """What a saved plan would do."""

    add: tuple[str, ...] = ()
    change: tuple[str, ...] = ()
    destroy: tuple[str, ...] = ()

    @property
    def changes(self) -> bool:
        return bool(self.add or self.change or self.destroy)

    def describe(self) -> str:
        return (
            f"{len(self.add)} to add, {len(self.change)} to change, {len(self.destroy)} to destroy"
        )


@dataclass(frozen=True)
class Engine:
    """The binary that applies the modules: ``tofu`` or ``terraform``, and its version."""

    name: str
    path: str
    version: str

    def describe(self) -> str:
        return f"{'OpenTofu' if self.name == 'tofu' else 'Terraform'} {self.version} ({self.path})"


def engine(name: str, path: str | None = None) -> Engine:
    """The engine ``name`` at ``path`` (else on PATH), at least 1.6; never downloaded."""
    found = path or shutil.which(name)
    if found is None or not os.access(found, os.X_OK):
        if name == "tofu":
            raise UsageError(
                "tofu (OpenTofu) is not on PATH: `sovdeploy mirror build` builds it from "
                "pinned source when sovdeploy_supply.build lists opentofu (`make up` does), "
                "or install it from your in-jurisdiction mirror"
            )
        raise UsageError(
            "terraform is not on PATH. Install Terraform >= 1.6 from your in-jurisdiction "
            "mirror, or use OpenTofu (sovdeploy_iac_engine: tofu); sovdeploy never "
            "downloads it."
        )
    env = {**os.environ, "TF_CLI_CONFIG_FILE": os.devnull, "CHECKPOINT_DISABLE": "1"}
    proc = subprocess.run(
        [found, "version", "-json"], capture_output=True, text=True, check=False, env=env
    )
    try:
        version = json.loads(proc.stdout)["terraform_version"]
        major, minor = (int(p) for p in version.split(".")[:2])
    except (ValueError, KeyError) as exc:
        raise UsageError(
            f"cannot read the version of {found}: {proc.stdout or proc.stderr}"
        ) from exc
    if (major, minor) < MIN_VERSION:
        raise UsageError(f"{found} is version {version}; sovdeploy needs >= 1.6")
    return Engine(name=name, path=found, version=version)


@dataclass
class Workspace:
    """A root module generated in the state dir around one of sovdeploy's modules.

    Attributes:
        workdir: directory holding the generated ``main.tf.json``, the plan and local state.
        module: path of the module under ``terraform/modules``.
        inputs: values for the module's variables, written literally into the root module.
        backend: backend type and settings; ``local`` keeps state in ``workdir``.
        plugin_mirror: filesystem mirror of providers, or None when the module needs none.
        env: more environment for Terraform (where a provider finds its configuration).
        engine: the binary that applies it.
        lock_file: the module's committed ``.terraform.lock.hcl``: providers must match it.

    """

    workdir: Path
    module: Path
    inputs: Mapping[str, Any]
    backend: tuple[str, Mapping[str, Any]] = ("local", {})
    plugin_mirror: Path | None = None
    # Never shown: it may carry a credential (OS_PASSWORD for the OpenStack provider).
    env: Mapping[str, str] = field(default_factory=dict, repr=False)
    engine: Engine | None = None
    lock_file: Path | None = None

    @property
    def plan_file(self) -> Path:
        return self.workdir / "sovdeploy.tfplan"


_LOCKED = re.compile(r'provider\s+"(?P<addr>[^"]+)"\s*\{(?P<body>.*?)\n\}', re.DOTALL)


def locked_providers(lock_file: Path) -> dict[str, tuple[str, tuple[str, ...]]]:
    """A dependency lock file's providers: address -> (version, hashes)."""
    found: dict[str, tuple[str, tuple[str, ...]]] = {}
    for m in _LOCKED.finditer(lock_file.read_text()):
        version = re.search(r'\bversion\s*=\s*"([^"]+)"', m.group("body"))
        hashes = re.findall(r'"((?:h1|zh):[^"]+)"', m.group("body"))
        if version is None:
            raise UsageError(f"{lock_file}: provider {m.group('addr')} has no version")
        found[m.group("addr")] = (version.group(1), tuple(hashes))
    return found


def check_locked(lock_file: Path, mirror: Path, platform: str = "linux_amd64") -> list[str]:
    """What differs between a lock file and the providers a filesystem mirror holds.

    Each locked provider must be in the mirror's unpacked layout, and hash (h1, Go's
    dirhash of the package directory) to one of the lock file's hashes: the check
    ``init -lockfile=readonly`` makes, made before any host is touched.
    """
    problems: list[str] = []
    for addr, (version, hashes) in locked_providers(lock_file).items():
        package = mirror / addr / version / platform
        if not package.is_dir():
            problems.append(f"{addr} {version}: not in the provider mirror ({package})")
            continue
        digest = dirhash_h1(package)
        if digest not in hashes:
            problems.append(
                f"{addr} {version}: the mirror's package hashes to {digest}, which "
                f"{lock_file} does not list ({', '.join(h for h in hashes if h.startswith('h1:'))})"
            )
    return problems


def dirhash_h1(directory: Path) -> str:
    """The ``h1:`` hash a lock file records for a provider package (Go's dirhash.Hash1)."""
    lines = []
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        lines.append(f"{sha256_file(path)}  {path.relative_to(directory).as_posix()}\n")
    summary = hashlib.sha256("".join(lines).encode()).digest()
    return "h1:" + base64.b64encode(summary).decode()


def write_root(ws: Workspace) -> None:
    """Write the root module, backend and CLI config (provider installation) for ``ws``."""
    ws.workdir.mkdir(parents=True, exist_ok=True)
    kind, settings = ws.backend
    backend = {"path": "terraform.tfstate"} if kind == "local" else dict(settings)
    module: dict[str, Any] = {"source": str(ws.module), **ws.inputs}
    root: dict[str, Any] = {
        "terraform": {"backend": {kind: backend}},
        "module": {"this": module},
        "output": {"this": {"value": "${module.this}", "sensitive": False}},
    }
    (ws.workdir / "main.tf.json").write_text(json.dumps(root, indent=2, sort_keys=True) + "\n")
    lock = ws.workdir / ".terraform.lock.hcl"
    if ws.lock_file is not None:
        # `init -lockfile=readonly` then refuses a provider whose hash differs from it.
        shutil.copyfile(ws.lock_file, lock)
    # No `direct` block: providers come from the declared mirror or not at all.
    mirror = ws.plugin_mirror
    if mirror is None:
        mirror = ws.workdir / "no-provider-mirror"
        mirror.mkdir(exist_ok=True)
    (ws.workdir / "cli.tfrc").write_text(
        "provider_installation {\n"
        f"  filesystem_mirror {{\n    path = {json.dumps(str(mirror))}\n  }}\n"
        "}\n"
    )


def _env(ws: Workspace) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        TF_CLI_CONFIG_FILE=str(ws.workdir / "cli.tfrc"),
        TF_IN_AUTOMATION="1",
        TF_INPUT="0",
        CHECKPOINT_DISABLE="1",
    )
    env.update(ws.env)
    return env


def _cmd(tf: Terraform, command: str, *args: str, **options: Any) -> list[str]:
    cmd: list[str] = tf.generate_cmd_string(command, *args, **options)
    return cmd


def _run(
    ws: Workspace, cmd: Sequence[str], on_line: LineSink, ok: Sequence[int] = (0,)
) -> tuple[int, str]:
    """Run ``cmd`` in the workspace, streaming lines, forwarding Ctrl-C once."""
    proc = subprocess.Popen(
        cmd,
        cwd=ws.workdir,
        env=_env(ws),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    lines: list[str] = []

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            on_line(line.rstrip("\n"))

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        proc.wait()
    except KeyboardInterrupt:
        # Terraform stops cleanly on one SIGINT and saves its state; wait for that.
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=INTERRUPT_GRACE_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        reader.join(timeout=5)
        raise InterruptedRunError(
            f"interrupted during `{' '.join(cmd[1:3])}`; the engine saved its state"
        ) from None
    reader.join(timeout=5)
    output = "".join(lines)
    if proc.returncode not in ok:
        raise TerraformError(cmd, proc.returncode, _errors(output), what=Path(cmd[0]).name)
    return proc.returncode, output


def _errors(output: str, lines: int = 20) -> str:
    """The part of the output that says what failed: from its first ``Error:`` on.

    OpenTofu prints its usage after a flag error, which would push the error itself out
    of the output's tail.
    """
    text = output.splitlines()
    for i, line in enumerate(text):
        if line.lstrip("│ ").startswith("Error:"):
            return "\n".join(text[i : i + lines])
    return tail(output, lines)


def _tf(ws: Workspace) -> Terraform:
    found = ws.engine or engine("tofu")
    return Terraform(working_dir=str(ws.workdir), terraform_bin_path=found.path)


def init(ws: Workspace, on_line: LineSink = _ignore) -> None:
    write_root(ws)
    cmd = _cmd(_tf(ws), "init", input=False, no_color=IsFlagged, upgrade=IsNotFlagged)
    if ws.lock_file is not None:
        cmd.append("-lockfile=readonly")
    _run(ws, cmd, on_line)


def plan(ws: Workspace, *, destroy: bool = False, on_line: LineSink = _ignore) -> PlanSummary:
    """Save a plan to ``ws.plan_file`` and return what it would do."""
    cmd = _cmd(
        _tf(ws),
        "plan",
        input=False,
        no_color=IsFlagged,
        detailed_exitcode=IsFlagged,
        out=str(ws.plan_file),
        destroy=IsFlagged if destroy else None,
    )
    # -detailed-exitcode: 0 no changes, 2 changes present, 1 error.
    _run(ws, cmd, on_line, ok=(0, 2))
    return summarise(show(ws))


def show(ws: Workspace) -> dict[str, Any]:
    """The saved plan as Terraform's JSON representation."""
    cmd = _cmd(_tf(ws), "show", str(ws.plan_file), no_color=IsFlagged, json=IsFlagged)
    _, out = _run(ws, cmd, _ignore)
    data: dict[str, Any] = json.loads(out)
    return data


def summarise(plan_json: Mapping[str, Any]) -> PlanSummary:
    add, change, destroy = [], [], []
    for rc in plan_json.get("resource_changes", []):
        actions = rc.get("change", {}).get("actions", [])
        address = rc.get("address", "?")
        if "create" in actions:
            add.append(address)
        if "delete" in actions:
            destroy.append(address)
        if "update" in actions:
            change.append(address)
    return PlanSummary(tuple(add), tuple(change), tuple(destroy))


def apply(ws: Workspace, on_line: LineSink = _ignore) -> None:
    """Apply the plan saved by :func:`plan` (and nothing else)."""
    cmd = _cmd(
        _tf(ws), "apply", str(ws.plan_file), input=False, no_color=IsFlagged, auto_approve=IsFlagged
    )
    _run(ws, cmd, on_line)


def outputs(ws: Workspace) -> dict[str, Any]:
    """The module's outputs as plain values (``terraform output -json``)."""
    # python-terraform's output(NAME) cannot read Terraform 1.x JSON; read all instead.
    cmd = _cmd(_tf(ws), "output", no_color=IsFlagged, json=IsFlagged)
    _, out = _run(ws, cmd, _ignore)
    data = json.loads(out or "{}")
    value: dict[str, Any] = data.get("this", {}).get("value", {})
    return value


def destroy(ws: Workspace, on_line: LineSink = _ignore) -> None:
    # force=None: python-terraform would add the -force flag Terraform 1.x removed.
    cmd = _cmd(
        _tf(ws), "destroy", input=False, no_color=IsFlagged, auto_approve=IsFlagged, force=None
    )
    _run(ws, cmd, on_line)
