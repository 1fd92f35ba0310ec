"""The drill's exporter and restorer, on real files with real commands (tar, qemu-img)."""

from __future__ import annotations

import hashlib
import io
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from sovdeploy.hostside import export, restore
from sovdeploy.runbook import stores


def _step(argv: list[str], file: str = "out/data.bin", expect: list[str] | None = None) -> dict:
    return {
        "store": "test",
        "item": "an item",
        "file": file,
        "argv": argv,
        "before": [],
        "after": [],
        "expect": expect,
    }


def test_an_export_is_renamed_only_once_complete_and_hashed(tmp_path: Path) -> None:
    data = b"exported bytes\n" * 1000
    src = tmp_path / "src.bin"
    src.write_bytes(data)
    result = export.export(_step(["cat", str(src)]), tmp_path / "x")
    assert result["ok"], result
    assert result["bytes"] == len(data)
    assert result["sha256"] == hashlib.sha256(data).hexdigest()
    assert (tmp_path / "x/out/data.bin").read_bytes() == data
    assert not list((tmp_path / "x/out").glob("*.part"))


def test_a_failing_command_leaves_no_file_that_looks_complete(tmp_path: Path) -> None:
    result = export.export(_step(["sh", "-c", "echo half; exit 3"]), tmp_path)
    assert not result["ok"]
    assert "exited 3" in result["error"]
    assert not (tmp_path / "out/data.bin").exists()
    assert (tmp_path / "out/data.bin.part").exists()


def test_bytes_other_than_the_store_records_are_refused(tmp_path: Path) -> None:
    src = tmp_path / "image.raw"
    src.write_bytes(b"the image as uploaded")
    good = hashlib.sha512(b"the image as uploaded").hexdigest()
    ok = export.export(_step(["cat", str(src)], "a.raw", ["sha512", good]), tmp_path / "a")
    assert ok["ok"], ok
    bad = export.export(_step(["cat", str(src)], "b.raw", ["sha512", "0" * 128]), tmp_path / "b")
    assert not bad["ok"]
    assert "not the same bytes" in bad["error"]
    assert not (tmp_path / "b/b.raw").exists()


def test_after_steps_run_even_when_the_export_fails(tmp_path: Path) -> None:
    marker = tmp_path / "cleaned"
    step = _step(["false"])
    step["before"] = [["touch", str(tmp_path / "made")]]
    step["after"] = [["touch", str(marker)]]
    result = export.export(step, tmp_path)
    assert not result["ok"]
    assert (tmp_path / "made").exists() and marker.exists()


def test_a_rerun_replaces_what_an_interrupted_one_left(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "out/data.bin.part").write_bytes(b"stale half")
    src = tmp_path / "src"
    src.write_bytes(b"whole")
    assert export.export(_step(["cat", str(src)]), tmp_path)["ok"]
    assert (tmp_path / "out/data.bin").read_bytes() == b"whole"
    assert not (tmp_path / "out/data.bin.part").exists()


