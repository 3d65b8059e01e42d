"""Planned maintenance vs. a crash, as a client sees it: the gap of each way a master goes.

Builds one test bed (two simulated hypervisors gz1 and gz2, a client host,
TEST-NET-1 addresses only), starts a real salt-master with the formula's
reactor and a salt-minion per hypervisor (``demo/saltcluster.py``) and
applies the formula with one cluster ``web``: VIP 192.0.2.100, VHID 101,
web-a on gz1, web-b on gz2, advbase 1, deadratio 3, every node at the
default advskew 1, no actions, a health check of the web service (which
makes the instance front it: it starts after it and stops before it). The
test bed's web service (``smartos_sim.vipapp``) runs in both zones, bound
to every address: a hot standby, so the gap measured is the VIP's alone.

Beside it, on the same hypervisors, the recipe's setup by hand (the
article's way, ``smartos_sim.recipe``): zones hand-a (gz1) and hand-b (gz2),
VIP 192.0.2.110, VHID 77, the same web service, ucarp started through
zlogin with its hooks, no SMF.

The client probes the VIP as ``bench/switchover.py`` does (a TCP connect
and ``GET /`` every 20 ms, 0.5 s to answer, the neighbour entry kept) and
the gap of a run is the same: the longest time between two answered probes
with misses between them, 0 when none was missed. Cases, each ``--runs``
times (default 10), alternating the master between the two zones:

* ``stop``: ``vmadm stop`` of the master's zone (clean), then ``vmadm start``;
* ``reboot``: ``vmadm reboot`` of the master's zone;
* ``disable``: ``svcadm disable`` of the master's ucarp instance, then enable;
* ``sick``: the web service stopped in the master (its health check fails),
  then started again;
* ``hypervisor``: a reboot of the master's hypervisor (its minion stopped
  and started, its zones shut down cleanly and booted again);
* ``rollout``: ``salt-run ucarp.rollout web`` after a new password in
  pillar (the master keeps the VIP: the gap is the time it did not answer);
* ``crash``: ``vmadm stop -F`` of the master's zone, for comparison;
* ``by-hand``: ``vmadm stop`` (clean) of the hand-made master's zone, then
  ``vmadm start`` and ucarp started by hand again.

Before each run the cluster has settled (the reactor answered every
transition, one master, no alert, every node healthy) and the master
answered every probe for 0.5 s; a run ends when the new master (the same
one for ``rollout``) has answered for 0.5 s. The first answers must come
from the old master and the last from the new one, else the run is an
error, not a sample.

Results: a table on stdout, every sample in ``bench/results/maintenance.json``.

Run as root: ``.venv/bin/python bench/maintenance.py --runs 10``.
"""

import argparse
import copy
import os
import signal
import sys
import time

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(BENCH_DIR)
sys.path.insert(0, os.path.join(REPO, "demo"))
sys.path.insert(0, os.path.join(REPO, "tests", "sim"))

from failover import BenchError, bed_ready, close_record, new_record, poll, say  # noqa: E402
from reaction import Node, apply_states, cluster_status, summarise, unanswered  # noqa: E402
from saltcluster import WEB, SaltCluster, SaltError  # noqa: E402
from switchover import Prober, analyse, app_ready, show_logs  # noqa: E402

from smartos_sim import bed as simbed  # noqa: E402
from smartos_sim import recipe, vipapp  # noqa: E402

RESULTS = os.path.join(BENCH_DIR, "results", "maintenance.json")
CLUSTER = "web"
SPEC = {k: v for k, v in WEB.items() if k not in ("on_master", "on_backup")}
SPEC["nodes"] = {alias: {"host": n["host"], "ip": n["ip"]} for alias, n in WEB["nodes"].items()}
SPEC["health"] = {"interval": 1, "fall": 2, "rise": 2, "checks": [{"service": vipapp.FMRI}]}
PASSWORDS = ("web-Maint-1", "web-Maint-2")
CLIENT = "192.0.2.200"
HAND = {"hand-a": ("gz1", "192.0.2.21"), "hand-b": ("gz2", "192.0.2.22")}
HAND_VIP, HAND_VHID, HAND_PASSWORD = "192.0.2.110", 77, "hand-Secret"
IMAGE = "d34c301e-10c3-11e4-9b79-5f67ca448df0"
CASES = ("stop", "reboot", "disable", "sick", "hypervisor", "rollout", "crash", "by-hand")
SETTLE_TIMEOUT = 180.0
MOVE_TIMEOUT = 90.0


