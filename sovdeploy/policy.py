"""Jurisdiction policy: where every part of a deployment is, and whether that is allowed.

Each rule yields findings with a ``subject``; a waiver in the inventory matching
(rule, subject) and not yet expired turns the error into a printed notice.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Any

import pycountry

from sovdeploy.findings import Finding, Severity, locate
from sovdeploy.model import Deployment

EU: frozenset[str] = frozenset(
    [
        "AT",
        "BE",
        "BG",
        "HR",
        "CY",
        "CZ",
        "DK",
        "EE",
        "FI",
        "FR",
        "DE",
        "GR",
        "HU",
        "IE",
        "IT",
        "LV",
        "LT",
        "LU",
        "MT",
        "NL",
        "PL",
        "PT",
        "RO",
        "SK",
        "SI",
        "ES",
        "SE",
    ]
)
EEA: frozenset[str] = EU | {"IS", "LI", "NO"}
GROUPS: Mapping[str, frozenset[str]] = {"EU": EU, "EEA": EEA}

RULES: dict[str, str] = {
    "jurisdiction.allowed_code": "each allowed jurisdiction is ISO 3166-1 alpha-2, EU or EEA",
    "jurisdiction.country_code": "each declared country is an ISO 3166-1 alpha-2 code",
    "jurisdiction.site": "every site lies in an allowed jurisdiction",
    "jurisdiction.host": "every host stands in a site in an allowed jurisdiction",
    "jurisdiction.artifact_source": "every artifact source is hosted in an allowed jurisdiction",
    "jurisdiction.time_source": "every NTP server is in an allowed jurisdiction",
    "jurisdiction.dns": "every DNS server is in an allowed jurisdiction",
    "jurisdiction.log_archive": "the log archive is in an allowed jurisdiction",
    "jurisdiction.terraform_backend": "a remote Terraform backend is in an allowed jurisdiction",
    "jurisdiction.operator": "the operator is established in an allowed jurisdiction",
    "jurisdiction.operator_parent": "every company controlling the operator is in one too",
    "policy.waiver_expired": "a waiver past its expiry date no longer applies",
}

# Data stores by role group, for the attestation: where each kind of data will live.
DATA_STORES: Mapping[str, tuple[str, ...]] = {
    "control": (
        "MariaDB: OpenStack service databases",
        "RabbitMQ: message queues",
        "Keystone fernet keys",
    ),
    "storage": ("Ceph: Glance images, Cinder volumes and backups, Nova disks",),
    "compute": ("libvirt: instance ephemeral disks and NVRAM",),
    "logging": ("ledger: tamper-evident log tiles and checkpoints",),
    "k8s_control": ("etcd: Kubernetes cluster state and Secrets",),
}


def expand(codes: tuple[str, ...]) -> frozenset[str]:
    """The set of country codes an allowed-jurisdictions list stands for."""
    out: set[str] = set()
    for code in codes:
        out |= GROUPS.get(code, {code})
    return frozenset(out)


def country_name(code: str) -> str:
    country = pycountry.countries.get(alpha_2=code)
    return str(country.name) if country else "unknown"


@dataclass(frozen=True)
class Placement:
    """One located component, for the attestation."""

    kind: str
    subject: str
    country: str | None
    detail: str
    rule: str | None

    def allowed(self, allowed: frozenset[str]) -> bool:
        return self.country is None or self.country in allowed


def placements(deployment: Deployment) -> Iterator[Placement]:
    """Every component and data store of the deployment with the country it will be in."""
    s = deployment.settings
    op = s.operator
    yield Placement("operator", "operator", op.country, op.name, "jurisdiction.operator")
    for parent in op.parents:
        yield Placement(
            "operator parent",
            f"operator.parents.{parent.name}",
            parent.country,
            parent.name,
            "jurisdiction.operator_parent",
        )
    for name, site in s.sites.items():
        yield Placement(
            "site",
            f"sites.{name}",
            site.country,
            f"{site.city} ({site.owner})",
            "jurisdiction.site",
        )
    for host in deployment.hosts:
        host_site = s.sites.get(host.site)
        country = host_site.country if host_site else None
        yield Placement(
            "host",
            f"hosts.{host.name}",
            country,
            f"site {host.site}; roles {', '.join(host.roles) or '-'}",
            "jurisdiction.host",
        )
        for role in host.roles:
            for store in DATA_STORES.get(role, ()):
                yield Placement("data store", f"hosts.{host.name}", country, store, None)
    for name, src in s.artifact_sources.items():
        yield Placement(
            f"artifact source ({src.kind})",
            f"artifact_sources.{name}",
            src.country,
            src.url,
            "jurisdiction.artifact_source",
        )
    for ntp in s.ntp_servers:
        yield Placement(
            "NTP server",
            f"ntp_servers.{ntp.host}",
            ntp.country,
            ntp.host,
            "jurisdiction.time_source",
        )
    for dns in s.dns_servers:
        yield Placement(
            "DNS server", f"dns_servers.{dns.host}", dns.country, dns.host, "jurisdiction.dns"
        )
    la = s.log_archive
    yield Placement(
        "log archive",
        "log_archive",
        la.country,
        f"{la.endpoint}/{la.bucket}",
        "jurisdiction.log_archive",
    )
    tb = s.terraform_backend
    if tb.type == "local":
        yield Placement(
            "Terraform state",
            "terraform_backend",
            None,
            "local: the deployment's state dir on the operator's machine",
            None,
        )
    else:
        yield Placement(
            "Terraform state",
            "terraform_backend",
            tb.country,
            f"{tb.type} backend",
            "jurisdiction.terraform_backend",
        )


def _locate_subject(
    settings_raw: Mapping[str, Any], host_raw: Mapping[str, Any], subject: str
) -> tuple[str | None, int | None]:
    head, _, rest = subject.partition(".")
    if head == "hosts":
        return locate(host_raw.get(rest, {}), ["sovdeploy_site"])
    node = settings_raw.get(f"sovdeploy_{head}")
    return locate(node, [rest] if rest and isinstance(node, Mapping) else [])


def check(
    deployment: Deployment,
    settings_raw: Mapping[str, Any] | None = None,
    today: dt.date | None = None,
    host_raw: Mapping[str, Any] | None = None,
) -> list[Finding]:
    """Run every jurisdiction rule, apply waivers, and return the findings."""
    raw = settings_raw or {}
    today = today or dt.datetime.now(dt.UTC).date()
    s = deployment.settings
    findings: list[Finding] = []
    for code in s.allowed_jurisdictions:
        if code not in GROUPS and pycountry.countries.get(alpha_2=code) is None:
            findings.append(
                Finding(
                    code="jurisdiction.allowed_code",
                    message="not an ISO 3166-1 alpha-2 code, EU or EEA",
                    key="sovdeploy_allowed_jurisdictions",
                    value=code,
                    subject="allowed_jurisdictions",
                    hint="Greece is GR (not EL); the UK is GB (not UK)",
                )
            )
    allowed = expand(s.allowed_jurisdictions)
    for p in placements(deployment):
        if p.rule is None or p.country is None:
            if p.kind == "Terraform state" and s.terraform_backend.type != "local":
                findings.append(
                    Finding(
                        code="jurisdiction.terraform_backend",
                        subject=p.subject,
                        message="a remote Terraform backend must declare its country",
                        key="sovdeploy_terraform_backend.country",
                    )
                )
            continue
        file, line = _locate_subject(raw, host_raw or {}, p.subject)
        key = p.subject if p.subject.startswith("hosts.") else f"sovdeploy_{p.subject}"
        if pycountry.countries.get(alpha_2=p.country) is None:
            findings.append(
                Finding(
                    code="jurisdiction.country_code",
                    subject=p.subject,
                    file=file,
                    line=line,
                    message=f"{p.kind} '{p.subject}' has a country that is not ISO 3166-1 alpha-2",
                    key=key,
                    value=p.country,
                    hint="use the two-letter code, e.g. DE, NL, FR",
                )
            )
        elif not p.allowed(allowed):
            findings.append(
                Finding(
                    code=p.rule,
                    subject=p.subject,
                    file=file,
                    line=line,
                    message=f"{p.kind} '{p.subject}' is in {p.country} "
                    f"({country_name(p.country)}), outside the allowed jurisdictions "
                    f"{', '.join(s.allowed_jurisdictions)}",
                    key=key,
                    value=p.country,
                    hint="use a component in an allowed jurisdiction, or add a time-limited waiver",
                )
            )
    return apply_waivers(findings, deployment, raw, today)


def apply_waivers(
    findings: list[Finding], deployment: Deployment, raw: Mapping[str, Any], today: dt.date
) -> list[Finding]:
    """Downgrade findings covered by a live waiver; report expired waivers as violations."""
    out: list[Finding] = []
    waivers = deployment.settings.waivers
    for finding in findings:
        match = next(
            (w for w in waivers if w.rule == finding.code and w.subject == finding.subject), None
        )
        if match is None or match.expires < today:
            out.append(finding)
        else:
            out.append(
                replace(
                    finding,
                    severity=Severity.INFO,
                    message=f"waived until {match.expires}: {finding.message} ({match.reason})",
                )
            )
    for i, waiver in enumerate(waivers):
        if waiver.expires < today:
            file, line = locate(raw.get("sovdeploy_waivers"), [i, "expires"])
            out.append(
                Finding(
                    code="policy.waiver_expired",
                    subject=f"{waiver.rule} {waiver.subject}",
                    file=file,
                    line=line,
                    key=f"sovdeploy_waivers.{i}.expires",
                    value=str(waiver.expires),
                    message=f"the waiver of {waiver.rule} for {waiver.subject} "
                    f"expired on {waiver.expires}",
                    hint="fix the underlying finding, or renew the waiver with a new reason "
                    "and date",
                )
            )
    return out


def attestation(deployment: Deployment, findings: list[Finding]) -> dict[str, Any]:
    """Machine-readable statement of where every component and data store will be."""
    allowed = expand(deployment.settings.allowed_jurisdictions)
    waived = {(f.code, f.subject) for f in findings if f.severity is Severity.INFO}
    items = []
    for p in placements(deployment):
        items.append(
            {
                "kind": p.kind,
                "subject": p.subject,
                "detail": p.detail,
                "country": p.country,
                "country_name": country_name(p.country) if p.country else None,
                "in_jurisdiction": p.allowed(allowed) if p.country else None,
                "waived": (p.rule, p.subject) in waived,
            }
        )
    return {
        "deployment": deployment.name,
        "allowed_jurisdictions": list(deployment.settings.allowed_jurisdictions),
        "allowed_countries": sorted(allowed),
        "compliant": not any(f.severity is Severity.ERROR for f in findings),
        "placements": items,
    }
