"""Image bases made of Debian's own packages: pinned, whole, the same bytes, and working.

The packages are real: they come from the sandbox inventory's apt source (Debian's
archive), checked against the sha256 pins in supply.yml, and the image is run by podman.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from test_supply import build, needs_go, sandbox_copy

from sovdeploy.errors import EXIT_FAILED, SovdeployError
from sovdeploy.supply import build as supply_build
from sovdeploy.supply import debian, recipes

ROOT = Path(__file__).resolve().parents[2]
DEBIAN = "http://deb.debian.org/debian"
NETFILTER = recipes.load().bases[0]


def _pin(name: str) -> recipes.Deb:
    return next(d for d in NETFILTER.packages if d.name == name)


def _podman(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, CONTAINERS_CONF=str(ROOT / ".config/containers/containers.conf"))
    return subprocess.run(["podman", *args], env=env, capture_output=True, text=True, check=False)


def test_unmet_names_each_missing_dependency_and_takes_what_is_provided():
    controls = [
        {"Package": "base-files", "Pre-Depends": "awk"},
        {"Package": "mawk", "Provides": "awk", "Depends": "libc6 (>= 2.38)"},
        {"Package": "iptables", "Depends": "libc6 (>= 2.38), netbase (>= 6.0), libxt | libyt"},
        {"Package": "libc6", "Depends": "libgcc-s1"},
    ]
    assert debian.unmet(controls) == [
        "iptables needs netbase",
        "iptables needs libxt | libyt",
        "libc6 needs libgcc-s1",
    ]
    assert debian.unmet(controls[:2]) == ["mawk needs libc6"]


def test_the_netfilter_base_pins_its_whole_dependency_closure(tmp_path):
    """Every pinned package's Depends are met inside the base (read from the .debs)."""
    layer, debs = debian.layer(NETFILTER, (DEBIAN,), tmp_path / "debs")
    assert [d.name for d, _ in debs] == [d.name for d in NETFILTER.packages]
    again, _ = debian.layer(NETFILTER, (DEBIAN,), tmp_path / "debs")
    assert again.blob.digest == layer.blob.digest, "the same pins gave other bytes"
    # The usr-merge links come from base-files; the alternatives from the base itself.
    assert {"bin", "lib64", "usr/sbin/iptables", "usr/bin/awk"} <= layer.links
    assert "netfilter" in layer.created_by
    assert "iptables=1.8.11-2" in layer.created_by


def test_a_base_that_misses_a_dependency_is_refused(tmp_path):
    partial = NETFILTER.model_copy(update={"packages": (_pin("iptables"), _pin("netbase"))})
    with pytest.raises(SovdeployError) as caught:
        debian.layer(partial, (DEBIAN,), tmp_path / "debs")
    message = str(caught.value)
    assert "base netfilter is not whole" in message
    assert "iptables needs libip4tc2" in message
    assert "Pin those packages from the trixie Packages index" in message


def test_a_package_with_other_bytes_than_its_pin_is_refused_and_not_kept(tmp_path):
    netbase = _pin("netbase")
    forged = netbase.model_copy(update={"sha256": "0" * 64})
    with pytest.raises(SovdeployError) as caught:
        debian.fetch(forged, (DEBIAN,), tmp_path / "debs")
    message = str(caught.value)
    assert f"netbase {netbase.version}" in message
    assert f"has sha256 {netbase.sha256}, but supply.yml pins {'0' * 64}" in message
    assert not (tmp_path / "debs").exists() or not list((tmp_path / "debs").iterdir())
    # A file pinned under another package's name is caught by its control data.
    liar = NETFILTER.model_copy(
        update={"packages": (netbase.model_copy(update={"name": "libmnl0"}),)}
    )
    with pytest.raises(SovdeployError, match=r"pinned as libmnl0 6\.5 is netbase 6\.5"):
        debian.layer(liar, (DEBIAN,), tmp_path / "debs")


def test_an_unreachable_apt_source_names_the_package_and_what_to_do(tmp_path):
    with pytest.raises(SovdeployError) as caught:
        debian.fetch(_pin("netbase"), ("http://127.0.0.1:9",), tmp_path / "debs")
    message = str(caught.value)
    assert "netbase 6.5 cannot be fetched: http://127.0.0.1:9/pool/main/n/netbase/" in message
    assert "pin that" in message