def pillar(password):
    spec = dict(SPEC, password=password)
    return {"ucarp": {"clusters": {CLUSTER: spec}}, "beacons": {"ucarp": [{"interval": 1}]}}


def settled(cluster, bus, after):
    """Wait until the reactor answered every transition, one master, no alert, every node healthy: the master."""

    def ready():
        if unanswered(bus, CLUSTER, after):
            return None
        info = cluster_status(cluster)
        nodes = [info.get("master"), *info.get("backups", [])]
        good = info.get("master") and not info.get("alert") and all(
            n and n.get("service") == "online" and (n.get("health") or {}).get("state") == "healthy" for n in nodes
        )  # fmt: skip
        return info["master"]["zone"] if good else None

    found = poll(ready, SETTLE_TIMEOUT, 0.5)
    if found is None:
        raise BenchError(f"not settled after {SETTLE_TIMEOUT:.0f}s: {cluster_status(cluster)}")
    return found


def ucarp_state(node):
    return node.gz.zlogin(node.uuid, f"svcs -H -o state svc:/network/ucarp:{CLUSTER}", timeout=20).stdout.strip()


class Formula:
    """The formula's cluster: what each case does to its master, and how it comes back."""

    def __init__(self, bed, cluster, bus, client, nodes):
        self.bed, self.cluster, self.bus, self.client, self.nodes = bed, cluster, bus, client, nodes
        self.password = 0

    def act(self, case, master):
        node = self.nodes[master]
        if case == "stop":
            node.gz.run("vmadm", "stop", node.uuid, check=True, timeout=120)
        elif case == "crash":
            node.gz.run("vmadm", "stop", "-F", node.uuid, check=True)
        elif case == "reboot":
            node.gz.run("vmadm", "reboot", node.uuid, check=True, timeout=180)
        elif case == "disable":
            node.gz.zlogin(node.uuid, f"svcadm disable -s svc:/network/ucarp:{CLUSTER}", timeout=120)
        elif case == "sick":
            node.gz.zlogin(node.uuid, f"svcadm disable -s {vipapp.FMRI}", timeout=60)
        elif case == "hypervisor":
            node.gz.reboot(daemons=[self.cluster.minion(WEB["nodes"][master]["host"])])
        elif case == "rollout":
            self.password = 1 - self.password
            self.cluster.set_pillar(pillar(PASSWORDS[self.password]))
            self.cluster.salt("gz*", "saltutil.refresh_pillar")
            ret = self.cluster.salt_run("ucarp.rollout", CLUSTER, timeout=300)
            if not isinstance(ret, dict) or ret.get("result") is not True:
                raise BenchError(f"salt-run ucarp.rollout {CLUSTER}: {ret}")
            return ret.get("timings")
        return None

    def restore(self, case, master, after):
        node = self.nodes[master]
        if case in ("stop", "crash"):
            node.gz.run("vmadm", "start", node.uuid, check=True)
        elif case == "disable":
            node.gz.zlogin(node.uuid, f"svcadm enable -s svc:/network/ucarp:{CLUSTER}", timeout=120)
        elif case == "sick":
            node.gz.zlogin(node.uuid, f"svcadm enable -s {vipapp.FMRI}", timeout=60)
        if poll(lambda: ucarp_state(node) == "online", SETTLE_TIMEOUT, 0.5) is None:
            raise BenchError(f"{master}: its ucarp instance is {ucarp_state(node)!r}, not online again")
        app_ready(self.bed, self.client, node)
        return settled(self.cluster, self.bus, after)


