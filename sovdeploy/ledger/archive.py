"""The ledger's WORM archive: its published files, kept in an S3 bucket under Object Lock.

The bucket is created with Object Lock (which turns versioning on) and a default
retention in COMPLIANCE mode of at least 183 days: nobody, its owner included, can
delete an object version or shorten its retention before that date. Each archived file
keeps its spec path under a prefix (the log's origin, by default)::

    <prefix>/tile/<L>/<N>[.p/<W>]        hash tiles and entry bundles, as served
    <prefix>/checkpoints/<size>          every checkpoint the log signed
    <prefix>/blobs/<ab>/<sha256>         payloads stored beside the log

The latest ``checkpoint`` is not archived under its own name: it changes with every
checkpoint, and a second version of any key is what the verifier reports as an
overwrite. Every archived file is written once and never changes.

:class:`Archiver` uploads what each new checkpoint adds; it asks before every upload
whether the key exists, so that a restart never writes a second version.
:func:`check` is what ``sovdeploy audit verify --archive`` adds: the bucket's lock
configuration, then every key's version history (a second version with other bytes is
an overwrite, a delete marker a deletion). :class:`ArchiveFiles` reads the archive as
the verifier reads a log, each key's first version, so the archived copy is verified
in full by the same checks.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

from sovdeploy.ledger import tiles
from sovdeploy.ledger.log import HISTORY_DIR
from sovdeploy.ledger.records import BLOB_DIR
from sovdeploy.ledger.worker import Worker, read_state, write_state

if TYPE_CHECKING:
    from sovdeploy.ledger.audit import Report

#: The shortest retention the archive may keep (the AI Act's six months, rounded up).
MIN_RETENTION_DAYS = 183
STATE_FILE = "archive.json"
_DAYS_PER_YEAR = 365


@dataclass(frozen=True)
class Bucket:
    """Where the archive is: an S3 endpoint, a bucket, and the key prefix of this log."""

    endpoint: str
    name: str
    prefix: str
    ca_file: str | None = None

    def key(self, path: str) -> str:
        return f"{self.prefix.strip('/')}/{path}" if self.prefix.strip("/") else path

    def path(self, key: str) -> str:
        p = self.prefix.strip("/")
        return key[len(p) + 1 :] if p else key

    def client(self, access_key: str | None = None, secret_key: str | None = None) -> Any:
        """A boto3 S3 client (path-style addressing, as RGW serves it).

        Without keys, boto3's own chain applies (``AWS_ACCESS_KEY_ID`` and
        ``AWS_SECRET_ACCESS_KEY``, or a credentials file).
        """
        import boto3  # imported when the archive is used
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=access_key,
            aws_secret_access_key=secret_key,
            region_name="default",
            verify=self.ca_file if self.ca_file else True,
            config=Config(
                s3={"addressing_style": "path"},
                retries={"max_attempts": 3, "mode": "standard"},
                connect_timeout=5,
                read_timeout=30,
                # RGW checks Content-MD5 but not the newer CRC trailers on every release.
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
            ),
        )


def new_paths(size: int, since: int = 0) -> Iterator[str]:
    """The tile and bundle paths a tree of ``size`` serves that one of ``since`` did not."""
    if since > size:
        raise ValueError(f"the archive holds {since} entries, more than the log's {size}")
    levels: list[tuple[int | str, int]] = [("entries", 0)]
    level = 0
    while size >> (tiles.TILE_HEIGHT * level):
        levels.append((level, tiles.TILE_HEIGHT * level))
        level += 1
    for name, shift in levels:
        new, old = size >> shift, since >> shift
        for index in range(old // tiles.TILE_WIDTH, -(-new // tiles.TILE_WIDTH)):
            width = tiles.served_width(new, index)
            if width and width != tiles.served_width(old, index):
                yield tiles.tile_path(name, index, width)


@dataclass
class ArchiveState:
    """How far the archive goes: the tree size and the newest checkpoint archived, the blobs."""

    size: int = 0
    checkpoint: int = -1
    blobs: list[str] = field(default_factory=list)

    @classmethod
    def load(cls, path: Path) -> Self:
        data = read_state(path)
        if data is None:
            return cls()
        return cls(int(data["size"]), int(data["checkpoint"]), list(data["blobs"]))

    def save(self, path: Path) -> None:
        write_state(path, {"size": self.size, "checkpoint": self.checkpoint, "blobs": self.blobs})


class Archiver(Worker):
    """Uploads the files of each new checkpoint to the bucket, oldest first.

    It runs beside the writer, reading only files the log has made durable: the
    checkpoint history names a size only once that size's tiles are written. An upload
    that fails (the endpoint is down) is retried at the next poll; nothing is skipped.
    """

    thread_name = "ledger-archiver"

    def __init__(
        self, log_root: Path, bucket: Bucket, s3: Any, state_path: Path, *, poll: float = 10.0
    ) -> None:
        super().__init__()
        self.root = log_root
        self.bucket = bucket
        self.s3 = s3
        self.poll = poll
        self._state_path = state_path
        self.state = ArchiveState.load(state_path)
        self.failures = 0

    def _exists(self, key: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.s3.head_object(Bucket=self.bucket.name, Key=key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in {"404", "NoSuchKey", "NotFound"}:
                return False
            raise
        return True

    def _put(self, path: str) -> bool:
        """Upload ``path`` unless its key exists; True when it was uploaded.

        A log that grows fast fills a tile between the checkpoint the archiver works on
        and its upload, and drops the tile's partial versions: the full tile, whose
        first items are the partial's, is archived in its place (readers fall back to
        it, as tiles.read_tile does).
        """
        file = self.root / path
        if tiles.PARTIAL in path and not file.exists():
            path = tiles.full_tile_path(path)
            file = self.root / path
        key = self.bucket.key(path)
        if self._exists(key):
            return False
        self.s3.put_object(Bucket=self.bucket.name, Key=key, Body=file.read_bytes())
        return True

    def _history(self) -> list[int]:
        d = self.root / HISTORY_DIR
        if not d.is_dir():
            return []
        return sorted(int(p.name) for p in d.iterdir() if p.name.isdigit())

    def _blobs(self) -> Iterable[str]:
        d = self.root / BLOB_DIR
        if not d.is_dir():
            return []
        return sorted(f"{BLOB_DIR}/{p.parent.name}/{p.name}" for p in d.glob("*/*"))

    def step(self) -> int:
        """Archive what the log published since the last step; return how many files.

        A partial tile can vanish while it is read (the log drops it once the tile is
        full): the step then starts again from the log's newer history.
        """
        for _ in range(2):
            try:
                return self._step()
            except FileNotFoundError:
                continue
        return self._step()

    def _step(self) -> int:
        # Checkpoint sizes only grow; one re-signed at the same size keeps its first copy.
        sizes = [s for s in self._history() if s > self.state.checkpoint]
        if not sizes:
            return 0
        uploaded = 0
        top = sizes[-1]
        if top > self.state.size:
            # Blobs first: a record that names a blob is archived after its blob.
            known = set(self.state.blobs)
            for path in self._blobs():
                if path not in known:
                    uploaded += self._put(path)
                    self.state.blobs.append(path)
            uploaded += sum(self._put(p) for p in new_paths(top, self.state.size))
            self.state.size = top
            self.state.save(self._state_path)
        for size in sizes:
            uploaded += self._put(f"{HISTORY_DIR}/{size:020d}")
        self.state.checkpoint = top
        self.state.save(self._state_path)
        return uploaded

    def work(self) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        while not self._stop.is_set():
            try:
                self.step()
                self.failures = 0
            except (BotoCoreError, ClientError) as exc:
                self.failures += 1
                if self.failures in {1, 10} or self.failures % 100 == 0:
                    print(f"archive: upload failed ({self.failures}x), will retry: {exc}")
            self._stop.wait(self.poll)


class ArchiveFiles:
    """The archive read as a log (:class:`~sovdeploy.ledger.audit.LogFiles`).

    Each key reads as its first version, the one Object Lock has kept since it was
    written; ``checkpoint`` reads as the newest archived checkpoint.
    """

    def __init__(self, bucket: Bucket, s3: Any, versions: Versions | None = None) -> None:
        self.bucket = bucket
        self.s3 = s3
        self.versions = versions if versions is not None else Versions.fetch(bucket, s3)
        # The listing is taken once: the history it names does not change under us.
        prefix = self.bucket.key(f"{HISTORY_DIR}/")
        self._history = sorted(
            self.bucket.path(k) for k in self.versions.object_keys() if k.startswith(prefix)
        )

    def read(self, path: str) -> bytes | None:
        if path == "checkpoint":
            return self.read(self._history[-1]) if self._history else None
        first = self.versions.first(self.bucket.key(path))
        if first is None:
            return None
        obj = self.s3.get_object(Bucket=self.bucket.name, Key=first.key, VersionId=first.version)
        data: bytes = obj["Body"].read()
        return data

    def history(self) -> list[str]:
        return list(self._history)


@dataclass(frozen=True)
class Version:
    key: str
    version: str
    etag: str
    modified: dt.datetime
    deleted: bool = False


@dataclass
class Versions:
    """Every version and delete marker under the log's prefix, oldest first per key."""

    by_key: dict[str, list[Version]] = field(default_factory=dict)

    @classmethod
    def fetch(cls, bucket: Bucket, s3: Any) -> Versions:
        out = cls()
        paginator = s3.get_paginator("list_object_versions")
        prefix = bucket.key("")
        for page in paginator.paginate(Bucket=bucket.name, Prefix=prefix):
            for v in page.get("Versions", []):
                out.add(Version(v["Key"], v["VersionId"], v["ETag"], v["LastModified"]))
            for m in page.get("DeleteMarkers", []):
                out.add(Version(m["Key"], m["VersionId"], "", m["LastModified"], deleted=True))
        for versions in out.by_key.values():
            versions.sort(key=lambda v: v.modified)
        return out

    def add(self, v: Version) -> None:
        self.by_key.setdefault(v.key, []).append(v)

    def object_keys(self) -> list[str]:
        """Keys that have at least one object version (a delete marker alone is none)."""
        return [k for k, vs in self.by_key.items() if any(not v.deleted for v in vs)]

    def first(self, key: str) -> Version | None:
        return next((v for v in self.by_key.get(key, []) if not v.deleted), None)


