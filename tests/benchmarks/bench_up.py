"""Benchmark (not a timed test): `sovdeploy up` of the sandbox, cold and again.

1. `sovdeploy down --yes`, then a cold `sovdeploy up` (warm apt caches), end to end and
   per phase (from the run record);
2. a second `up` with nothing to change;
3. the bare cost of the software: in fresh containers of the sandbox base image, with
   the same apt caches, `apt-get install` of the packages `up` installed on each host
   (what `apt-mark showmanual` lists beyond the base image), the hosts in parallel as
   `up` runs them; then `up` time divided by that time.

Destroys and re-creates the sandbox of the inventory it is given (default
inventories/sandbox). Usage: python tests/benchmarks/bench_up.py [INVENTORY]
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SOVDEPLOY = str(Path(sys.executable).parent / "sovdeploy")
sys.path.insert(0, str(ROOT))

from sovdeploy import inventory  # noqa: E402
from sovdeploy.sandbox import podman_env  # noqa: E402


def _timed(cmd: list[str]) -> float:
    started = time.monotonic()
    subprocess.run(cmd, check=True, env=podman_env())
    return time.monotonic() - started


def _phases(inv: Path) -> dict[str, float]:
    run = sorted((inv / ".sovdeploy" / "runs").iterdir())[-1]
    seconds = {}
    for line in (run / "record.jsonl").read_text().splitlines():
        event = json.loads(line)
        if event.get("kind") == "phase_end":
            seconds[event["phase"]] = float(event["seconds"])
    return seconds


def _podman(*args: str) -> str:
    out = subprocess.run(
        ["podman", *args], check=True, capture_output=True, text=True, env=podman_env()
    )
    return out.stdout


def _manual(container: str) -> set[str]:
    return set(_podman("exec", container, "apt-mark", "showmanual").split())


def _bare_install(image: str, hosts: dict[str, tuple[set[str], Path]]) -> float:
    """Install each host's package set in a fresh container, all at once; wall time."""
    started = time.monotonic()
    procs = []
    for name, (packages, cache) in hosts.items():
        script = (
            "apt-get update -qq && DEBIAN_FRONTEND=noninteractive "
            f"apt-get install -y -qq --no-install-recommends {' '.join(sorted(packages))}"
        )
        cmd = ["podman", "run", "--rm", "--name", f"bench-{name}"]
        cmd += ["-v", f"{cache}:/var/cache/apt/archives", image, "bash", "-c", script]
        procs.append(subprocess.Popen(cmd, env=podman_env(), stdout=subprocess.DEVNULL))
    if any(p.wait() for p in procs):
        raise SystemExit("a bare apt-get install failed")
    return time.monotonic() - started


def main() -> None:
    inv = Path(sys.argv[1] if len(sys.argv) > 1 else ROOT / "inventories" / "sandbox").resolve()
    deployment = inventory.load(inv).deployment
    settings = deployment.settings.sandbox
    subprocess.run([SOVDEPLOY, "down", "-i", str(inv), "--yes"], check=True)
    cold = _timed([SOVDEPLOY, "up", "-i", str(inv)])
    phases = _phases(inv)
    again = _timed([SOVDEPLOY, "up", "-i", str(inv)])

    base = set(_podman("run", "--rm", settings.image, "apt-mark", "showmanual").split())
    hosts = {}
    for container in sorted(h.name for h in deployment.hosts):
        extra = _manual(container) - base
        if extra:
            hosts[container] = (extra, Path(settings.apt_cache or "/nonexistent") / container)
    bare = _bare_install(settings.image, hosts)

    print(f"cold up: {cold:.1f} s")
    for phase, seconds in phases.items():
        print(f"  {phase:<10} {seconds:8.1f} s")
    print(f"second up: {again:.1f} s")
    for container, (packages, _) in hosts.items():
        print(f"bare apt-get install on {container}: {len(packages)} packages")
    print(f"bare apt-get install, hosts in parallel: {bare:.1f} s")
    print(f"up / bare install: {cold / bare:.2f}")


if __name__ == "__main__":
    main()
