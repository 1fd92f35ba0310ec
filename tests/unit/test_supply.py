"""Artifacts built from pinned source: recipes, reproducible builds, provenance, failures.

The builds here are real: ``go`` fetches the CNI loopback plugin's module graph through
the sandbox inventory's Go source (the public module proxy) and compiles it, with an
empty build cache each time, so that a second build proves the bytes do not depend on
what was cached.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from sovdeploy.cli import main
from sovdeploy.engines import terraform
from sovdeploy.errors import EXIT_FAILED
from sovdeploy.supply import build as supply_build
from sovdeploy.supply import gobuild, provenance, recipes

ROOT = Path(__file__).resolve().parents[2]
RECIPE = "cni-loopback"

needs_go = pytest.mark.skipif(shutil.which("go") is None, reason="go is not on PATH")


def sandbox_copy(tmp_path: Path, tree: Path, proxy: str | None = None) -> Path:
    """The sandbox inventory, its mirror tree in ``tree`` (and its Go source ``proxy``)."""
    inv = tmp_path / "inv"
    shutil.copytree(
        ROOT / "inventories" / "sandbox", inv, ignore=shutil.ignore_patterns(".sovdeploy")
    )
    settings = inv / "group_vars" / "all" / "sovdeploy.yml"
    text = settings.read_text().replace(
        "sovdeploy_supply:\n", f"sovdeploy_supply:\n  dir: {tree}\n", 1
    )
    if proxy is not None:
        text = text.replace("url: https://proxy.golang.org", f"url: {proxy}", 1)
    # The hosts' files mirror is the tree itself (the service is not started here).
    text = text.replace("url: https://10.89.40.1:8443/files", f"url: {tree}/files", 1)
    settings.write_text(text)
    return inv


def build(inv: Path, gocache: Path, *names: str) -> tuple[int, str]:
    args = ["mirror", "build", "-i", str(inv)]
    for name in names:
        args += ["--artifact", name]
    result = CliRunner().invoke(main, args, env={"GOCACHE": str(gocache)}, terminal_width=200)
    return result.exit_code, result.output


def records(inv: Path, kind: str) -> list[dict]:
    found = []
    for record in sorted((inv / ".sovdeploy" / "runs").glob("*/record.jsonl")):
        found += [e for e in map(json.loads, record.read_text().splitlines()) if e["kind"] == kind]
    return found


def test_every_recipe_is_pinned_by_its_wrapper_module():
    supply = recipes.load()
    assert supply.recipes
    for recipe in supply.recipes:
        wrapper = recipes.wrapper_dir(recipe)
        line = gobuild.go_sum_line(wrapper, recipe.module, recipe.version)
        assert re.fullmatch(rf"{re.escape(recipe.module)} {recipe.version} h1:\S+=", line)
        go_mod = (wrapper / "go.mod").read_text()
        if recipe.builder == "go":  # a test package or C sources are no tool
            assert re.search(rf"^\s*(tool )?{re.escape(recipe.package)}$", go_mod, re.M), (
                f"{recipe.name}: {recipe.package} is not a tool of {wrapper}/go.mod"
            )
        assert re.search(rf"^\s*{re.escape(recipe.module)} {recipe.version}\b", go_mod, re.M)


def test_the_inputs_key_changes_with_any_input(tmp_path, monkeypatch):
    supply = recipes.load()
    recipe = supply.get(RECIPE)
    key = supply.key(recipe)
    assert supply.key(recipe) == key
    other = recipe.model_copy(update={"ldflags": ("-X=main.x=y",)})
    assert supply.key(other) != key
    assert supply.model_copy(update={"toolchain": "go1.26.9"}).key(recipe) != key
    copy = tmp_path / "wrapper"
    shutil.copytree(recipes.wrapper_dir(recipe), copy)
    (copy / "go.sum").write_text((copy / "go.sum").read_text() + "\n")
    monkeypatch.setattr(recipes, "wrapper_dir", lambda _r: copy)
    assert supply.key(recipe) != key


@needs_go
def test_a_build_is_reproducible_and_carries_its_provenance(tmp_path):
    tree_a, tree_b = tmp_path / "a", tmp_path / "b"
    inv_a = sandbox_copy(tmp_path / "1", tree_a)
    inv_b = sandbox_copy(tmp_path / "2", tree_b)
    code, out = build(inv_a, tmp_path / "cache-a", RECIPE)
    assert code == 0, out
    code, out_b = build(inv_b, tmp_path / "cache-b", RECIPE)
    assert code == 0, out_b
    recipe = recipes.load().get(RECIPE)
    a, b = supply_build.Tree(tree_a), supply_build.Tree(tree_b)
    digest_a = hashlib.sha256(a.target(recipe).read_bytes()).hexdigest()
    digest_b = hashlib.sha256(b.target(recipe).read_bytes()).hexdigest()
    assert digest_a == digest_b, "two builds from the same inputs differ"
    assert f"sha256:{digest_a}" in out
    # The statement vouches for those bytes and names the pinned source.
    doc = json.loads(a.statement_path(recipe).read_text())
    assert provenance.subject_digest(doc) == digest_a
    assert doc["predicateType"] == provenance.PREDICATE_TYPE
    dep = doc["predicate"]["buildDefinition"]["resolvedDependencies"][0]
    assert dep["uri"] == f"pkg:golang/{recipe.module}@{recipe.version}"
    wrapper = recipes.wrapper_dir(recipe)
    assert dep["annotations"]["goSum"] == gobuild.go_sum_line(
        wrapper, recipe.module, recipe.version
    )
    assert "-trimpath" in doc["predicate"]["buildDefinition"]["externalParameters"]["flags"]
    # Its digest, and its statement's, are in the deployment's ledger.
    [record] = records(inv_a, "supply_artifact")
    assert record["sha256"] == digest_a
    assert record["cached"] is False
    assert (
        record["statement_sha256"]
        == hashlib.sha256(a.statement_path(recipe).read_bytes()).hexdigest()
    )
    # mirror check: the tree's artifact, its statement and the ledger's record agree...
    checked = CliRunner().invoke(main, ["mirror", "check", "-i", str(inv_a), "--artifact", RECIPE])
    assert checked.exit_code == 0, checked.output
    assert "provenance statement and ledger record match" in checked.output
    # ...and a deployment whose ledger never recorded that build does not vouch for it.
    stranger = sandbox_copy(tmp_path / "3", tree_a)
    checked = CliRunner().invoke(
        main, ["mirror", "check", "-i", str(stranger), "--artifact", RECIPE]
    )
    assert checked.exit_code == EXIT_FAILED, checked.output
    assert "ledger has no record of it" in checked.output
    # A second build of the same inputs reuses the artifact, and says so in the ledger.
    code, again = build(inv_a, tmp_path / "cache-a", RECIPE)
    assert code == 0, again
    assert "cached" in again
    assert [r["cached"] for r in records(inv_a, "supply_artifact")] == [False, True]


@needs_go
def test_an_altered_artifact_is_refused_and_built_again(tmp_path):
    tree = tmp_path / "tree"
    inv = sandbox_copy(tmp_path, tree)
    code, out = build(inv, tmp_path / "cache", RECIPE)
    assert code == 0, out
    recipe = recipes.load().get(RECIPE)
    target = supply_build.Tree(tree).target(recipe)
    good = target.read_bytes()
    target.write_bytes(good[:-1] + bytes([good[-1] ^ 1]))
    result = CliRunner().invoke(main, ["mirror", "path", RECIPE, "-i", str(inv)])
    assert result.exit_code == EXIT_FAILED
    assert "its statement vouches for" in result.output
    code, out = build(inv, tmp_path / "cache", RECIPE)
    assert code == 0, out
    assert "cached" not in out.split("mirror built")[0].split(RECIPE, 1)[1].split("\n")[0]
    assert target.read_bytes() == good


@needs_go
def test_a_go_sum_mismatch_stops_the_build_and_publishes_nothing(tmp_path, monkeypatch):
    tree = tmp_path / "tree"
    inv = sandbox_copy(tmp_path, tree)
    recipe = recipes.load().get(RECIPE)
    wrapper = tmp_path / "wrapper"
    shutil.copytree(recipes.wrapper_dir(recipe), wrapper)
    line = gobuild.go_sum_line(wrapper, recipe.module, recipe.version)
    forged = line.rsplit(" ", 1)[0] + " h1:" + "A" * 43 + "="
    (wrapper / "go.sum").write_text((wrapper / "go.sum").read_text().replace(line, forged))
    monkeypatch.setattr(supply_build, "wrapper_dir", lambda _r: wrapper)
    code, out = build(inv, tmp_path / "cache", RECIPE)
    assert code == EXIT_FAILED, out
    assert f"{RECIPE}: {recipe.module} {recipe.version}" in out
    assert "go.sum" in out
    assert "Nothing was built or published" in out
    assert not tree.exists() or [p for p in tree.rglob("*") if p.is_file()] == []


@needs_go
def test_an_unreachable_go_source_names_the_artifact_and_what_to_do(tmp_path):
    tree = tmp_path / "tree"
    inv = sandbox_copy(tmp_path, tree, proxy="http://127.0.0.1:9")
    result = CliRunner().invoke(
        main,
        ["mirror", "build", "-i", str(inv), "--artifact", RECIPE],
        # An empty module cache: the source must be asked.
        env={"GOCACHE": str(tmp_path / "cache"), "GOMODCACHE": str(tmp_path / "mod")},
    )
    assert result.exit_code == EXIT_FAILED, result.output
    recipe = recipes.load().get(RECIPE)
    assert f"{RECIPE}: {recipe.module} {recipe.version}" in result.output
    assert "cannot serve it" in result.output
    assert not supply_build.Tree(tree).target(recipe).exists()


@needs_go
def test_a_build_failure_publishes_nothing(tmp_path, monkeypatch):
    tree = tmp_path / "tree"
    inv = sandbox_copy(tmp_path, tree)
    supply = recipes.load()
    broken = supply.get(RECIPE).model_copy(
        update={"package": f"{supply.get(RECIPE).module}/plugins/main/no-such-plugin"}
    )
    patched = supply.model_copy(
        update={"recipes": tuple(broken if r.name == RECIPE else r for r in supply.recipes)}
    )
    monkeypatch.setattr(recipes, "load", lambda: patched)
    code, out = build(inv, tmp_path / "cache", RECIPE)
    assert code == EXIT_FAILED, out
    assert "go build failed" in out
    assert "nothing published" in out
    assert not supply_build.Tree(tree).target(broken).exists()


def test_a_lock_file_mismatch_names_the_provider(tmp_path):
    package = (
        tmp_path
        / "registry.opentofu.org"
        / "terraform-provider-openstack"
        / "openstack"
        / "3.4.0"
        / "linux_amd64"
    )
    package.mkdir(parents=True)
    (package / "terraform-provider-openstack_v3.4.0").write_bytes(b"a provider")
    lock = tmp_path / ".terraform.lock.hcl"
    good = terraform.dirhash_h1(package)
    block = (
        'provider "registry.opentofu.org/terraform-provider-openstack/openstack" {\n'
        '  version     = "3.4.0"\n  hashes = [\n    "%s",\n  ]\n}\n'
    )
    lock.write_text(block % good)
    assert terraform.check_locked(lock, tmp_path) == []
    lock.write_text(block % ("h1:" + "A" * 43 + "="))
    [problem] = terraform.check_locked(lock, tmp_path)
    assert "terraform-provider-openstack/openstack 3.4.0" in problem
    assert good in problem
    shutil.rmtree(package)
    [problem] = terraform.check_locked(lock, tmp_path)
    assert "not in the provider mirror" in problem


def test_dirhash_is_gos_hash1(tmp_path):
    """Go's dirhash.Hash1 of a one-file directory, worked out by its definition."""
    # sha256("a provider") and the summary line Go hashes: "<hex>  <name>\n".
    name = "terraform-provider-x_v1.0.0"
    file_hex = hashlib.sha256(b"a provider").hexdigest()
    summary = hashlib.sha256(f"{file_hex}  {name}\n".encode()).digest()
    expected = "h1:" + base64.b64encode(summary).decode()
    (tmp_path / name).write_bytes(b"a provider")
    assert terraform.dirhash_h1(tmp_path) == expected


