"""The Kubernetes artifact manifest, what a deployment needs of it, where its mirrors hold it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from pydantic import ValidationError

from sovdeploy import inventory as inv
from sovdeploy.cli import main
from sovdeploy.kubernetes import artifacts as mir
from sovdeploy.supply import recipes

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "inventories" / "example-eu"


def test_every_artifact_is_pinned_by_version_and_sha256() -> None:
    manifest = mir.load()
    assert len({a.name for a in manifest.artifacts}) == len(manifest.artifacts)
    for a in manifest.artifacts:
        assert len(a.sha256) == 64, a.name
        assert a.version, a.name
    release = manifest.kubernetes_version
    for name in ("kubeadm", "kubelet", "kubectl", "kube-apiserver", "kube-proxy"):
        assert manifest.get(name).version == release


def test_images_lie_under_their_upstream_host_and_debs_under_the_pool() -> None:
    for a in mir.load().artifacts:
        if a.kind is mir.ArtifactKind.IMAGE:
            assert a.origin == f"{a.path}:{a.version}"
        elif a.kind is mir.ArtifactKind.DEB:
            assert a.path.startswith("pool/main/")
            assert a.origin.endswith("/" + a.path)


def test_what_is_built_is_pinned_where_the_tree_and_the_mirror_service_hold_it() -> None:
    """A pin with a recipe names that recipe's version, path and repository."""
    supply = recipes.load()
    built = [a for a in mir.load().artifacts if a.recipe is not None]
    assert {a.name for a in built} >= {"kubeadm", "kubelet", "kube-apiserver", "pause", "flannel"}
    for a in built:
        recipe = supply.get(a.recipe)
        if a.kind is mir.ArtifactKind.IMAGE:
            assert recipe.image is not None, a.name
            assert (recipe.repository, recipe.image.tag) == (a.path, a.version), a.name
        else:
            assert (recipe.path, recipe.version) == (a.path, a.version), a.name


def test_a_deb_without_its_suite_is_refused() -> None:
    entry = {
        "name": "containerd",
        "kind": "deb",
        "for": "k8s",
        "version": "1",
        "path": "pool/main/c/containerd/c.deb",
        "sha256": "0" * 64,
        "origin": "x",
    }
    with pytest.raises(ValidationError, match="names the suite"):
        mir.Artifact.model_validate(entry)
    with pytest.raises(ValidationError, match="sha256"):
        mir.Artifact.model_validate({**entry, "suite": "trixie", "sha256": "abc"})


def test_what_example_eu_needs_includes_the_gpu_and_sriov_plugins() -> None:
    needed = {a.name for a in mir.needed(mir.load(), inv.load(EXAMPLE).deployment)}
    assert {"containerd", "kubeadm", "kube-apiserver", "flannel"} <= needed
    # flannel is the default pod network: Cilium and its chart are not needed.
    assert not {"cilium", "cilium-operator", "cilium-chart", "helm"} & needed
    # k8s-wk01 and k8s-wk02 declare H100s and ConnectX VFs.
    assert {"nvidia-device-plugin", "multus", "sriov-network-device-plugin"} <= needed


def test_a_deployment_without_kubernetes_hosts_needs_nothing(tmp_path: Path) -> None:
    inv_dir = _without_kubernetes(_sandbox(tmp_path, "", ""))
    assert mir.needed(mir.load(), inv.load(inv_dir).deployment) == []
    # The sandbox's own Kubernetes hosts need the runtime, the kubelet and flannel.
    needed = {
        a.name
        for a in mir.needed(mir.load(), inv.load(ROOT / "inventories" / "sandbox").deployment)
    }
    assert {"containerd", "runc", "cni-bridge", "kubelet", "flannel", "iptables"} <= needed


def test_locations_in_each_kind_of_mirror() -> None:
    manifest = mir.load()
    mirrors = {
        mir.ArtifactKind.DEB: "http://apt.example/debian/",
        mir.ArtifactKind.FILE: "/srv/files",
        mir.ArtifactKind.IMAGE: "https://registry.example",
    }
    socat = manifest.get("socat")
    assert mir.location(socat, mirrors) == (
        "http://apt.example/debian/pool/main/s/socat/socat_1.8.0.3-1%2Bdeb13u1_amd64.deb"
    )
    assert mir.location(manifest.get("kubeadm"), mirrors) == (
        "file:///srv/files/kubernetes/v1.37.2/linux_amd64/kubeadm"
    )
    pause = manifest.get("pause")
    assert mir.location(pause, mirrors) == (
        f"https://registry.example/v2/registry.k8s.io/pause/manifests/sha256:{pause.sha256}"
    )
    assert mir.location(pause, {}) is None


