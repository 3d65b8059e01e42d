"""The master at scale: what the runner's pillar cache saves per event, with 8 hypervisors.

Builds a test bed with eight simulated hypervisors (``gz1`` ... ``gz8``, no
zones: only their minions matter here), a real salt-master with the
formula's reactor and a salt-minion per hypervisor (``demo/saltcluster.py``),
and a pillar of 32 clusters of two nodes spread over the eight (64 nodes).
Then, in bursts, every hypervisor sends one transition event at once
(one ``salt -L gz1,...,gz8 event.send ucarp/c00/master``: zone c00-a of
gz1 with a wrong VHID (a valid one, 250, but not the cluster's), so the runner checks each against its sender's
pillar, rejects it, gz1's for the VHID and the others' as not its host,
and fires ``ucarp/c00/alert/rejected`` without asking any minion
anything).  Bursts alternate:

* ``cold``: a pillar file is touched first (its mtime changes), so the
  runner must compile each sender's pillar again, as it did for every
  event before the cache;
* ``warm``: nothing changed, the cached model serves.

Per event: ``check_s``, from the event on the master's bus to its
``alert/rejected`` (the reactor, the runner's check, the fire).  Per burst:
``burst_s`` (the first event to the last alert) and the CPU the salt-master's
process tree used (``master_cpu_s``, from /proc).

Run as root: ``.venv/bin/python bench/pillar_cache.py --bursts 10``.
Results: ``bench/results/pillar_cache.json``.
"""

import argparse
import json
import os
import statistics
import sys
import time

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(BENCH_DIR)
sys.path.insert(0, os.path.join(REPO, "demo"))
sys.path.insert(0, os.path.join(REPO, "tests", "sim"))

from failover import BenchError, bed_ready, close_record, new_record, percentile, say  # noqa: E402
from saltcluster import SaltCluster, SaltError  # noqa: E402

from smartos_sim import bed as simbed  # noqa: E402

RESULTS = os.path.join(BENCH_DIR, "results", "pillar_cache.json")
HOSTS = tuple(f"gz{i}" for i in range(1, 9))
CLUSTERS = 32
UUID = "11111111-2222-3333-4444-555555555555"
EVENT_TIMEOUT = 120.0


def pillar():
    """32 clusters, node a on gz(i mod 8)+1 and node b on the next one."""
    clusters = {}
    for i in range(CLUSTERS):
        name = f"c{i:02d}"
        clusters[name] = {
            "vip": f"192.0.2.{100 + i}",
            "vhid": 101 + i,
            "password": f"scale-{i:02d}-S3cret",
            "nodes": {
                f"{name}-a": {"host": HOSTS[i % 8], "ip": f"192.0.2.{10 + i}"},
                f"{name}-b": {"host": HOSTS[(i + 1) % 8], "ip": f"192.0.2.{50 + i}"},
            },
        }
    return {"ucarp": {"clusters": clusters}}


def cpu_seconds(pid):
    """utime + stime of ``pid`` and every descendant (its workers, the reactor), in seconds."""
    children = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append((int(entry), int(fields[11]) + int(fields[12])))
    total, todo = 0, [pid]
    with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    total += int(fields[11]) + int(fields[12])
    while todo:
        for child, ticks in children.get(todo.pop(), []):
            total += ticks
            todo.append(child)
    return total / os.sysconf("SC_CLK_TCK")


