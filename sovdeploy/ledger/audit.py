"""What an auditor runs: verify a log from its published files alone, trusting no operator.

The verifier reads only what tlog-tiles serves (``checkpoint``, ``tile/...``), plus the
log's checkpoint history and blobs, from a directory copy or over HTTPS. It checks the
checkpoint's signature and witness quorum, recomputes the whole tree from the entries,
checks every checkpoint it is shown (the log's history, the auditor's own ``--trusted``
one) against that tree, and checks every source's sequence numbers and heartbeats.

Each kind of tampering has its own class and exit code (see :class:`Tamper`), so that a
script can tell a deleted entry from a forked log without parsing text.
"""

from __future__ import annotations

import bisect
import enum
import hashlib
import itertools
import json
import ssl
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import orjson

from sovdeploy.ledger import merkle, note, tiles
from sovdeploy.ledger.checkpoint import Checkpoint, CheckpointError, SignedCheckpoint
from sovdeploy.ledger.log import CHECKPOINT_FILE, HISTORY_DIR
from sovdeploy.ledger.records import BLOB_DIR

#: A source is silent when no record of it arrived for this many heartbeat intervals.
SILENCE_FACTOR = 2


class Tamper(enum.IntEnum):
    """Tamper classes; the value is ``sovdeploy audit verify``'s exit code."""

    UNREADABLE = 3  #: the log could not be read at all (no checkpoint, bad URL)
    SIGNATURE = 10  #: a checkpoint signature fails, or too few witnesses cosigned
    MODIFIED = 11  #: an entry, tile or blob differs from what the signed tree commits to
    DELETED = 12  #: an entry inside the log is missing
    REORDERED = 13  #: entries are all there, in a different order
    TRUNCATED = 14  #: the log holds only a prefix of what its checkpoint commits to
    ROLLBACK = 15  #: the log is older than a checkpoint it signed before
    FORK = 16  #: two checkpoints disagree about the same tree
    ARCHIVE_OVERWRITTEN = 17  #: an archived object has more than one version
    ARCHIVE_DELETED = 18  #: an archived object has a delete marker
    SOURCE_GAP = 19  #: a source's sequence numbers skip
    SOURCE_SILENT = 20  #: a source stopped sending heartbeats, or never appeared
    ARCHIVE_UNLOCKED = 21  #: the archive bucket does not lock objects (COMPLIANCE, 183 days)


DESCRIPTIONS: dict[Tamper, str] = {
    Tamper.UNREADABLE: "the log could not be read (no checkpoint, unreachable)",
    Tamper.SIGNATURE: "a checkpoint signature fails, or too few witnesses cosigned",
    Tamper.MODIFIED: "an entry, tile or blob differs from what the signed tree commits to",
    Tamper.DELETED: "an entry inside the log is missing",
    Tamper.REORDERED: "all entries are there, some in a different order",
    Tamper.TRUNCATED: "the log holds only a prefix of what its checkpoint commits to",
    Tamper.ROLLBACK: "the log is older than a checkpoint it signed before (history, --trusted)",
    Tamper.FORK: "two checkpoints disagree about the same tree",
    Tamper.ARCHIVE_OVERWRITTEN: "an archived object has more than one version",
    Tamper.ARCHIVE_DELETED: "an archived object has a delete marker",
    Tamper.SOURCE_GAP: "a source's sequence numbers skip or repeat",
    Tamper.SOURCE_SILENT: (
        "a source missed its heartbeats (silent for over two intervals), or never wrote"
    ),
    Tamper.ARCHIVE_UNLOCKED: (
        "the archive bucket does not keep objects in COMPLIANCE mode for at least 183 days"
    ),
}


@dataclass(frozen=True)
class Finding:
    tamper: Tamper
    message: str


@dataclass
class SourceReport:
    name: str
    records: int = 0
    first_seq: int | None = None
    last_seq: int | None = None
    last_time: str | None = None
    heartbeat: float | None = None


@dataclass
class Report:
    origin: str = ""
    size: int = 0
    root: bytes = b""
    witnesses: list[str] = field(default_factory=list)
    checkpoints_checked: int = 0
    sources: dict[str, SourceReport] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.findings

    @property
    def exit_code(self) -> int:
        return min((f.tamper for f in self.findings), default=0)

    def add(self, tamper: Tamper, message: str) -> None:
        self.findings.append(Finding(tamper, message))