@needs_go
def test_ctrl_c_during_a_build_publishes_nothing_and_the_next_build_finishes(tmp_path):
    """SIGINT while go compiles: exit 130, no go process left, nothing in the tree; resume."""
    import os
    import signal
    import subprocess
    import sys
    import time

    tree = tmp_path / "tree"
    inv = sandbox_copy(tmp_path, tree)
    sovdeploy = str(Path(sys.executable).parent / "sovdeploy")
    env = dict(os.environ, GOCACHE=str(tmp_path / "cache"))
    args = [sovdeploy, "mirror", "build", "-i", str(inv), "--artifact", "cni-bridge"]
    # As a terminal's foreground command has it: SIGINT at its default. (A test run
    # started in the background by a shell without job control inherits it ignored, and
    # Python then never turns it into KeyboardInterrupt.)
    proc = subprocess.Popen(
        args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # noqa: PLW1509 - no threads here
    )  # fmt: skip
    assert proc.stdout is not None
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if "TASK go build" in line:
            break
    time.sleep(3)  # compiling, with an empty build cache
    # To sovdeploy alone (as `kill -INT` would): it must stop go and its compilers itself.
    os.kill(proc.pid, signal.SIGINT)
    rest = proc.communicate(timeout=120)[0]
    assert proc.returncode == 130, "".join(seen) + rest
    # go ran in a process group of its own; no process of either group is left.
    left = subprocess.run(
        ["ps", "-eo", "pid,sid,args"], check=True, capture_output=True, text=True
    ).stdout
    # go build and each compile it starts name the module's packages in their arguments.
    survivors = [x for x in left.splitlines() if "containernetworking/plugins" in x]
    assert survivors == [], f"processes of the build survived: {survivors}"
    recipe = recipes.load().get("cni-bridge")
    assert not supply_build.Tree(tree).target(recipe).exists()
    assert not (tree / ".supply" / "work" / "cni-bridge").exists()
    code, out = build(inv, tmp_path / "cache", "cni-bridge")
    assert code == 0, out
    assert supply_build.Tree(tree).verify(recipe)[0]


