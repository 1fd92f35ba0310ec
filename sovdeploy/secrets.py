"""Per-deployment secrets: which ones the roles need, generated once, kept in an ansible-vault file.

The set of secrets is not a list kept here: it is every role option that its
``meta/argument_specs.yml`` marks ``required: true`` and ``no_log: true``. Adding
such an option to a role adds a secret; ``sovdeploy secrets generate`` fills in
the ones a vault lacks and never changes one it has (a changed database password
or CA key would lock the cloud out of its own data).

The vault lives in the inventory, ``group_vars/all/secrets.vault.yml``, so that a
plain ``ansible-playbook --vault-password-file`` run sees the same variables. The
password lives outside the repository: ``$SOVDEPLOY_VAULT_PASSWORD_FILE`` or
``~/.config/sovdeploy/vault/<deployment>.pass``.
"""

from __future__ import annotations

import base64
import os
import secrets
import string
import struct
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from sovdeploy.errors import SovdeployError, UsageError
from sovdeploy.fsutil import atomic_write
from sovdeploy.paths import project_root

#: Words that mark a name (an option, an inventory key) as holding a secret.
SECRET_WORDS = ("password", "secret", "token", "key")

VAULT_RELPATH = Path("group_vars") / "all" / "secrets.vault.yml"
_ALPHABET = string.ascii_letters + string.digits


class VaultError(SovdeployError):
    """The vault cannot be opened, or lacks secrets the roles need."""

    exit_code = 2


def _password() -> str:
    # Letters and digits only: these go into database URLs and config files unquoted.
    return "".join(secrets.choice(_ALPHABET) for _ in range(32))


def _cephx_key() -> str:
    # The layout `ceph-authtool --gen-print-key` prints: type (1 = AES), creation time
    # (seconds, nanoseconds), secret length, then the secret; base64 encoded.
    created = time.time_ns()
    header = struct.pack("<hiih", 1, created // 10**9, created % 10**9, 16)
    return base64.b64encode(header + secrets.token_bytes(16)).decode()


def _private_key() -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP384R1())
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def _encryption_key() -> str:
    """32 random bytes, base64: an AES-256 or secretbox key (Kubernetes' encryption at rest)."""
    return base64.b64encode(secrets.token_bytes(32)).decode()


def _bootstrap_token() -> str:
    """A kubeadm bootstrap token: six and sixteen of [a-z0-9], joined by a dot."""
    alphabet = string.ascii_lowercase + string.digits
    return ".".join("".join(secrets.choice(alphabet) for _ in range(n)) for n in (6, 16))


#: Secret kinds by the ending of the option's name.
GENERATORS: dict[str, Callable[[], str]] = {
    "_password": _password,
    "_cookie": _password,
    "_secret": _password,
    "_cephx_key": _cephx_key,
    "_private_key": _private_key,
    "_encryption_key": _encryption_key,
    "_bootstrap_token": _bootstrap_token,
}


def kind_of(name: str) -> str | None:
    """The generator suffix that ``name`` ends with, if any."""
    return next((suffix for suffix in GENERATORS if name.endswith(suffix)), None)


@dataclass(frozen=True)
class Secret:
    name: str
    role: str
    description: str


def required(roles_dir: Path | None = None) -> dict[str, Secret]:
    """Every secret some role needs, by variable name."""
    roles_dir = roles_dir or project_root() / "roles"
    found: dict[str, Secret] = {}
    for spec_file in sorted(roles_dir.glob("*/meta/argument_specs.yml")):
        specs = yaml.safe_load(spec_file.read_text(encoding="utf-8")) or {}
        role = spec_file.parent.parent.name
        for entry in (specs.get("argument_specs") or {}).values():
            for name, option in (entry.get("options") or {}).items():
                if option.get("no_log") and option.get("required"):
                    desc = option.get("description", "")
                    text = " ".join(desc) if isinstance(desc, list) else str(desc)
                    found.setdefault(name, Secret(name, role, text))
    return found


def password_file(deployment: str) -> Path:
    env = os.environ.get("SOVDEPLOY_VAULT_PASSWORD_FILE")
    if env:
        return Path(env).expanduser()
    config = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return config / "sovdeploy" / "vault" / f"{deployment}.pass"


def vault_file(inventory: Path) -> Path:
    return inventory / VAULT_RELPATH


