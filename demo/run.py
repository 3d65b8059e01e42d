"""The test bed's demo: two simulated hypervisors, real UCARP, a failover.

Run it with ``make demo`` (as root).  It builds two global zones on one
simulated LAN, creates a zone on each as the original article does, installs
and starts ucarp in both by hand, shows which zone holds the VIP, stops that
zone abruptly with vmadm and prints the timeline of the VIP moving.  It
removes everything it built when it ends, even on Ctrl-C.
"""

import os
import signal
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "sim"))

from smartos_sim import bed as simbed  # noqa: E402
from smartos_sim.recipe import holds_vip, start_by_hand  # noqa: E402

IMAGE = "d34c301e-10c3-11e4-9b79-5f67ca448df0"
VIP, VHID = "192.0.2.100", 42
NODES = (("gz1", "zoneA", "192.0.2.11"), ("gz2", "zoneB", "192.0.2.12"))
CLIENT = "192.0.2.200"
T0 = time.monotonic()


def say(text):
    print(f"[{time.monotonic() - T0:6.2f}s] {text}", flush=True)


def zone_payload(alias, ip):
    return {
        "alias": alias,
        "hostname": alias,
        "brand": "joyent",
        "image_uuid": IMAGE,
        "max_physical_memory": 512,
        "nics": [
            {
                "nic_tag": "admin",
                "ip": ip,
                "netmask": "255.255.255.0",
                "primary": True,
                "allowed_ips": [VIP],
                "allow_mac_spoofing": True,
            }
        ],
    }


def poll(predicate, timeout, interval=0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    return None


def main():
    problem = simbed.unavailable()
    if problem:
        print(f"make demo {problem}", file=sys.stderr)
        return 1
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    simbed.sweep()
    bed = simbed.Bed(prefix="ucarpdemo")
    try:
        return run(bed)
    except KeyboardInterrupt:
        say("interrupted")
        return 130
    finally:
        say("removing the test bed (zones, LAN, client)")
        bed.destroy()


def run(bed):
    say("SmartOS UCARP test bed: two hypervisors (gz1, gz2) on one simulated LAN, TEST-NET-1 addresses")
    client = bed.host("client", f"{CLIENT}/24")
    say(f"a client host on the LAN at {CLIENT}")
    nodes = {}
    for gz_name, alias, ip in NODES:
        gz = bed.gz(gz_name)
        uuid = gz.create(zone_payload(alias, ip))
        say(f"{gz_name}: vmadm create -> {alias} {uuid} at {ip}, NIC allowed_ips [{VIP}]")
        start_by_hand(gz, uuid, ip, VIP, VHID, "s3cret")
        say(f"{alias}: pkgin install ucarp, vip-up/vip-down hooks (ifconfig net0:{VHID}), ucarp started (vhid {VHID})")
        nodes[alias] = (gz_name, gz, uuid)

    def holders():
        return [a for a, (_n, gz, uuid) in nodes.items() if holds_vip(gz, uuid, VIP)]

    def client_sees():
        if bed.in_host(client, "ping", "-c", "1", "-W", "1", VIP).returncode != 0:
            return None
        words = bed.in_host(client, "ip", "neigh", "show", VIP).stdout.split()
        return words[words.index("lladdr") + 1] if "lladdr" in words else None

    say("waiting for the CARP election (advbase 1 s x deadratio 3)...")
    master = poll(lambda: holders() if len(holders()) == 1 else None, 30)
    if not master:
        say(f"no single master after 30 s: holders {holders()}")
        return 1
    master = master[0]
    mac = poll(client_sees, 30)
    say(f"MASTER is {master}: it holds {VIP}; the client reaches the VIP at MAC {mac}")
    (backup,) = set(nodes) - {master}
    gz_name, gz, uuid = nodes[master]
    say(f"{gz_name}: vmadm stop {uuid}  ({master} dies abruptly: no down hook, no goodbye)")
    stopped = time.monotonic()
    gz.run("vmadm", "stop", uuid, check=True)
    taken = poll(lambda: holders() == [backup], 30, interval=0.05)
    took = time.monotonic() - stopped
    if not taken:
        say(f"{backup} did not take the VIP within 30 s")
        return 1
    say(f"{backup} holds {VIP} now: taken over {took:.1f} s after the stop")
    mac = poll(client_sees, 30)
    say(f"the client reaches the VIP again, now at {backup}'s MAC {mac}")
    say("done: failover without Salt, as the formula will keep it")
    return 0


if __name__ == "__main__":
    sys.exit(main())
