"""Tests of the simulated illumos ifconfig inside a private network namespace.

Each test gets its own namespace ``smartossim-t<random>`` holding a veth
``net0`` (192.0.2.11/24) and its peer, and runs the tool inside it with
``ip netns exec <ns> env SMARTOS_SIM_ZONEROOT=<tmp> .../ifconfig``.
"""

import json
import os
import secrets
import shutil
import subprocess
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.root

IFCONFIG = Path(__file__).resolve().parents[1] / "sim" / "bin" / "ifconfig"


def sh(*args, check=True):
    return subprocess.run(list(args), capture_output=True, text=True, timeout=30, check=check)


class Zone:
    def __init__(self, netns, root):
        self.netns = netns
        self.root = root

    def ifconfig_cmd(self, *args):
        return [
            "ip",
            "netns",
            "exec",
            self.netns,
            "env",
            f"SMARTOS_SIM_ZONEROOT={self.root}",
            str(IFCONFIG),
            *args,
        ]

    def ifconfig(self, *args):
        return subprocess.run(self.ifconfig_cmd(*args), capture_output=True, text=True, timeout=30, check=False)

    def ok(self, *args):
        proc = self.ifconfig(*args)
        assert proc.returncode == 0, (args, proc.stdout, proc.stderr)
        assert proc.stderr == "", (args, proc.stderr)
        return proc.stdout

    def kernel_labels(self):
        out = sh("ip", "netns", "exec", self.netns, "ip", "-j", "-4", "addr", "show", "dev", "net0").stdout
        return {info["label"]: info["local"] for link in json.loads(out) for info in link["addr_info"]}

    def state(self):
        """The state file: ``<name> <addr> <prefix> <broadcast> up|down`` per line (``-``: none)."""
        path = self.root / "run" / "smartos-sim" / "ifconfig.state"
        lifs = {}
        for line in path.read_text().splitlines() if path.exists() else []:
            name, addr, prefix, broadcast, up = (None if f == "-" else f for f in line.split())
            lifs[name] = {"addr": addr, "prefix": prefix and int(prefix), "broadcast": broadcast, "up": up == "up"}
        return lifs


