"""Load a plain Ansible inventory with ansible-core's own API and build the typed model.

Nothing here contacts a host. Every problem found is collected, located (file,
line, key path, value) and returned at once, so an operator fixes an inventory
in one pass instead of one error per run.
"""

from __future__ import annotations

import datetime as dt
import difflib
import hashlib
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from sovdeploy import secrets
from sovdeploy.errors import InvalidInventoryError
from sovdeploy.findings import Finding, Severity
from sovdeploy.findings import locate as _locate
from sovdeploy.findings import position as _position
from sovdeploy.hardware import facts as hardware_facts
from sovdeploy.hardware import preflight
from sovdeploy.model import HOST_KEYS, ROLE_GROUPS, Deployment, Hardware, Host, Settings
from sovdeploy.policy import RULES
from sovdeploy.policy import check as policy_check
from sovdeploy.state import StateDir

PREFIX = "sovdeploy_"
SETTINGS_KEYS = tuple(PREFIX + name for name in Settings.model_fields)
HOST_VAR_KEYS = tuple(PREFIX + name for name in HOST_KEYS)
_YAML_SUFFIXES = (".yml", ".yaml", ".json")
_IGNORED_DIRS = {".sovdeploy", ".git"}


@dataclass(frozen=True)
class LoadedInventory:
    """The model plus what the loader saw, for later phases and for the attestation."""

    path: Path
    deployment: Deployment
    findings: tuple[Finding, ...]
    digest: str
    #: The vault password file, when the inventory has a vault (``secrets.vault_file``).
    vault_password_file: Path | None = None
    #: The inventory as ansible-core read it, vault opened (``open_ansible``).
    ansible: _Loaded | None = field(default=None, compare=False, repr=False)
    #: The sysfs facts ``sovdeploy discover`` saved, by host (none without the preflight).
    facts: Mapping[str, Mapping[str, Any]] = field(default_factory=dict, compare=False)


class _LenientLoader(yaml.SafeLoader):
    """Parses Ansible's tags (``!vault``, ``!unsafe``) as plain scalars: syntax check only."""