def test_the_exporter_runs_as_a_script_with_the_standard_library_only(tmp_path: Path) -> None:
    import json

    src = tmp_path / "src"
    src.write_bytes(b"abc")
    steps = tmp_path / "steps.json"
    steps.write_text(json.dumps([_step(["cat", str(src)])]))
    # -I: isolated, no site-packages: what a host without sovdeploy has.
    out = subprocess.run(
        [sys.executable, "-I", export.__file__, str(steps), str(tmp_path / "root")],
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(out.stdout)[0]["sha256"] == hashlib.sha256(b"abc").hexdigest()


def test_the_runbooks_commands_are_the_drills() -> None:
    store = stores.DataStore("mariadb/keystone", "keystone database", "database", ("c1",), "")
    (step,) = stores.steps(store, {}, inventory="/inv", state="/st", snap="s")
    assert step.argv[0] == "mariadb-dump" and "--skip-dump-date" in step.argv
    assert step.argv[-2:] == ("--databases", "keystone")
    pool = stores.DataStore("ceph/volumes", "Ceph pool volumes", "ceph-pool", ("s1",), "")
    reading = {"rbd": {"volumes": [{"image": "volume-1", "size": 1}]}}
    (vol,) = stores.steps(pool, reading, inventory="/inv", state="/st", snap="d1")
    assert vol.before == (("rbd", "snap", "create", "volumes/volume-1@d1"),)
    assert vol.argv[-2:] == ("volumes/volume-1@d1", "-")
    assert vol.after[0][:3] == ("rbd", "snap", "rm")


def test_a_ledger_export_is_a_snapshot_that_must_verify_before_it_counts(
    tmp_path: Path,
) -> None:
    """The runbook's command for the orchestrator's ledger, run as the drill runs it, gives
    a tar the drill's check accepts under the log's key; a copy with one entry changed, or
    a check under another key, is refused and not moved into place."""
    import tarfile

    from sovdeploy.ledger.log import Log
    from sovdeploy.ledger.note import Signer
    from sovdeploy.runbook.drill import _move_verified, ledger_check

    signer = Signer.generate("sovdeploy/test/orchestrator")
    state = tmp_path / "state"
    log = Log(state / "ledger", signer.name, signer)
    log.append([b'{"n": %d}' % i for i in range(40)])
    log.checkpoint()
    log.close()
    key = tmp_path / "ledger.pub"
    key.write_text(signer.verifier.vkey() + "\n")
    store = stores.DataStore("run-ledger", "orchestrator ledger", "ledger", (), "")
    (step,) = stores.steps(store, {}, inventory="/inv", state=str(state), snap="s")
    assert step.argv == ("python3", "-m", "sovdeploy.hostside.snapshot", f"{state}/ledger")
    planned = {**_step([sys.executable, *step.argv[1:]], step.file), "store": step.store}
    result = export.export(planned, tmp_path / "in")
    assert result["ok"], result
    tar = tmp_path / "in" / step.file
    assert ledger_check(key)(tar) is None
    other = tmp_path / "other.pub"
    other.write_text(Signer.generate(signer.name).verifier.vkey() + "\n")
    assert "does not verify" in (ledger_check(other)(tar) or "")

    bad = tmp_path / "bad.tar"
    with tarfile.open(tar) as src, tarfile.open(bad, "w") as dst:
        for member in src.getmembers():
            data = src.extractfile(member).read()  # type: ignore[union-attr]
            if member.name.startswith("tile/entries/"):
                data = data.replace(b'{"n": 7}', b'{"n": 8}')
            member.size = len(data)
            dst.addfile(member, io.BytesIO(data))
    problem = ledger_check(key)(bad)
    assert problem is not None and "does not verify" in problem
    digest = hashlib.sha256(bad.read_bytes()).hexdigest()
    moved = _move_verified(
        tmp_path,
        tmp_path / "target",
        {"ok": True, "file": "bad.tar", "sha256": digest},
        ledger_check(key),
    )
    assert not moved["ok"] and "does not verify" in moved["error"]
    assert not (tmp_path / "target" / "bad.tar").exists()


needs_qemu_img = pytest.mark.skipif(
    shutil.which("qemu-img") is None, reason="qemu-img is not installed (make deps installs it)"
)


@needs_qemu_img
def test_a_raw_volume_restores_and_its_written_pattern_is_found(tmp_path: Path) -> None:
    pattern = b"drill pattern\n" * 4096
    disk = tmp_path / "volume-1.raw"
    disk.write_bytes(pattern + bytes(1 << 20))
    spec = {
        "kind": "volume",
        "what": "volume 1",
        "file": disk.name,
        "sha256": hashlib.sha256(disk.read_bytes()).hexdigest(),
        "marker": {"bytes": len(pattern), "sha256": hashlib.sha256(pattern).hexdigest()},
    }
    result = restore.restore(spec, tmp_path)
    assert result["ok"], result
    assert "compares equal" in result["detail"]
    spec["marker"] = {"bytes": len(pattern), "sha256": "0" * 64}
    assert not restore.restore(spec, tmp_path)["ok"]


@needs_qemu_img
def test_a_qcow2_image_is_checked_and_a_corrupt_one_refused(tmp_path: Path) -> None:
    image = tmp_path / "img.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(image), "8M"], check=True)
    spec = {
        "kind": "image",
        "what": "image",
        "file": image.name,
        "sha256": hashlib.sha256(image.read_bytes()).hexdigest(),
        "format": "qcow2",
        "hash_algo": "sha512",
    }
    assert restore.restore(spec, tmp_path)["ok"]
    spec["sha256"] = "f" * 64
    result = restore.restore(spec, tmp_path)
    assert not result["ok"] and "hashes to" in result["detail"]
    # Bytes that are not a qcow2 image, though they hash as recorded: qemu-img refuses.
    junk = tmp_path / "junk.qcow2"
    junk.write_bytes(b"not an image" * 100)
    spec.update(file=junk.name, sha256=hashlib.sha256(junk.read_bytes()).hexdigest())
    assert not restore.restore(spec, tmp_path)["ok"]
