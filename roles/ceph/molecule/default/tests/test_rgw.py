"""The RADOS gateway serves S3 over TLS, and Object Lock holds as the ledger's archive needs.

Everything here runs against the real gateway of the scenario's cluster, from the
deployer's side (boto3, the deployment CA): a COMPLIANCE-locked object cannot be
deleted, overwriting it keeps the first version, its retention cannot be shortened;
and a ledger archived there verifies with ``sovdeploy audit verify s3://...``, while an
overwritten object and a delete marker are each reported with their own exit code.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import secrets
from pathlib import Path

import pytest
from click.testing import CliRunner

from sovdeploy.cli import main
from sovdeploy.ledger import archive, records
from sovdeploy.ledger.audit import Tamper
from sovdeploy.ledger.log import open_writer
from sovdeploy.ledger.note import Signer

boto3 = pytest.importorskip("boto3")
from botocore.exceptions import ClientError  # noqa: E402 - after boto3 is known to exist

BUCKET = "molecule-ledger"
RETENTION_DAYS = 183
ORIGIN = "sovdeploy.test/archive"


def _user(host, uid):
    """The S3 keys of gateway user ``uid``, created on first use."""
    info = host.run("radosgw-admin user info --uid %s", uid)
    if info.rc != 0:
        info = host.run(
            "radosgw-admin user create --uid %s --display-name %s --access-key %s --secret %s",
            uid,
            uid,
            f"{uid.upper().replace('-', '')}KEY",
            secrets.token_hex(20),
        )
    assert info.rc == 0, info.stderr
    key = json.loads(info.stdout)["keys"][0]
    return key["access_key"], key["secret_key"]


@pytest.fixture(scope="module")
def endpoint(host):
    facts = host.ansible("setup", "gather_subset=network")["ansible_facts"]
    return f"https://{facts['ansible_default_ipv4']['address']}:7480"


@pytest.fixture(scope="module")
def ca_file():
    return str(Path(os.environ["MOLECULE_INVENTORY_FILE"]).parent / ".sovdeploy/pki/ca.crt")


def _client(host, uid, endpoint, ca_file):
    access, secret = _user(host, uid)
    return archive.Bucket(endpoint, BUCKET, "", ca_file).client(access, secret)


@pytest.fixture(scope="module")
def owner(host, endpoint, ca_file):
    """The bucket owner's client; the bucket made as the logging phase makes it."""
    _user(host, "molecule-uploader")
    _user(host, "molecule-auditor")
    s3 = _client(host, "molecule-owner", endpoint, ca_file)
    changed = archive.ensure_bucket(
        s3, BUCKET, RETENTION_DAYS, uploader="molecule-uploader", auditor="molecule-auditor"
    )
    assert "bucket policy" in changed or not changed
    return s3


def test_making_the_bucket_again_changes_nothing(owner):
    again = archive.ensure_bucket(
        owner, BUCKET, RETENTION_DAYS, uploader="molecule-uploader", auditor="molecule-auditor"
    )
    assert again == []


