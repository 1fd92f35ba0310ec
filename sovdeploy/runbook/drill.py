"""The exit drill: run the runbook's exports, check them, and restore some on a fresh host.

Every store the runbook lists is exported with the runbook's own commands
(:mod:`sovdeploy.runbook.stores`), on the host that holds it, into a staging directory
there; each file is fetched to the drill's target under ``.incoming/`` and moved into
place only once its SHA-256 matches the one the host computed. A database dump, an
image and a volume are then restored on a fresh sandbox host (a new podman container
from the sandbox image, removed afterwards) to prove them usable. Where the cloud holds
no image or volume to prove, the drill makes a small one through the APIs (a known
pattern, uploaded to Glance and copied into a Cinder volume) and deletes it afterwards.

The measured figures (sizes, times, RTO and RPO) go into ``runbook/drill.json``, the
ledger and the regenerated runbook. A store that cannot be read, a failed export or a
failed restore fails the drill, after the figures are written.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from sovdeploy import sandbox
from sovdeploy.context import Context
from sovdeploy.errors import AnsibleRunError, SovdeployError
from sovdeploy.fsutil import atomic_write
from sovdeploy.hostside import export, restore
from sovdeploy.ledger import audit, local, note
from sovdeploy.openstack import usercheck
from sovdeploy.runbook import document, stores
from sovdeploy.runbook.write import gather_runbook_facts, write_runbook
from sovdeploy.state import now
from sovdeploy.steps.credentials import apt_mirror, vault_values, write_clouds
from sovdeploy.steps.playbooks import run_tool_playbook

#: The canary image's size: small enough for the sandbox, big enough to span objects.
CANARY_BYTES = 1 << 20
SUMS = "SHA256SUMS"
#: Where a host keeps its exports until the orchestrator has fetched them.
STAGING = "/var/lib/sovdeploy-exit"


class DrillError(SovdeployError):
    """The drill ran and something in it failed; its figures are written all the same."""


def _pattern(drill_id: str) -> bytes:
    line = f"sovdeploy exit drill {drill_id}\n".encode()
    return (line * (CANARY_BYTES // len(line) + 1))[:CANARY_BYTES]


def _delete(conn: Any, kind: str, resource: Any) -> None:
    if kind == "volume":
        conn.block_storage.delete_volume(resource)
        conn.block_storage.wait_for_delete(resource, wait=300)
    else:
        conn.image.delete_image(resource)


@contextmanager
def canary(
    ctx: Context, drill_id: str, need_image: bool, need_volume: bool
) -> Iterator[dict[str, Any]]:
    """Make a small image and a volume from it through the APIs; delete them afterwards."""
    made: dict[str, Any] = {}
    if not (need_image or need_volume):
        yield made
        return
    clouds, secure = write_clouds(ctx, vault_values(ctx))
    conn = usercheck.connect(clouds, secure, ctx.deployment.settings.deployment)
    data = _pattern(drill_id)
    with tempfile.NamedTemporaryFile(suffix=".raw") as fh:
        fh.write(data)
        fh.flush()
        ctx.progress.step("uploading the drill's canary image to Glance")
        image = conn.image.create_image(
            name=f"sovdeploy-{drill_id}-canary",
            filename=fh.name,
            disk_format="raw",
            container_format="bare",
            wait=True,
            timeout=600,
        )
    made["image"] = image
    try:
        conn.image.wait_for_status(image, status="active", wait=600)
        if need_volume:
            ctx.progress.step("copying the canary image into a Cinder volume")
            volume = conn.block_storage.create_volume(
                name=f"sovdeploy-{drill_id}-canary", size=1, image_id=image.id
            )
            made["volume"] = volume
            conn.block_storage.wait_for_status(volume, status="available", wait=600)
        made["marker"] = {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
        ctx.run.record(
            "exit_drill_canary", image=image.id, volume=getattr(made.get("volume"), "id", None)
        )
        yield made
    finally:
        # A canary that cannot be deleted does not fail the drill (its exports stand),
        # but it is said, recorded and kept in the drill's record, to delete by hand.
        made["left"] = []
        for kind in ("volume", "image"):
            if kind not in made:
                continue
            try:
                _delete(conn, kind, made[kind])
            except Exception as exc:  # noqa: BLE001 - openstacksdk raises many kinds
                made["left"].append({"kind": kind, "id": made[kind].id, "error": str(exc)})
                ctx.progress.note(
                    f"the drill's canary {kind} {made[kind].id} could not be deleted: {exc}",
                    ok=False,
                )
        if made["left"]:
            ctx.run.record("exit_drill_canary_left", left=made["left"])


def _step_dict(step: stores.Step) -> dict[str, Any]:
    return {
        "store": step.store,
        "item": step.item,
        "file": step.file,
        "argv": list(step.argv),
        "before": [list(a) for a in step.before],
        "after": [list(a) for a in step.after],
        "expect": list(step.expect) if step.expect else None,
    }


#: Checks an export's file in place; returns what is wrong with it, or None.
Check = Callable[[Path], str | None]


def _move_verified(
    incoming: Path, target: Path, result: dict[str, Any], check: Check | None = None
) -> dict[str, Any]:
    """Move a fetched file into place once it hashes to what its host computed.

    ``check``, where given, must also accept the file before it is moved.
    """
    if not result.get("ok"):
        return result
    src = incoming / str(result["file"])
    if not src.exists():
        return {**result, "ok": False, "error": "the file did not arrive on the orchestrator"}
    with src.open("rb") as fh:
        digest = hashlib.file_digest(fh, "sha256")
    if digest.hexdigest() != result["sha256"]:
        return {**result, "ok": False, "error": "the file changed in transfer (SHA-256 differs)"}
    problem = check(src) if check is not None else None
    if problem is not None:
        return {**result, "ok": False, "error": problem}
    dest = target / str(result["file"])
    dest.parent.mkdir(parents=True, exist_ok=True)
    src.replace(dest)
    return result


def ledger_check(key: Path) -> Check:
    """A check that a ledger's tar unpacks to a log that ``sovdeploy audit verify`` accepts.

    The tree, every entry up to the checkpoint, the history and the signatures under
    ``key``; the sources' gaps and silences are the log's own story, which the auditor's
    ``sovdeploy audit verify`` tells, not a property of the copy.
    """

    def check(tar: Path) -> str | None:
        try:
            verifier = note.Verifier.parse(key.read_text())
        except (OSError, note.NoteError) as exc:
            return f"the log's verifier key {key} cannot be read: {exc}"
        with tempfile.TemporaryDirectory(prefix="sovdeploy-ledger-") as tmp:
            try:
                with tarfile.open(tar) as archive:
                    archive.extractall(tmp, filter="data")
            except (OSError, tarfile.TarError) as exc:
                return f"the ledger's tar does not unpack: {exc}"
            report = audit.verify(audit.DirectoryFiles(Path(tmp)), [verifier], check_sources=False)
        if not report.ok:
            return f"the copy does not verify: {report.findings[0].message}"
        return None

    return check


def _check_for(ctx: Context, store: str, host: str) -> Check | None:
    """The check an export of ``store`` must pass before it is in place, if any."""
    if store == "ledger":
        return ledger_check(ctx.state.logging_keys / f"{host}.vkey")
    if store == "run-ledger":
        return ledger_check(local.key_paths(ctx.state.root)[1])
    return None


def _export_hosts(
    ctx: Context, by_host: dict[str, list[dict[str, Any]]], incoming: Path, drill_id: str
) -> list[dict[str, Any]]:

    if not by_host:
        return []

    ctx.progress.step(f"exporting on {', '.join(sorted(by_host))}")
    try:
        run_tool_playbook(
            ctx,
            "exit_drill",
            {
                "exit_exporter": export.__file__,
                "exit_steps": by_host,
                "exit_staging": f"{STAGING}/{drill_id}",
                "exit_incoming": str(incoming),
            },
            limit=",".join(sorted(by_host)),
        )
    except AnsibleRunError as exc:
        ctx.progress.note(f"the exports did not all run: {exc}", ok=False)
    results = []
    for host, steps in sorted(by_host.items()):
        path = incoming / f"{host}.json"
        done = {r["file"]: r for r in json.loads(path.read_text())} if path.exists() else {}
        for step in steps:
            result = done.get(step["file"]) or {
                "store": step["store"],
                "item": step["item"],
                "file": step["file"],
                "ok": False,
                "error": f"{host} returned no result for it",
            }
            check = _check_for(ctx, step["store"], host)
            results.append(
                _move_verified(incoming / host, incoming.parent, {**result, "host": host}, check)
            )
    return results


#: The archive's read-only gateway user (the logging role's), whose secret is in the vault.
ARCHIVE_AUDITOR = "SOVDEPLOYARCHIVEAUDITOR"


def _export_local(
    ctx: Context, steps: list[dict[str, Any]], incoming: Path
) -> list[dict[str, Any]]:

    results = []
    for planned in steps:
        step = planned
        if step["argv"][:2] == ["python3", "-m"]:
            # This interpreter has sovdeploy (the runbook's python3 is the operator's).
            step = {**planned, "argv": [sys.executable, *step["argv"][1:]]}
        if step["argv"][:3] == [sys.executable, "-m", "sovdeploy.runbook.archive_export"]:
            # The auditors' read-only keys read the archive.
            secret = vault_values(ctx).get("logging_archive_auditor_secret", "")
            env = {"AWS_ACCESS_KEY_ID": ARCHIVE_AUDITOR, "AWS_SECRET_ACCESS_KEY": str(secret)}
            step = {**step, "env": env}
        result = export.export(step, incoming / "deployer")
        check = _check_for(ctx, step["store"], "deployer")
        results.append(
            _move_verified(
                incoming / "deployer", incoming.parent, {**result, "host": "deployer"}, check
            )
        )
    return results


@contextmanager
def fresh_host(name: str, image: str, apt_cache: str | None) -> Iterator[Path]:
    """A new podman container from the sandbox image, and an inventory that reaches it."""
    cmd = ["podman", "run", "-d", "--replace", "--name", name, "--hostname", name]
    cmd += ["--privileged", "--systemd=always"]
    if apt_cache:
        cache = Path(apt_cache) / "exit-drill"
        (cache / "partial").mkdir(parents=True, exist_ok=True)
        cmd += ["-v", f"{cache}:/var/cache/apt/archives"]
    cmd += [image, "/sbin/init"]
    done = subprocess.run(
        cmd, capture_output=True, text=True, env=sandbox.podman_env(), check=False
    )
    if done.returncode != 0:
        raise DrillError(f"could not start the fresh host {name}: {done.stderr.strip()}")
    try:
        with tempfile.TemporaryDirectory(prefix="sovdeploy-drill-") as tmp:
            inventory = Path(tmp) / "hosts.yml"
            inventory.write_text(
                yaml.safe_dump(
                    {
                        "all": {
                            "hosts": {
                                name: {
                                    "ansible_connection": "containers.podman.podman",
                                    "ansible_python_interpreter": "/usr/bin/python3",
                                }
                            }
                        }
                    }
                )
            )
            yield inventory
    finally:
        subprocess.run(
            ["podman", "rm", "-f", "-t", "0", name],
            capture_output=True,
            env=sandbox.podman_env(),
            check=False,
        )


def _choose(items: list[dict[str, Any]], store: str) -> dict[str, Any] | None:
    """The smallest exported item of a store (the restore proves the path, not the size)."""
    done = [i for i in items if i["store"] == store and i.get("ok")]
    return min(done, key=lambda i: (i["bytes"], i["file"])) if done else None


def _unproven(what: str, detail: str) -> dict[str, Any]:
    """A restore that did not prove its export usable, and why."""
    return {"what": what, "ok": False, "seconds": 0, "detail": detail}


def _restores(
    items: list[dict[str, Any]],
    target: Path,
    facts_images: dict[str, Any],
    marker: dict[str, Any] | None,
    canary_volume: str | None,
) -> tuple[list[dict[str, Any]], dict[str, Path], list[dict[str, Any]]]:
    """What to restore: specs for the restorer, the files by name, and what is missing."""
    specs: list[dict[str, Any]] = []
    files: dict[str, Path] = {}
    missing: list[dict[str, Any]] = []
    dbs = [i for i in items if i["store"].startswith("mariadb/") and i.get("ok")]
    db = next((i for i in dbs if i["store"] == "mariadb/keystone"), dbs[0] if dbs else None)
    if db is not None:
        name = db["store"].split("/", 1)[1]
        argv = stores.dump_argv(name)
        specs.append(
            {
                "kind": "database",
                "what": f"{name} database dump",
                "file": Path(db["file"]).name,
                "sha256": db["sha256"],
                "argv": list(argv),
                "database": name,
            }
        )
        files[Path(db["file"]).name] = target / db["file"]
    else:
        missing.append(_unproven("a database dump", "no database was exported"))
    image = _choose(items, "ceph/images")
    if image is not None:
        record = facts_images.get(Path(image["file"]).stem, {})
        specs.append(
            {
                "kind": "image",
                "what": f"image {Path(image['file']).stem}",
                "file": Path(image["file"]).name,
                "sha256": image["sha256"],
                "format": Path(image["file"]).suffix.lstrip("."),
                "hash_algo": record.get("hash_algo") or "sha256",
            }
        )
        files[Path(image["file"]).name] = target / image["file"]
    else:
        missing.append(_unproven("an image", "no image was exported"))
    volumes = [i for i in items if i["store"] == "ceph/volumes" and i.get("ok")]
    volume = next(
        (i for i in volumes if canary_volume and canary_volume in i["file"]), None
    ) or _choose(items, "ceph/volumes")
    if volume is not None:
        spec = {
            "kind": "volume",
            "what": f"volume {Path(volume['file']).stem}",
            "file": Path(volume["file"]).name,
            "sha256": volume["sha256"],
        }
        if marker and canary_volume and canary_volume in volume["file"]:
            spec["marker"] = marker
        specs.append(spec)
        files[Path(volume["file"]).name] = target / volume["file"]
    else:
        missing.append(_unproven("a volume", "no volume was exported"))
    return specs, files, missing


def _restore(
    ctx: Context, drill_id: str, specs: list[dict[str, Any]], files: dict[str, Path], work: Path
) -> list[dict[str, Any]]:

    sb = ctx.deployment.settings.sandbox
    name = f"sovdeploy-{drill_id}-restore"[:63]
    results_file = work / "restores.json"
    ctx.progress.step(f"restoring on a fresh host ({name})")
    if not sandbox.image_exists(sb.image):
        ctx.progress.step("building the sandbox base image (for the fresh host)")
        sandbox.build_image(apt_mirror(ctx.deployment), log=ctx.progress.step)

    with fresh_host(name, sb.image, sb.apt_cache) as inventory:
        try:
            run_tool_playbook(
                ctx,
                "exit_restore",
                {
                    "exit_restorer": restore.__file__,
                    "exit_restores": specs,
                    "exit_files": {k: str(v) for k, v in files.items()},
                    "exit_results": str(results_file),
                },
                sources=[inventory],
            )
        except AnsibleRunError as exc:
            return [_unproven(s["what"], f"the fresh host failed: {exc}") for s in specs]
    results: list[dict[str, Any]] = json.loads(results_file.read_text())
    return results


def _exports(
    ctx: Context, views: list[document.StoreView], incoming: Path, drill_id: str
) -> list[dict[str, Any]]:
    """Export every store the runbook lists; an unreadable one is a failed item."""
    items: list[dict[str, Any]] = []
    by_host: dict[str, list[dict[str, Any]]] = {}
    local: list[dict[str, Any]] = []
    for view in views:
        if view.error:
            items.append(
                {
                    "store": view.store.key,
                    "item": view.store.title,
                    "file": "-",
                    "ok": False,
                    "error": f"unreadable: {view.error}",
                    "seconds": 0,
                }
            )
            continue
        for step in stores.steps(
            view.store,
            view.detail,
            inventory=str(ctx.inventory.path),
            state=str(ctx.state.root),
            snap=drill_id,
        ):
            (by_host.setdefault(step.host, []) if step.host else local).append(_step_dict(step))
    items += _export_hosts(ctx, by_host, incoming, drill_id)
    ctx.progress.step("exporting the deployer's stores")
    items += _export_local(ctx, local, incoming)
    return items


def _summary(
    drill_id: str,
    target: Path,
    items: list[dict[str, Any]],
    restores: list[dict[str, Any]],
    times: tuple[str, float, float],
) -> dict[str, Any]:
    started, t0, t1 = times
    finished = now()
    done = [i for i in items if i.get("ok")]
    points = [dt.datetime.fromisoformat(i["point"]) for i in done if i.get("point")]
    rpo = (dt.datetime.fromisoformat(finished) - min(points)).total_seconds() if points else None
    return {
        "id": drill_id,
        "started": started,
        "finished": finished,
        "target": str(target),
        "ok": bool(done) and all(i.get("ok") for i in items) and all(r.get("ok") for r in restores),
        "exported": len(done),
        "bytes": sum(int(i["bytes"]) for i in done),
        "restored": sum(1 for r in restores if r.get("ok")),
        "rto_seconds": round(t1 - t0, 1),
        "rpo_seconds": round(rpo, 1) if rpo is not None else None,
        "items": sorted(items, key=lambda i: (i["store"], i["file"])),
        "restores": restores,
    }


def run(ctx: Context, target: Path | None = None) -> dict[str, Any]:
    """Run the drill; return its record (also in ``runbook/drill.json``).

    Raises:
        DrillError: when a store could not be read, or an export or a restore failed.

    """
    drill_id = "drill-" + ctx.run.id.lower()
    started, t0 = now(), time.monotonic()
    facts = gather_runbook_facts(ctx)
    deployment = ctx.deployment
    openstack = bool(deployment.hosts_in("control")) and deployment.settings.endpoint is not None
    paths = {"inventory": str(ctx.inventory.path), "state": str(ctx.state.root)}
    views = document.views(deployment, facts, **paths)
    held = document.workloads(views)
    target = (target or ctx.state.root / "exit" / drill_id).resolve()
    incoming = target / ".incoming"
    shutil.rmtree(incoming, ignore_errors=True)
    incoming.mkdir(parents=True)
    need = (openstack and not held["images"], openstack and not held["volumes"])
    with canary(ctx, drill_id, *need) as made:
        if made:
            # The canary is in the databases and the pools now: read them again.
            views = document.views(deployment, gather_runbook_facts(ctx), **paths)
        items = _exports(ctx, views, incoming, drill_id)
        glance = {i["id"]: i for i in document.workloads(views)["images"]}
        canary_volume = str(made["volume"].id) if "volume" in made else None
        specs, files, missing = _restores(items, target, glance, made.get("marker"), canary_volume)
        restores = missing + (_restore(ctx, drill_id, specs, files, incoming) if specs else [])
    record = _summary(drill_id, target, items, restores, (started, t0, time.monotonic()))
    record["canary"] = bool(made)
    record["canary_left"] = made.get("left", [])
    shutil.rmtree(incoming, ignore_errors=True)
    done = sorted((i for i in items if i.get("ok")), key=lambda i: i["file"])
    sums = "".join(f"{i['sha256']}  {i['file']}\n" for i in done)
    atomic_write(target / SUMS, sums)
    text = json.dumps(record, indent=1, sort_keys=True) + "\n"
    atomic_write(target / "drill.json", text)
    atomic_write(ctx.state.root / "runbook" / "drill.json", text)
    ctx.run.record(
        "exit_drill",
        drill=drill_id,
        ok=record["ok"],
        exported=record["exported"],
        bytes=record["bytes"],
        restored=record["restored"],
        rto_seconds=record["rto_seconds"],
        rpo_seconds=record["rpo_seconds"],
        sums_sha256=hashlib.sha256(sums.encode()).hexdigest(),
    )
    # The last reading was taken while the canary existed: read the hosts again, so that
    # the runbook shows the deployment as the drill left it, not a deleted canary.
    write_runbook(ctx, gather=bool(made))
    if not record["ok"]:
        failed = [f"{i['item']}: {i.get('error')}" for i in items if not i.get("ok")]
        failed += [f"restore {r['what']}: {r['detail']}" for r in restores if not r.get("ok")]
        raise DrillError(f"the exit drill failed ({len(failed)} problem(s)): " + "; ".join(failed))
    return record
