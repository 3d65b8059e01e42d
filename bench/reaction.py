"""Reaction time: the backup taking the VIP -> the reactor's ``failover/complete`` on the master bus.

Builds one test bed (two simulated hypervisors gz1 and gz2, a client host,
TEST-NET-1 addresses only), starts a real salt-master with the formula's
reactor and a salt-minion per hypervisor (``demo/saltcluster.py``), applies
the formula with the demo's cluster ``web`` (VIP 192.0.2.100, VHID 101,
web-a on gz1, web-b on gz2, ``on_master`` svc_enable / ``on_backup``
svc_disable of a small web service, the ``ucarp`` beacon every second and
the ``ucarp`` engine every 0.1 s; ``--no-engine``: the beacon alone) and
measures, for each run:

* ``takeover``: the moment the backup zone holds the VIP, from the client's
  view: probes from the client (neighbour entry flushed, one ping), one
  started every 40 ms, until the VIP answers from the backup's MAC (as
  ``bench/failover.py`` does); the first CARP advert of the new master, seen
  by a packet socket on the client, is kept as a cross-check;
* ``seen``: the moment the reactor's ``ucarp/web/failover/complete`` for
  that transition (the backup zone, role master) is read from the master's
  event bus, in this process.

``seen - takeover`` is the reaction time.  The event's own timings split it:
``received`` (the runner starts), ``checked`` (exactly one holder of the VIP
found), ``actions_done`` (on_master in the holder, on_backup in the other
zone; the runner fires the event right after), all ``time.time()`` on the
master, the same clock as this process.  The transition's
own ``ts`` is the hook's ``date +%s``: whole seconds, kept but not used for
the breakdown.

After each run the stopped zone is started again; the next run begins once
its ucarp instance is online, the reactor has answered its (backup)
transition and ``salt-run ucarp.status`` shows one master and no alert.

Run as root: ``.venv/bin/python bench/reaction.py --runs 10`` (and, for the
beacon alone, ``--no-engine --output bench/results/reaction-beacon.json``).
"""

import argparse
import os
import random
import signal
import statistics
import sys
import time

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(BENCH_DIR)
sys.path.insert(0, os.path.join(REPO, "demo"))
sys.path.insert(0, os.path.join(REPO, "tests", "sim"))

from failover import (  # noqa: E402
    AdvertLog,
    BenchError,
    Probe,
    bed_ready,
    close_record,
    new_record,
    percentile,
    poll,
    say,
)
from saltcluster import ENGINE, PILLAR, WEB, SaltCluster, SaltError, install_app, unanswered, zone_uuid  # noqa: E402

from smartos_sim import bed as simbed  # noqa: E402

RESULTS = os.path.join(BENCH_DIR, "results", "reaction.json")
CLUSTER = "web"
CLIENT = "192.0.2.200"
PROBE_INTERVAL = 0.04
TAKEOVER_TIMEOUT = 30.0
EVENT_TIMEOUT = 90.0
SETTLE_TIMEOUT = 120.0
MONO_TO_EPOCH = time.time() - time.monotonic()  # CLOCK_MONOTONIC is the same in every namespace
METRICS = ("reaction_s", "delivery_s", "beacon_s", "reactor_s", "check_s", "actions_s", "fire_s", "advert_to_seen_s")


class Node:
    """A zone of the cluster: alias, hypervisor, UUID, IP and MAC."""

    def __init__(self, bed, alias):
        spec = WEB["nodes"][alias]
        self.alias, self.ip, self.gz = alias, spec["ip"], bed.gz(spec["host"])
        self.uuid = zone_uuid(bed, alias)
        self.mac = self.gz.get(self.uuid)["nics"][0]["mac"].lower()

    def svc_state(self):
        proc = self.gz.zlogin(self.uuid, f"svcs -H -o state svc:/network/ucarp:{CLUSTER}", timeout=20)
        return proc.stdout.strip() if proc.returncode == 0 else None


# -- setting up ----------------------------------------------------------------


def apply_states(cluster, *args):
    results = cluster.salt("gz*", *args)
    for minion, states in results.items():
        if not isinstance(states, dict):
            raise BenchError(f"{minion}: {' '.join(args)}: {states}")
        failed = [k for k, s in states.items() if s.get("result") is False]
        if failed:
            raise BenchError(f"{minion}: {' '.join(args)}: failed states {failed}")


def setup(bed, cluster, bus):
    say("salt-run saltutil.sync_all; salt 'gz*' saltutil.sync_all")
    cluster.salt_run("saltutil.sync_all")
    cluster.salt("gz*", "saltutil.sync_all")
    say("state.apply ucarp.zones, the web service in each zone, state.highstate")
    apply_states(cluster, "state.apply", "ucarp.zones")
    for alias in WEB["nodes"]:
        install_app(bed, alias)
    started = time.time()
    apply_states(cluster, "state.highstate")
    nodes = {alias: Node(bed, alias) for alias in WEB["nodes"]}
    wait_settled(cluster, bus, started)
    return nodes


