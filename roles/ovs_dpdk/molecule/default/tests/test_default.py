"""DPDK is initialised on hugepages, and packets cross the netdev bridge's DPDK ports."""

import re


def test_dpdk_is_initialised(host):
    assert host.check_output("ovs-vsctl get Open_vSwitch . dpdk_initialized") == "true"
    version = host.check_output("ovs-vsctl get Open_vSwitch . dpdk_version")
    assert version.strip('"').startswith("DPDK ")
    assert "ovs-vswitchd-dpdk" in host.check_output("readlink -f /usr/sbin/ovs-vswitchd")


def test_the_bridge_is_netdev_with_both_dpdk_ports(host):
    assert host.check_output("ovs-vsctl get Bridge br-dpdk datapath_type") == "netdev"
    for port in ("dpdk-p1", "dpdk-p2"):
        assert host.check_output(f"ovs-vsctl get Interface {port} type") == "dpdk"
        assert host.check_output(f"ovs-vsctl --columns=error --bare list Interface {port}") == ""


def test_ovs_holds_hugepages(host):
    meminfo = host.file("/proc/meminfo").content_string
    total = int(re.search(r"HugePages_Total:\s+(\d+)", meminfo).group(1))
    free = int(re.search(r"HugePages_Free:\s+(\d+)", meminfo).group(1))
    # dpdk-socket-mem 256: at least 128 pages of 2 MB are in use.
    assert total - free >= 128


def _rx_packets(host, port):
    # The port's own counters (the Interface table's statistics lag by up to 5 s).
    stats = host.check_output(f"ovs-ofctl dump-ports br-dpdk {port}")
    return int(re.search(r"rx pkts=(\d+)", stats).group(1))


def test_packets_cross_the_dpdk_bridge(host):
    before = {p: _rx_packets(host, p) for p in ("dpdk-p1", "dpdk-p2")}
    ping = host.run("ip netns exec ns1 ping -c 5 -i 0.2 -W 2 10.0.0.2")
    assert ping.rc == 0, ping.stdout + ping.stderr
    assert " 0% packet loss" in ping.stdout
    after = {p: _rx_packets(host, p) for p in ("dpdk-p1", "dpdk-p2")}
    # Echo requests enter through dpdk-p1, the replies through dpdk-p2.
    assert after["dpdk-p1"] - before["dpdk-p1"] >= 5
    assert after["dpdk-p2"] - before["dpdk-p2"] >= 5