def test_a_file_mirror_on_disk_is_checked_too(tmp_path: Path) -> None:
    # A filesystem mirror (an absolute path) holding other bytes under kubeadm's path.
    kubeadm = mir.load().get("kubeadm")
    dest = tmp_path / kubeadm.path
    dest.parent.mkdir(parents=True)
    dest.write_bytes(b"not kubeadm")
    mirrors = {mir.ArtifactKind.FILE: str(tmp_path)}
    [wrong] = mir.check([kubeadm], mirrors)
    assert not wrong.ok
    assert wrong.detail.startswith("wrong digest: the mirror serves sha256:")
    dest.unlink()
    [missing] = mir.check([kubeadm], mirrors)
    assert missing.detail.startswith("missing: no file ")
    [undeclared] = mir.check([kubeadm], {})
    assert undeclared.detail == "the inventory declares no artifact source of kind 'files'"


def test_mirror_list_prints_each_artifact_with_digest_origin_and_mirror_path() -> None:
    result = CliRunner().invoke(main, ["mirror", "list", "-i", str(EXAMPLE)])
    assert result.exit_code == 0, result.output
    manifest = mir.load()
    assert f"{len(manifest.artifacts)} artifact(s)" in result.output
    for a in manifest.artifacts:
        assert a.digest in result.output
        assert a.origin in result.output
    assert (
        "https://registry.fra1.example-cloud.eu/v2/registry.k8s.io/kube-apiserver/manifests/"
        in result.output
    )


def test_mirror_check_of_an_unknown_artifact_is_an_error() -> None:
    result = CliRunner().invoke(
        main, ["mirror", "check", "-i", str(EXAMPLE), "--artifact", "kubelt"]
    )
    assert result.exit_code == 1
    assert "no artifact 'kubelt' in the manifest" in result.output


def _sandbox(tmp_path: Path, old: str, new: str) -> Path:
    inv = tmp_path / "sandbox"
    shutil.copytree(ROOT / "inventories/sandbox", inv, ignore=shutil.ignore_patterns(".sovdeploy"))
    settings = inv / "group_vars/all/sovdeploy.yml"
    assert old in settings.read_text()
    settings.write_text(settings.read_text().replace(old, new, 1))
    return inv


def _without_kubernetes(inv: Path) -> Path:
    hosts = inv / "hosts.yml"
    data = yaml.safe_load(hosts.read_text())
    for group in ("k8s_control", "k8s_worker"):
        assert data["all"]["children"].pop(group)
    hosts.write_text(yaml.safe_dump(data))
    return inv


def test_nothing_built_and_no_kubernetes_hosts_is_nothing_to_check(tmp_path: Path) -> None:
    inv = _without_kubernetes(
        _sandbox(
            tmp_path, "  build: [opentofu, providers, kubernetes, conformance]\n", "  build: []\n"
        )
    )
    result = CliRunner().invoke(main, ["mirror", "check", "-i", str(inv)])
    assert result.exit_code == 0, result.output
    assert "no Kubernetes hosts, nothing built: nothing to check" in result.output


def test_a_tree_without_the_built_artifacts_fails_the_check(tmp_path: Path) -> None:
    inv = _sandbox(tmp_path, "sovdeploy_supply:\n", f"sovdeploy_supply:\n  dir: {tmp_path}/tree\n")
    result = CliRunner().invoke(main, ["mirror", "check", "-i", str(inv)], terminal_width=200)
    assert result.exit_code == 1, result.output
    assert "FAIL built tofu v1.12.6" in result.output
    assert "files/opentofu/v1.12.6/linux_amd64/tofu is missing" in result.output
    assert "run `sovdeploy mirror build`" in result.output


def test_the_sandbox_builds_kubernetes_and_its_conformance_suite_for_its_hosts(
    tmp_path: Path,
) -> None:
    from sovdeploy.supply import build as supply_build
    from sovdeploy.supply.recipes import Group

    sandbox = inv.load(ROOT / "inventories" / "sandbox").deployment
    assert supply_build.needed_groups(sandbox) == (
        Group.OPENTOFU,
        Group.PROVIDERS,
        Group.KUBERNETES,
        Group.CONFORMANCE,
    )
    # Without Kubernetes hosts, asking to build them builds nothing of theirs.
    bare = inv.load(_without_kubernetes(_sandbox(tmp_path, "", ""))).deployment
    assert supply_build.needed_groups(bare) == (Group.OPENTOFU, Group.PROVIDERS)