def _ignore_tag(loader: yaml.SafeLoader, _suffix: str, node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        return loader.construct_scalar(node)
    return None


_LenientLoader.add_multi_constructor("!", _ignore_tag)


def inventory_files(path: Path) -> list[Path]:
    """Every file of the inventory, in a stable order, skipping the state dir."""
    if path.is_file():
        return [path]
    files = []
    for item in sorted(path.rglob("*")):
        if item.is_file() and not _IGNORED_DIRS.intersection(item.relative_to(path).parts):
            files.append(item)
    return files


def digest_files(files: Iterable[Path], root: Path) -> str:
    """SHA-256 over relative names and contents, so a change anywhere changes it."""
    h = hashlib.sha256()
    for f in files:
        h.update(str(f.relative_to(root)).encode() + b"\0")
        h.update(f.read_bytes() + b"\0")
    return h.hexdigest()


def _syntax_findings(files: Iterable[Path]) -> list[Finding]:
    findings = []
    for f in files:
        if f.suffix not in _YAML_SUFFIXES:
            continue
        try:
            yaml.load(f.read_text(encoding="utf-8"), Loader=_LenientLoader)  # noqa: S506
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            line = mark.line + 1 if mark else None
            findings.append(
                Finding(
                    code="inventory.yaml_syntax",
                    message=f"YAML syntax error: {exc.problem or exc}",
                    file=str(f),
                    line=line,
                    hint="fix the YAML at that line (indentation, a missing colon or quote)",
                )
            )
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            findings.append(
                Finding(code="inventory.yaml_syntax", message=f"unreadable: {exc}", file=str(f))
            )
    return findings


def _render(value: Any, key: str) -> str:
    if any(word in key.lower() for word in secrets.SECRET_WORDS):
        return "<redacted>"
    text = repr(value) if not isinstance(value, str) else value
    return text if len(text) <= 120 else text[:117] + "..."


def _fields_at(model: type[BaseModel], loc: Sequence[str | int]) -> list[str]:
    """Field names of the model found by walking ``loc`` (for did-you-mean)."""
    current: Any = model
    for part in loc:
        if isinstance(part, int) or not (
            isinstance(current, type) and issubclass(current, BaseModel)
        ):
            continue
        field = current.model_fields.get(part)
        if field is None:
            break
        current = _inner_model(field.annotation)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return list(current.model_fields)
    return []


def _inner_model(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _inner_model(arg)
        if found is not None:
            return found
    return None


def did_you_mean(word: str, choices: Iterable[str]) -> str | None:
    match = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"did you mean '{match[0]}'?" if match else None


def _pydantic_findings(
    exc: ValidationError,
    model: type[BaseModel],
    raw: Mapping[str, Any],
    key_prefix: str,
    var_prefix: str,
) -> Iterator[Finding]:
    """Translate pydantic errors into located findings.

    ``raw`` maps field names to the values as the YAML loader made them (so they still
    carry their file and line); ``var_prefix`` turns a field name into the variable name.
    """
    for err in exc.errors():
        loc = [p for p in err["loc"] if isinstance(p, str | int)]
        var = var_prefix + str(loc[0]) if loc else var_prefix.rstrip("_")
        key = ".".join([var, *(str(p) for p in loc[1:])])
        file, line = _locate(raw, loc)
        hint = None
        if err["type"] == "extra_forbidden":
            known = _fields_at(model, loc[:-1])
            hint = did_you_mean(str(loc[-1]), known) or f"known keys here: {', '.join(known)}"
            message = f"unknown key '{loc[-1]}'"
        elif err["type"] == "missing":
            message = "required key is missing"
            hint = f"set {key} (see the inventory reference in README.md)"
        else:
            message = err["msg"]
        yield Finding(
            code="inventory.unknown_key"
            if err["type"] == "extra_forbidden"
            else "inventory.invalid",
            message=message,
            file=file,
            line=line,
            key=f"{key_prefix}{key}",
            value=None if err["type"] == "missing" else _render(err.get("input"), key),
            hint=hint,
        )


class _Loaded:
    """Raw ansible objects for one inventory: groups, hosts and their own (unmerged) vars."""

    def __init__(self, path: Path, vault_password: bytes | None = None) -> None:
        from ansible import constants as C  # noqa: N812  (ansible's own idiom)
        from ansible.inventory.manager import InventoryManager
        from ansible.parsing.dataloader import DataLoader
        from ansible.vars.plugins import get_vars_from_inventory_sources

        # An unparsable source must be an error, never a silently empty inventory.
        C.INVENTORY_ANY_UNPARSED_IS_FAILED = True
        C.INVENTORY_UNPARSED_IS_FAILED = True
        self.loader = DataLoader()
        if vault_password is not None:
            from ansible.parsing.vault import VaultSecret

            self.loader.set_vault_secrets([("default", VaultSecret(vault_password))])
        self.sources = [str(path)]
        self.manager = InventoryManager(loader=self.loader, sources=self.sources)
        self._plugin_vars = get_vars_from_inventory_sources
        self._cache: dict[str, dict[str, Any]] = {}
        self._vars_stage = "inventory" if C.RUN_VARS_PLUGINS == "start" else "task"

    def own_vars(self, entity: Any) -> dict[str, Any]:
        """Vars set on this group or host itself: inventory file plus group_vars/host_vars."""
        from ansible.utils.vars import combine_vars

        key = f"{type(entity).__name__}:{entity.name}"
        if key not in self._cache:
            own = entity.get_vars()
            # With RUN_VARS_PLUGINS=start the inventory already merged group_vars/host_vars
            # into the entity; with the default ('demand') they are read at task stage.
            if self._vars_stage == "task":
                own = combine_vars(
                    own, self._plugin_vars(self.loader, self.sources, [entity], "task")
                )
            self._cache[key] = own
        return self._cache[key]

    def host_vars(self, host: Any) -> dict[str, Any]:
        """Inventory-level vars of a host, merged in Ansible's precedence order."""
        from ansible.inventory.helpers import sort_groups
        from ansible.utils.vars import combine_vars

        merged: dict[str, Any] = {}
        for group in sort_groups(host.get_groups()):
            merged = combine_vars(merged, self.own_vars(group))
        result: dict[str, Any] = combine_vars(merged, self.own_vars(host))
        return result


def open_ansible(inventory: LoadedInventory) -> _Loaded:
    """The inventory as Ansible reads it (groups, hosts, their vars), vault opened.

    ``load`` keeps what it read; an inventory modelled some other way is read again.
    """
    if inventory.ansible is not None:
        return inventory.ansible
    password = None
    if inventory.vault_password_file is not None:
        password = secrets.read_password(inventory.vault_password_file)
    return _Loaded(inventory.path, password)


def _origin(obj: Any, entity: str) -> str:
    file, _ = _position(obj)
    return file or entity


def peek_deployment(path: Path) -> str | None:
    """``sovdeploy_deployment`` read from the plain files of ``group_vars/all``.

    The vault password file is named after the deployment, and the vault must be
    opened before ansible-core can read the inventory: so the name is read first.
    """
    candidates = [path / "group_vars" / "all.yml", path / "group_vars" / "all.yaml"]
    all_dir = path / "group_vars" / "all"
    if all_dir.is_dir():
        candidates += sorted(all_dir.glob("*.y*ml"))
    for f in candidates:
        if not f.is_file() or f.name == secrets.VAULT_RELPATH.name:
            continue
        data = yaml.load(f.read_text(encoding="utf-8"), Loader=_LenientLoader)  # noqa: S506
        if isinstance(data, dict) and isinstance(data.get(PREFIX + "deployment"), str):
            return str(data[PREFIX + "deployment"])
    return None


def _open_vault(path: Path, password_file: Path | None) -> tuple[bytes | None, Path | None]:
    vault = secrets.vault_file(path)
    if not vault.exists():
        return None, None
    password_file = password_file or secrets.password_file(peek_deployment(path) or path.name)
    try:
        password = secrets.read_password(password_file)
        secrets.decrypt(vault, password)
    except secrets.VaultError as exc:
        raise InvalidInventoryError(
            [
                Finding(
                    code="secrets.vault",
                    message=str(exc),
                    file=str(vault),
                    hint="the password file is named by SOVDEPLOY_VAULT_PASSWORD_FILE, or is "
                    "~/.config/sovdeploy/vault/<deployment>.pass",
                )
            ]
        ) from None
    return password, password_file


def load(
    path: Path | str,
    today: dt.date | None = None,
    vault_password_file: Path | None = None,
    *,
    hardware: bool = True,
) -> LoadedInventory:
    """Load, check and model the inventory at ``path``.

    ``hardware=False`` leaves out the hardware preflight: ``sovdeploy discover`` must run
    on hosts whose last discovered facts it refuses.

    Raises:
        InvalidInventoryError: with every blocking finding, when there is at least one.

    """
    from ansible.errors import AnsibleError

    path = Path(path).resolve()
    if not path.exists():
        raise InvalidInventoryError(
            [Finding(code="inventory.missing", message="no such inventory", file=str(path))]
        )
    files = inventory_files(path)
    syntax = _syntax_findings(files)
    if syntax:
        raise InvalidInventoryError(syntax)
    password, password_file = _open_vault(path, vault_password_file)
    try:
        loaded = _Loaded(path, password)
    except AnsibleError as exc:
        raise InvalidInventoryError([_ansible_finding(exc, path)]) from exc

    findings: list[Finding] = []
    all_group = loaded.manager.groups["all"]
    try:
        settings_raw = {k: v for k, v in loaded.own_vars(all_group).items() if k.startswith(PREFIX)}
        host_raw = {h.name: loaded.host_vars(h) for h in loaded.manager.get_hosts()}
        misplaced = list(_misplaced_settings(loaded))
    except AnsibleError as exc:
        raise InvalidInventoryError([_ansible_finding(exc, path)]) from exc
    findings.extend(misplaced)

    settings = _build_settings(settings_raw, findings)
    hosts = [h for h in (_build_host(name, raw, findings) for name, raw in host_raw.items()) if h]
    if not host_raw:
        findings.append(
            Finding(
                code="inventory.no_hosts",
                message="the inventory defines no hosts",
                file=str(path),
                hint="add hosts under the role groups in hosts.yml",
            )
        )
    deployment = None
    facts: Mapping[str, Mapping[str, Any]] = {}
    if settings is not None:
        # Check the hosts that did model, so that one bad host hides no other problem.
        deployment = Deployment(settings=settings, hosts=tuple(hosts))
        findings.extend(_structure_findings(deployment, host_raw, settings_raw))
        findings.extend(policy_check(deployment, settings_raw, today=today, host_raw=host_raw))
        if hardware:
            facts, problems = hardware_facts.saved(StateDir(path), deployment)
            findings.extend(problems)
            findings.extend(preflight.findings(deployment, facts, host_raw))
    errors = [f for f in findings if f.severity is Severity.ERROR]
    if errors or deployment is None or len(hosts) != len(host_raw):
        raise InvalidInventoryError(findings)
    return LoadedInventory(
        path=path,
        deployment=deployment,
        findings=tuple(findings),
        digest=digest_files(files, path),
        vault_password_file=password_file,
        ansible=loaded,
        facts=facts,
    )


_ANSIBLE_POS = re.compile(r"'(?P<file>[^']+)': line (?P<line>\d+)")


def _ansible_finding(exc: Exception, path: Path) -> Finding:
    text = str(exc)
    match = _ANSIBLE_POS.search(text)
    return Finding(
        code="inventory.unparsable",
        message=text.strip().splitlines()[0],
        file=match["file"] if match else str(path),
        line=int(match["line"]) if match else None,
        hint="run `ansible-inventory -i <dir> --graph` for ansible's own view of the error",
    )


def _misplaced_settings(loaded: _Loaded) -> Iterator[Finding]:
    """Deployment-wide settings set on a group or host other than ``all``; unknown keys."""
    known = SETTINGS_KEYS + HOST_VAR_KEYS
    entities: list[Any] = list(loaded.manager.groups.values()) + list(loaded.manager.get_hosts())
    for entity in entities:
        own = loaded.own_vars(entity)
        for key, value in own.items():
            if not key.startswith(PREFIX):
                continue
            file, line = _position(value)
            file = file or _origin(own, entity.name)
            if key not in known:
                yield Finding(
                    code="inventory.unknown_key",
                    message=f"unknown setting '{key}'",
                    file=file,
                    line=line,
                    key=key,
                    value=_render(value, key),
                    hint=did_you_mean(key, known) or "see the inventory reference in README.md",
                )
            elif key in SETTINGS_KEYS and entity.name != "all":
                yield Finding(
                    code="inventory.misplaced_setting",
                    message=f"'{key}' is deployment-wide but is set on '{entity.name}'",
                    file=file,
                    line=line,
                    key=key,
                    value=_render(value, key),
                    hint="move it to group_vars/all/",
                )


def _build_settings(raw: Mapping[str, Any], findings: list[Finding]) -> Settings | None:
    fields = {k[len(PREFIX) :]: v for k, v in raw.items() if k in SETTINGS_KEYS}
    try:
        return Settings.model_validate(fields)
    except ValidationError as exc:
        findings.extend(_pydantic_findings(exc, Settings, fields, "", PREFIX))
        return None


def _build_host(name: str, raw: Mapping[str, Any], findings: list[Finding]) -> Host | None:
    fields: dict[str, Any] = {
        "name": name,
        "site": raw.get(PREFIX + "site"),
        "groups": tuple(raw.get("group_names", ())),
        "address": raw.get("ansible_host"),
        "hardware": raw.get(PREFIX + "hardware") or Hardware(),
        "bmc": raw.get(PREFIX + "bmc"),
    }
    if fields["site"] is None:
        findings.append(
            Finding(
                code="inventory.host_without_site",
                message=f"host '{name}' has no sovdeploy_site",
                key=f"hosts.{name}.sovdeploy_site",
                hint="set sovdeploy_site in host_vars/<host>.yml or on a group the host is in",
            )
        )
        return None
    try:
        return Host.model_validate(fields)
    except ValidationError as exc:
        raw_fields = {
            "site": raw.get(PREFIX + "site"),
            "hardware": raw.get(PREFIX + "hardware"),
            "bmc": raw.get(PREFIX + "bmc"),
        }
        findings.extend(_pydantic_findings(exc, Host, raw_fields, f"hosts.{name}.", PREFIX))
        return None


def _structure_findings(
    deployment: Deployment,
    host_raw: Mapping[str, Mapping[str, Any]],
    settings_raw: Mapping[str, Any],
) -> Iterator[Finding]:
    """Contradictions between otherwise well-formed parts of the inventory."""
    sites = deployment.settings.sites
    addresses: dict[str, str] = {}
    for host in deployment.hosts:
        raw = host_raw[host.name]
        file, line = _position(raw.get(PREFIX + "site"))
        if host.site not in sites:
            yield Finding(
                code="inventory.unknown_site",
                message=f"host '{host.name}' names a site that sovdeploy_sites does not declare",
                file=file,
                line=line,
                key=f"hosts.{host.name}.sovdeploy_site",
                value=host.site,
                hint=did_you_mean(host.site, sites) or f"declared sites: {', '.join(sites)}",
            )
        if not host.roles:
            yield Finding(
                code="inventory.host_without_role",
                message=f"host '{host.name}' is in none of the role groups",
                key=f"hosts.{host.name}",
                hint=f"add it to one of: {', '.join(ROLE_GROUPS)}",
            )
        hw_file, hw_line = _position(raw.get(PREFIX + "hardware"))
        if host.hardware.gpus and not {"compute", "k8s_worker"} & set(host.groups):
            yield Finding(
                code="inventory.hardware_unused",
                message=f"host '{host.name}' declares GPUs but is neither compute nor k8s_worker",
                file=hw_file,
                line=hw_line,
                key=f"hosts.{host.name}.sovdeploy_hardware.gpus",
                hint="put the host in 'compute' or 'k8s_worker', or drop the GPUs",
            )
        if host.hardware.dpdk and not {"compute", "network"} & set(host.groups):
            yield Finding(
                code="inventory.hardware_unused",
                message=f"host '{host.name}' declares DPDK but is neither compute nor network",
                file=hw_file,
                line=hw_line,
                key=f"hosts.{host.name}.sovdeploy_hardware.dpdk",
                hint="put the host in 'compute' or 'network', or drop the dpdk block",
            )
        nic_names = {n.name for n in host.hardware.nics}
        for nic in host.hardware.dpdk.nics if host.hardware.dpdk else ():
            if nic not in nic_names:
                yield Finding(
                    code="inventory.undeclared_nic",
                    message=f"host '{host.name}' binds NIC '{nic}' to DPDK but does not declare it",
                    file=hw_file,
                    line=hw_line,
                    key=f"hosts.{host.name}.sovdeploy_hardware.dpdk.nics",
                    value=nic,
                    hint=did_you_mean(nic, nic_names) or "declare it under sovdeploy_hardware.nics",
                )
        if host.address:
            if host.address in addresses:
                yield Finding(
                    code="inventory.duplicate_address",
                    message=f"hosts '{addresses[host.address]}' and '{host.name}' share an address",
                    key=f"hosts.{host.name}.ansible_host",
                    value=host.address,
                    hint="each host needs its own ansible_host",
                )
            addresses[host.address] = host.name
        if deployment.settings.provisioner == "baremetal" and host.bmc is None:
            yield Finding(
                code="inventory.missing_bmc",
                message=f"host '{host.name}' has no sovdeploy_bmc, which bare-metal needs",
                key=f"hosts.{host.name}.sovdeploy_bmc",
                hint="declare driver, address and boot_mac in host_vars",
            )
    names = {h.name for h in deployment.hosts}
    for i, vm in enumerate(deployment.settings.sandbox.vms):
        if vm not in names:
            yield _unknown_name(
                "inventory.unknown_host",
                "sovdeploy_sandbox.vms names a host the inventory does not have",
                settings_raw,
                ["sandbox", "vms", i],
                vm,
                names,
                "name hosts of hosts.yml",
            )
    yield from _kubernetes_findings(deployment)
    yield from _waiver_rule_findings(deployment, settings_raw)


def _kubernetes_findings(deployment: Deployment) -> Iterator[Finding]:
    control = deployment.hosts_in("k8s_control")
    if len(control) > 1 and deployment.settings.kubernetes.endpoint is None:
        yield Finding(
            code="inventory.kubernetes_endpoint",
            message=f"{len(control)} Kubernetes control hosts need an API address to share",
            key="sovdeploy_kubernetes.endpoint",
            hint="declare sovdeploy_kubernetes.endpoint (address, name, interface): a free "
            "address that keepalived moves between them",
        )


def _unknown_name(  # noqa: PLR0917 - one finding's facts
    code: str,
    message: str,
    settings_raw: Mapping[str, Any],
    path: list[str | int],
    value: str,
    choices: Iterable[str],
    otherwise: str,
) -> Finding:
    """A setting that names something (a host, a rule) the deployment does not have."""
    file, line = _locate(settings_raw.get(PREFIX + str(path[0])), path[1:])
    return Finding(
        code=code,
        message=message,
        file=file,
        line=line,
        key=PREFIX + ".".join(str(p) for p in path),
        value=value,
        hint=did_you_mean(value, choices) or otherwise,
    )


def _waiver_rule_findings(
    deployment: Deployment, settings_raw: Mapping[str, Any]
) -> Iterator[Finding]:
    for i, waiver in enumerate(deployment.settings.waivers):
        if waiver.rule not in RULES:
            yield _unknown_name(
                "inventory.unknown_rule",
                "a waiver names a rule that does not exist",
                settings_raw,
                ["waivers", i, "rule"],
                waiver.rule,
                RULES,
                f"rules: {', '.join(RULES)}",
            )
