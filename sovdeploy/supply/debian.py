"""Image bases made of Debian's own packages, pinned by version and sha256.

Some images need more than one static binary: kube-proxy and flannel call iptables,
nft and conntrack, which are C programs with their libraries. Their base layer is made
here from Debian's packages, never from a public registry's image: each package is
pinned in ``supply.yml`` by name, version, pool path and sha256 (as Debian's signed
Packages index lists it), fetched from the inventory's apt source, checked, and
unpacked with ``dpkg-deb``. Maintainer scripts do not run: what they would make (the
``iptables`` alternatives, ``/etc/passwd``) the base names itself. Every package's
Depends and Pre-Depends must be met inside the base, or the build stops naming the
missing package. The layer is the same bytes from the same pins: its entries are sorted
and dated by the newest file the packages hold.
"""

from __future__ import annotations

import hashlib
import io
import re
import subprocess
import tarfile
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sovdeploy.fsutil import atomic_write, sha256_file
from sovdeploy.supply import oci
from sovdeploy.supply.recipes import Base, Deb, SupplyError

__all__ = ["Layer", "fetch", "layer", "unmet"]

_TIMEOUT = 120
#: Where a package's commands lie (a busybox applet of the same name is not linked).
_BIN_DIRS = ("bin", "sbin", "usr/bin", "usr/sbin", "usr/local/bin", "usr/local/sbin")
#: Documentation a container never reads; each package's copyright file is kept.
_DROPPED = re.compile(r"^usr/share/(man|info|lintian|bug|doc/[^/]+/(?!copyright$))")


@dataclass(frozen=True)
class Layer:
    blob: oci.Blob
    diff_id: str
    #: What the image's history says made it.
    created_by: str
    #: Every path in it that is a symbolic link (a layer above must not make it a directory).
    links: frozenset[str]


def fetch(deb: Deb, sources: Sequence[str], cache: Path) -> Path:
    """The package, from the cache or the first apt source that serves it, checked."""
    kept = cache / f"{deb.sha256}.deb"
    if kept.is_file() and sha256_file(kept) == deb.sha256:
        return kept
    if not sources:
        raise SupplyError(
            f"{deb.name} {deb.version}: no apt source to fetch it from; declare one of kind "
            "'apt' (your Debian mirror) in sovdeploy_artifact_sources."
        )
    tried = []
    for source in sources:
        url = f"{source.rstrip('/')}/{deb.path}"
        try:
            with urllib.request.urlopen(url, timeout=_TIMEOUT) as response:  # noqa: S310 - the inventory's mirrors
                data = response.read()
        except (urllib.error.URLError, OSError) as exc:
            tried.append(f"{url}: {getattr(exc, 'reason', exc)}")
            continue
        found = hashlib.sha256(data).hexdigest()
        if found != deb.sha256:
            raise SupplyError(
                f"{deb.name} {deb.version} from {url} has sha256 {found}, but supply.yml pins "
                f"{deb.sha256}: the mirror serves other bytes under that name. Nothing was "
                "built; check the mirror, or pin what the suite's Packages index now lists."
            )
        cache.mkdir(parents=True, exist_ok=True)
        atomic_write(kept, data)
        return kept
    raise SupplyError(
        f"{deb.name} {deb.version} cannot be fetched: " + "; ".join(tried) + ". Debian "
        "removes superseded versions from its pool: if the suite lists a newer one, pin that "
        "(name, version, Filename and SHA256 from its Packages index)."
    )


