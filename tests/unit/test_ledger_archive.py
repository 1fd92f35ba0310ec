"""The archive's bookkeeping: which files a new checkpoint adds, and how versions are judged.

What needs a real S3 gateway (Object Lock, the uploads, ``audit verify s3://``) runs
against Ceph's RADOS gateway in the ceph role's Molecule scenario
(roles/ceph/molecule/default/tests/test_rgw.py).
"""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sovdeploy.ledger import archive, tiles
from sovdeploy.ledger.audit import Report, Tamper
from sovdeploy.ledger.log import open_writer
from sovdeploy.ledger.note import Signer

T0 = dt.datetime(2026, 11, 22, 8, 0, tzinfo=dt.UTC)


def served(size: int) -> set[str]:
    """Every tile and bundle path a tree of ``size`` serves, from the tiles module."""
    paths = {tiles.tile_path(level, n, w) for level, n, w in tiles.tiles_for_size(size)}
    full, last = divmod(size, tiles.TILE_WIDTH)
    paths |= {tiles.tile_path("entries", n) for n in range(full)}
    if last:
        paths.add(tiles.tile_path("entries", full, last))
    return paths


@given(st.integers(0, 300_000), st.integers(0, 300_000))
def test_new_paths_are_what_the_bigger_tree_adds(a: int, b: int) -> None:
    since, size = sorted((a, b))
    assert set(archive.new_paths(size, since)) == served(size) - served(since)


def test_new_paths_from_nothing_is_the_whole_tree() -> None:
    assert set(archive.new_paths(70_000)) == served(70_000)
    assert list(archive.new_paths(0)) == []


def test_new_paths_refuses_a_shrinking_log() -> None:
    with pytest.raises(ValueError, match="more than the log"):
        list(archive.new_paths(10, 20))


