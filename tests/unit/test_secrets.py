"""Secrets: derived from the roles' argument specs, generated once, vaulted, checked early."""

from __future__ import annotations

import base64
import struct
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from sovdeploy import inventory as inv
from sovdeploy import secrets
from sovdeploy.cli import main
from sovdeploy.errors import InvalidInventoryError

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def password_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "vault.pass"
    monkeypatch.setenv("SOVDEPLOY_VAULT_PASSWORD_FILE", str(path))
    return path


def test_every_no_log_required_option_is_a_generable_secret():
    needed = secrets.required(ROOT / "roles")
    assert needed, "no role declares a secret"
    for name in needed:
        assert secrets.kind_of(name), f"{name}: no generator for its name"


def test_secret_options_have_no_default():
    # A default for a secret would be the same value in every deployment.
    for name, secret in secrets.required(ROOT / "roles").items():
        defaults = ROOT / "roles" / secret.role / "defaults" / "main.yml"
        data = yaml.safe_load(defaults.read_text()) or {}
        assert name not in data, f"{secret.role}: secret {name} has a default"


def test_cephx_key_has_the_ceph_layout():
    raw = base64.b64decode(secrets.GENERATORS["_cephx_key"]())
    kind, _sec, _nsec, length = struct.unpack("<hiih", raw[:12])
    assert (kind, length, len(raw)) == (1, 16, 28)


def test_generate_keeps_existing_and_adds_missing(tmp_path: Path):
    needed = {n: secrets.Secret(n, "r", "") for n in ("a_password", "b_cephx_key")}
    password = b"pw"
    assert secrets.generate(tmp_path, password, needed) == ["a_password", "b_cephx_key"]
    first = secrets.decrypt(secrets.vault_file(tmp_path), password)
    more = {**needed, "c_private_key": secrets.Secret("c_private_key", "r", "")}
    assert secrets.generate(tmp_path, password, more) == ["c_private_key"]
    second = secrets.decrypt(secrets.vault_file(tmp_path), password)
    assert {k: second[k] for k in first} == first
    assert second["c_private_key"].startswith("-----BEGIN PRIVATE KEY-----")
    raw = secrets.vault_file(tmp_path).read_text()
    assert raw.startswith("$ANSIBLE_VAULT;1.1;AES256")
    assert first["a_password"] not in raw


def test_check_names_missing_secrets(tmp_path: Path):
    needed = {n: secrets.Secret(n, "r", "") for n in ("a_password", "b_password")}
    secrets.generate(tmp_path, b"pw", {"a_password": needed["a_password"]})
    (tmp_path / "pw.txt").write_text("pw\n")
    with pytest.raises(secrets.VaultError, match=r"lacks 1 secret.*b_password"):
        secrets.check(tmp_path, tmp_path / "pw.txt", needed)


def test_wrong_password_is_a_finding_before_anything(inventory_copy, password_file: Path):
    path = inventory_copy("minimal")
    password_file.write_text("right\n")
    secrets.generate(path, b"right", secrets.required(ROOT / "roles"))
    loaded = inv.load(path)
    assert loaded.vault_password_file == password_file
    password_file.write_text("wrong\n")
    with pytest.raises(InvalidInventoryError) as info:
        inv.load(path)
    (finding,) = info.value.findings
    assert finding.code == "secrets.vault"
    assert "wrong password" in finding.message


def test_missing_password_file_is_a_finding(inventory_copy, password_file: Path):
    path = inventory_copy("minimal")
    secrets.generate(path, b"pw", {"x_password": secrets.Secret("x_password", "r", "")})
    with pytest.raises(InvalidInventoryError, match="invalid") as info:
        inv.load(path)
    assert "no vault password file" in info.value.findings[0].message


def test_vault_variables_reach_ansible(inventory_copy, password_file: Path):
    path = inventory_copy("minimal")
    password_file.write_text("pw\n")
    secrets.generate(path, b"pw", {"x_password": secrets.Secret("x_password", "r", "")})
    loaded = inv._Loaded(path, b"pw")
    host = loaded.manager.get_hosts()[0]
    assert len(str(loaded.host_vars(host)["x_password"])) == 32


def test_cli_generate_then_list(inventory_copy, password_file: Path):
    path = inventory_copy("minimal")
    runner = CliRunner()
    result = runner.invoke(main, ["secrets", "generate", "-i", str(path)])
    assert result.exit_code == 0, result.output
    assert password_file.exists()
    assert oct(password_file.stat().st_mode & 0o777) == "0o600"
    values = secrets.decrypt(secrets.vault_file(path), password_file.read_bytes().strip())
    for value in values.values():
        assert value not in result.output
    again = runner.invoke(main, ["secrets", "generate", "-i", str(path)])
    assert "0 secret(s) added" in again.output
    listed = runner.invoke(main, ["secrets", "list", "-i", str(path)])
    assert listed.exit_code == 0, listed.output
    assert "missing" not in listed.output


def test_plan_without_vault_is_a_clear_error(inventory_copy, password_file: Path):
    path = inventory_copy("minimal")
    result = CliRunner().invoke(main, ["plan", "-i", str(path)])
    assert result.exit_code == 2
    assert "has no vault" in result.output
    assert "sovdeploy secrets generate" in result.output
    assert not (path / ".sovdeploy").exists()


def test_scan_finds_a_secret_in_a_record_and_nothing_else(tmp_path: Path):
    key = secrets.GENERATORS["_private_key"]()
    values = {"a_password": "Zq8hT2mPaaaa9xYb", "ca_private_key": key, "short_password": "abc"}
    (tmp_path / "clean.json").write_text('{"res": "the output has been hidden"}')
    (tmp_path / "leaky.json").write_text('{"cmd": "mysql -pZq8hT2mPaaaa9xYb"}')
    (tmp_path / "pem.txt").write_text(key.splitlines()[1])
    found = {(name, path.name) for name, path in secrets.scan(tmp_path, values)}
    assert found == {("a_password", "leaky.json"), ("ca_private_key", "pem.txt")}