@needs_go
@pytest.mark.skipif(shutil.which("podman") is None, reason="podman is not installed")
def test_an_image_on_the_base_is_reproducible_runs_and_names_its_packages(tmp_path, monkeypatch):
    """A Go binary on the netfilter base: same digest twice; podman runs the base's tools."""
    supply = recipes.load()
    loopback = supply.get("cni-loopback")
    on_base = loopback.model_copy(
        update={
            "name": "loopback-on-netfilter",
            "kind": recipes.RecipeKind.IMAGE,
            "image": recipes.ImageSpec(
                file="usr/local/bin/loopback",
                entrypoint=("/usr/local/bin/loopback",),
                tag="test",
                base="netfilter",
            ),
            "path": "example.org/loopback-on-netfilter/test",
        }
    )
    custom = supply.model_copy(update={"recipes": (*supply.recipes, on_base)})
    monkeypatch.setattr(recipes, "load", lambda: custom)
    monkeypatch.setattr(supply_build, "load_recipes", lambda: custom)
    digests = []
    for n in (1, 2):
        tree = tmp_path / f"tree{n}"
        inv = sandbox_copy(tmp_path / str(n), tree)
        code, out = build(inv, tmp_path / "cache", on_base.name)
        assert code == 0, out
        assert "base netfilter: 23 Debian packages" in out
        ok, detail = supply_build.Tree(tree).verify(on_base)
        assert ok, detail
        digests.append(detail)
    assert digests[0] == digests[1], "two builds from the same pins differ"
    where = supply_build.Tree(tmp_path / "tree1")
    statement = json.loads(where.statement_path(on_base).read_text())
    debs = [
        d for d in statement["predicate"]["buildDefinition"]["resolvedDependencies"]
        if d["uri"].startswith("pkg:deb/")
    ]  # fmt: skip
    assert len(debs) == len(NETFILTER.packages)
    iptables = _pin("iptables")
    assert {
        "uri": "pkg:deb/debian/iptables@1.8.11-2?arch=amd64&distro=debian-trixie",
        "digest": {"sha256": iptables.sha256},
        "annotations": {"path": iptables.path, "base": "netfilter"},
    } in debs
    pulled = _podman("pull", "-q", f"oci:{where.target(on_base)}:test")
    assert pulled.returncode == 0, pulled.stderr
    image = pulled.stdout.strip()
    try:
        for tool, expected in (
            ("iptables", "iptables v1.8.11 (nf_tables)"),
            ("ip6tables-restore", "ip6tables-restore v1.8.11 (nf_tables)"),
            ("nft", "nftables v1.1.3"),
            ("conntrack", "conntrack v1.4.8"),
        ):
            ran = _podman("run", "--rm", "--entrypoint", tool, image, "--version")
            assert ran.returncode == 0, ran.stderr
            assert expected in ran.stdout
        # iptables programs the kernel's nf_tables through the base's libraries.
        chain = _podman(
            "run", "--rm", "--network", "none", "--cap-add", "NET_ADMIN",
            "--entrypoint", "iptables", image, "-t", "nat", "-N", "SOVDEPLOY-TEST",
        )  # fmt: skip
        assert chain.returncode == 0, chain.stderr
        # The Go binary on top runs too (the CNI plugin reports its version).
        ran = _podman("run", "--rm", "-e", "CNI_COMMAND=VERSION", image)
        assert ran.returncode == 0, ran.stderr
        assert "cniVersion" in ran.stdout
    finally:
        _podman("rmi", "-f", image)


@needs_go
def test_a_base_problem_stops_the_build_naming_the_artifact(tmp_path, monkeypatch):
    supply = recipes.load()
    broken = NETFILTER.model_copy(update={"packages": (_pin("iptables"),)})
    custom = supply.model_copy(update={"bases": (broken,)})
    monkeypatch.setattr(recipes, "load", lambda: custom)
    tree = tmp_path / "tree"
    inv = sandbox_copy(tmp_path, tree)
    code, out = build(inv, tmp_path / "cache", "kube-proxy-image")
    assert code == EXIT_FAILED, out
    assert "kube-proxy-image: k8s.io/kubernetes v1.37.2, its image base netfilter" in out
    assert "iptables needs libip4tc2" in out
    assert "Nothing was built or published" in out
    assert not supply_build.Tree(tree).target(custom.get("kube-proxy-image")).exists()


def _base(name: str) -> recipes.Base:
    return next(b for b in recipes.load().bases if b.name == name)


def test_busybox_applets_fill_the_userland_but_never_shadow_a_package(tmp_path):
    """Each applet `busybox --list-full` names becomes a link, through the usr-merge links,
    unless a package already ships that command in any bin directory; the busybox base
    puts them all in /bin, as upstream's image (the e2e tests run /bin/sysctl)."""
    layer, _ = debian.layer(_base("busybox"), (DEBIAN,), tmp_path / "debs")
    assert {"usr/bin/sh", "usr/bin/wget", "usr/bin/cp", "usr/bin/ip", "usr/bin/sysctl"} <= (
        layer.links
    )
    assert not any(p.startswith("usr/sbin/") for p in layer.links), "applets only in /bin"
    assert not any(p.startswith(("bin/", "sbin/")) for p in layer.links), "under a link"

    tools = _base("e2e-tools")
    entries, _ = debian._entries(
        tools, [(d, debian.fetch(d, (DEBIAN,), tmp_path / "debs")) for d in tools.packages]
    )
    by_path = {e.path: e for e in entries}
    # Where --list-full names them (sysctl in sbin) without applets_dir.
    assert by_path["usr/sbin/sysctl"].link == "/usr/bin/busybox"
    # iproute2's ip and bash as sh win over busybox's applets of those names.
    assert by_path["usr/bin/ip"].data is not None
    assert by_path["usr/sbin/ip"].link == "../bin/ip"  # iproute2's own link, not busybox
    assert by_path["usr/bin/sh"].link == "bash"
    assert by_path["usr/bin/nc"].link == "nc.openbsd"
    assert by_path["usr/bin/wget"].link == "/usr/bin/busybox"  # no package ships wget


def test_a_base_whose_applets_binary_is_missing_is_refused(tmp_path):
    base = _base("busybox").model_copy(update={"applets": "usr/bin/nosuchbox"})
    with pytest.raises(recipes.SupplyError, match="no file usr/bin/nosuchbox"):
        debian.layer(base, (DEBIAN,), tmp_path / "debs")