@needs_go
def test_the_pause_image_is_built_from_c_source_reproducibly(tmp_path):
    """kubeadm's pause image: static pause.c alone in an image, the same digest twice."""
    if shutil.which("gcc") is None:
        pytest.skip("gcc is not installed")
    import gzip
    import io
    import subprocess
    import tarfile

    recipe = recipes.load().get("pause")
    digests = []
    for n in (1, 2):
        tree = tmp_path / f"tree{n}"
        inv = sandbox_copy(tmp_path / str(n), tree)
        code, out = build(inv, tmp_path / "cache", "pause")
        assert code == 0, out
        ok, detail = supply_build.Tree(tree).verify(recipe)
        assert ok, detail
        digests.append(detail)
    assert digests[0] == digests[1]
    layout = supply_build.Tree(tmp_path / "tree1").target(recipe)
    blobs = layout / "blobs" / "sha256"
    index = json.loads((blobs / digests[0].removeprefix("sha256:")).read_text())
    manifest = json.loads((blobs / index["manifests"][0]["digest"][7:]).read_text())
    config = json.loads((blobs / manifest["config"]["digest"][7:]).read_text())
    assert config["config"]["Entrypoint"] == ["/pause"]
    assert config["config"]["User"] == "65535:65535"
    layer = gzip.decompress((blobs / manifest["layers"][0]["digest"][7:]).read_bytes())
    with tarfile.open(fileobj=io.BytesIO(layer)) as tar:
        [member] = tar.getmembers()
        assert (member.name, member.mode) == ("pause", 0o755)
        binary = tar.extractfile(member).read()
    (tmp_path / "pause").write_bytes(binary)
    (tmp_path / "pause").chmod(0o755)
    version = subprocess.run(
        [str(tmp_path / "pause"), "-v"], capture_output=True, text=True, check=True
    ).stdout
    assert version.strip() == "pause.c v3.10.2-v1.37.2"
    statement = json.loads(supply_build.Tree(tmp_path / "tree1").statement_path(recipe).read_text())
    assert statement["predicate"]["buildDefinition"]["buildType"] == provenance.C_BUILD_TYPE
    assert "gcc" in statement["predicate"]["buildDefinition"]["internalParameters"]["toolchain"]