class ByHand:
    """The recipe's setup: ucarp through zlogin, no SMF; a clean stop, then everything by hand again."""

    def __init__(self, bed, client):
        self.bed, self.client, self.nodes = bed, client, {}
        for alias, (gz_name, ip) in HAND.items():
            gz = bed.gz(gz_name)
            nic = {"nic_tag": "admin", "ip": ip, "netmask": "255.255.255.0", "primary": True,
                   "allowed_ips": [HAND_VIP], "allow_mac_spoofing": True}  # fmt: skip
            uuid = gz.create({"alias": alias, "hostname": alias, "brand": "joyent", "image_uuid": IMAGE,
                              "max_physical_memory": 512, "nics": [nic]})  # fmt: skip
            vipapp.install(gz, uuid, HAND_VIP, bind="0.0.0.0")
            gz.zlogin(uuid, f"svcadm enable -s {vipapp.FMRI}")
            self.nodes[alias] = (gz, uuid, ip)
        for alias in self.nodes:
            self.start(alias)

    def start(self, alias):
        gz, uuid, ip = self.nodes[alias]
        recipe.start_by_hand(gz, uuid, ip, HAND_VIP, HAND_VHID, HAND_PASSWORD)

    def holders(self):
        return [a for a, (gz, uuid, _ip) in self.nodes.items() if recipe.holds_vip(gz, uuid, HAND_VIP)]

    def recover(self):
        """Start ucarp by hand again where it does not run (the ``hypervisor`` case rebooted a zone: nothing
        starts it by itself there); the master."""
        for alias, (gz, uuid, _ip) in self.nodes.items():
            if f"--vhid={HAND_VHID}" not in gz.zlogin(uuid, "ps -eo args").stdout:
                say(f"{alias}: ucarp does not run (its zone rebooted): started by hand again, as the recipe says")
                self.start(alias)
        return self.master()

    def master(self):
        found = poll(lambda: (h := self.holders()) and len(h) == 1 and h[0], SETTLE_TIMEOUT, 0.5)
        if not found:
            raise BenchError(f"the hand-made cluster has no single master: {self.holders()}")
        return found

    def act(self, master):
        gz, uuid, _ip = self.nodes[master]
        gz.run("vmadm", "stop", uuid, check=True, timeout=120)

    def restore(self, master):
        gz, uuid, _ip = self.nodes[master]
        gz.run("vmadm", "start", uuid, check=True)
        if poll(lambda: gz.zlogin(uuid, f"svcs -H -o state {vipapp.FMRI}").stdout.strip() == "online", 60, 0.5) is None:
            raise BenchError(f"{master}: the web service did not come back")
        self.start(master)  # by hand, as the recipe says
        return self.master()


def run(prober_vip, client, old, act, expect_new):
    """Probe while ``act()`` runs; the gap and what the client saw (times relative to the action's start)."""
    with Prober(client, prober_vip) as prober:
        start = prober.wait_steady(old)
        t0 = time.monotonic()
        extra = act()
        new = expect_new()
        if poll(lambda: prober.first_answer(new, t0 if new != old else start), MOVE_TIMEOUT, 0.05) is None:
            raise BenchError(f"{new} did not answer on {prober_vip} within {MOVE_TIMEOUT:.0f}s")
        prober.wait_steady(new)
        t_end = time.monotonic()
        samples = prober.done()
    found = analyse(samples, start, old, new, t0)
    return dict(found, act_s=round(t_end - t0, 3), extra=extra), new