def read_password(path: Path) -> bytes:
    try:
        password = path.read_bytes().strip()
    except FileNotFoundError:
        raise VaultError(
            f"no vault password file at {path}: put the deployment's vault password there "
            "(or name the file with SOVDEPLOY_VAULT_PASSWORD_FILE)"
        ) from None
    if not password:
        raise VaultError(f"the vault password file {path} is empty")
    return password


def _vault(password: bytes) -> Any:
    from ansible.parsing.vault import VaultLib, VaultSecret

    return VaultLib([("default", VaultSecret(password))])


def decrypt(path: Path, password: bytes) -> dict[str, Any]:
    """The vault's variables; a clear error for a wrong password or a damaged file."""
    from ansible.errors import AnsibleError

    raw = path.read_bytes()
    try:
        plain = _vault(password).decrypt(raw, filename=str(path))
    except AnsibleError:
        if b"$ANSIBLE_VAULT" not in raw[:20]:
            raise VaultError(f"{path} is not an ansible-vault file") from None
        raise VaultError(
            f"cannot decrypt {path} with the password in the vault password file: "
            "wrong password (it is the one the vault was created with), or a damaged file "
            "(truncated or edited): restore it from the inventory's git history"
        ) from None
    try:
        data = yaml.safe_load(plain) or {}
    except yaml.YAMLError:
        data = None
    if not isinstance(data, dict):
        raise VaultError(f"{path} does not hold a mapping of variables")
    return data


def encrypt_to(path: Path, values: Mapping[str, str], password: bytes) -> None:
    header = "# sovdeploy secrets: generated once, never rotated by `up`.\n"
    plain = header + yaml.safe_dump(dict(sorted(values.items())), default_flow_style=False)
    atomic_write(path, _vault(password).encrypt(plain), mode=0o600)


def ensure_password_file(path: Path) -> bool:
    """Create a random vault password file (0600) if none exists; return whether it did."""
    if path.exists():
        return False
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    atomic_write(path, secrets.token_urlsafe(32) + "\n", mode=0o600)
    return True


def generate(inventory: Path, password: bytes, needed: Mapping[str, Secret]) -> list[str]:
    """Add the missing secrets to the vault (creating it); return the names added."""
    path = vault_file(inventory)
    values = decrypt(path, password) if path.exists() else {}
    added = []
    for name in sorted(needed):
        if name in values:
            continue
        suffix = kind_of(name)
        if suffix is None:
            raise UsageError(
                f"role option '{name}' is a secret but its name ends in none of "
                f"{', '.join(GENERATORS)}: sovdeploy does not know how to generate it"
            )
        values[name] = GENERATORS[suffix]()
        added.append(name)
    if added or not path.exists():
        encrypt_to(path, values, password)
    return added


def check(inventory: Path, password_file: Path, needed: Mapping[str, Secret]) -> dict[str, Any]:
    """Open the vault and make sure it holds every needed secret; return its values.

    A missing vault is named before a missing password file: it is the first thing
    to fix, and `secrets generate` creates both.
    """
    path = vault_file(inventory)
    if not path.exists():
        raise VaultError(
            f"the inventory has no vault ({path}); create it with "
            f"`sovdeploy secrets generate -i {inventory}`"
        )
    values = decrypt(path, read_password(password_file))
    missing = sorted(set(needed) - set(values))
    if missing:
        raise VaultError(
            f"the vault {path} lacks {len(missing)} secret(s): {', '.join(missing)}; "
            f"add them with `sovdeploy secrets generate -i {inventory}` (existing ones are kept)"
        )
    return values


def needles(values: Mapping[str, Any]) -> dict[str, str]:
    """What to search for per secret: the value, or a body line of a PEM key."""
    found = {}
    for name, value in values.items():
        text = str(value).strip()
        if text.startswith("-----BEGIN"):
            text = text.splitlines()[1]
        if len(text) >= 8:
            found[name] = text
    return found


def scan(root: Path, values: Mapping[str, Any]) -> list[tuple[str, Path]]:
    """Every (secret name, file) under ``root`` whose content holds a secret's value."""
    wanted = needles(values)
    leaks = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        data = path.read_bytes().decode("utf-8", errors="replace")
        leaks += [(name, path) for name, needle in wanted.items() if needle in data]
    return leaks
