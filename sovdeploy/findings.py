"""Findings: one problem in an inventory, located precisely enough to fix it."""

from __future__ import annotations

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
