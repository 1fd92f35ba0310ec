"""``python -m sovdeploy.runbook.archive_export``: the WORM archive's objects as one tar stream.

The exit drill's export of the ledger's archive, with the auditors' read-only keys
(``AWS_ACCESS_KEY_ID`` and ``AWS_SECRET_ACCESS_KEY``). Every current object of the
bucket, in key order, each with its last-modified time, so the same archive gives the
same bytes; written to standard output.
"""

from __future__ import annotations

import argparse
import sys
import tarfile
from typing import IO, Any

from sovdeploy.ledger.archive import Bucket


def objects(s3: Any, bucket: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        found += page.get("Contents", [])
    return sorted(found, key=lambda o: o["Key"])


def write_tar(s3: Any, bucket: str, out: IO[bytes]) -> int:
    """Write every object into a tar stream on ``out``; return how many."""
    listed = objects(s3, bucket)
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for obj in listed:
            body = s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"]
            info = tarfile.TarInfo(obj["Key"])
            info.size = int(obj["Size"])
            info.mtime = int(obj["LastModified"].timestamp())
            info.mode = 0o444
            tar.addfile(info, body)
    return len(listed)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sovdeploy.runbook.archive_export")
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--bucket", required=True)
    parser.add_argument("--ca-file")
    args = parser.parse_args(argv)
    s3 = Bucket(args.endpoint, args.bucket, "", args.ca_file).client()
    write_tar(s3, args.bucket, sys.stdout.buffer)
    return 0


if __name__ == "__main__":
    sys.exit(main())