def measure(bed, holder, args, results):
    client = bed.host("client", f"{CLIENT}/24")
    cluster = SaltCluster(bed, pillar(PASSWORDS[0]), minions=("gz1", "gz2"))
    holder.append(cluster)
    say("starting salt-master and salt-minion gz1, gz2")
    cluster.start(timeout=180)
    with cluster.events() as bus:
        say("salt-run saltutil.sync_all; salt 'gz*' saltutil.sync_all; state.apply ucarp.zones")
        cluster.salt_run("saltutil.sync_all")
        cluster.salt("gz*", "saltutil.sync_all")
        apply_states(cluster, "state.apply", "ucarp.zones")
        nodes = {alias: Node(bed, alias) for alias in SPEC["nodes"]}
        for node in nodes.values():
            vipapp.install(node.gz, node.uuid, SPEC["vip"], bind="0.0.0.0")
            node.gz.zlogin(node.uuid, f"svcadm enable -s {vipapp.FMRI}")
        started = time.time()
        say("state.highstate (ucarp, with the web service's health check)")
        apply_states(cluster, "state.highstate")
        for node in nodes.values():
            app_ready(bed, client, node)
        formula = Formula(bed, cluster, bus, client, nodes)
        master = settled(cluster, bus, started)
        say("the recipe by hand beside it: hand-a, hand-b (VIP 192.0.2.110)")
        hand = ByHand(bed, client)
        hand_master = hand.master()
        for case in args.cases:
            if case == "by-hand":
                hand_master = hand.recover()
            for index in range(1, args.runs + 1):
                if case == "by-hand":
                    other = next(a for a in HAND if a != hand_master)
                    sample, new = run(
                        HAND_VIP, client, hand_master, lambda m=hand_master: hand.act(m), lambda o=other: o
                    )
                    hand_master = hand.restore(hand_master) if new != hand_master else hand_master
                    hand_master = hand.master()
                else:
                    other = next(a for a in SPEC["nodes"] if a != master)
                    after = time.time()
                    expect = (lambda m=master: m) if case == "rollout" else (lambda o=other: o)
                    sample, new = run(SPEC["vip"], client, master, lambda c=case, m=master: formula.act(c, m), expect)
                    master = formula.restore(case, master, after)
                    if master != new:
                        raise BenchError(f"{case}: {new} took the VIP, but {master} holds it once settled")
                sample.update(case=case, run=index)
                results[case].append(sample)
                say(f"{case} {index}: gap {sample['gap_s'] * 1000:.0f} ms ({sample['missed']}/{sample['probes']} "
                    f"probes missed), {' -> '.join(sample['answerers'])}")  # fmt: skip


def table(summary):
    lines = ["| case | runs | gap min (s) | gap p50 (s) | gap p95 (s) | gap max (s) |", "|---|---|---|---|---|---|"]
    for case, s in summary.items():
        if not s["runs"]:
            continue
        lines.append(f"| {case} | {s['runs']} | {s['min']:.3f} | {s['p50']:.3f} | {s['p95']:.3f} | {s['max']:.3f} |")
    return "\n".join(lines)


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10, help="runs of each case (default 10)")
    parser.add_argument(
        "--cases", default=",".join(CASES), help=f"comma-separated, of {', '.join(CASES)} (default all)"
    )
    parser.add_argument("--output", default=RESULTS, help=f"JSON results file (default {RESULTS})")
    args = parser.parse_args(argv)
    args.cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    if not 1 <= args.runs <= 100:
        parser.error("--runs must be between 1 and 100")
    unknown = sorted(set(args.cases) - set(CASES))
    if unknown:
        parser.error(f"unknown case(s): {', '.join(unknown)}")
    return args


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if not bed_ready("maintenance.py"):
        return 1
    record = new_record(
        "planned maintenance vs a crash: the VIP not answering a client, per way the master goes",
        {
            "cluster": {k: v for k, v in SPEC.items() if k != "password"},
            "by_hand": {"vip": HAND_VIP, "vhid": HAND_VHID, "nodes": {a: list(v) for a, v in HAND.items()}},
            "probe": f"TCP connect + HTTP/1.0 GET to the VIP:{vipapp.PORT} from {CLIENT}, every 20 ms, 0.5 s",
            "cases": args.cases,
            "runs": args.runs,
        },
    )  # fmt: skip
    simbed.sweep()
    bed = simbed.Bed(prefix="ucarpmaint")
    for gz_name in ("gz1", "gz2"):
        bed.gz(gz_name).import_image(IMAGE)  # the formula imports it too; the hand-made zones need it first
    holder, results = [], {case: [] for case in args.cases}
    began = time.monotonic()
    try:
        measure(bed, holder, args, results)
    except KeyboardInterrupt:
        say("interrupted")
        return 130
    except (BenchError, SaltError) as exc:
        say(f"failed: {exc}")
        if holder:
            show_logs(holder[0])
        return 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        say("stopping the Salt daemons (by PID) and removing the test bed")
        if holder:
            holder[0].stop()
        bed.destroy()
    summary = {case: summarise(results[case], "gap_s") for case in args.cases}
    closing = close_record(record, args.output, duration_s=round(time.monotonic() - began, 1), summary=summary,
                           samples=copy.deepcopy(results))  # fmt: skip
    print(table(summary))
    print(f"{closing}; took {record['duration_s']:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