@pytest.fixture
def zone(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("needs root for network namespaces")
    if shutil.which("ip") is None:
        pytest.skip("needs iproute2 (ip) for network namespaces")
    netns = f"smartossim-t{secrets.token_hex(4)}"
    if sh("ip", "netns", "add", netns, check=False).returncode != 0:
        pytest.skip("needs root for network namespaces (ip netns add failed)")
    try:
        for cmd in (
            "ip link set lo up",
            "ip link add net0 type veth peer name sim-peer0",
            "ip link set sim-peer0 up",
            "ip link set net0 up",
            "ip addr add 192.0.2.11/24 brd + dev net0",
        ):
            sh("ip", "netns", "exec", netns, *cmd.split())
        yield Zone(netns, tmp_path)
    finally:
        sh("ip", "netns", "del", netns, check=False)


def wait_for(predicate, timeout=10.0, interval=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def test_display_all(zone):
    out = zone.ok("-a")
    lines = out.splitlines()
    assert lines[0] == "lo0: flags=2001000849<UP,LOOPBACK,RUNNING,MULTICAST,IPv4,VIRTUAL> mtu 8232 index 1"
    assert lines[1] == "\tinet 127.0.0.1 netmask ff000000 "
    assert lines[2].startswith("net0: flags=40001000843<UP,BROADCAST,RUNNING,MULTICAST,IPv4,L3PROTECT> mtu 1500 index ")
    assert lines[3] == "\tinet 192.0.2.11 netmask ffffff00 broadcast 192.0.2.255"
    assert lines[4].startswith("\tether ") and lines[4].endswith(" ")
    assert len(lines) == 5  # the veth peer is no illumos link name: not shown
    assert zone.ok() == out  # no argument means -a
    assert zone.ok("net0") == "\n".join(lines[2:5]) + "\n"


def test_plumb_configure_up_down_unplumb(zone):
    assert zone.ok("net0:1", "plumb") == ""
    assert zone.ok("net0:1") == (
        "net0:1: flags=1000842<BROADCAST,RUNNING,MULTICAST,IPv4> mtu 1500 index "
        + zone.ok("net0").split(" index ")[1].split("\n")[0]
        + "\n\tinet 0.0.0.0 netmask 0 \n"
    )
    assert zone.ok("net0:1", "192.0.2.100", "netmask", "255.255.255.0", "up") == ""
    lines = zone.ok("net0:1").splitlines()
    assert lines[0].startswith("net0:1: flags=1000843<UP,BROADCAST,RUNNING,MULTICAST,IPv4> mtu 1500 index ")
    assert lines[1] == "\tinet 192.0.2.100 netmask ffffff00 broadcast 192.0.2.255"
    assert zone.kernel_labels() == {"net0": "192.0.2.11", "net0:1": "192.0.2.100"}

    zone.ok("net0:1", "down")
    assert zone.kernel_labels() == {"net0": "192.0.2.11"}
    lines = zone.ok("net0:1").splitlines()
    assert lines[0].startswith("net0:1: flags=1000842<BROADCAST,RUNNING,MULTICAST,IPv4> ")
    assert lines[1] == "\tinet 192.0.2.100 netmask ffffff00 broadcast 192.0.2.255"
    assert zone.state()["net0:1"]["addr"] == "192.0.2.100"

    zone.ok("net0:1", "up")  # the configuration survived the down
    assert zone.kernel_labels()["net0:1"] == "192.0.2.100"

    zone.ok("net0:1", "unplumb")
    assert zone.kernel_labels() == {"net0": "192.0.2.11"}
    assert "net0:1" not in zone.ok("-a")
    assert zone.state() == {}


@pytest.mark.parametrize(
    "args",
    [
        ["plumb", "192.0.2.100", "netmask", "255.255.255.0", "up"],
        ["plumb", "192.0.2.100", "netmask", "0xffffff00", "broadcast", "+", "up"],
        ["plumb", "192.0.2.100", "netmask", "+", "up"],
        ["plumb", "192.0.2.100/24", "up"],
    ],
)
def test_combined_forms(zone, args):
    zone.ok("net0:2", *args)
    lines = zone.ok("net0:2").splitlines()
    assert "<UP," in lines[0]
    assert lines[1] == "\tinet 192.0.2.100 netmask ffffff00 broadcast 192.0.2.255"
    assert zone.kernel_labels()["net0:2"] == "192.0.2.100"


def test_prefix_and_netmask_variants(zone):
    zone.ok("net0:1", "plumb")
    zone.ok("net0:1", "192.0.2.100/25", "up")
    assert "\tinet 192.0.2.100 netmask ffffff80 broadcast 192.0.2.127" in zone.ok("net0:1")
    zone.ok("net0:1", "netmask", "255.255.255.0")  # live change keeps it UP
    assert "\tinet 192.0.2.100 netmask ffffff00 broadcast 192.0.2.255" in zone.ok("net0:1")
    assert zone.kernel_labels()["net0:1"] == "192.0.2.100"
    zone.ok("net0:1", "192.0.2.101")  # address change of an UP interface
    assert zone.kernel_labels()["net0:1"] == "192.0.2.101"


def test_addif_removeif(zone):
    proc = zone.ifconfig("net0", "addif", "192.0.2.100/24", "up")
    assert proc.returncode == 0
    assert proc.stdout == "Created new logical interface net0:1\n"
    proc = zone.ifconfig("net0", "addif", "192.0.2.101", "netmask", "255.255.255.0", "up")
    assert proc.stdout == "Created new logical interface net0:2\n"
    assert zone.kernel_labels() == {"net0": "192.0.2.11", "net0:1": "192.0.2.100", "net0:2": "192.0.2.101"}
    assert zone.ok("net0", "removeif", "192.0.2.100") == ""
    assert zone.kernel_labels() == {"net0": "192.0.2.11", "net0:2": "192.0.2.101"}
    # The lowest free number is reused.
    assert zone.ifconfig("net0", "addif", "192.0.2.102/24").stdout == "Created new logical interface net0:1\n"
    assert "<BROADCAST,RUNNING,MULTICAST,IPv4>" in zone.ok("net0:1")  # addif without up stays down


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["net9"], "ifconfig: status: SIOCGLIFFLAGS: net9: no such interface\n"),
        (["net0:5"], "ifconfig: status: SIOCGLIFFLAGS: net0:5: no such interface\n"),
        (["net0:5", "unplumb"], "ifconfig: cannot unplumb net0:5: No such interface\n"),
        (["net0:5", "down"], "ifconfig: setifflags: SIOCGLIFFLAGS: net0:5: no such interface\n"),
        (["net0:5", "up"], "ifconfig: setifflags: SIOCGLIFFLAGS: net0:5: no such interface\n"),
        (["net0:5", "192.0.2.100", "up"], "ifconfig: error: net0:5: no such interface\n"),
        (["net9:1", "plumb"], "ifconfig: cannot plumb net9:1: No such interface\n"),
        (["net0:1", "plumb", "192.0.2.300", "up"], "ifconfig: 192.0.2.300: bad address\n"),
        (["net0:1", "plumb", "192.0.2.100/33"], "ifconfig: Bad prefix length in 192.0.2.100/33\n"),
        (["net0:1", "plumb", "192.0.2.100", "netmask", "bogus"], "ifconfig: bogus: bad address\n"),
        (["net0:1", "plumb", "192.0.2.100", "netmask"], "ifconfig: no argument for netmask\n"),
        (["net0:1", "plumb", "192.0.2.100", "netmask", "255.0.255.0", "up"], None),
        (["net0:1", "addif", "192.0.2.100"], "ifconfig: addif: bad physical interface name net0:1\n"),
        (["net0", "removeif", "192.0.2.11"], "ifconfig: removeif: cannot remove interface: net0\n"),
        (["net0", "removeif", "192.0.2.99"], "ifconfig: removeif: SIOCLIFREMOVEIF: net0: no such interface\n"),
        (["net0", "removeif", "192.0.2.99/24"], "ifconfig: 192.0.2.99/24: unexpected '/'\n"),
        (["-x"], None),
        (["net0:1", "inet6", "plumb"], None),
    ],
)
def test_errors(zone, args, message):
    proc = zone.ifconfig(*args)
    assert proc.returncode == 1, proc
    assert "Traceback" not in proc.stderr
    if message is not None:
        assert proc.stderr == message
    else:
        assert proc.stderr.startswith("ifconfig: ")


