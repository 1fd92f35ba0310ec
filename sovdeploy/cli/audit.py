"""`sovdeploy audit`: verify a log, prove an entry is in it."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from sovdeploy import inventory as inv
from sovdeploy import options, views
from sovdeploy.cli.base import err, handle_errors, main, out
from sovdeploy.errors import (
    UsageError,
)
from sovdeploy.ledger import audit as ledger_audit
from sovdeploy.ledger import local as ledger_local
from sovdeploy.ledger import note as ledger_note
from sovdeploy.ledger import reader
from sovdeploy.state import StateDir


@main.group()
def audit() -> None:
    """The tamper-evident ledger: verify a log, prove an entry is in it."""


def _vkeys(values: tuple[str, ...]) -> list[ledger_note.Verifier]:
    keys = []
    for value in values:
        text = Path(value).read_text() if Path(value).is_file() else value
        try:
            keys.append(ledger_note.Verifier.parse(text))
        except ledger_note.NoteError as exc:
            raise UsageError(f"{value}: {exc}") from None
    return keys


def _tamper_epilog() -> str:
    lines = ["Exit codes: 0 every check holds;"]
    lines += [f"{t.value} {t.name}: {d};" for t, d in ledger_audit.DESCRIPTIONS.items()]
    return "\b\n" + "\n".join(lines)


@audit.command("verify", epilog=_tamper_epilog())
@click.argument("log", required=False)
@options.inventory
@click.option("--key", "keys", multiple=True, help="The log's verifier key (vkey, or a file).")
@click.option("--witness", "witnesses", multiple=True, help="A witness's verifier key; repeat.")
@click.option(
    "--quorum", type=click.IntRange(0), help="Witness cosignatures required [default: all]."
)
@click.option(
    "--trusted",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    multiple=True,
    help="A checkpoint saved earlier; the log must extend it. Repeatable.",
)
@click.option("--expect-source", "expected", multiple=True, help="A source that must appear.")
@click.option(
    "--cacert", type=click.Path(exists=True, path_type=Path), help="CA for an https or s3 LOG."
)
@click.option("--s3-endpoint", help="S3 endpoint URL of an s3://BUCKET/PREFIX LOG (the archive).")
@click.option("--client-cert", type=click.Path(exists=True, path_type=Path))
@click.option("--client-key", type=click.Path(exists=True, path_type=Path))
@options.as_json
@handle_errors
def audit_verify(  # noqa: PLR0917 - click passes each option as a keyword
    log: str | None,
    inventory: Path,
    keys: tuple[str, ...],
    witnesses: tuple[str, ...],
    quorum: int | None,
    trusted: tuple[Path, ...],
    expected: tuple[str, ...],
    cacert: Path | None,
    client_cert: Path | None,
    client_key: Path | None,
    s3_endpoint: str | None,
    as_json: bool,
) -> None:
    """Verify a log: signatures, witnesses, the whole tree, history, sources.

    LOG is a directory (a copy of the log), an https:// prefix, or the WORM archive,
    s3://BUCKET/PREFIX with --s3-endpoint (credentials from AWS_ACCESS_KEY_ID and
    AWS_SECRET_ACCESS_KEY): the bucket's Object Lock and every object's versions are
    checked too, and the log is read from each object's first version. Without LOG,
    the orchestrator's ledger of the deployment is checked, with the verifier key from
    its state dir unless --key names one; an auditor passes the key they were given.
    """
    archived = ledger_audit.Report()
    if log is None:
        root = StateDir(inv.load(inventory).path).root
        files: ledger_audit.LogFiles = ledger_audit.DirectoryFiles(ledger_local.ledger_dir(root))
        log_keys = _vkeys(keys) or [ledger_local.load_verifier(root)]
    else:
        files = reader.open_log(
            log,
            archived,
            cacert=cacert,
            client_cert=client_cert,
            client_key=client_key,
            s3_endpoint=s3_endpoint,
        )
        log_keys = _vkeys(keys)
    if not log_keys:
        raise UsageError("give the log's verifier key with --key")
    witness_keys = _vkeys(witnesses)
    report = ledger_audit.verify(
        files,
        log_keys,
        witnesses=witness_keys,
        quorum=len(witness_keys) if quorum is None else quorum,
        trusted=[t.read_bytes() for t in trusted],
        expected_sources=expected,
    )
    report.findings[:0] = archived.findings
    if as_json:
        click.echo(json.dumps(views.audit_json(report), indent=2))
    else:
        views.render_audit(report, out, err)
    sys.exit(report.exit_code)


@audit.command("prove")
@click.argument("entry", type=click.IntRange(0))
@options.inventory
@click.option(
    "-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="Write it here."
)
@handle_errors
def audit_prove(entry: int, inventory: Path, output: Path | None) -> None:
    """Print an inclusion receipt (c2sp.org/tlog-proof) for ENTRY, by index.

    The receipt holds the entry, its inclusion proof and the signed checkpoint: with
    the ledger's verifier key alone, anyone can check that the entry is in the log.
    """
    root = StateDir(inv.load(inventory).path).root
    receipt = ledger_local.prove(root, entry)
    text = receipt.encode()
    if output is None:
        click.echo(text, nl=False)
    else:
        output.write_text(text)
        out.print(f"receipt for entry {entry} of {receipt.checkpoint.checkpoint.size} -> {output}")
