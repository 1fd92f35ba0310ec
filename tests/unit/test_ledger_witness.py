"""The witness over real HTTP: it cosigns consistent checkpoints and refuses the rest."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from sovdeploy.hostside import witness
from sovdeploy.ledger import audit, merkle, tiles
from sovdeploy.ledger.checkpoint import SignedCheckpoint
from sovdeploy.ledger.log import Log
from sovdeploy.ledger.note import COSIGNATURE_V1, Signer

ORIGIN = "sovdeploy.test/witnessed"
LOG_KEY = Signer.generate(ORIGIN)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, witness.Witness]]:
    w = witness.Witness(
        Signer.generate("witness.test/w1", COSIGNATURE_V1),
        [LOG_KEY.verifier],
        tmp_path / "witness.json",
    )
    server = witness.serve(w, ("127.0.0.1", 0))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", w
    server.shutdown()


def grow(log: Log, start: int, end: int, tag: bytes = b"") -> SignedCheckpoint:
    log.append([tag + i.to_bytes(4, "big") for i in range(start, end)])
    return log.checkpoint()


def proof(root: Path, old: int, new: int) -> list[bytes]:
    reader = tiles.TileReader(tiles.directory_reader(root), new)
    return merkle.consistency_proof(reader.node, old, new)


def test_cosigns_a_growing_log_and_verification_counts_it(
    served: tuple[str, witness.Witness], tmp_path: Path
) -> None:
    url, w = served
    log = Log(tmp_path / "log", ORIGIN, LOG_KEY)
    first = grow(log, 0, 100)
    sigs = witness.submit(url, 0, [], first)
    second = grow(log, 100, 700)
    sigs = witness.submit(url, 100, proof(tmp_path / "log", 100, 700), second)
    log.close()
    assert w.latest(ORIGIN) == (700, second.checkpoint.root)
    # The same checkpoint again is fine (same size, same root).
    witness.submit(url, 700, [], second)
    cosigned = second.with_signatures(sigs)
    (tmp_path / "log" / "checkpoint").write_bytes(cosigned.encode())
    report = audit.verify(
        audit.DirectoryFiles(tmp_path / "log"),
        [LOG_KEY.verifier],
        witnesses=[w.signer.verifier],
        quorum=1,
        check_sources=False,
    )
    assert report.ok, report.findings
    assert report.witnesses == ["witness.test/w1"]


def test_refuses_an_inconsistent_checkpoint(
    served: tuple[str, witness.Witness], tmp_path: Path
) -> None:
    """A fork: the log signs size 300 over different entries than the 100 it showed."""
    url, w = served
    honest = Log(tmp_path / "honest", ORIGIN, LOG_KEY)
    witness.submit(url, 0, [], grow(honest, 0, 100))
    honest.close()
    forked = Log(tmp_path / "forked", ORIGIN, LOG_KEY)
    grow(forked, 0, 100, b"F")
    bad = grow(forked, 100, 300, b"F")
    forked.close()
    with pytest.raises(witness.WitnessRefused) as exc:
        witness.submit(url, 100, proof(tmp_path / "forked", 100, 300), bad)
    assert exc.value.status == 422
    assert w.latest(ORIGIN)[0] == 100  # type: ignore[index]
    # Same size, another root: 409 with the size the witness holds.
    with pytest.raises(witness.WitnessRefused) as exc:
        forked2 = Log(tmp_path / "forked2", ORIGIN, LOG_KEY)
        other = grow(forked2, 0, 100, b"G")
        forked2.close()
        witness.submit(url, 100, [], other)
    assert (exc.value.status, exc.value.body) == (409, "100\n")


def test_protocol_errors(served: tuple[str, witness.Witness], tmp_path: Path) -> None:
    url, _ = served
    log = Log(tmp_path / "log", ORIGIN, LOG_KEY)
    cp = grow(log, 0, 50)
    log.close()
    with pytest.raises(witness.WitnessRefused) as exc:
        witness.submit(url, 10, [], cp)  # the witness holds 0, not 10
    assert (exc.value.status, exc.value.body) == (409, "0\n")
    with pytest.raises(witness.WitnessRefused) as exc:
        witness.submit(url, 60, [], cp)
    assert exc.value.status == 400
    stranger = Signer.generate("sovdeploy.test/stranger")
    other = Log(tmp_path / "other", "sovdeploy.test/stranger", stranger)
    unknown = grow(other, 0, 5)
    other.close()
    with pytest.raises(witness.WitnessRefused) as exc:
        witness.submit(url, 0, [], unknown)
    assert exc.value.status == 404
    impostor = Log(tmp_path / "impostor", ORIGIN, Signer.generate(ORIGIN))
    forged = grow(impostor, 0, 5)
    impostor.close()
    with pytest.raises(witness.WitnessRefused) as exc:
        witness.submit(url, 0, [], forged)
    assert exc.value.status == 403


def test_state_survives_a_restart(tmp_path: Path) -> None:
    key = Signer.generate("witness.test/w2", COSIGNATURE_V1)
    w = witness.Witness(key, [LOG_KEY.verifier], tmp_path / "state.json")
    log = Log(tmp_path / "log", ORIGIN, LOG_KEY)
    cp = grow(log, 0, 10)
    log.close()
    assert w.add_checkpoint(witness.request_body(0, [], cp), now=1).status == 200
    again = witness.Witness(key, [LOG_KEY.verifier], tmp_path / "state.json")
    answer = again.add_checkpoint(witness.request_body(0, [], cp))
    assert (answer.status, answer.body) == (409, b"10\n")
