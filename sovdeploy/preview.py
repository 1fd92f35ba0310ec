"""Render the files a playbook would write on each host, without contacting any host.

``sovdeploy plan`` on an inventory whose hosts are not provisioned yet cannot ask the
hosts what would change. It can still show what the roles will write: this module
walks a playbook's roles the way Ansible would for each host (role defaults, the
inventory, role vars and parameters, ``when`` conditions, ``include_tasks`` and
``include_role`` with their ``vars``, loops) and renders every ``template`` task and
every ``copy`` with ``content``, with the roles' own templates. Nothing else runs.

What the hosts would report, the render assumes: ``ansible_facts`` hold the host's
name and, as its default IPv4 address, ``ansible_host`` (else the name). The plays' own
``set_fact`` tasks then run on that view, so a rule such as "the inventory's internal
address, else the default route's" lives in the playbook alone. A file that needs more
of the host's state (a fact not assumed, a value a task registers) is listed as not
rendered, with the reason. Secrets are never written out: each appears as
``<vault:NAME>``.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from sovdeploy.paths import project_root

#: What a render writes in place of each secret's value.
SECRET_PLACEHOLDER = "<vault:{}>"  # noqa: S105  (a placeholder, not a secret)
_TEMPLATE = {"ansible.builtin.template", "template"}
_COPY = {"ansible.builtin.copy", "copy"}
_INCLUDE_TASKS = {
    "ansible.builtin.include_tasks",
    "ansible.builtin.import_tasks",
    "include_tasks",
    "import_tasks",
}
_INCLUDE_ROLE = {
    "ansible.builtin.include_role",
    "ansible.builtin.import_role",
    "include_role",
    "import_role",
}
_SET_FACT = {"ansible.builtin.set_fact", "set_fact"}
_OMIT = "__sovdeploy_render_omit__"


@dataclass
class Rendered:
    host: str
    role: str
    dest: str
    path: Path


@dataclass
class Skipped:
    host: str
    role: str
    dest: str
    reason: str


@dataclass
class RenderReport:
    out: Path
    rendered: list[Rendered] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)

    @property
    def hosts(self) -> set[str]:
        return {r.host for r in self.rendered}


def _yaml(path: Path) -> Any:
    if not path.exists():
        return None
    return yaml.safe_load(path.read_text(encoding="utf-8"))


@dataclass
class _Play:
    hosts: str
    roles: list[dict[str, Any]]
    tasks: list[dict[str, Any]]


def _plays(playbook: Path) -> Iterator[_Play]:
    """Each play in order, imported playbooks followed."""
    for play in _yaml(playbook) or []:
        imported = play.get("ansible.builtin.import_playbook") or play.get("import_playbook")
        if imported:
            yield from _plays(playbook.parent / imported)
            continue
        roles = [r if isinstance(r, dict) else {"role": r} for r in play.get("roles") or []]
        tasks = list(play.get("pre_tasks") or []) + list(play.get("tasks") or [])
        yield _Play(str(play["hosts"]), roles, tasks)


class _Renderer:
    def __init__(
        self,
        loaded: Any,
        inventory_dir: Path,
        out: Path,
        secrets: list[str],
        extravars: Mapping[str, Any],
    ) -> None:
        self.loaded = loaded
        self.extravars = dict(extravars)
        self.inventory_dir = inventory_dir
        self.out = out
        self.roles_dir = project_root() / "roles"
        self.secrets = {name: SECRET_PLACEHOLDER.format(name) for name in secrets}
        self.report = RenderReport(out)
        manager = loaded.manager
        self.groups = {
            name: sorted(h.name for h in group.get_hosts())
            for name, group in manager.groups.items()
        }
        self.hostvars = {h.name: self._host_view(h) for h in manager.get_hosts()}

    # -- variables ----------------------------------------------------------------

    def _templar(self, variables: Mapping[str, Any]) -> Any:
        from ansible.template import Templar

        return Templar(loader=self.loaded.loader, variables=dict(variables))

    def _host_view(self, host: Any) -> dict[str, Any]:
        """The host as its peers see it through ``hostvars``: inventory and assumed facts."""
        own = {**self.loaded.host_vars(host), **self.secrets}
        base = {**own, "inventory_hostname": host.name, "groups": {}}
        address = str(self._templar(base).template(own.get("ansible_host") or host.name))
        facts = {
            "hostname": host.name.split(".")[0],
            "nodename": host.name,
            "fqdn": host.name,
            "default_ipv4": {"address": address},
            "distribution": "Debian",
            "distribution_release": "trixie",
            "distribution_major_version": "13",
            "os_family": "Debian",
        }
        return {**own, "ansible_facts": facts}

    def set_facts(self, host: str, tasks: list[dict[str, Any]]) -> None:
        """Run a play's ``set_fact`` tasks on the host's view; other tasks need the host."""
        for task in tasks:
            for action, args in task.items():
                if action in _SET_FACT and isinstance(args, dict):
                    scope = self._host_vars(host, None, {})
                    facts = self._templar(scope).template(args)
                    self.hostvars[host].update(facts)

    def _role_vars(self, role: str | None, name: str) -> dict[str, Any]:
        if role is None:
            return {}
        data = _yaml(self.roles_dir / role / name / "main.yml")
        return dict(data or {})

    def _host_vars(self, host: str, role: str | None, params: Mapping[str, Any]) -> dict[str, Any]:
        view = self.hostvars[host]
        return {
            **self._role_vars(role, "defaults"),
            **view,
            **{f"ansible_{k}": v for k, v in view["ansible_facts"].items()},
            "inventory_hostname": host,
            "inventory_hostname_short": host.split(".", maxsplit=1)[0],
            "inventory_dir": str(self.inventory_dir),
            "groups": self.groups,
            "hostvars": self.hostvars,
            "omit": _OMIT,
            "ansible_check_mode": True,
            "ansible_managed": "Managed by sovdeploy: local changes are overwritten.",
            **self._role_vars(role, "vars"),
            **params,
            **self.secrets,
            # What sovdeploy passes with -e wins over everything, as in ansible-playbook.
            **self.extravars,
        }

    # -- the walk -----------------------------------------------------------------

    def role(self, host: str, role: str, params: Mapping[str, Any], tasks_from: str) -> None:
        variables = self._host_vars(host, role, params)
        self._tasks(host, role, self.roles_dir / role / "tasks" / tasks_from, variables)

    def _tasks(self, host: str, role: str, file: Path, variables: dict[str, Any]) -> None:
        if not file.suffix:
            file = file.with_suffix(".yml")
        for task in _yaml(file) or []:
            self._task(host, role, file, task, variables)

    def _task(
        self, host: str, role: str, file: Path, task: dict[str, Any], variables: dict[str, Any]
    ) -> None:
        from ansible.errors import AnsibleError

        scope = {**variables, **(task.get("vars") or {})}
        try:
            items = self._items(task, scope)
        except AnsibleError:
            return  # a loop over something only the host knows
        loop_var = (task.get("loop_control") or {}).get("loop_var", "item")
        for item in items:
            local = scope if item is _NO_LOOP else {**scope, loop_var: item}
            try:
                if not self._when(task.get("when"), local):
                    continue
            except AnsibleError:
                pass  # depends on the host's state: render what the task would write
            self._action(host, role, file, task, local)

    def _items(self, task: dict[str, Any], scope: Mapping[str, Any]) -> list[Any]:
        loop = task.get("loop", task.get("with_items"))
        if loop is None:
            return [_NO_LOOP]
        value = self._templar(scope).template(loop)
        return list(value or [])

    def _when(self, when: Any, scope: Mapping[str, Any]) -> bool:
        conditions = when if isinstance(when, list) else [] if when is None else [when]
        templar = self._templar(scope)
        for condition in conditions:
            if isinstance(condition, bool):
                if not condition:
                    return False
                continue
            answer = templar.template(f"{{% if {condition} %}}True{{% else %}}False{{% endif %}}")
            if answer not in (True, "True"):  # the templar may turn "True" into a bool
                return False
        return True

    def _action(
        self, host: str, role: str, file: Path, task: dict[str, Any], scope: dict[str, Any]
    ) -> None:
        if "block" in task:
            for key in ("block", "always"):
                for sub in task.get(key) or []:
                    self._task(host, role, file, sub, scope)
            return
        for action, args in task.items():
            if action in _INCLUDE_TASKS:
                target = args if isinstance(args, str) else args.get("file")
                name = str(self._templar(scope).template(target))
                self._tasks(host, role, file.parent / name, scope)
            elif action in _INCLUDE_ROLE:
                self._include_role(host, args, scope)
            elif action in _TEMPLATE:
                self._write(host, role, scope, args, source=file.parent.parent / "templates")
            elif action in _COPY and isinstance(args, dict) and "content" in args:
                self._write(host, role, scope, args, source=None)

    def _include_role(self, host: str, args: dict[str, Any], scope: dict[str, Any]) -> None:
        other = str(args["name"])
        inner = {**self._role_vars(other, "defaults"), **scope, **self._role_vars(other, "vars")}
        tasks_from = str(args.get("tasks_from", "main.yml"))
        self._tasks(host, other, self.roles_dir / other / "tasks" / tasks_from, inner)

    def _write(
        self,
        host: str,
        role: str,
        scope: dict[str, Any],
        args: dict[str, Any],
        source: Path | None,
    ) -> None:
        from ansible.errors import AnsibleError

        templar = self._templar(scope)
        dest = str(args.get("dest", "?"))
        try:
            dest = str(templar.template(args["dest"]))
            if source is None:
                text = str(templar.template(args["content"]))
            else:
                src = source / str(templar.template(args["src"]))
                # As the template action: includes resolve next to the template.
                from jinja2 import FileSystemLoader

                templar = templar.copy_with_new_env(loader=FileSystemLoader([str(src.parent)]))
                text = templar.template(
                    src.read_text(encoding="utf-8"),
                    preserve_trailing_newlines=True,
                    escape_backslashes=False,
                )
        except AnsibleError as exc:
            # Ansible's message repeats the whole value; its last clause says what is missing.
            reason = str(exc).strip().splitlines()[-1].rsplit(": ", 1)[-1]
            if "{{" in dest:
                dest = self._dest_alone(scope, dest)
            self.report.skipped.append(Skipped(host, role, dest, reason))
            return
        path = self.out / host / dest.lstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(str(text), encoding="utf-8")
        path.chmod(0o600)
        self.report.rendered.append(Rendered(host, role, dest, path))

    def _dest_alone(self, scope: dict[str, Any], raw: str) -> str:
        """``raw`` templated where the variable it reads has a value that cannot be.

        Each mapping it names keeps only its keys that template: ``service_setup_config``
        keeps its ``dest`` when its ``sections`` need the host.
        """
        from ansible.errors import AnsibleError
        from jinja2 import Environment, meta

        templar = self._templar(scope)
        reduced: dict[str, Any] = {}
        # Parsed only, to learn the names it reads; nothing is rendered with this environment.
        parsed = Environment(autoescape=True).parse(raw)
        for name in meta.find_undeclared_variables(parsed):
            value = scope.get(name)
            if not isinstance(value, dict):
                continue
            reduced[name] = {}
            for key, item in value.items():
                try:
                    reduced[name][key] = templar.template(item)
                except AnsibleError:
                    continue
        try:
            return str(self._templar({**scope, **reduced}).template(raw))
        except AnsibleError:
            return raw


_NO_LOOP = object()


def load_plugins() -> None:
    """Ansible's plugins, and the project's filters (plugins/filter), for in-process templating."""
    from ansible.plugins.loader import filter_loader, init_plugin_loader

    with warnings.catch_warnings():  # a second call in one process only warns
        warnings.simplefilter("ignore", UserWarning)
        init_plugin_loader()
    filter_loader.add_directory(str(project_root() / "plugins" / "filter"))


def render(
    loaded: Any,
    inventory_dir: Path,
    playbook: Path,
    out: Path,
    extravars: Mapping[str, Any] | None = None,
) -> RenderReport:
    """Render what ``playbook`` writes on each host of ``loaded`` into ``out/<host>/<path>``.

    ``loaded`` is the inventory as Ansible reads it (``inventory.open_ansible``);
    ``extravars`` what sovdeploy passes the playbook (``-e``).
    """
    from sovdeploy import secrets

    load_plugins()
    renderer = _Renderer(loaded, inventory_dir, out, sorted(secrets.required()), extravars or {})
    for play in _plays(playbook):
        for host in sorted(h.name for h in loaded.manager.get_hosts(play.hosts)):
            renderer.set_facts(host, play.tasks)
            for entry in play.roles:
                params = {k: v for k, v in entry.items() if k not in ("role", "name")}
                name = str(entry.get("role") or entry.get("name"))
                renderer.role(host, name, params, "main.yml")
    return renderer.report
