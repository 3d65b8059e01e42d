"""
Scale: how the formula's costs grow with the number of clusters.

For each size N (``--sizes``, default 1, 4, 8, 16) it builds a fresh test
bed with two simulated hypervisors, a real salt-master with the formula's
reactor and a salt-minion per hypervisor (``demo/saltcluster.py``), and a
pillar of N clusters ``c00`` ... ``c<N-1>``: each a VIP (192.0.2.100 + i),
a VHID (101 + i) and a node on each hypervisor (one zone per node, so N
zones per hypervisor, 2N in all), no actions, the beacon every second.
Then it times, as an operator would see them:

* ``zones_s``: ``salt 'gz*' state.apply ucarp.zones`` (vmadm creates the
  zones);
* ``first_apply_s``: the first ``state.highstate`` (pkgin, files, SMF
  manifest, N instances online per hypervisor);
* ``settled_s``: from the start of that highstate until every cluster has
  exactly one master in ``salt-run ucarp.status``, no alert, and the
  reactor has answered every transition the beacons sent (3N or so: each
  node's first backup record, each master's);
* ``noop_apply_s``: a second ``state.highstate``, which must change nothing
  (the cost of a periodic highstate on a converged hypervisor);
* ``status_s``: ``salt-run ucarp.status`` (median of three);
* ``minion_cpu_pct``: the CPU the busier salt-minion (its whole process
  tree: the minion, where the beacon runs every second, and its jobs) uses
  over 30 s of nothing happening, in percent of one CPU.

Results: a table on stdout, every figure in ``bench/results/scale.json``.

Run as root: ``.venv/bin/python bench/scale.py``.
"""

import argparse
import os
import statistics
import sys
import time

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(BENCH_DIR)
sys.path.insert(0, os.path.join(REPO, "demo"))
sys.path.insert(0, os.path.join(REPO, "tests", "sim"))

from failover import BenchError, bed_ready, close_record, new_record, poll, say  # noqa: E402
from saltcluster import SaltCluster, SaltError, unanswered  # noqa: E402

from smartos_sim import bed as simbed  # noqa: E402

RESULTS = os.path.join(BENCH_DIR, "results", "scale.json")
MAX_CLUSTERS = 40  # the address plan below stays inside 192.0.2.0/24
SETTLE_TIMEOUT = 600.0
IDLE_S = 30.0
FIGURES = ("zones_s", "first_apply_s", "settled_s", "noop_apply_s", "status_s", "minion_cpu_pct")


def pillar(size):
    """N clusters, each with a node on gz1 and one on gz2."""
    clusters = {}
    for i in range(size):
        name = f"c{i:02d}"
        clusters[name] = {
            "vip": f"192.0.2.{100 + i}",
            "vhid": 101 + i,
            "password": f"scale-{i:02d}-S3cret",
            "zone": {"max_physical_memory": 256, "nic_tag": "admin"},
            "nodes": {
                f"{name}-a": {"host": "gz1", "ip": f"192.0.2.{10 + i}"},
                f"{name}-b": {"host": "gz2", "ip": f"192.0.2.{50 + i}"},
            },
        }
    return {"ucarp": {"clusters": clusters}, "beacons": {"ucarp": [{"interval": 1}]}}


def timed_apply(cluster, *args):
    """Apply on every hypervisor: (seconds, states changed); raises on a failed state."""
    started = time.monotonic()
    results = cluster.salt("gz*", *args, timeout=1800)
    took = time.monotonic() - started
    changed = 0
    for minion, states in results.items():
        if not isinstance(states, dict):
            raise BenchError(f"{minion}: {' '.join(args)}: {states}")
        failed = [k for k, s in states.items() if s.get("result") is False]
        if failed:
            raise BenchError(f"{minion}: {' '.join(args)}: failed states {failed[:5]}")
        changed += sum(1 for s in states.values() if s.get("changes"))
    return took, changed


def settled(cluster, bus, names, after):
    """True once every cluster has one master, no alert, and no transition waits for the reactor."""
    if any(unanswered(bus, name, after) for name in names):
        return False
    report = cluster.salt_run("ucarp.status", timeout=600)
    return all(report.get(n, {}).get("master") and not report[n].get("alert") for n in names)