def _retention_days(rule: dict[str, Any]) -> int:
    retention = rule.get("DefaultRetention", {})
    return int(retention.get("Days", 0)) or int(retention.get("Years", 0)) * _DAYS_PER_YEAR


def check_lock(bucket: Bucket, s3: Any, report: Report) -> None:
    """The bucket must keep every version for at least 183 days, in COMPLIANCE mode."""
    from botocore.exceptions import ClientError

    from sovdeploy.ledger.audit import Tamper

    try:
        conf = s3.get_object_lock_configuration(Bucket=bucket.name)["ObjectLockConfiguration"]
    except ClientError as exc:
        report.add(Tamper.ARCHIVE_UNLOCKED, f"bucket {bucket.name} has no Object Lock: {exc}")
        return
    judge_lock(bucket.name, conf, report)


def judge_lock(name: str, conf: dict[str, Any], report: Report) -> None:
    """Judge a bucket's ObjectLockConfiguration (as S3 returns it) into ``report``."""
    from sovdeploy.ledger.audit import Tamper  # the verifier's side (orjson); not the uploader's

    rule = conf.get("Rule", {})
    mode = rule.get("DefaultRetention", {}).get("Mode")
    days = _retention_days(rule)
    if conf.get("ObjectLockEnabled") != "Enabled" or mode != "COMPLIANCE":
        report.add(
            Tamper.ARCHIVE_UNLOCKED,
            f"bucket {name}: Object Lock is {conf.get('ObjectLockEnabled')}, "
            f"default mode {mode}, not COMPLIANCE",
        )
    elif days < MIN_RETENTION_DAYS:
        report.add(
            Tamper.ARCHIVE_UNLOCKED,
            f"bucket {name} keeps objects {days} days, less than {MIN_RETENTION_DAYS}",
        )


