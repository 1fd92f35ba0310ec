"""The deployment's secrets and credentials as the steps use them; never logged."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

from sovdeploy import inventory as inv
from sovdeploy import secrets
from sovdeploy.context import Context
from sovdeploy.errors import CommandError, UsageError
from sovdeploy.inventory import LoadedInventory
from sovdeploy.model import Deployment
from sovdeploy.openstack import usercheck
from sovdeploy.state import StateDir


def apt_mirror(deployment: Deployment) -> str:
    """The URL of the deployment's declared apt source."""
    for source in deployment.settings.artifact_sources.values():
        if source.kind == "apt":
            return str(source.url)
    raise UsageError("the inventory declares no artifact source of kind 'apt'")


def ensure_ssh_key(state: StateDir) -> None:
    """The deployment's SSH key pair (the sandbox's hosts trust it), made once.

    Raises:
        CommandError: when ssh-keygen fails, with its output.

    """
    key = state.ssh_key
    if key.exists():
        return
    key.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    cmd = ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "sovdeploy", "-f", str(key)]
    done = subprocess.run(cmd, check=False, capture_output=True, text=True)
    if done.returncode != 0:
        raise CommandError(cmd, done.returncode, done.stdout + done.stderr, what="ssh-keygen")
    shutil.copyfile(key.with_suffix(".pub"), key.parent / "authorized_keys")


def bmc_credentials_problem(ctx: Context) -> None:
    """Every host with a BMC has its credentials in the vault; else a UsageError naming them."""
    creds = vault_values(ctx).get("bmc_credentials") or {}
    missing = [
        h.name
        for h in ctx.deployment.hosts
        if h.bmc is not None
        and not (
            isinstance(creds.get(h.name), dict) and {"username", "password"} <= set(creds[h.name])
        )
    ]
    if missing:
        raise UsageError(
            "the vault has no BMC credentials for " + ", ".join(missing) + "; nothing was "
            "touched. Add bmc_credentials: {HOST: {username: ..., password: ...}} to "
            "group_vars/all/secrets.vault.yml (ansible-vault edit)"
        )


def prepare_secrets(loaded: LoadedInventory, *, create: bool) -> LoadedInventory:
    """Make sure the vault holds every secret the roles need, before any host is touched.

    With ``create`` (``up`` on the sandbox) a missing vault and password file are
    generated, and secrets a newer sovdeploy needs are added to an existing vault (its
    values are kept); otherwise a missing vault or secret is an error naming the
    command that adds it. Returns the inventory reloaded when the vault changed.
    """
    needed = secrets.required()
    vault = secrets.vault_file(loaded.path)
    password_file = loaded.vault_password_file or secrets.password_file(loaded.deployment.name)
    if create:
        existed = vault.exists()
        if not existed:
            secrets.ensure_password_file(password_file)
        added = secrets.generate(loaded.path, secrets.read_password(password_file), needed)
        if added or not existed:
            return inv.load(loaded.path, vault_password_file=password_file)
    secrets.check(loaded.path, password_file, needed)
    return loaded


def vault_values(ctx: Context) -> dict[str, Any]:
    """The deployment's secrets, decrypted (never logged, never recorded)."""
    password_file = ctx.inventory.vault_password_file
    if password_file is None:
        raise UsageError("the inventory has no vault; run `sovdeploy secrets generate`")
    return secrets.decrypt(
        secrets.vault_file(ctx.inventory.path), secrets.read_password(password_file)
    )


def write_clouds(ctx: Context, values: dict[str, Any]) -> tuple[Path, Path]:
    """clouds.yaml and secure.yaml for the operator, from the vault's admin password."""
    s = ctx.deployment.settings
    assert s.endpoint is not None
    return usercheck.write_clouds_yaml(
        ctx.state.root,
        cloud=s.deployment,
        endpoint=s.endpoint.name or str(s.endpoint.address),
        region=s.region,
        ca_file=ctx.state.root / "pki" / "ca.crt",
        password=str(values["keystone_admin_password"]),
    )