def _stat(pid):
    """(ppid, CPU seconds of the process and of its reaped children) from /proc/<pid>/stat."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return int(fields[1]), sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def cpu_seconds(root):
    """CPU seconds used so far by ``root``'s process tree (a salt-minion runs the
    minion itself, and so the beacon, in a child process; jobs in more)."""
    stats = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                stats[int(name)] = _stat(name)
            except (OSError, ValueError):
                continue  # gone meanwhile
    tree, todo = set(), [root]
    while todo:
        pid = todo.pop()
        tree.add(pid)
        todo += [p for p, (ppid, _) in stats.items() if ppid == pid and p not in tree]
    return sum(stats[p][1] for p in tree if p in stats)


def measure_size(size):
    """Build a bed with ``size`` clusters, time each step, take it all down again."""
    say(f"--- {size} cluster(s): {2 * size} zones on two hypervisors")
    simbed.sweep()
    bed = simbed.Bed(prefix="ucarpscale")
    cluster = None
    try:
        cluster = SaltCluster(bed, pillar(size))
        cluster.start()
        cluster.salt_run("saltutil.sync_all")
        cluster.salt("gz*", "saltutil.sync_all")
        names = sorted(pillar(size)["ucarp"]["clusters"])
        sample = {"clusters": size, "zones": 2 * size}
        with cluster.events() as bus:
            sample["zones_s"], _ = timed_apply(cluster, "state.apply", "ucarp.zones")
            say(f"state.apply ucarp.zones: {sample['zones_s']:.1f}s")
            started_epoch, started = time.time(), time.monotonic()
            sample["first_apply_s"], sample["first_apply_changed"] = timed_apply(cluster, "state.highstate")
            say(f"first highstate: {sample['first_apply_s']:.1f}s, {sample['first_apply_changed']} states changed")
            if not poll(lambda: settled(cluster, bus, names, started_epoch), SETTLE_TIMEOUT, 1.0):
                raise BenchError(f"{size} clusters not settled within {SETTLE_TIMEOUT:.0f}s")
            sample["settled_s"] = time.monotonic() - started
            say(f"every cluster has one master and every transition its reaction: {sample['settled_s']:.1f}s")
            sample["noop_apply_s"], changed = timed_apply(cluster, "state.highstate")
            if changed:
                raise BenchError(f"the second highstate changed {changed} states; it must change none")
            say(f"second highstate (nothing to change): {sample['noop_apply_s']:.1f}s")
            took = []
            for _ in range(3):
                t0 = time.monotonic()
                report = cluster.salt_run("ucarp.status", timeout=600)
                took.append(time.monotonic() - t0)
                if sorted(report) != names:
                    raise BenchError(f"ucarp.status lists {sorted(report)}, not the {size} clusters")
            sample["status_s"] = statistics.median(took)
            say(f"salt-run ucarp.status: {sample['status_s']:.2f}s (median of 3)")
            minions = [pid for name, pid in cluster.pids.items() if name.startswith("salt-minion")]
            before = {pid: cpu_seconds(pid) for pid in minions}
            t0 = time.monotonic()
            time.sleep(IDLE_S)  # a measurement window, not a wait for a condition
            span = time.monotonic() - t0
            used = max(cpu_seconds(pid) - before[pid] for pid in minions)
            sample["minion_cpu_pct"] = 100.0 * used / span
            say(f"busier salt-minion, {IDLE_S:.0f}s idle: {sample['minion_cpu_pct']:.1f}% of a CPU")
        return {k: round(v, 3) if isinstance(v, float) else v for k, v in sample.items()}
    finally:
        if cluster is not None:
            cluster.stop()
        bed.destroy()


def table(samples):
    head = "| clusters | zones | " + " | ".join(FIGURES) + " |"
    rows = [head, "|" + "---|" * (len(FIGURES) + 2)]
    for s in samples:
        rows.append(f"| {s['clusters']} | {s['zones']} | " + " | ".join(f"{s[k]:.2f}" for k in FIGURES) + " |")
    return "\n".join(rows)


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--sizes", default="1,4,8,16", help="numbers of clusters to measure (default 1,4,8,16)")
    parser.add_argument("--output", default=RESULTS, help=f"JSON results file (default {RESULTS})")
    args = parser.parse_args(argv)
    try:
        args.sizes = [int(s) for s in args.sizes.split(",")]
    except ValueError:
        parser.error(f"--sizes: a comma-separated list of numbers, not {args.sizes!r}")
    if any(not 1 <= s <= MAX_CLUSTERS for s in args.sizes):
        parser.error(f"--sizes: each between 1 and {MAX_CLUSTERS}")
    return args


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if not bed_ready("scale.py"):
        return 1
    record = new_record(
        "scale: apply, convergence, status and beacon cost against the number of clusters",
        {"sizes": args.sizes, "beacon_interval_s": 1, "idle_window_s": IDLE_S, "nodes_per_cluster": 2},
    )
    samples = []
    try:
        for size in args.sizes:
            samples.append(measure_size(size))
    except KeyboardInterrupt:
        say("interrupted")
        return 130
    except (BenchError, SaltError) as exc:
        say(f"failed: {exc}")
        return 1
    closing = close_record(record, args.output, samples=samples)
    print(table(samples))
    print(f"\n{closing}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