def test_the_uploader_adds_objects_but_cannot_delete_them(host, owner, endpoint, ca_file):
    uploader = _client(host, "molecule-uploader", endpoint, ca_file)
    put = uploader.put_object(Bucket=BUCKET, Key="probe/uploaded", Body=b"archived")
    assert uploader.get_object(Bucket=BUCKET, Key="probe/uploaded")["Body"].read() == b"archived"
    # Neither a delete marker nor the version itself.
    for kwargs in ({}, {"VersionId": put["VersionId"]}):
        with pytest.raises(ClientError) as denied:
            uploader.delete_object(Bucket=BUCKET, Key="probe/uploaded", **kwargs)
        assert denied.value.response["Error"]["Code"] == "AccessDenied"
    with pytest.raises(ClientError):
        uploader.put_bucket_policy(Bucket=BUCKET, Policy="{}")
    with pytest.raises(ClientError):
        uploader.put_object_lock_configuration(
            Bucket=BUCKET,
            ObjectLockConfiguration={
                "ObjectLockEnabled": "Enabled",
                "Rule": {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": 1}},
            },
        )


def test_the_auditor_reads_every_version_but_writes_nothing(host, owner, endpoint, ca_file):
    owner.put_object(Bucket=BUCKET, Key="probe/audited", Body=b"one")
    auditor = _client(host, "molecule-auditor", endpoint, ca_file)
    listed = auditor.list_object_versions(Bucket=BUCKET, Prefix="probe/audited")
    assert [v["Key"] for v in listed["Versions"]] == ["probe/audited"]
    lock = auditor.get_object_lock_configuration(Bucket=BUCKET)["ObjectLockConfiguration"]
    assert lock["Rule"]["DefaultRetention"]["Mode"] == "COMPLIANCE"
    with pytest.raises(ClientError) as denied:
        auditor.put_object(Bucket=BUCKET, Key="probe/audited", Body=b"two")
    assert denied.value.response["Error"]["Code"] == "AccessDenied"


@pytest.fixture(scope="module")
def uploader(host, owner, endpoint, ca_file):
    return _client(host, "molecule-uploader", endpoint, ca_file)


@pytest.fixture(scope="module")
def auditor_env(host):
    """The auditor's keys, as an auditor hands them to sovdeploy audit verify."""
    access, secret = _user(host, "molecule-auditor")
    return {"AWS_ACCESS_KEY_ID": access, "AWS_SECRET_ACCESS_KEY": secret}


def test_the_gateway_answers_s3_over_tls_with_the_deployment_ca(endpoint, ca_file):
    anonymous = archive.Bucket(endpoint, BUCKET, "", ca_file).client("none", "none")
    with pytest.raises(ClientError) as denied:
        anonymous.list_buckets()
    # The TLS handshake and the S3 protocol both worked: the gateway refused the key.
    assert denied.value.response["Error"]["Code"] == "InvalidAccessKeyId"


def test_the_bucket_locks_in_compliance_mode_for_183_days(owner):
    conf = owner.get_object_lock_configuration(Bucket=BUCKET)["ObjectLockConfiguration"]
    assert conf["ObjectLockEnabled"] == "Enabled"
    assert conf["Rule"]["DefaultRetention"] == {"Mode": "COMPLIANCE", "Days": RETENTION_DAYS}
    assert owner.get_bucket_versioning(Bucket=BUCKET)["Status"] == "Enabled"


def test_a_locked_object_cannot_be_deleted_even_by_its_owner(owner):
    put = owner.put_object(Bucket=BUCKET, Key="probe/delete", Body=b"kept")
    with pytest.raises(ClientError) as denied:
        owner.delete_object(Bucket=BUCKET, Key="probe/delete", VersionId=put["VersionId"])
    assert denied.value.response["Error"]["Code"] == "AccessDenied"
    got = owner.get_object(Bucket=BUCKET, Key="probe/delete", VersionId=put["VersionId"])
    assert got["Body"].read() == b"kept"


def test_an_overwrite_keeps_the_first_version(owner):
    first = owner.put_object(Bucket=BUCKET, Key="probe/overwrite", Body=b"first")
    second = owner.put_object(Bucket=BUCKET, Key="probe/overwrite", Body=b"second")
    assert first["VersionId"] != second["VersionId"]
    got = owner.get_object(Bucket=BUCKET, Key="probe/overwrite", VersionId=first["VersionId"])
    assert got["Body"].read() == b"first"


def test_retention_cannot_be_shortened(owner):
    put = owner.put_object(Bucket=BUCKET, Key="probe/retention", Body=b"x")
    held = owner.get_object_retention(
        Bucket=BUCKET, Key="probe/retention", VersionId=put["VersionId"]
    )["Retention"]
    assert held["Mode"] == "COMPLIANCE"
    until = held["RetainUntilDate"]
    assert until - dt.datetime.now(dt.UTC) > dt.timedelta(days=RETENTION_DAYS - 1)
    with pytest.raises(ClientError):
        owner.put_object_retention(
            Bucket=BUCKET,
            Key="probe/retention",
            VersionId=put["VersionId"],
            Retention={"Mode": "COMPLIANCE", "RetainUntilDate": until - dt.timedelta(days=30)},
        )
    with pytest.raises(ClientError):
        owner.put_object_retention(
            Bucket=BUCKET,
            Key="probe/retention",
            VersionId=put["VersionId"],
            Retention={"Mode": "GOVERNANCE", "RetainUntilDate": until},
        )
    after = owner.get_object_retention(
        Bucket=BUCKET, Key="probe/retention", VersionId=put["VersionId"]
    )["Retention"]
    assert after == held


class _Clock:
    def __init__(self):
        self.t = dt.datetime(2026, 11, 22, 8, 0, tzinfo=dt.UTC)

    def __call__(self):
        self.t += dt.timedelta(seconds=1)
        return self.t.isoformat().replace("+00:00", "Z")


def _archived_log(tmp_path, uploader, endpoint, ca_file, prefix):
    """A ledger of 700 records in two checkpoints, each archived under ``prefix`` as made."""
    signer = Signer.generate(ORIGIN)
    root = tmp_path / prefix
    clock = _Clock()
    bucket = archive.Bucket(endpoint, BUCKET, prefix, ca_file)
    state = tmp_path / f"{prefix}.archive.json"
    uploaded = []
    for steps in (range(400), range(400, 700)):
        # Each writer signs a checkpoint as it closes.
        with open_writer(root, ORIGIN, signer) as w:
            ledger = records.Ledger(w, "orchestrator", clock)
            for step in steps:
                ledger.record("event", step=step, text="x" * (step % 50))
        uploaded.append(archive.Archiver(root, bucket, uploader, state).step())
    assert all(n > 0 for n in uploaded), uploaded
    # Everything is archived: a step that finds nothing new uploads nothing.
    assert archive.Archiver(root, bucket, uploader, state).step() == 0
    return bucket, signer


@pytest.fixture
def archived(tmp_path, uploader, endpoint, ca_file):
    """Makes a ledger archived under a prefix: returns its bucket and signer."""
    return lambda prefix: _archived_log(tmp_path, uploader, endpoint, ca_file, prefix)


def _verify(bucket, signer, env):
    result = CliRunner().invoke(
        main,
        [
            "audit",
            "verify",
            f"s3://{bucket.name}/{bucket.prefix}",
            "--s3-endpoint",
            bucket.endpoint,
            "--cacert",
            bucket.ca_file,
            "--key",
            signer.verifier.vkey(),
            "--expect-source",
            "orchestrator",
            "--json",
        ],
        env=env,
    )
    return result.exit_code, json.loads(result.output)


def test_an_archived_ledger_verifies_from_the_archive_alone(archived, auditor_env):
    bucket, signer = archived("clean")
    code, report = _verify(bucket, signer, auditor_env)
    assert code == 0, report["findings"]
    assert report["size"] == 700
    assert report["checkpoints_checked"] >= 1


def test_an_overwritten_archived_object_is_archive_overwritten(archived, owner, auditor_env):
    bucket, signer = archived("overwritten")
    owner.put_object(Bucket=BUCKET, Key=bucket.key("tile/entries/000"), Body=b"\x00\x01x")
    code, report = _verify(bucket, signer, auditor_env)
    assert code == Tamper.ARCHIVE_OVERWRITTEN
    assert [f["class"] for f in report["findings"]] == ["ARCHIVE_OVERWRITTEN"]
    # The lock kept the first version: the tree itself still verifies from it.
    assert report["size"] == 700


def test_a_delete_marker_is_archive_deleted(archived, owner, auditor_env):
    bucket, signer = archived("deleted")
    owner.delete_object(Bucket=BUCKET, Key=bucket.key("tile/0/002.p/188"))
    code, report = _verify(bucket, signer, auditor_env)
    assert code == Tamper.ARCHIVE_DELETED
    assert [f["class"] for f in report["findings"]] == ["ARCHIVE_DELETED"]