def cluster_status(cluster):
    return cluster.salt_run("ucarp.status").get(CLUSTER, {})


def wait_settled(cluster, bus, after):
    """Wait until the reactor answered every transition and the status shows one master, no alert."""

    def settled():
        if unanswered(bus, CLUSTER, after):
            return None
        info = cluster_status(cluster)
        return info if info.get("master") and not info.get("alert") else None

    info = poll(settled, SETTLE_TIMEOUT, 0.5)
    if info is None:
        raise BenchError(f"not settled after {SETTLE_TIMEOUT:.0f}s: pending {unanswered(bus, CLUSTER, after)}")
    return info["master"]["zone"]


# -- one run -------------------------------------------------------------------------


def watch_takeover(probe, backup, t0):
    """Probe until the VIP answers from ``backup``'s MAC: (epoch of t1, start of the last failed probe)."""
    last_miss = None
    for _ in range(int(TAKEOVER_TIMEOUT / PROBE_INTERVAL) + 2):
        start = time.time()
        if probe.mac() == backup.mac:
            return time.time(), last_miss
        last_miss = start
        if start - t0 >= TAKEOVER_TIMEOUT:
            break
        time.sleep(max(0.0, start + PROBE_INTERVAL - time.time()))
    raise BenchError(f"{backup.alias} did not answer for the VIP within {TAKEOVER_TIMEOUT:.0f}s")


def revive(cluster, bus, node, stopped):
    """``vmadm start`` the zone stopped at ``stopped`` (epoch); wait until it is a healthy backup,
    its backup transition has been answered and the cluster has settled.

    The transition is recorded when its ucarp runs the down hook: at the stop
    (a clean shutdown, ``--shutdown``) or at the start (the bed kills the zone).
    """
    started = time.time()
    node.gz.run("vmadm", "start", node.uuid, check=True)
    if poll(lambda: node.svc_state() == "online", SETTLE_TIMEOUT, 0.2) is None:
        raise BenchError(f"{node.alias}: svc:/network/ucarp:{CLUSTER} not online again: {node.svc_state()!r}")
    own = lambda e: (e.data.get("data") or {}).get("zone") == node.alias  # noqa: E731
    if bus.wait(f"ucarp/{CLUSTER}/backup", stopped, own, timeout=SETTLE_TIMEOUT) is None:
        raise BenchError(f"{node.alias}: no backup transition reported after it started again")
    holder = wait_settled(cluster, bus, started)
    if holder == node.alias:
        raise BenchError(f"{node.alias} took the VIP back after it started again")


def one_run(ctx, index, master_alias):
    """Stop the master, time the reaction to the backup's takeover, revive the stopped zone."""
    cluster, bus, nodes, probe, adverts = ctx
    master = nodes[master_alias]
    (backup,) = [n for a, n in nodes.items() if a != master_alias]
    jitter = random.uniform(0, 1)  # the stop's phase in the advert and beacon cycles: uniform
    time.sleep(jitter)
    t0 = time.time()
    master.gz.run("vmadm", "stop", "-F", master.uuid, check=True)
    takeover, last_miss = watch_takeover(probe, backup, t0)
    took_over = lambda e: e.data["transition"]["zone"] == backup.alias and e.data["transition"]["role"] == "master"  # noqa: E731
    done = bus.wait(f"ucarp/{CLUSTER}/failover/complete", t0, took_over, timeout=EVENT_TIMEOUT)
    if done is None:
        raise BenchError(f"no failover/complete for {backup.alias} within {EVENT_TIMEOUT:.0f}s")
    advert = adverts.first_from(backup.ip, t0 - MONO_TO_EPOCH)
    tr = done.data["transition"]
    same = lambda e: (e.data.get("data") or {}).get("zone") == tr["zone"] and e.data["data"].get("seq") == tr["seq"]  # noqa: E731
    sent = bus.wait(f"ucarp/{CLUSTER}/master", t0, same, timeout=1)
    sample = make_sample(index, master, backup, (jitter, t0, last_miss, takeover), done, advert)
    sample["beacon_s"] = None if sent is None else round(sent.seen - takeover, 4)
    sample["via"] = None if sent is None else sent.data["data"].get("via")
    sample["reactor_s"] = None if sent is None else round(done.data["timings"]["received"] - sent.seen, 4)
    say(
        f"run {index}: stopped {master.alias}, {backup.alias} took the VIP {takeover - t0:.2f}s later; "
        f"failover/complete {sample['reaction_s']:.2f}s after that (via {sample['via']}, "
        f"delivery {sample['delivery_s']:.2f}, "
        f"check {sample['check_s']:.2f}, actions {sample['actions_s']:.2f})"
    )
    revive(cluster, bus, master, t0)
    return sample, backup.alias


