"""Findings: one problem in an inventory, located precisely enough to fix it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"


@dataclass(frozen=True)
class Finding:
    """A single validation or policy result.

    Attributes:
        code: stable identifier, e.g. ``inventory.unknown_key`` or ``jurisdiction.artifact_source``.
        message: what is wrong, in one sentence.
        file: the inventory file that holds the value, when known.
        line: the 1-based line of the value in ``file``, when known.
        key: the key path, e.g. ``sovdeploy_sites.ams1.country`` or ``hosts.gpu01.sovdeploy_site``.
        value: the offending value, rendered as text.
        hint: how to fix it.
        subject: for policy findings, what the rule is about (matched by waivers).

    """

    code: str
    message: str
    severity: Severity = Severity.ERROR
    file: str | None = None
    line: int | None = None
    key: str | None = None
    value: str | None = None
    hint: str | None = None
    subject: str | None = None

    @property
    def location(self) -> str:
        if self.file and self.line:
            return f"{self.file}:{self.line}"
        return self.file or "<inventory>"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def position(obj: Any) -> tuple[str | None, int | None]:
    pos = getattr(obj, "ansible_pos", None)
    if pos:
        return str(pos[0]), int(pos[1])
    return None, None


def locate(root: Any, path: Sequence[str | int]) -> tuple[str | None, int | None]:
    """The file and line of the deepest value along ``path`` that the YAML loader marked."""
    best = position(root)
    node = root
    for part in path:
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            break
        found = position(node)
        if found[0]:
            best = found
    return best
