"""Jurisdiction rules, waivers and the attestation."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from sovdeploy import policy
from sovdeploy.cli import main
from sovdeploy.errors import InvalidInventoryError
from sovdeploy.findings import Severity
from sovdeploy.inventory import load

ROOT = Path(__file__).resolve().parents[2]


def test_groups_expand_to_member_states():
    assert len(policy.EU) == 27
    assert policy.expand(("EEA",)) == policy.EU | {"IS", "LI", "NO"}
    assert policy.expand(("DE", "CH")) == {"DE", "CH"}


def test_sandbox_waiver_applies_before_expiry_and_blocks_after():
    before = load(ROOT / "inventories/sandbox", today=dt.date(2027, 1, 1))
    waived = [f for f in before.findings if f.severity is Severity.INFO]
    # The Debian CDN and the public Go module proxy, each under its own waiver.
    assert [(f.code, f.subject) for f in waived] == [
        ("jurisdiction.artifact_source", "artifact_sources.debian"),
        ("jurisdiction.artifact_source", "artifact_sources.golang"),
    ]
    assert "waived until 2028-06-30" in waived[0].message
    assert "waived until 2027-12-31" in waived[1].message
    with pytest.raises(InvalidInventoryError) as between:
        load(ROOT / "inventories/sandbox", today=dt.date(2028, 1, 1))
    errors = [f for f in between.value.findings if f.severity is Severity.ERROR]
    assert "artifact_sources.golang" in {f.subject for f in errors}
    assert "artifact_sources.debian" not in {f.subject for f in errors}
    with pytest.raises(InvalidInventoryError) as exc:
        load(ROOT / "inventories/sandbox", today=dt.date(2028, 7, 1))
    codes = {f.code for f in exc.value.findings if f.severity is Severity.ERROR}
    assert codes == {"jurisdiction.artifact_source", "policy.waiver_expired"}


def test_allowed_jurisdictions_narrower_than_eu_refuses_other_member_states(inventory_copy):
    inv = inventory_copy("minimal")
    f = inv / "group_vars/all/sovdeploy.yml"
    f.write_text(
        f.read_text().replace(
            "sovdeploy_allowed_jurisdictions: [EU]", "sovdeploy_allowed_jurisdictions: [FR]"
        )
    )
    with pytest.raises(InvalidInventoryError) as exc:
        load(inv)
    subjects = {x.subject for x in exc.value.findings}
    assert {"sites.ber1", "hosts.ctl1", "hosts.cmp1", "operator", "log_archive"} <= subjects


def test_remote_terraform_backend_needs_a_country(inventory_copy):
    inv = inventory_copy("minimal")
    f = inv / "group_vars/all/sovdeploy.yml"
    f.write_text(f.read_text() + "sovdeploy_terraform_backend: {type: s3, config: {bucket: b}}\n")
    with pytest.raises(InvalidInventoryError) as exc:
        load(inv)
    assert any(x.code == "jurisdiction.terraform_backend" for x in exc.value.findings)


def test_attestation_lists_every_component_and_store():
    loaded = load(ROOT / "inventories/example-eu")
    report = policy.attestation(loaded.deployment, list(loaded.findings))
    assert report["compliant"] is True
    kinds = {p["kind"] for p in report["placements"]}
    assert {
        "operator",
        "operator parent",
        "site",
        "host",
        "data store",
        "NTP server",
        "DNS server",
        "log archive",
        "Terraform state",
    } <= kinds
    stores = [p for p in report["placements"] if p["kind"] == "data store"]
    assert any(p["detail"].startswith("etcd") and p["country"] in ("NL", "DE") for p in stores)
    assert all(p["in_jurisdiction"] for p in report["placements"] if p["country"])


def test_jurisdiction_report_cli():
    runner = CliRunner()
    result = runner.invoke(
        main, ["jurisdiction", "report", "--json", "-i", str(ROOT / "inventories/sandbox")]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    debian = next(p for p in report["placements"] if p["subject"] == "artifact_sources.debian")
    assert debian["in_jurisdiction"] is False and debian["waived"] is True
    table = runner.invoke(
        main,
        ["jurisdiction", "report", "-i", str(ROOT / "inventories/sandbox")],
        terminal_width=200,
    )
    assert table.exit_code == 0
    assert "Jurisdiction attestation" in table.output and "waived" in table.output