@needs_go
def test_the_manifest_pins_what_a_build_gives_and_a_difference_is_named(tmp_path):
    """The pause image built here is the Kubernetes manifest's pin, byte for byte."""
    if shutil.which("gcc") is None:
        pytest.skip("gcc is not installed")
    from sovdeploy.kubernetes import artifacts as mir

    tree = tmp_path / "tree"
    inv = sandbox_copy(tmp_path, tree)
    code, out = build(inv, tmp_path / "cache", "pause")
    assert code == 0, out
    supply, where = recipes.load(), supply_build.Tree(tree)
    ok, detail = where.verify(supply.get("pause"))
    assert ok, detail
    built = detail.removeprefix("sha256:")
    assert mir.load().get("pause").sha256 == built
    assert supply_build.pinned_differently([("pause", "pause", built)], supply, where) == []
    [problem] = supply_build.pinned_differently([("pause", "pause", "0" * 64)], supply, where)
    assert problem == (
        f"pause: the build of recipe pause is sha256:{built}, the manifest pins sha256:{'0' * 64}"
    )


def test_an_image_takes_only_files_built_before_it_and_builds_them_with_it():
    supply = recipes.load()
    multus = supply.get("multus-image")
    assert [r.name for r in supply.with_inputs([multus])] == [
        "multus-daemon",
        "multus-shim",
        "multus-image",
    ]
    # Its key moves with theirs: a new multus-daemon build makes a new image.
    doc = supply.model_dump(by_alias=True)
    for recipe in doc["recipes"]:
        if recipe["name"] == "multus-daemon":
            recipe["ldflags"] = [*recipe["ldflags"], "-X=main.extra=1"]
    changed = recipes.Supply.model_validate(doc)
    assert changed.key(changed.get("multus-image")) != supply.key(multus)
    # Taking a file from a recipe listed after it (or from an image) is refused.
    order = [r for r in doc["recipes"] if r["name"] != "multus-shim"]
    order.append(next(r for r in doc["recipes"] if r["name"] == "multus-shim"))
    with pytest.raises(ValueError, match="multus-shim's file: name a recipe of kind file"):
        recipes.Supply.model_validate({**doc, "recipes": order})


def test_a_recipe_that_builds_nothing_is_an_image_without_a_binary():
    doc = recipes.load().get("busybox-image").model_dump(by_alias=True)
    recipes.Recipe.model_validate(doc)
    with pytest.raises(ValueError, match="builds nothing is an image, no file"):
        recipes.Recipe.model_validate({**doc, "image": {**doc["image"], "file": "bin/x"}})
    with pytest.raises(ValueError, match="say where the built binary lies"):
        recipes.Recipe.model_validate({**doc, "builder": "go"})