def make_sample(index, master, backup, times, done, advert):
    jitter, t0, last_miss, takeover = times
    t = done.data["timings"]
    advert_epoch = None if advert is None else advert + MONO_TO_EPOCH
    return {
        "run": index,
        "stopped": master.alias,
        "backup": backup.alias,
        "jitter_s": round(jitter, 4),
        "t0": round(t0, 4),
        "takeover_s": round(takeover - t0, 4),
        "last_failed_probe_s": None if last_miss is None else round(last_miss - t0, 4),
        "first_advert_s": None if advert_epoch is None else round(advert_epoch - t0, 4),
        "transition": done.data["transition"],
        "timings": t,
        "seen_s": round(done.seen - t0, 4),
        "reaction_s": round(done.seen - takeover, 4),
        "delivery_s": round(t["received"] - takeover, 4),
        "check_s": round(t["checked"] - t["received"], 4),
        "actions_s": round(t["actions_done"] - t["checked"], 4),
        "fire_s": round(done.seen - t["actions_done"], 4),
        "advert_to_seen_s": None if advert_epoch is None else round(done.seen - advert_epoch, 4),
        "actions": [{k: a.get(k) for k in ("zone", "action", "ok")} for a in done.data.get("actions", [])],
    }


# -- figures -------------------------------------------------------------------------


def summarise(samples, key):
    values = [s[key] for s in samples if s.get(key) is not None]
    if not values:
        return {"runs": 0}
    figures = {
        "min": min(values),
        "p50": statistics.median(values),
        "p95": percentile(values, 0.95),
        "max": max(values),
    }
    return {"runs": len(values), **{k: round(v, 4) for k, v in figures.items()}}


LABELS = {
    "reaction_s": "reaction: takeover -> failover/complete seen",
    "delivery_s": "  delivery: takeover -> runner received",
    "beacon_s": "    engine or beacon + bus: takeover -> ucarp/web/master seen",
    "reactor_s": "    reactor: ucarp/web/master seen -> runner received",
    "check_s": "  holder check: received -> checked",
    "actions_s": "  actions (on_master, on_backup): checked -> actions_done",
    "fire_s": "  fire + read: actions_done -> seen",
    "advert_to_seen_s": "cross-check: first advert of the new master -> seen",
}


def table(summary):
    lines = ["| figure | runs | min (s) | p50 (s) | p95 (s) | max (s) |", "|---|---|---|---|---|---|"]
    for key in METRICS:
        s = summary[key]
        if not s["runs"]:
            continue
        lines.append(
            f"| {LABELS[key]} | {s['runs']} | {s['min']:.2f} | {s['p50']:.2f} | {s['p95']:.2f} | {s['max']:.2f} |"
        )
    return "\n".join(lines)


# -- main ----------------------------------------------------------------------------


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10, help="failovers to measure (default 10)")
    parser.add_argument("--output", default=RESULTS, help=f"JSON results file (default {RESULTS})")
    parser.add_argument("--no-engine", dest="engine", action="store_false",
                        help="no ucarp engine on the minions: the beacon alone delivers")  # fmt: skip
    args = parser.parse_args(argv)
    if not 1 <= args.runs <= 1000:
        parser.error("--runs must be between 1 and 1000")
    return args


def measure(bed, holder, runs, engine):
    client = bed.host("client", f"{CLIENT}/24")
    adverts = AdvertLog(client)
    try:
        cluster = SaltCluster(bed, PILLAR, minions=("gz1", "gz2"), engine=engine)
        holder.append(cluster)
        say("starting salt-master and salt-minion gz1, gz2")
        cluster.start(timeout=180)
        with cluster.events() as bus:
            nodes = setup(bed, cluster, bus)
            master = wait_settled(cluster, bus, 0.0)
            say(f"set up; {master} holds the VIP; {runs} runs")
            ctx = (cluster, bus, nodes, Probe(bed, client), adverts)
            samples = []
            for index in range(1, runs + 1):
                sample, master = one_run(ctx, index, master)
                samples.append(sample)
            return samples
    finally:
        adverts.close()


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if not bed_ready("reaction.py"):
        return 1
    record = new_record(
        "reaction: backup takes the VIP (client's view) -> ucarp/web/failover/complete on the master bus",
        {
            "cluster": {k: v for k, v in WEB.items() if k != "password"},
            "beacon_interval_s": 1,
            "engine_interval_s": ENGINE["engines"][0]["ucarp"]["interval"] if args.engine else None,
            "probe_interval_s": PROBE_INTERVAL,
            "event_timeout_s": EVENT_TIMEOUT,
        },
    )  # fmt: skip
    simbed.sweep()
    bed = simbed.Bed(prefix="ucarpreact")
    holder = []
    try:
        samples = measure(bed, holder, args.runs, args.engine)
    except KeyboardInterrupt:
        say("interrupted")
        return 130
    except (BenchError, SaltError) as exc:
        say(f"failed: {exc}")
        return 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        say("stopping the Salt daemons (by PID) and removing the test bed")
        if holder:
            holder[0].stop()
        bed.destroy()
    summary = {key: summarise(samples, key) for key in METRICS}
    closing = close_record(record, args.output, summary=summary, samples=samples)
    print(table(summary))
    print(f"\n{closing}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
