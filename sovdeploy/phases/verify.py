"""verify: use the cloud as a new user would, and check what that left in the ledger."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from sovdeploy import guest, sandbox, secrets
from sovdeploy.context import Context
from sovdeploy.errors import LedgerError
from sovdeploy.kubernetes import client as kube
from sovdeploy.ledger import forward as ledger_forward
from sovdeploy.openstack import usercheck as verify
from sovdeploy.steps.credentials import apt_mirror, vault_values, write_clouds


def _served_size(log_host: ledger_forward.Endpoint, wait: float = 60) -> int | str:
    """Where the log host's ledger ends, or why it cannot be read.

    Tried for ``wait`` seconds: the service may be restarting as the logging phase
    leaves it (a log host that has to catch up on every host's journal first is slow).
    """
    deadline = time.monotonic() + wait
    while True:
        try:
            return ledger_forward.served_size(log_host)
        except (LedgerError, OSError, ValueError) as exc:
            if time.monotonic() >= deadline:
                return f"its ledger could not be read before the checks: {exc}"
            time.sleep(3)


def _audit_trail_check(
    log_host: ledger_forward.Endpoint, start: int | str, server_id: str, timeout: float = 120
) -> verify.Check:
    """The log host's ledger holds the CADF events of verify's requests for its server.

    ``start``: where the log ended before the requests, or why it could not be read.
    """
    started = time.monotonic()
    seen: set[str] = set()
    wanted = {"audit.http.request", "audit.http.response"}
    problem = start if isinstance(start, str) else ""
    while isinstance(start, int):
        try:
            start, recs = ledger_forward.served_records(log_host, start)
        except (LedgerError, OSError, ValueError) as exc:
            problem = f"its ledger cannot be read: {exc}"
            break
        seen |= {
            str(r.get("event_type"))
            for r in recs
            if r.get("kind") == "cadf" and server_id in str(r.get("payload", {}).get("requestPath"))
        }
        if wanted <= seen or time.monotonic() - started > timeout:
            break
        time.sleep(3)
    ok = wanted <= seen
    if ok:
        detail = f"{log_host.host} holds the request and response events of /servers/{server_id}"
    else:
        found = ", ".join(sorted(seen)) or "no"
        detail = (
            f"{log_host.host}: {problem}"
            if problem
            else f"{log_host.host} holds {found} CADF event(s) for /servers/{server_id}"
        )
    return verify.Check(
        "the API calls reached the log host as CADF events",
        ok,
        time.monotonic() - started,
        detail,
    )


#: The tag the kubernetes role gives the API server's audit events in the journal.
K8S_AUDIT_TAG = "kube-apiserver-audit"


def _k8s_audit_check(
    ctx: Context, log_host: ledger_forward.Endpoint, timeout: float = 180
) -> verify.Check:
    """An API call to the cluster reaches the log host's ledger as an audit event.

    A ConfigMap is made and deleted through the operator's kubeconfig; the check looks
    for the API server's audit event of either call, in the journal entries the control
    hosts ship, from where the log ended before the calls.
    """
    started = time.monotonic()
    name = f"sovdeploy-verify-{ctx.run.id[-6:].lower()}"
    start = _served_size(log_host)
    problem = start if isinstance(start, str) else ""
    found = ""
    if not problem:
        try:
            kube.touch_configmap(ctx.state.kubeconfig, "default", name)
        except kube.KubeError as exc:
            problem = str(exc)
    while not problem and not found and isinstance(start, int):
        try:
            start, recs = ledger_forward.served_records(log_host, start)
        except (LedgerError, OSError, ValueError) as exc:
            problem = f"its ledger cannot be read: {exc}"
            break
        for r in recs:
            fields = r.get("fields") or {}
            message = str(fields.get("MESSAGE", ""))
            if (
                fields.get("SYSLOG_IDENTIFIER") == K8S_AUDIT_TAG
                and f'"name":"{name}"' in message
                and ('"verb":"create"' in message or '"verb":"delete"' in message)
            ):
                verb = "creating" if '"verb":"create"' in message else "deleting"
                found = f"{verb} {name} (from {r.get('source')})"
                break
        if not found:
            if time.monotonic() - started > timeout:
                break
            time.sleep(3)
    ok = bool(found)
    if ok:
        detail = f"{log_host.host} holds the API server's audit event of {found}"
    else:
        detail = f"{log_host.host}: {problem or f'no audit event for {name} in {timeout:.0f}s'}"
    return verify.Check(
        "a Kubernetes API call reached the log host as an audit event",
        ok,
        time.monotonic() - started,
        detail,
    )


def _leak_check(ctx: Context, values: dict[str, Any]) -> verify.Check:
    """No generated secret appears in a run record, an ansible-runner artifact or the ledger."""
    started = time.monotonic()
    leaks = secrets.scan(ctx.state.root / "runs", values)
    leaks += secrets.scan(ctx.state.root / "ledger", values)
    names = sorted({name for name, _ in leaks})
    detail = (
        f"{len(leaks)} file(s) hold {', '.join(names)}; first: {leaks[0][1]}"
        if leaks
        else f"{len(values)} secrets, none found"
    )
    return verify.Check(
        "no secret in any run record or the ledger",
        not leaks,
        time.monotonic() - started,
        detail,
    )


def run(ctx: Context) -> str:

    if not ctx.deployment.has_openstack():
        return "no OpenStack in this inventory (no endpoint or no control hosts): nothing to verify"
    s = ctx.deployment.settings
    values = vault_values(ctx)
    clouds, secure = write_clouds(ctx, values)
    if not sandbox.image_exists(s.sandbox.image):
        ctx.progress.step("building the sandbox base image (for the guest image)")
        sandbox.build_image(apt_mirror(ctx.deployment), log=ctx.progress.step)
    ctx.progress.step("building the guest image")
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "sovdeploy"
    apt_cache = Path(s.sandbox.apt_cache) / "guest-image" if s.sandbox.apt_cache else None
    image = guest.build(cache, s.sandbox.image, apt_cache)

    def report(check: verify.Check) -> None:
        mark = "pass" if check.ok else "FAIL"
        detail = f": {check.detail}" if check.detail else ""
        ctx.progress.note(f"{mark} {check.name} ({check.seconds:.1f}s){detail}", check.ok)
        ctx.run.record(
            "verify_check", check=check.name, ok=check.ok, seconds=round(check.seconds, 2)
        )

    conn = verify.connect(clouds, secure, s.deployment)
    log_host = ledger_forward.endpoint(ctx.state.root)
    log_start = _served_size(log_host) if log_host else 0
    verifier = verify.Verifier(conn, image, f"sovdeploy-verify-{ctx.run.id[-6:]}-", report)
    result = verifier.run()
    server = verifier.made.get("server")
    if log_host is not None and server is not None:
        result.checks.append(_audit_trail_check(log_host, log_start, str(server.id)))
        report(result.checks[-1])
    if log_host is not None and ctx.state.kubeconfig.exists():
        result.checks.append(_k8s_audit_check(ctx, log_host))
        report(result.checks[-1])
    result.checks.append(_leak_check(ctx, values))
    report(result.checks[-1])
    failed = [c for c in result.checks if not c.ok]
    if failed:
        raise verify.VerifyError(
            "verify failed: " + "; ".join(f"{c.name}: {c.detail}" for c in failed)
        )
    return f"{len(result.checks)} check(s) passed"
