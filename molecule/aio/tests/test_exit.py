"""The exit drill and the runbook, end to end, on the site this scenario deployed.

The scenario's two containers are described as a sovdeploy inventory (the scenario's
own, reached over podman), and `sovdeploy exit-drill` runs against it as an operator
would: every store exported with the runbook's commands and checked, a database dump,
an image and a volume restored on a fresh container, the figures in the runbook.
"""

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from sovdeploy import secrets

ROOT = Path(__file__).resolve().parents[3]
SOVDEPLOY = str(Path(sys.executable).parent / "sovdeploy")
CONTAINERS_CONF = ROOT / ".config/containers/containers.conf"
LOG_VKEY = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "logging" / "aio-ctl.vkey"


def _inventory(base: Path, address: str, known: dict, ca_file, extra_hosts=()) -> Path:
    """The scenario's hosts as a sovdeploy inventory; ``known``: the scenario's secrets."""
    inv = base / "inv"
    shutil.copytree(ROOT / "molecule/aio/inventory", inv)
    hosts = yaml.safe_load((inv / "hosts.yml").read_text())
    for group, name in extra_hosts:
        hosts["all"]["children"][group]["hosts"][name] = {}
    (inv / "hosts.yml").write_text(yaml.safe_dump(hosts))
    (inv / "host_vars").mkdir()
    for name in ("aio-ctl", "aio-cmp", *(n for _, n in extra_hosts)):
        (inv / "host_vars" / f"{name}.yml").write_text(
            yaml.safe_dump({"ansible_connection": "containers.podman.podman"})
        )
    settings = inv / "group_vars/all/sovdeploy.yml"
    values = yaml.safe_load(settings.read_text())
    values.update(
        sovdeploy_endpoint={"address": address},
        sovdeploy_log_archive={
            "endpoint": f"https://{address}:7480",
            "bucket": "sovdeploy-ledger",
            "country": "DE",
        },
        sovdeploy_exit={"rto_hours": 4, "rpo_hours": 1},
    )
    settings.write_text(yaml.safe_dump(values))
    env = _env(base)
    subprocess.run([SOVDEPLOY, "secrets", "generate", "-i", str(inv)], env=env, check=True)
    password = secrets.read_password(Path(env["SOVDEPLOY_VAULT_PASSWORD_FILE"]))
    vault = secrets.vault_file(inv)
    opened = secrets.decrypt(vault, password)
    # The canary goes through the APIs as admin; the archive is read with the auditors' keys.
    for name in ("keystone_admin_password", "logging_archive_auditor_secret"):
        opened[name] = known[name]
    secrets.encrypt_to(vault, opened, password)
    pki = inv / ".sovdeploy" / "pki"
    pki.mkdir(parents=True)
    shutil.copy(ca_file, pki)
    # The log host's verifier key, where sovdeploy's logging phase would have put it.
    keys = inv / ".sovdeploy" / "logging" / "keys"
    keys.mkdir(parents=True)
    shutil.copy(LOG_VKEY, keys)
    return inv


def _env(base: Path) -> dict:
    return dict(
        os.environ,
        CONTAINERS_CONF=str(CONTAINERS_CONF),
        SOVDEPLOY_VAULT_PASSWORD_FILE=str(base / "vault-pass"),
    )


