"""Behaviour of a converged host_baseline host, checked from inside it."""

import json


def test_apt_uses_only_the_declared_mirror(host):
    out = host.check_output("apt-get indextargets --format '$(URI)'")
    uris = {line for line in out.splitlines() if line}
    assert uris, "apt has no index targets"
    assert all(u.startswith("http://deb.debian.org/debian/") for u in uris), uris
    assert not host.file("/etc/apt/sources.list").exists


def test_apt_can_fetch_from_the_mirror(host):
    # A real download through the configured source, not just a file check.
    cmd = host.run("apt-get download --print-uris hello")
    assert cmd.rc == 0, cmd.stderr
    assert "deb.debian.org/debian/pool/" in cmd.stdout


def test_chronyd_runs_with_the_declared_servers(host):
    assert host.service("chrony").is_running
    assert host.service("chrony").is_enabled
    tracking = host.run("chronyc -n tracking")
    assert tracking.rc == 0, tracking.stderr
    # activity counts every loaded source (online, offline, bursting, or not yet resolved),
    # so the sum is the number of servers chronyd was configured with, reachable or not.
    counts = [int(x) for x in host.check_output("chronyc -c activity").split(",")]
    assert sum(counts) == 1, counts


def test_chronyd_does_not_control_the_shared_clock(host):
    cmdline = host.check_output("cat /proc/$(pidof chronyd | cut -d' ' -f1)/cmdline | tr '\\0' ' '")
    assert " -x" in f" {cmdline}"


def test_time_zone_is_utc(host):
    assert host.check_output("date +%Z") == "UTC"


def test_sysctl_values_are_live_and_persisted(host):
    assert host.check_output("sysctl -n net.ipv4.ip_forward") == "1"
    assert host.check_output("sysctl -n net.ipv4.tcp_syncookies") == "1"
    assert "net.ipv4.ip_forward=1" in host.file("/etc/sysctl.d/60-sovdeploy.conf").content_string


def test_identity_names_the_deployment(host):
    identity = json.loads(host.file("/etc/sovdeploy/deployment.json").content_string)
    assert identity["deployment"] == "molecule"
    assert identity["site"] == "lab"
    assert identity["country"] == "DE"
    assert identity["apt_mirror"] == "http://deb.debian.org/debian"
    assert identity["roles"] == ["compute", "control", "network", "storage"]


def test_package_installs_do_not_start_services(host):
    # invoke-rc.d asks policy-rc.d; 101 means "action forbidden".
    assert host.run("/usr/sbin/policy-rc.d memcached start").rc == 101
    result = host.run("invoke-rc.d --query chrony start")
    assert result.rc == 101, result.stdout + result.stderr
