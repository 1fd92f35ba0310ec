"""DORA's register of ICT third-party dependencies, from the inventory.

Every party named where the inventory says where something comes from or stands
(artifact sources, sites, time and name servers, the log archive, a remote Terraform
backend), and the hardware vendors, colocation, support and connectivity contracts
declared in ``sovdeploy_third_parties``, each with its country.
"""

from __future__ import annotations

from dataclasses import dataclass

from sovdeploy import policy
from sovdeploy.model import Deployment


@dataclass(frozen=True)
class Entry:
    name: str
    kind: str
    country: str
    provides: str
    contract: str = ""
    ends: str = ""
    substitute: str = ""

    @property
    def country_name(self) -> str:
        return policy.country_name(self.country)


def entries(deployment: Deployment) -> list[Entry]:
    """The register, ordered by kind and name."""
    s = deployment.settings
    found = [
        Entry(
            src.operator or f"operator of {src.url} (not declared)",
            f"artifact source ({src.kind.value})",
            src.country,
            f"{name}: {src.url}",
        )
        for name, src in s.artifact_sources.items()
    ]
    found += [
        Entry(site.owner, "site", site.country, f"{name}: {site.city}")
        for name, site in s.sites.items()
    ]
    found += [Entry(srv.host, "time source", srv.country, "NTP") for srv in s.ntp_servers]
    found += [Entry(srv.host, "name server", srv.country, "DNS") for srv in s.dns_servers]
    found.append(
        Entry(
            s.log_archive.endpoint,
            "log archive",
            s.log_archive.country,
            f"S3 bucket {s.log_archive.bucket} under Object Lock "
            f"({s.log_archive.retention_days} days)",
        )
    )
    backend = s.terraform_backend
    if backend.type != "local" and backend.country:
        found.append(
            Entry(
                str(backend.config.get("endpoint", backend.type)),
                "Terraform state backend",
                backend.country,
                f"{backend.type} backend",
            )
        )
    found += [
        Entry(
            p.name,
            p.kind.value,
            p.country,
            p.provides,
            p.contract or "",
            p.ends.isoformat() if p.ends else "",
            p.substitute or "",
        )
        for p in s.third_parties
    ]
    return sorted(found, key=lambda e: (e.kind, e.name, e.provides))
