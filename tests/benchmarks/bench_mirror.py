"""Benchmark (not a timed test): `sovdeploy mirror build` of every recipe, cold and warm.

1. Cold: every recipe in sovdeploy/data/supply.yml into a new tree with an empty Go build
   cache (the module cache is the machine's: downloads are not timed again), per artifact
   (from the run record) and in all;
2. warm: the same command again, with nothing to build;
3. the kubelet rebuilt into a second new tree with another empty build cache: its sha256
   must equal the first build's, and its time.

Builds into a temporary directory; the inventory's own tree is left alone. Usage:
python tests/benchmarks/bench_mirror.py [INVENTORY]
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SOVDEPLOY = str(Path(sys.executable).parent / "sovdeploy")
sys.path.insert(0, str(ROOT))

from sovdeploy.supply import recipes  # noqa: E402


def _inventory(source: Path, work: Path, tree: Path) -> Path:
    inv = work / "inventory"
    shutil.copytree(source, inv, ignore=shutil.ignore_patterns(".sovdeploy"))
    settings = inv / "group_vars" / "all" / "sovdeploy.yml"
    text = settings.read_text()
    if "sovdeploy_supply:\n" not in text:
        raise SystemExit(f"{settings} has no sovdeploy_supply block to point at {tree}")
    settings.write_text(
        text.replace("sovdeploy_supply:\n", f"sovdeploy_supply:\n  dir: {tree}\n", 1)
    )
    return inv


def _build(inv: Path, gocache: Path, names: list[str]) -> float:
    args = [SOVDEPLOY, "mirror", "build", "-i", str(inv)]
    for name in names:
        args += ["--artifact", name]
    started = time.monotonic()
    subprocess.run(args, check=True, env={**os.environ, "GOCACHE": str(gocache)})
    return time.monotonic() - started


def _artifact_times(inv: Path) -> list[tuple[str, str, float]]:
    """Each artifact of the newest run: name, sha256 and the phase's seconds."""
    run = sorted((inv / ".sovdeploy" / "runs").iterdir())[-1]
    entries = [json.loads(x) for x in (run / "record.jsonl").read_text().splitlines()]
    starts = [e for e in entries if e["kind"] in ("command", "supply_artifact")]
    out = []
    previous = None
    for e in starts:
        t = time.mktime(time.strptime(e["time"][:19], "%Y-%m-%dT%H:%M:%S"))
        if e["kind"] == "supply_artifact":
            out.append((e["name"], e["sha256"], t - (previous or t)))
        previous = t
    return out


def main() -> None:
    source = Path(sys.argv[1] if len(sys.argv) > 1 else ROOT / "inventories" / "sandbox")
    names = [r.name for r in recipes.load().recipes]
    with tempfile.TemporaryDirectory(prefix="bench-mirror-") as tmp:
        work = Path(tmp)
        tree = work / "tree"
        inv = _inventory(source, work / "a", tree)
        cold = _build(inv, work / "gocache-cold", names)
        per_artifact = _artifact_times(inv)
        warm = _build(inv, work / "gocache-cold", names)
        kubelet = recipes.load().get("kubelet")
        first = hashlib.sha256((tree / "files" / kubelet.path).read_bytes()).hexdigest()
        tree2 = work / "tree2"
        inv2 = _inventory(source, work / "b", tree2)
        again = _build(inv2, work / "gocache-kubelet", ["kubelet"])
        second = hashlib.sha256((tree2 / "files" / kubelet.path).read_bytes()).hexdigest()
    print("\n== mirror build benchmark (2 cores; module cache warm, build cache empty)")
    for name, sha, seconds in per_artifact:
        print(f"  {name:<30} {seconds:7.0f}s  sha256:{sha}")
    groups: dict[str, float] = {}
    for name, _, seconds in per_artifact:
        group = recipes.load().get(name).group.value
        groups[group] = groups.get(group, 0.0) + seconds
    for group, seconds in groups.items():
        print(f"  group {group:<24} {seconds:7.0f}s ({seconds / 60:.1f} min)")
    print(f"  cold, every recipe:            {cold:7.0f}s ({cold / 60:.1f} min; aim < 45 min)")
    print(f"  warm, nothing to build:        {warm:7.1f}s (aim < 60 s)")
    print(f"  kubelet rebuilt, cold cache:   {again:7.0f}s")
    print(f"  kubelet sha256 first/second:   {first}\n                                 {second}")
    print(f"  identical: {first == second}")
    if first != second:
        raise SystemExit("the kubelet rebuild differs: the build is not reproducible")


if __name__ == "__main__":
    main()