class LogFiles(Protocol):
    """Where the log's published files are read from."""

    def read(self, path: str) -> bytes | None:
        """The file at ``path`` under the log prefix, or None when it does not exist."""

    def history(self) -> list[str]:
        """Paths of the log's past checkpoints."""


class DirectoryFiles:
    """A log directory on disk (the log itself, or an auditor's copy)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.read = tiles.directory_reader(root)

    def history(self) -> list[str]:
        d = self.root / HISTORY_DIR
        if not d.is_dir():
            return []
        # Dot files are a writer's temporaries, never published.
        return sorted(f"{HISTORY_DIR}/{p.name}" for p in d.iterdir() if not p.name.startswith("."))


class HttpFiles:
    """A log served over HTTPS, optionally with a client certificate."""

    def __init__(self, prefix: str, context: ssl.SSLContext | None = None) -> None:
        self.prefix = prefix.rstrip("/")
        self.context = context

    def read(self, path: str) -> bytes | None:
        url = f"{self.prefix}/{path}"
        try:
            with urllib.request.urlopen(url, context=self.context, timeout=30) as resp:  # noqa: S310 - https prefix from the operator
                data: bytes = resp.read()
                return data
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return None
            raise

    def history(self) -> list[str]:
        index = self.read(f"{HISTORY_DIR}/")
        if index is None:
            return []
        return [f"{HISTORY_DIR}/{name}" for name in index.decode().split()]


def _parse_checkpoint(data: bytes, what: str, report: Report) -> SignedCheckpoint | None:
    try:
        return SignedCheckpoint.parse(data)
    except (note.NoteError, CheckpointError) as exc:
        report.add(Tamper.SIGNATURE, f"{what} is not a well-formed signed checkpoint: {exc}")
        return None


def _check_signatures(  # noqa: PLR0917 - the same six facts at every call
    cp: SignedCheckpoint,
    what: str,
    log_keys: Sequence[note.Verifier],
    witnesses: Sequence[note.Verifier],
    quorum: int,
    report: Report,
) -> list[str]:
    try:
        note.verify(cp.note, log_keys)
    except note.NoteError as exc:
        report.add(Tamper.SIGNATURE, f"{what}: the log's signature: {exc}")
        return []
    try:
        cosigners = note.verified_by(cp.note, witnesses)
    except note.NoteError as exc:
        report.add(Tamper.SIGNATURE, f"{what}: a witness cosignature: {exc}")
        return []
    if len(cosigners) < quorum:
        report.add(
            Tamper.SIGNATURE,
            f"{what}: {len(cosigners)} of the required {quorum} witness cosignature(s)",
        )
    return [w.name for w in cosigners]


@dataclass
class _Bundle:
    index: int
    width: int
    entries: list[bytes]


def _bundles(files: LogFiles, size: int, report: Report) -> Iterator[_Bundle]:
    count, last = divmod(size, tiles.TILE_WIDTH)
    total = count + (1 if last else 0)
    missing: list[int] = []
    for n in range(total):
        width = tiles.TILE_WIDTH if n < count else last
        try:
            entries = tiles.read_tile(files.read, "entries", n, width)
        except tiles.TileError as exc:
            report.add(Tamper.MODIFIED, f"entry bundle {n}: {exc}")
            continue
        if entries is None:
            missing.append(n)
            continue
        if missing:
            _report_missing(missing, total, report)
            missing = []
        yield _Bundle(n, width, entries)
    if missing:
        _report_missing(missing, total, report)


def _report_missing(missing: list[int], total: int, report: Report) -> None:
    span = f"{missing[0]}" if len(missing) == 1 else f"{missing[0]}-{missing[-1]}"
    first = missing[0] * tiles.TILE_WIDTH
    if missing[-1] == total - 1:
        report.add(
            Tamper.TRUNCATED,
            f"entry bundle(s) {span} are missing: the log stops at entry {first}",
        )
    else:
        report.add(Tamper.DELETED, f"entry bundle(s) {span} are missing (from entry {first})")


def _classify_leaves(
    b: _Bundle, computed: list[bytes], served: list[bytes], last: bool, report: Report
) -> None:
    first = b.index * tiles.TILE_WIDTH
    if len(computed) < b.width:
        if last and computed == served[: len(computed)]:
            report.add(
                Tamper.TRUNCATED,
                f"bundle {b.index} holds {len(computed)} of {b.width} entries: "
                f"the log stops at entry {first + len(computed)}",
            )
        elif set(computed) <= set(served):
            gone = [first + i for i, h in enumerate(served) if h not in set(computed)]
            report.add(Tamper.DELETED, f"entr(ies) {gone} are missing from bundle {b.index}")
        else:
            report.add(
                Tamper.MODIFIED, f"bundle {b.index} holds {len(computed)} of {b.width} entries"
            )
        return
    if len(computed) > b.width:
        report.add(Tamper.MODIFIED, f"bundle {b.index} holds more entries than its tile")
        return
    if sorted(computed) == sorted(served):
        moved = [first + i for i, (c, s) in enumerate(zip(computed, served, strict=True)) if c != s]
        report.add(Tamper.REORDERED, f"entries {moved} are out of order")
        return
    changed = [first + i for i, (c, s) in enumerate(zip(computed, served, strict=True)) if c != s]
    report.add(Tamper.MODIFIED, f"entr(ies) {changed} do not hash to the signed tree")


class _SourceCheck:
    def __init__(self, report: Report, expected: Sequence[str]) -> None:
        self.report = report
        self.expected = list(expected)
        # Per source, in the hot loop: [next seq, record count, times, its report].
        self.state: dict[str, list[Any]] = {}
        # A source is held to its heartbeat from its first one on: before the timer
        # existed (a host set up while the log already received its journal), a quiet
        # host promised nothing.
        self.first_beat: dict[str, str] = {}
        self.latest = ""

    def _first(self, source: str, seq: int, index: int) -> list[Any]:
        s = self.report.sources[source] = SourceReport(source, first_seq=seq)
        if seq != 0:
            self.report.add(
                Tamper.SOURCE_GAP,
                f"source {source}: the first record (entry {index}) is "
                f"number {seq}; records 0-{seq - 1} are missing",
            )
        state = self.state[source] = [seq, 0, [], s]
        return state

    def _gap(self, source: str, index: int, expected: int, seq: int) -> None:
        last = expected - 1
        what = (
            f"repeats or goes back to {seq} after {last}"
            if seq <= last
            else (f"skips {expected}-{seq - 1}")
        )
        self.report.add(Tamper.SOURCE_GAP, f"source {source}: entry {index} {what}")

    def add_bundle(self, first: int, entries: Sequence[bytes]) -> list[tuple[int, bytes]]:
        """Check the records of one entry bundle; return the (index, entry) that name a blob."""
        # The verifier's hot loop: one JSON decode and a few lookups per record.
        loads, state, latest, blobs = orjson.loads, self.state, self.latest, []
        for i, entry in enumerate(entries):
            try:
                rec = loads(entry)
                source, seq = rec["source"], rec["seq"]
            except (orjson.JSONDecodeError, KeyError, TypeError, IndexError):
                continue  # not a record: the tree is checked, the sources cannot be
            if type(source) is not str or type(seq) is not int:
                continue
            st = state.get(source)
            if st is None:
                st = self._first(source, seq, first + i)
            elif seq != st[0]:
                self._gap(source, first + i, st[0], seq)
            st[0] = seq + 1
            st[1] += 1
            if "time" in rec:
                when = rec["time"]
                if type(when) is str:
                    st[2].append(when)
                    if when > latest:  # noqa: PLR1730 - max() costs a call per record
                        latest = when
            if "interval" in rec and rec.get("kind") == "heartbeat":
                interval = rec["interval"]
                if isinstance(interval, int | float):
                    st[3].heartbeat = float(interval)
                    when = rec.get("time")
                    if type(when) is str and source not in self.first_beat:
                        self.first_beat[source] = when
            if "blob" in rec:
                blobs.append((first + i, entry))
        self.latest = latest
        return blobs

    def finish(self) -> None:
        import datetime as dt

        def parse(t: str) -> dt.datetime:
            return dt.datetime.fromisoformat(t.replace("Z", "+00:00"))

        for seq, count, times, report in self.state.values():
            report.last_seq, report.records = seq - 1, count
            report.last_time = times[-1] if times else None
        latest = parse(self.latest) if self.latest else None
        for name in self.expected:
            if name not in self.report.sources:
                self.report.add(Tamper.SOURCE_SILENT, f"source {name} has no record in the log")
        for name, s in self.report.sources.items():
            if s.heartbeat is None or latest is None:
                continue
            limit = SILENCE_FACTOR * s.heartbeat
            since = self.first_beat.get(name, "")
            times = [parse(t) for t in self.state[name][2] if t >= since]
            for before, after in itertools.pairwise(times):
                if (after - before).total_seconds() > limit:
                    self.report.add(
                        Tamper.SOURCE_SILENT,
                        f"source {name} was silent from {before.isoformat()} to "
                        f"{after.isoformat()} (heartbeat every {s.heartbeat:g}s)",
                    )
            if times and (latest - times[-1]).total_seconds() > limit:
                self.report.add(
                    Tamper.SOURCE_SILENT,
                    f"source {name} has been silent since {times[-1].isoformat()}; the log "
                    f"runs to {latest.isoformat()} (heartbeat every {s.heartbeat:g}s)",
                )


def _check_blob(files: LogFiles, index: int, entry: bytes, report: Report) -> None:
    try:
        ref = json.loads(entry).get("blob")
    except (ValueError, AttributeError):
        return
    if not isinstance(ref, dict) or not isinstance(ref.get("sha256"), str):
        return
    digest = ref["sha256"]
    data = files.read(f"{BLOB_DIR}/{digest[:2]}/{digest}")
    if data is None:
        report.add(Tamper.DELETED, f"entry {index}: blob {digest} is missing")
    elif hashlib.sha256(data).hexdigest() != digest:
        report.add(Tamper.MODIFIED, f"entry {index}: blob {digest} does not match its digest")


def verify(
    files: LogFiles,
    log_keys: Sequence[note.Verifier],
    *,
    witnesses: Sequence[note.Verifier] = (),
    quorum: int = 0,
    trusted: Sequence[bytes] = (),
    expected_sources: Sequence[str] = (),
    check_sources: bool = True,
) -> Report:
    """Verify the log ``files`` serves; every problem found is a finding in the report."""
    report = Report()
    data = files.read(CHECKPOINT_FILE)
    if data is None:
        report.add(Tamper.UNREADABLE, "the log has no checkpoint")
        return report
    current = _parse_checkpoint(data, "the checkpoint", report)
    if current is None:
        return report
    cp = current.checkpoint
    report.origin, report.size, report.root = cp.origin, cp.size, cp.root
    report.witnesses = _check_signatures(
        current, "the checkpoint", log_keys, witnesses, quorum, report
    )
    wanted = _other_checkpoints(files, log_keys, trusted, cp, report)
    sources = _SourceCheck(report, expected_sources) if check_sources else None
    roots = _Recompute(files, cp.size, sorted(wanted), sources, report).run()
    if cp.size not in roots:
        return report
    if roots[cp.size] != cp.root and not report.findings:
        report.add(Tamper.MODIFIED, "the entries do not hash to the checkpoint's root")
    for size, claims in sorted(wanted.items()):
        for what, root in claims:
            if size in roots and roots[size] != root:
                report.add(
                    Tamper.FORK,
                    f"{what} has a different root for size {size} than the log's entries",
                )
    if sources is not None:
        sources.finish()
    return report


def _other_checkpoints(
    files: LogFiles,
    log_keys: Sequence[note.Verifier],
    trusted: Sequence[bytes],
    cp: Checkpoint,
    report: Report,
) -> dict[int, list[tuple[str, bytes]]]:
    """Check the log's history and the auditor's checkpoints against ``cp``.

    Each must be signed by the log and cover no more than ``cp`` does; returns, by
    size, the roots they claim, for comparison with the recomputed tree.
    """
    shown = [(path, files.read(path)) for path in files.history()]
    if len(trusted) == 1:
        shown.append(("the trusted checkpoint", trusted[0]))
    else:
        shown += [(f"trusted checkpoint {i + 1}", raw) for i, raw in enumerate(trusted)]
    wanted: dict[int, list[tuple[str, bytes]]] = {}
    for what, raw in shown:
        parsed = None if raw is None else _parse_checkpoint(raw, what, report)
        if parsed is None:
            continue
        report.checkpoints_checked += 1
        _check_signatures(parsed, what, log_keys, (), 0, report)
        o = parsed.checkpoint
        if o.origin != cp.origin:
            report.add(Tamper.FORK, f"{what} is for the log {o.origin!r}, not {cp.origin!r}")
        elif o.size > cp.size:
            report.add(
                Tamper.ROLLBACK,
                f"{what} covers {o.size} entries; the log now presents only {cp.size}",
            )
        else:
            wanted.setdefault(o.size, []).append((what, o.root))
    return wanted


class _Recompute:
    """Recompute the tree from the entries, comparing every served tile on the way."""

    def __init__(
        self,
        files: LogFiles,
        size: int,
        wanted: list[int],
        sources: _SourceCheck | None,
        report: Report,
    ) -> None:
        self.files = files
        self.size = size
        self.wanted = wanted
        self.sources = sources
        self.report = report
        self.reader = tiles.TileReader(files.read, size)
        self.range = merkle.CompactRange()
        # Recomputed hashes of the partial tile at each level >= 1.
        self.upper: list[list[bytes]] = []
        self.roots: dict[int, bytes] = {0: merkle.EMPTY_ROOT}

    def run(self) -> dict[int, bytes]:
        """The root at the log's size and at each wanted size (absent when unreachable)."""
        for b in _bundles(self.files, self.size, self.report):
            if b.index * tiles.TILE_WIDTH != self.range.size or not self._bundle(b):
                return self.roots
        if self.range.size != self.size:
            return self.roots
        for level, row in enumerate(self.upper, start=1):
            index = (self.size >> (tiles.TILE_HEIGHT * level)) // tiles.TILE_WIDTH
            served = self._served(level, index) if row else None
            if served is not None and served != row:
                self.report.add(Tamper.MODIFIED, f"hash tile {level}/{index} (partial) differs")
        self.roots[self.size] = self.range.root()
        return self.roots

    def _bundle(self, b: _Bundle) -> bool:
        computed = merkle.leaf_hashes(b.entries)
        try:
            served = self.reader.tile(0, b.index)
        except tiles.TileError as exc:
            self.report.add(Tamper.DELETED, f"hash tile 0/{b.index}: {exc}")
            served = computed
        if computed != served:
            last = b.index == self.size // tiles.TILE_WIDTH
            _classify_leaves(b, computed, served, last, self.report)
            return False
        if self.sources is not None:
            for index, e in self.sources.add_bundle(b.index * tiles.TILE_WIDTH, b.entries):
                _check_blob(self.files, index, e, self.report)
        lo, hi = self.range.size, self.range.size + len(computed)
        wanted = self.wanted
        inner = wanted[bisect.bisect_right(wanted, lo) : bisect.bisect_right(wanted, hi)]
        full = b.width == tiles.TILE_WIDTH
        if full and not inner:
            subtree = merkle.perfect_root(computed)
            self.range.append_subtree(subtree, tiles.TILE_HEIGHT)
        else:
            for h in computed:
                self.range.append(h)
                if self.range.size in inner:
                    self.roots[self.range.size] = self.range.root()
            subtree = merkle.perfect_root(computed) if full else b""
        if full:
            self._carry(subtree, b.index)
        return True

    def _served(self, level: int, index: int) -> list[bytes] | None:
        try:
            return self.reader.tile(level, index)
        except tiles.TileError:
            return None

    def _carry(self, subtree: bytes, bundle: int) -> None:
        """Add a full bundle's subtree to the tiles above, checking each one it completes."""
        for level, index, row in tiles.carry(self.upper, subtree, bundle):
            served = self._served(level, index)
            if served is None:
                self.report.add(Tamper.DELETED, f"hash tile {level}/{index} is missing")
            elif served != row:
                self.report.add(
                    Tamper.MODIFIED, f"hash tile {level}/{index} differs from the entries"
                )