def check_versions(versions: Versions, report: Report) -> None:
    """Report every key with a delete marker, or with versions of different bytes."""
    from sovdeploy.ledger.audit import Tamper

    for key, vs in sorted(versions.by_key.items()):
        markers = [v for v in vs if v.deleted]
        if markers:
            report.add(
                Tamper.ARCHIVE_DELETED,
                f"{key} has {len(markers)} delete marker(s), the first at "
                f"{markers[0].modified.isoformat()}",
            )
        etags = {v.etag for v in vs if not v.deleted}
        if len(etags) > 1:
            later = [v for v in vs if not v.deleted][1:]
            report.add(
                Tamper.ARCHIVE_OVERWRITTEN,
                f"{key} was written {len(later) + 1} times with different bytes, last at "
                f"{later[-1].modified.isoformat()}",
            )


def check(bucket: Bucket, s3: Any, report: Report) -> Versions:
    """The archive checks of ``sovdeploy audit verify``: its lock, then every key's history."""
    check_lock(bucket, s3, report)
    versions = Versions.fetch(bucket, s3)
    check_versions(versions, report)
    return versions


#: What the uploader may do: add objects, and read what it added. Never delete.
UPLOADER_ACTIONS = ("s3:PutObject", "s3:GetObject", "s3:ListBucket")
#: What an auditor may do: read every version, and the lock.
AUDITOR_ACTIONS = (
    "s3:GetObject",
    "s3:GetObjectVersion",
    "s3:ListBucket",
    "s3:ListBucketVersions",
    "s3:GetBucketObjectLockConfiguration",
)