def test_the_paths_of_a_real_log_are_on_disk(tmp_path) -> None:
    """What new_paths names for a log's size is exactly what the log wrote."""
    root = tmp_path / "log"
    with open_writer(
        root, "sovdeploy.test/archive", Signer.generate("sovdeploy.test/archive")
    ) as w:
        for i in range(70_000 // 256 * 256 + 300):
            w.append(b"entry %d" % i)
    size = 70_000 // 256 * 256 + 300
    on_disk = {str(p.relative_to(root)) for p in (root / "tile").rglob("*") if p.is_file()}
    assert set(archive.new_paths(size)) == on_disk


def test_bucket_keys_carry_the_prefix() -> None:
    b = archive.Bucket("https://s3.example:7480", "ledger", "eu-1/log/")
    assert b.key("tile/0/000") == "eu-1/log/tile/0/000"
    assert b.path("eu-1/log/checkpoints/00000000000000000001") == "checkpoints/00000000000000000001"
    bare = archive.Bucket("https://s3.example:7480", "ledger", "")
    assert bare.key("tile/0/000") == "tile/0/000"


def version(key: str, n: int, etag: str = "a", deleted: bool = False) -> archive.Version:
    return archive.Version(key, f"v{n}", etag, T0 + dt.timedelta(minutes=n), deleted)


def judge(*vs: archive.Version) -> Report:
    versions = archive.Versions()
    for v in vs:
        versions.add(v)
    report = Report()
    archive.check_versions(versions, report)
    return report


def test_one_version_per_key_is_clean() -> None:
    assert judge(version("p/tile/0/000", 0), version("p/checkpoints/1", 1)).ok


def test_a_second_version_with_other_bytes_is_an_overwrite() -> None:
    report = judge(version("p/tile/0/000", 0, "a"), version("p/tile/0/000", 5, "b"))
    assert [f.tamper for f in report.findings] == [Tamper.ARCHIVE_OVERWRITTEN]
    assert "p/tile/0/000" in report.findings[0].message


def test_a_second_version_with_the_same_bytes_is_no_overwrite() -> None:
    # An upload repeated after a lost answer: nothing was changed.
    assert judge(version("p/tile/0/000", 0, "a"), version("p/tile/0/000", 1, "a")).ok


def test_a_delete_marker_is_a_deletion_and_the_first_version_still_reads() -> None:
    versions = archive.Versions()
    for v in (version("p/tile/0/000", 0), version("p/tile/0/000", 3, "", deleted=True)):
        versions.add(v)
    report = Report()
    archive.check_versions(versions, report)
    assert [f.tamper for f in report.findings] == [Tamper.ARCHIVE_DELETED]
    first = versions.first("p/tile/0/000")
    assert first is not None
    assert first.version == "v0"
    assert versions.object_keys() == ["p/tile/0/000"]


def lock(mode: str | None = "COMPLIANCE", **retention: int) -> dict[str, object]:
    conf: dict[str, object] = {"ObjectLockEnabled": "Enabled"}
    if mode:
        conf["Rule"] = {"DefaultRetention": {"Mode": mode, **retention}}
    return conf


@pytest.mark.parametrize(
    ("conf", "ok"),
    [
        (lock(Days=183), True),
        (lock(Years=1), True),
        (lock(Days=182), False),
        (lock("GOVERNANCE", Days=400), False),
        (lock(None), False),
        ({}, False),
    ],
)
def test_the_lock_must_be_compliance_for_183_days(conf: dict[str, object], ok: bool) -> None:
    report = Report()
    archive.judge_lock("ledger", conf, report)
    assert report.ok == ok
    assert all(f.tamper == Tamper.ARCHIVE_UNLOCKED for f in report.findings)


class _Store:
    """An in-memory bucket with the two calls the Archiver makes. (Uploads to Ceph's
    RADOS gateway, Object Lock and all, are tested in the ceph role's scenario.)"""

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}

    def head_object(self, Bucket: str, Key: str) -> None:  # noqa: N803 - boto3's names
        from botocore.exceptions import ClientError

        if Key not in self.objects:
            raise ClientError({"Error": {"Code": "404"}}, "HeadObject")

    def put_object(self, Bucket: str, Key: str, Body: bytes) -> None:  # noqa: N803
        assert Key not in self.objects, f"{Key} uploaded twice"
        self.objects[Key] = Body


def test_a_partial_tile_dropped_before_its_upload_is_archived_as_the_full_tile(
    tmp_path,
) -> None:
    """The log filled the tile after the checkpoint the archiver works on: the archive
    still verifies at that checkpoint, from the full tile, and later ones add to it."""
    from sovdeploy.ledger import audit
    from sovdeploy.ledger.log import Log

    signer = Signer.generate("sovdeploy.test/archive")
    root = tmp_path / "log"
    log = Log(root, "sovdeploy.test/archive", signer)
    log.append([b"entry %d" % i for i in range(250)])
    log.checkpoint()
    log.append([b"entry %d" % i for i in range(250, 260)])  # fills tile 0, no checkpoint yet
    assert not (root / tiles.tile_path("entries", 0, 250)).exists()
    store = _Store()
    bucket = archive.Bucket("https://s3.example:7480", "ledger", "log/")
    archiver = archive.Archiver(root, bucket, store, tmp_path / "archive.json")
    assert archiver.step() > 0
    assert "log/tile/entries/000" in store.objects
    assert "log/tile/entries/000.p/250" not in store.objects

    class Files:
        def read(self, path: str) -> bytes | None:
            if path == "checkpoint":
                return store.objects["log/checkpoints/" + f"{250:020d}"]
            return store.objects.get("log/" + path)

        def history(self) -> list[str]:
            return sorted(k[4:] for k in store.objects if k.startswith("log/checkpoints/"))

    report = audit.verify(Files(), [signer.verifier], check_sources=False)
    assert report.ok and report.size == 250, report.findings
    log.checkpoint()
    log.close()
    assert archiver.step() > 0  # the size-260 checkpoint; tile 000 is not sent again
    assert f"log/checkpoints/{260:020d}" in store.objects