def test_plumb_existing_warns_and_continues(zone):
    zone.ok("net0:1", "plumb")
    proc = zone.ifconfig("net0:1", "plumb")
    # inetplumb(): IPADM_IF_EXISTS is reported but does not exit.
    assert proc.returncode == 0
    assert proc.stderr == "ifconfig: cannot plumb net0:1: Interface already exists\n"
    proc = zone.ifconfig("net0:1", "plumb", "192.0.2.100", "netmask", "255.255.255.0", "up")
    assert proc.returncode == 0
    assert zone.kernel_labels()["net0:1"] == "192.0.2.100"


def test_duplicate_address(zone):
    zone.ok("net0:1", "plumb", "192.0.2.100/24", "up")
    zone.ok("net0:2", "plumb", "192.0.2.100/24")
    proc = zone.ifconfig("net0:2", "up")
    assert proc.returncode == 1
    assert proc.stderr == "ifconfig: setifflags: SIOCSLIFFLAGS: net0:2: Address already in use\n"


def test_state_follows_kernel_when_file_is_lost(zone):
    zone.ok("net0:1", "plumb", "192.0.2.100/24", "up")
    zone.ok("net0:2", "plumb")
    (zone.root / "run" / "smartos-sim" / "ifconfig.state").unlink()
    out = zone.ok("-a")
    assert "net0:1: flags=1000843<UP," in out
    assert "net0:2" not in out  # only the file knew it
    zone.ok("net0:1", "down")
    assert zone.state()["net0:1"]["addr"] == "192.0.2.100"
    # An address removed behind ifconfig's back shows as down, not up.
    zone.ok("net0:1", "up")
    sh("ip", "netns", "exec", zone.netns, "ip", "addr", "del", "192.0.2.100/24", "dev", "net0")
    assert "net0:1: flags=1000842<BROADCAST," in zone.ok("net0:1")


def test_lines_of_the_state_file_it_did_not_write_are_ignored(zone):
    zone.ok("net0:2", "plumb", "192.0.2.101/24")
    path = zone.root / "run" / "smartos-sim" / "ifconfig.state"
    path.write_text(path.read_text() + "net0:3 192.0.2.102\nnet0:4 192.0.2.103 2x - up\nbad: - - - up\n")
    out = zone.ok("-a")
    assert "net0:2: flags=1000842<BROADCAST," in out
    assert "net0:3" not in out and "net0:4" not in out and "bad" not in out
    zone.ok("net0:2", "down")  # a change writes the file again: what it knows
    assert zone.state() == {"net0:2": {"addr": "192.0.2.101", "prefix": 24, "broadcast": "192.0.2.255", "up": False}}


def test_display_filters(zone):
    zone.ok("net0:1", "plumb", "192.0.2.100/24", "up")
    zone.ok("net0:2", "plumb", "192.0.2.101/24")
    up = zone.ok("-au")
    down = zone.ok("-ad")
    assert "net0:1:" in up and "net0:2:" not in up
    assert "net0:2:" in down and "net0:1:" not in down
    assert zone.ok("-a6") == ""


def test_concurrent_calls_on_different_logical_interfaces(zone):
    count = 8
    procs = [
        subprocess.Popen(
            zone.ifconfig_cmd(f"net0:{n}", "plumb", f"192.0.2.{100 + n}", "netmask", "255.255.255.0", "up"),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(1, count + 1)
    ]
    for proc in procs:
        _, stderr = proc.communicate(timeout=60)
        assert proc.returncode == 0, stderr
    expected = {f"net0:{n}": f"192.0.2.{100 + n}" for n in range(1, count + 1)}
    assert wait_for(lambda: {k: v for k, v in zone.kernel_labels().items() if k != "net0"} == expected)

    procs = [
        subprocess.Popen(zone.ifconfig_cmd(f"net0:{n}", "down"), stderr=subprocess.PIPE, text=True)
        for n in range(1, count + 1)
    ]
    for proc in procs:
        _, stderr = proc.communicate(timeout=60)
        assert proc.returncode == 0, stderr
    # Every down interface kept its configuration: no lost update of the file.
    assert {name: conf["addr"] for name, conf in zone.state().items()} == expected
    assert zone.kernel_labels() == {"net0": "192.0.2.11"}
    assert zone.ok("-ad").count("<BROADCAST,RUNNING,MULTICAST,IPv4>") == count