def _run(base: Path, *args: str, timeout: int = 1500) -> subprocess.CompletedProcess:
    return subprocess.run(
        [SOVDEPLOY, *args],
        env=_env(base),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture(scope="module")
def drilled(tmp_path_factory, ctl, address, ca_file):
    base = tmp_path_factory.mktemp("exit")
    inv = _inventory(base, address, ctl.ansible.get_variables(), ca_file)
    result = _run(base, "exit-drill", "-i", str(inv))
    print(result.stdout[-4000:], result.stderr[-4000:])
    return base, inv, result


def test_the_drill_passes_and_proves_a_dump_an_image_and_a_volume(drilled):
    _base, inv, result = drilled
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    drill = json.loads((inv / ".sovdeploy/runbook/drill.json").read_text())
    assert drill["ok"] and drill["restored"] == 3
    kinds = {r["kind"] for r in drill["restores"] if r["ok"]}
    assert kinds == {"database", "image", "volume"}
    volume = next(r for r in drill["restores"] if r["kind"] == "volume")
    # The cloud held no volume: the drill's canary went through Glance and Cinder.
    assert "the drill wrote through Cinder" in volume["detail"]
    stores = {i["store"] for i in drill["items"]}
    assert {"mariadb/keystone", "mariadb/nova", "ceph/images", "ceph/volumes", "ledger"} <= stores
    assert {"vault", "ca", "run-ledger"} <= stores
    # sovdeploy did not provision these hosts: no Terraform state to take, and the
    # runbook says so rather than failing on it.
    assert "terraform" not in stores
    md = (inv / ".sovdeploy/runbook/runbook.md").read_text()
    assert "- Nothing to export now: the store is empty." in md.split("### Terraform state")[1]


def test_every_export_is_complete_and_matches_its_checksum(drilled):
    _base, inv, _result = drilled
    drill = json.loads((inv / ".sovdeploy/runbook/drill.json").read_text())
    target = Path(drill["target"])
    assert not list(target.rglob("*.part")), "a half-written export was left behind"
    assert not (target / ".incoming").exists()
    check = subprocess.run(
        ["sha256sum", "--check", "--strict", "SHA256SUMS"],
        cwd=target,
        capture_output=True,
        text=True,
        check=False,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    assert check.stdout.count(": OK") == drill["exported"]
    dump = (target / "mariadb/keystone.sql").read_text()
    assert "CREATE TABLE `project`" in dump


def test_the_ledger_exports_verify_as_an_auditor_checks_them(drilled, tmp_path):
    """Both ledgers were exported from live logs; each copy, unpacked, passes
    `sovdeploy audit verify` under its log's key, sources included."""
    base, inv, _result = drilled
    target = Path(json.loads((inv / ".sovdeploy/runbook/drill.json").read_text())["target"])
    for tar, key in (
        ("ledger/log-host.tar", LOG_VKEY),
        ("deployer/run-ledger.tar", inv / ".sovdeploy/keys/ledger.pub"),
    ):
        copy = tmp_path / Path(tar).stem
        copy.mkdir()
        subprocess.run(["tar", "-xf", str(target / tar), "-C", str(copy)], check=True)
        assert (copy / "checkpoint").exists() and not (copy / "pending").exists()
        verified = _run(base, "audit", "verify", str(copy), "--key", str(key), "--json")
        assert verified.returncode == 0, verified.stdout + verified.stderr
        assert json.loads(verified.stdout)["size"] > 0


def test_the_runbook_shows_the_drills_figures(drilled):
    _base, inv, _result = drilled
    drill = json.loads((inv / ".sovdeploy/runbook/drill.json").read_text())
    md = (inv / ".sovdeploy/runbook/runbook.md").read_text()
    assert f"Drill **{drill['id']}** passed" in md
    assert "| Measured RTO / RPO (last drill) | not measured" not in md
    for item in drill["items"]:
        assert f"`{item['file']}`" in md
    for title in ("keystone database", "Ceph pool volumes", "the ledger", "secrets vault"):
        assert f"### {title}" in md
    assert "Every data store answered" in md
    # The runbook was read again after the canary was deleted: it is no workload to move.
    workloads = md.split("## Moving workloads out")[1].split("## Components")[0]
    assert "-canary" not in workloads
    html = (inv / ".sovdeploy/runbook/runbook.html").read_text()
    assert '<div class="topology"><svg' in html


def test_the_canary_is_gone_from_the_cloud(drilled, ctl):
    out = ctl.check_output(
        "mariadb --batch --skip-column-names -e "
        '"SELECT COUNT(*) FROM cinder.volumes WHERE deleted = 0 AND display_name LIKE '
        "'sovdeploy-drill-%'\""
    )
    assert out.strip() == "0"


def test_the_same_facts_render_the_same_bytes(drilled):
    base, inv, _result = drilled
    runbook = inv / ".sovdeploy/runbook"

    def digests():
        return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in runbook.iterdir()}

    first = _run(base, "runbook", "--no-gather", "-i", str(inv))
    assert first.returncode == 0, first.stderr
    before = digests()
    second = _run(base, "runbook", "--no-gather", "-i", str(inv))
    assert second.returncode == 0, second.stderr
    assert digests() == before


def test_an_unreachable_store_is_named_and_fails_the_drill(tmp_path_factory, ctl, address, ca_file):
    """A log host that does not answer: its ledger section says so, and the drill fails."""
    base = tmp_path_factory.mktemp("exit-unreachable")
    inv = _inventory(
        base,
        address,
        ctl.ansible.get_variables(),
        ca_file,
        extra_hosts=[("logging", "aio-0-gone")],
    )
    result = _run(base, "exit-drill", "-i", str(inv))
    assert result.returncode == 1, result.stdout[-3000:] + result.stderr[-3000:]
    assert "the exit drill failed" in result.stderr
    assert "the ledger" in result.stderr
    md = (inv / ".sovdeploy/runbook/runbook.md").read_text()
    assert "**1 data store(s) could not be read**" in md
    assert "the ledger on aio-0-gone, aio-ctl: the host did not answer" in md
    drill = json.loads((inv / ".sovdeploy/runbook/drill.json").read_text())
    assert not drill["ok"]
    assert any(i["store"] == "ledger" and not i["ok"] for i in drill["items"])