def _control(path: Path) -> dict[str, str]:
    out = subprocess.run(
        ["dpkg-deb", "-f", str(path), "Package", "Version", "Depends", "Pre-Depends", "Provides"],
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        raise SupplyError(f"{path.name}: dpkg-deb cannot read it: {out.stderr.strip()}.")
    fields: dict[str, str] = {}
    for line in out.stdout.splitlines():
        name, _, value = line.partition(":")
        fields[name.strip()] = value.strip()
    return fields


def _names(field: str) -> list[list[str]]:
    """``a (>= 1) | b, c`` as [[a, b], [c]] (architecture qualifiers dropped)."""
    return [
        [alt.strip().split()[0].split(":")[0] for alt in group.split("|")]
        for group in field.split(",")
        if group.strip()
    ]


def unmet(controls: Iterable[dict[str, str]]) -> list[str]:
    """Each dependency no package of the set meets, as 'package needs a | b'.

    The pins come from one suite's index, which Debian keeps installable, so a name
    present is taken to meet its version constraint; a name absent is what is checked.
    """
    controls = list(controls)
    present = {c["Package"] for c in controls}
    for c in controls:
        present |= {alt[0] for alt in _names(c.get("Provides", ""))}
    missing = []
    for c in controls:
        for group in _names(c.get("Pre-Depends", "")) + _names(c.get("Depends", "")):
            if not present.intersection(group):
                missing.append(f"{c['Package']} needs {' | '.join(group)}")
    return missing


def _is_dir(entry: oci.Entry) -> bool:
    return entry.data is None and entry.link is None


def _unpack(deb: Deb, path: Path) -> tarfile.TarFile:
    """The package's files, as the tar ``dpkg-deb --fsys-tarfile`` writes."""
    command = ["dpkg-deb", "--fsys-tarfile", str(path)]
    out = subprocess.run(command, capture_output=True, check=False)
    if out.returncode != 0:
        why = out.stderr.decode(errors="replace").strip()
        raise SupplyError(f"{deb.name}: dpkg-deb cannot unpack it: {why}.")
    return tarfile.open(fileobj=io.BytesIO(out.stdout))


def _entry(
    deb: Deb, name: str, member: tarfile.TarInfo, tar: tarfile.TarFile, found: dict[str, Any]
) -> oci.Entry:
    mode, uid, gid = member.mode & 0o7777, member.uid, member.gid
    if member.isdir():
        return oci.Entry(name, None, mode, uid, gid)
    if member.issym():
        return oci.Entry(name, None, mode, uid, gid, link=member.linkname)
    if member.islnk():
        target = member.linkname.removeprefix("./").strip("/")
        if target not in found or found[target][0].data is None:
            raise SupplyError(f"{deb.name}: {name} links to {target}, not a file.")
        return oci.Entry(name, found[target][0].data, mode, uid, gid)
    handle = tar.extractfile(member) if member.isfile() else None
    if handle is None:
        raise SupplyError(f"{deb.name}: {name} is neither file, link nor directory.")
    return oci.Entry(name, handle.read(), mode, uid, gid)


def _entries(base: Base, debs: list[tuple[Deb, Path]]) -> tuple[list[oci.Entry], int]:
    """Every package's files (first package wins a shared directory) and the newest time."""
    found: dict[str, tuple[oci.Entry, str]] = {}
    epoch = 0
    for deb, path in debs:
        with _unpack(deb, path) as tar:
            for member in tar.getmembers():
                name = member.name.removeprefix("./").strip("/")
                if not name or _DROPPED.match(name + ("/" if member.isdir() else "")):
                    continue
                epoch = max(epoch, int(member.mtime))
                entry = _entry(deb, name, member, tar, found)
                if name in found and not (_is_dir(entry) and _is_dir(found[name][0])):
                    raise SupplyError(
                        f"base {base.name}: {name} is in both {found[name][1]} and {deb.name}."
                    )
                found.setdefault(name, (entry, deb.name))
    named = set(base.links) | set(base.files)
    entries = [e for e, _ in found.values() if e.path not in named]
    entries += [oci.Entry(path, None, link=target) for path, target in base.links.items()]
    entries += [oci.Entry(path, text.encode(), 0o644) for path, text in base.files.items()]
    if base.applets is not None:
        # Through the base's own directory links (bin -> usr/bin on a merged /usr).
        # A command a package ships in any of the bin directories is left to it: busybox
        # is the rest of the userland, never a second `ip` earlier on PATH.
        dirs = {e.path: e.link for e in entries if e.link is not None and "/" not in e.path}
        shipped = {
            name
            for path in (e.path for e in entries)
            for d, _, name in [path.rpartition("/")]
            if d in _BIN_DIRS
        }
        for listed in _applets(base, found):
            where = listed
            if base.applets_dir is not None:
                where = f"{base.applets_dir}/{listed.rpartition('/')[2]}"
            top, _, rest = where.partition("/")
            target = dirs.get(top)
            at = f"{target}/{rest}" if rest and target and not target.startswith("/") else where
            name = at.rpartition("/")[2]
            if name not in shipped:
                shipped.add(name)
                entries.append(oci.Entry(at, None, link="/" + base.applets))
    return entries, epoch


def _applets(base: Base, found: dict[str, tuple[oci.Entry, str]]) -> list[str]:
    """The paths busybox installs its applets at, as its ``--list-full`` names them."""
    assert base.applets is not None
    entry = found.get(base.applets, (None, ""))[0]
    if entry is None or entry.data is None:
        raise SupplyError(f"base {base.name}: no file {base.applets} to list the applets of.")
    with tempfile.TemporaryDirectory() as tmp:
        binary = Path(tmp) / "busybox"
        binary.write_bytes(entry.data)
        binary.chmod(0o755)
        out = subprocess.run(
            [str(binary), "--list-full"], capture_output=True, text=True, check=False
        )
    if out.returncode != 0 or not out.stdout.strip():
        raise SupplyError(f"base {base.name}: {base.applets} --list-full failed: {out.stderr}")
    return sorted(line.strip().strip("/") for line in out.stdout.splitlines() if line.strip())


def layer(base: Base, sources: Sequence[str], cache: Path) -> tuple[Layer, list[tuple[Deb, Path]]]:
    """The base as one layer, and the packages it was made of (for the provenance)."""
    debs = [(deb, fetch(deb, sources, cache)) for deb in base.packages]
    controls = [_control(path) for _, path in debs]
    for (deb, _), control in zip(debs, controls, strict=True):
        if (control.get("Package"), control.get("Version")) != (deb.name, deb.version):
            raise SupplyError(
                f"base {base.name}: the file pinned as {deb.name} {deb.version} is "
                f"{control.get('Package')} {control.get('Version')}."
            )
    missing = unmet(controls)
    if missing:
        raise SupplyError(
            f"base {base.name} is not whole: " + "; ".join(missing) + ". Pin those packages "
            f"from the {base.suite} Packages index in supply.yml."
        )
    entries, epoch = _entries(base, debs)
    blob, diff_id = oci.layer(entries, epoch)
    made = f"sovdeploy base {base.name}: " + " ".join(
        f"{d.name}={d.version}" for d in base.packages
    )
    links = frozenset(e.path for e in entries if e.link is not None)
    return Layer(blob, diff_id, made, links), debs
