"""The simulated LAN that the global zones of one test bed share.

The LAN is a network namespace (``$SMARTOS_SIM_LAN``, default
``smartos-sim-lan``) holding one Linux bridge per NIC tag (``br-admin``...).
A zone NIC is a veth pair: ``netN`` inside the zone, a port named after the
VM on the tag's bridge.  Nothing here touches the host's own network.

Link protection is enforced as SmartOS does it in the global zone: a bridge
family nftables table drops frames from a port whose source MAC is not the
NIC's own (unless ``allow_mac_spoofing``) and IPv4 or ARP whose sender
address is neither one of the NIC's ``ips`` nor in its ``allowed_ips``
(unless ``allow_ip_spoofing``).
"""

import contextlib
import fcntl
import hashlib
import ipaddress
import os
import subprocess

from .common import ToolError

DEFAULT_LAN = "smartos-sim-lan"
TABLE = "smartos_sim"
NETNS_DIR = "/run/netns"


def name():
    return os.environ.get("SMARTOS_SIM_LAN") or DEFAULT_LAN


def run(argv, stdin=None, check=True):
    """Run a host command; a failure becomes a ToolError with its stderr."""
    proc = subprocess.run(argv, input=stdin, capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip()
        raise ToolError(f"{argv[0]}: {detail} (running: {' '.join(argv)})", 1)
    return proc


def exists(lan=None):
    return os.path.exists(os.path.join(NETNS_DIR, lan or name()))


@contextlib.contextmanager
def _locked(lan):
    os.makedirs("/run/smartos-sim", exist_ok=True)
    fd = os.open(f"/run/smartos-sim/{lan}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _nft(lan, script, check=True):
    return run(["ip", "netns", "exec", lan, "nft", "-f", "-"], stdin=script, check=check)


def bridge(tag):
    return f"br-{tag}"[:15]


def ensure(tag, lan=None):
    """Create the LAN namespace, its nftables table and ``tag``'s bridge."""
    lan = lan or name()
    with _locked(lan):
        if not exists(lan):
            run(["ip", "netns", "add", lan])
            run(["ip", "-n", lan, "link", "set", "lo", "up"])
            _quiet_ipv6(lan)
            _nft(
                lan,
                f"add table bridge {TABLE}\n"
                f"add map bridge {TABLE} ports {{ type ifname : verdict; }}\n"
                f"add chain bridge {TABLE} prerouting "
                "{ type filter hook prerouting priority 0; policy accept; }\n"
                f"add rule bridge {TABLE} prerouting iifname vmap @ports\n",
            )
        br = bridge(tag)
        if run(["ip", "-n", lan, "link", "show", br], check=False).returncode != 0:
            run(["ip", "-n", lan, "link", "add", br, "type", "bridge", "mcast_snooping", "0"])
            run(["ip", "-n", lan, "link", "set", br, "up"])
    return lan


def _quiet_ipv6(netns):
    """No IPv6 on the test bed: nothing but 192.0.2.0/24 crosses it."""
    run(
        [
            "ip", "netns", "exec", netns, "sysctl", "-q", "-w",
            "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1",
        ],
        check=False,
    )  # fmt: skip


def port_name(vm_uuid, index):
    return f"z{vm_uuid.replace('-', '')[:11]}{index}"[:15]


def plug(vm_uuid, index, nic, zone_pid, lan=None):
    """Give the zone (its init is ``zone_pid``) the NIC ``nic`` as ``netN``."""
    lan = ensure(nic["nic_tag"], lan)
    port = port_name(vm_uuid, index)
    ifname = nic.get("interface") or f"net{index}"
    run(["ip", "-n", lan, "link", "del", port], check=False)  # left from a crash
    run(["ip", "-n", lan, "link", "add", port, "type", "veth", "peer", "name", ifname, "netns", str(zone_pid)])
    run(["ip", "-n", lan, "link", "set", port, "master", bridge(nic["nic_tag"]), "up"])
    batch = [f"link set {ifname} address {nic['mac']}"]
    if nic.get("mtu"):
        batch.append(f"link set {ifname} mtu {int(nic['mtu'])}")
    batch.append(f"link set {ifname} up")
    for cidr in nic_addresses(nic):
        batch.append(f"addr add {cidr} brd + dev {ifname} label {ifname}")
    if nic.get("gateway") and nic.get("primary"):
        batch.append(f"route add default via {nic['gateway']} dev {ifname}")
    in_zone = ["nsenter", "-t", str(zone_pid), "-n"]
    run([*in_zone, "ip", "-batch", "-"], stdin="\n".join(batch) + "\n")
    protect(port, nic, lan)
    return port


def nic_addresses(nic):
    """The ``a.b.c.d/len`` addresses a NIC carries (from ``ips`` or ``ip``)."""
    found = []
    for item in nic.get("ips") or []:
        if item in ("dhcp", "addrconf"):
            continue
        found.append(str(ipaddress.ip_interface(item)))
    if not found and nic.get("ip") and nic["ip"] != "dhcp":
        found.append(str(ipaddress.ip_interface(f"{nic['ip']}/{nic.get('netmask') or '255.255.255.0'}")))
    return found


def protect(port, nic, lan=None):
    """(Re)write the link protection of ``port`` from the NIC's properties."""
    lan = lan or name()
    chain = f"port_{port}"
    allowed = [str(ipaddress.ip_interface(c).ip) for c in nic_addresses(nic)]
    allowed += [str(ipaddress.ip_network(a, strict=False)) for a in nic.get("allowed_ips") or []]
    lines = [
        f"add chain bridge {TABLE} {chain}",
        f"flush chain bridge {TABLE} {chain}",
    ]
    if not nic.get("allow_mac_spoofing"):
        lines.append(f"add rule bridge {TABLE} {chain} ether saddr != {nic['mac']} drop")
    if not nic.get("allow_ip_spoofing"):
        if allowed:
            addrs = "{ " + ", ".join(allowed) + " }"
            lines.append(f"add rule bridge {TABLE} {chain} ether type ip ip saddr != {addrs} drop")
            lines.append(f"add rule bridge {TABLE} {chain} ether type arp arp saddr ip != {addrs} drop")
        else:
            lines.append(f"add rule bridge {TABLE} {chain} ether type {{ ip, arp }} drop")
    lines.append(f"add rule bridge {TABLE} {chain} ether type ip6 drop")
    with _locked(lan):
        _nft(lan, f'delete element bridge {TABLE} ports {{ "{port}" }}\n', check=False)
        _nft(lan, "\n".join(lines) + f'\nadd element bridge {TABLE} ports {{ "{port}" : jump {chain} }}\n')


def unplug(port, lan=None):
    """Forget a port's protection (the veth itself dies with the zone)."""
    lan = lan or name()
    if not exists(lan):
        return
    run(["ip", "-n", lan, "link", "del", port], check=False)
    with _locked(lan):
        _nft(lan, f'delete element bridge {TABLE} ports {{ "{port}" }}\n', check=False)
        _nft(lan, f"delete chain bridge {TABLE} port_{port}\n", check=False)


def isolate(port, on=True, lan=None):
    """Cut (or restore) a port from the other isolated ports of its bridge.

    Isolated ports reach the rest of the LAN but not each other: the link
    between two zones is cut while clients still reach both.
    """
    state = "on" if on else "off"
    run(["ip", "-n", lan or name(), "link", "set", "dev", port, "type", "bridge_slave", "isolated", state])


def add_host(host, cidr, tag="admin", lan=None):
    """A plain host on the LAN (a client namespace for tests and the demo)."""
    lan = ensure(tag, lan)
    port = "h" + hashlib.sha1(host.encode()).hexdigest()[:12]
    run(["ip", "netns", "add", host])
    try:
        run(["ip", "-n", host, "link", "set", "lo", "up"])
        _quiet_ipv6(host)
        run(["ip", "-n", lan, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", host])
        run(["ip", "-n", lan, "link", "set", port, "master", bridge(tag), "up"])
        run(["ip", "-n", host, "addr", "add", cidr, "dev", "eth0"])
        run(["ip", "-n", host, "link", "set", "eth0", "up"])
    except ToolError:
        remove_host(host)
        raise
    return host


def remove_host(host):
    run(["ip", "netns", "del", host], check=False)


def destroy(lan=None):
    """Remove the LAN namespace with its bridges, ports and tables."""
    lan = lan or name()
    if exists(lan):
        run(["ip", "netns", "del", lan], check=False)
