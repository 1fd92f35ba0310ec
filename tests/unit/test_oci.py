"""OCI images written by sovdeploy: the same inputs give the same bytes, and a valid layout."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile

from sovdeploy.supply import oci

EPOCH = 1787133844  # a release's SOURCE_DATE_EPOCH


def entries() -> list[oci.Entry]:
    return [
        oci.Entry("pause", b"\x7fELF not really", 0o755),
        oci.Entry("etc", None, 0o755),
        oci.Entry("etc/passwd", b"nobody:x:65535:65535::/:/sbin/nologin\n", 0o644),
    ]


def test_the_same_inputs_give_the_same_digests():
    a = oci.image(entries(), epoch=EPOCH, entrypoint=["/pause"], user="65535:65535")
    b = oci.image(list(reversed(entries())), epoch=EPOCH, entrypoint=["/pause"], user="65535:65535")
    assert [x.digest for x in a.blobs] == [x.digest for x in b.blobs]
    later = oci.image(entries(), epoch=EPOCH + 1, entrypoint=["/pause"], user="65535:65535")
    assert later.index.digest != a.index.digest
    other = oci.image(entries()[:2], epoch=EPOCH, entrypoint=["/pause"], user="65535:65535")
    assert other.index.digest != a.index.digest


def test_a_layer_holds_the_files_sorted_owned_and_dated_as_given():
    blob, diff_id = oci.layer(entries(), EPOCH)
    raw = gzip.decompress(blob.data)
    assert blob.data[4:8] == b"\0\0\0\0", "no time in the gzip header"
    assert diff_id == "sha256:" + hashlib.sha256(raw).hexdigest()
    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        members = tar.getmembers()
        assert [m.name for m in members] == ["etc", "etc/passwd", "pause"]
        assert {m.mtime for m in members} == {EPOCH}
        assert {(m.uid, m.gid, m.uname, m.gname) for m in members} == {(0, 0, "", "")}
        assert tar.extractfile("pause").read() == b"\x7fELF not really"


def test_the_index_names_one_linux_amd64_manifest_and_the_layout_is_complete(tmp_path):
    img = oci.image(entries(), epoch=EPOCH, entrypoint=["/pause"], user="65535:65535")
    index = json.loads(img.index.data)
    [entry] = index["manifests"]
    assert entry["digest"] == img.manifest.digest
    assert entry["platform"] == {"architecture": "amd64", "os": "linux"}
    config = json.loads(img.config.data)
    assert config["config"]["Entrypoint"] == ["/pause"]
    assert config["config"]["User"] == "65535:65535"
    oci.write_layout(tmp_path, img, "3.10.2")
    assert json.loads((tmp_path / "oci-layout").read_text()) == {"imageLayoutVersion": "1.0.0"}
    top = json.loads((tmp_path / "index.json").read_text())["manifests"][0]
    assert top["digest"] == img.index.digest
    assert top["annotations"]["org.opencontainers.image.ref.name"] == "3.10.2"
    for blob in img.blobs:
        stored = tmp_path / "blobs" / "sha256" / blob.digest.removeprefix("sha256:")
        assert stored.read_bytes() == blob.data


def test_a_files_parent_directories_get_entries_of_their_own():
    blob, _ = oci.layer([oci.Entry("usr/local/bin/etcd", b"binary", 0o755)], EPOCH)
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(blob.data))) as tar:
        members = [(m.name, m.isdir(), m.mode) for m in tar.getmembers()]
    assert members == [
        ("usr", True, 0o755),
        ("usr/local", True, 0o755),
        ("usr/local/bin", True, 0o755),
        ("usr/local/bin/etcd", False, 0o755),
    ]
