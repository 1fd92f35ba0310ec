"""Where an auditor reads a log from: a copy in a directory, HTTPS, or the WORM archive."""

from __future__ import annotations

import ssl
from pathlib import Path

from sovdeploy.errors import LedgerError, UsageError
from sovdeploy.ledger import archive, audit


class ArchiveUnreadableError(LedgerError):
    """The archive cannot be read at all: audit verify's UNREADABLE."""

    exit_code = int(audit.Tamper.UNREADABLE)


def open_log(
    location: str,
    report: audit.Report,
    *,
    cacert: Path | None = None,
    client_cert: Path | None = None,
    client_key: Path | None = None,
    s3_endpoint: str | None = None,
) -> audit.LogFiles:
    """The log at ``location``: a directory, an ``https://`` prefix or ``s3://BUCKET/PREFIX``.

    For the archive, its Object Lock and every object's versions are checked into
    ``report`` first, and the log is read from each object's first version.

    Raises:
        UsageError: an ``s3://`` location without ``s3_endpoint``.
        ArchiveUnreadableError: when the archive cannot be read at all.

    """
    if location.startswith("s3://"):
        return _archive(location, s3_endpoint, cacert, report)
    if location.startswith("https://"):
        context = ssl.create_default_context(cafile=str(cacert) if cacert else None)
        if client_cert is not None:
            context.load_cert_chain(client_cert, client_key)
        return audit.HttpFiles(location, context)
    return audit.DirectoryFiles(Path(location))


def _archive(
    url: str, endpoint: str | None, cacert: Path | None, report: audit.Report
) -> audit.LogFiles:
    from botocore.exceptions import BotoCoreError, ClientError

    if not endpoint:
        raise UsageError("an s3:// LOG needs --s3-endpoint")
    name, _, prefix = url.removeprefix("s3://").partition("/")
    bucket = archive.Bucket(endpoint, name, prefix, str(cacert) if cacert else None)
    try:
        s3 = bucket.client()
        versions = archive.check(bucket, s3, report)
    except (BotoCoreError, ClientError) as exc:
        raise ArchiveUnreadableError(f"the archive {url} at {endpoint}: {exc}") from None
    return archive.ArchiveFiles(bucket, s3, versions)