def bucket_policy(name: str, uploader: str, auditor: str) -> dict[str, Any]:
    """The bucket policy: the uploader adds objects, the auditor reads; nothing else."""

    def grant(sid: str, uid: str, actions: Iterable[str]) -> dict[str, Any]:
        return {
            "Sid": sid,
            "Effect": "Allow",
            "Principal": {"AWS": [f"arn:aws:iam:::user/{uid}"]},
            "Action": sorted(actions),
            "Resource": [f"arn:aws:s3:::{name}", f"arn:aws:s3:::{name}/*"],
        }

    return {
        "Version": "2012-10-17",
        "Statement": [
            grant("upload", uploader, UPLOADER_ACTIONS),
            grant("audit", auditor, AUDITOR_ACTIONS),
        ],
    }


def ensure_bucket(s3: Any, name: str, days: int, *, uploader: str, auditor: str) -> list[str]:
    """Create or fix the archive bucket as its owner; return what changed (empty: nothing).

    The bucket is created with Object Lock; its default retention is set to COMPLIANCE
    for ``days`` (a longer one already there is kept: retention is never shortened);
    the policy lets ``uploader`` add and ``auditor`` read.
    """
    from botocore.exceptions import ClientError

    if days < MIN_RETENTION_DAYS:
        raise ValueError(f"the archive keeps objects at least {MIN_RETENTION_DAYS} days")
    changed = []
    try:
        s3.head_bucket(Bucket=name)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") not in {"404", "NoSuchBucket", "NotFound"}:
            raise
        s3.create_bucket(Bucket=name, ObjectLockEnabledForBucket=True)
        changed.append(f"created bucket {name} with Object Lock")
    conf = s3.get_object_lock_configuration(Bucket=name)["ObjectLockConfiguration"]
    rule = conf.get("Rule", {})
    mode = rule.get("DefaultRetention", {}).get("Mode")
    if mode != "COMPLIANCE" or _retention_days(rule) < days:
        s3.put_object_lock_configuration(
            Bucket=name,
            ObjectLockConfiguration={
                "ObjectLockEnabled": "Enabled",
                "Rule": {"DefaultRetention": {"Mode": "COMPLIANCE", "Days": days}},
            },
        )
        changed.append(f"default retention: COMPLIANCE, {days} days")
    wanted = bucket_policy(name, uploader, auditor)
    try:
        current = json.loads(s3.get_bucket_policy(Bucket=name)["Policy"])
    except ClientError:
        current = None
    if current != wanted:
        s3.put_bucket_policy(Bucket=name, Policy=json.dumps(wanted))
        changed.append("bucket policy")
    return changed


def main(argv: list[str] | None = None) -> None:
    """``python -m sovdeploy.ledger.archive``: make the archive bucket (the logging phase).

    The owner's keys come from ``AWS_ACCESS_KEY_ID`` and ``AWS_SECRET_ACCESS_KEY``.
    Prints one JSON object, ``{"changed": [...]}``.
    """
    import argparse

    parser = argparse.ArgumentParser(prog="python -m sovdeploy.ledger.archive")
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--bucket", required=True)
    parser.add_argument("--ca-file")
    parser.add_argument("--days", type=int, default=MIN_RETENTION_DAYS)
    parser.add_argument("--uploader", required=True, help="gateway user id of the uploader")
    parser.add_argument("--auditor", required=True, help="gateway user id of the auditors")
    args = parser.parse_args(argv)
    bucket = Bucket(args.endpoint, args.bucket, "", args.ca_file)
    changed = ensure_bucket(
        bucket.client(), args.bucket, args.days, uploader=args.uploader, auditor=args.auditor
    )
    print(json.dumps({"changed": changed}))


if __name__ == "__main__":
    main()