def burst(cluster, bus, index, touch):
    """Every hypervisor sends one event at once; per event, its check time."""
    if touch:
        path = os.path.join(cluster.pillar_dir, "ucarp.sls")
        now = time.time()
        os.utime(path, (now, now))
    master_pid = cluster.pids["salt-master"]
    cpu0 = cpu_seconds(master_pid)
    started = time.time()
    # One publish: every hypervisor sends the same event at once. c00-a is
    # gz1's and the VHID is wrong: each sender is rejected after the check
    # against its pillar (gz1 for the VHID, the others as not its host).
    data = {"cluster": "c00", "zone": "c00-a", "zone_uuid": UUID, "role": "master", "seq": index + 1,
            "ts": int(started), "vip": "192.0.2.100", "vhid": 250}  # fmt: skip
    cluster.run_cli("salt", "--async", "-L", ",".join(HOSTS), "event.send", "ucarp/c00/master", json.dumps(data),
                    timeout=60)  # fmt: skip
    samples = []
    for host in HOSTS:
        sent = bus.wait("ucarp/c00/master", started, lambda e, h=host: e.data.get("id") == h, EVENT_TIMEOUT)
        done = bus.wait("ucarp/c00/alert/rejected", started, lambda e, h=host: e.data.get("sender") == h,
                        EVENT_TIMEOUT)  # fmt: skip
        if sent is None or done is None:
            raise BenchError(f"burst {index}: no event or no rejection for {host} within {EVENT_TIMEOUT:.0f}s")
        reason = done.data.get("reason", "")
        if "does not match pillar" not in reason and "hosted by gz1" not in reason:
            raise BenchError(f"burst {index}: {host} rejected before its pillar was read: {reason}")
        samples.append({"host": host, "sent": sent.seen, "done": done.seen, "check_s": round(done.seen - sent.seen, 4)})
    first = min(s["sent"] for s in samples)
    last = max(s["done"] for s in samples)
    time.sleep(1)  # the runner threads' last work (logging) in the CPU figure
    return {
        "burst": index,
        "kind": "cold" if touch else "warm",
        "burst_s": round(last - first, 4),
        "master_cpu_s": round(cpu_seconds(master_pid) - cpu0, 3),
        "events": samples,
    }


def summarise(values):
    if not values:
        return {"runs": 0}
    return {"runs": len(values), "min": round(min(values), 4), "p50": round(statistics.median(values), 4),
            "p95": round(percentile(values, 0.95), 4), "max": round(max(values), 4)}  # fmt: skip


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bursts", type=int, default=10, help="bursts of each kind, cold and warm (default 10)")
    parser.add_argument("--output", default=RESULTS, help=f"JSON results file (default {RESULTS})")
    args = parser.parse_args(argv)
    if not 1 <= args.bursts <= 200:
        parser.error("--bursts must be between 1 and 200")
    return args


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if not bed_ready("pillar_cache.py"):
        return 1
    record = new_record(
        "the runner's pillar cache: an event's check against the sender's pillar, cold and warm, 8 hypervisors",
        {"hypervisors": len(HOSTS), "clusters": CLUSTERS, "nodes": 2 * CLUSTERS, "bursts_each": args.bursts},
    )
    simbed.sweep()
    bed = simbed.Bed(prefix="ucarppillar")
    salt_cluster = None
    try:
        for host in HOSTS:
            bed.gz(host)
        salt_cluster = SaltCluster(bed, pillar(), minions=HOSTS)
        say(f"starting salt-master and {len(HOSTS)} salt-minions")
        salt_cluster.start(timeout=300)
        salt_cluster.salt_run("saltutil.sync_all")
        with salt_cluster.events() as bus:
            bursts = []
            burst(salt_cluster, bus, 0, touch=True)  # the first compile of each, not counted
            for index in range(1, 2 * args.bursts + 1):
                got = burst(salt_cluster, bus, index, touch=index % 2 == 1)
                say(f"burst {index} ({got['kind']}): {got['burst_s']:.2f}s, master CPU {got['master_cpu_s']:.2f}s, "
                    f"check p50 {statistics.median(e['check_s'] for e in got['events']):.3f}s")  # fmt: skip
                bursts.append(got)
    except KeyboardInterrupt:
        say("interrupted")
        return 130
    except (BenchError, SaltError) as exc:
        say(f"failed: {exc}")
        return 1
    finally:
        say("stopping the Salt daemons (by PID) and removing the test bed")
        if salt_cluster is not None:
            salt_cluster.stop()
        bed.destroy()
    summary = {}
    for kind in ("cold", "warm"):
        mine = [b for b in bursts if b["kind"] == kind]
        summary[kind] = {
            "check_s": summarise([e["check_s"] for b in mine for e in b["events"]]),
            "burst_s": summarise([b["burst_s"] for b in mine]),
            "master_cpu_s": summarise([b["master_cpu_s"] for b in mine]),
        }
    closing = close_record(record, args.output, summary=summary, bursts=bursts)
    print(json.dumps(summary, indent=1))
    print(f"\n{closing}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
