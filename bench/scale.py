"""
Scale: how the formula's costs grow with the number of clusters.

For each size N (``--sizes``, default 1, 4, 8, 16, 32) it builds a fresh
test bed with ``--hypervisors`` H simulated hypervisors (default 2), a real
salt-master with the formula's reactor and a salt-minion per hypervisor
(``demo/saltcluster.py``), and a pillar of N clusters ``c00`` ...
``c<N-1>``: each a VIP, a VHID (101 + i) and two nodes, one zone each, the
first on hypervisor ``i mod H``, the second on the next one (with H = 1
both on the one hypervisor: 2N zones there), no actions, the beacon every
second. Then it measures, as an operator would see them:

* ``zones_s``: ``salt 'gz*' state.apply ucarp.zones`` (vmadm creates the
  zones);
* ``first_apply_s``: the first ``state.highstate`` (pkgin, files, SMF
  manifest, the instances online);
* ``settled_s``: from the start of that highstate until every cluster has
  exactly one master in ``salt-run ucarp.status``, no alert, and the
  reactor has answered every transition the beacons sent: the moment of
  the last reaction (its event, or its runner's return), which the poll
  confirms; ``settled_noticed_s``: when the poll (every second, each a
  ``salt-run ucarp.status``) saw it;
* ``noop_apply_s``: a second ``state.highstate``, which must change nothing
  (the cost of a periodic highstate on a converged hypervisor), and
  ``noop_procs_per_node``: the global-zone processes it ran (``vmadm``,
  ``zlogin``, ``svcs``, ... on the busiest hypervisor, counted by the test
  bed's tools: ``SMARTOS_SIM_ACCOUNT``) per zone node there;
* ``status_s``: ``salt-run ucarp.status`` (median of three), and
  ``status_procs``: the global-zone processes one call ran on the busiest
  hypervisor, with ``status_procs_fixed``: those beyond one per zone there;
* ``minion_cpu_pct``: the CPU the busier salt-minion (its whole process
  tree: the minion, where the beacon runs every second, and its jobs) uses
  over 30 s of nothing happening, in percent of one CPU.

Results: a table on stdout, every figure in ``bench/results/scale.json``
(or ``--output``); ``bench/plot_scale.py`` draws them.

Run as root: ``.venv/bin/python bench/scale.py [--sizes 1,4,8,16,32] [--hypervisors 2]``.
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
MAX_CLUSTERS = 50  # the address plan below stays inside 192.0.2.0/24
SETTLE_TIMEOUT = 600.0
IDLE_S = 30.0
FIGURES = (
    "zones_s",
    "first_apply_s",
    "settled_s",
    "noop_apply_s",
    "noop_procs_per_node",
    "status_s",
    "status_procs",
    "minion_cpu_pct",
)


def pillar(size, hypervisors=2):
    """N clusters of two nodes: the first on gz<i mod H + 1>, the second on the next."""
    clusters = {}
    for i in range(size):
        name = f"c{i:02d}"
        first, second = i % hypervisors + 1, (i + 1) % hypervisors + 1
        clusters[name] = {
            "vip": f"192.0.2.{110 + i}",
            "vhid": 101 + i,
            "password": f"scale-{i:02d}-S3cret",
            "zone": {"max_physical_memory": 256, "nic_tag": "admin"},
            "nodes": {
                f"{name}-a": {"host": f"gz{first}", "ip": f"192.0.2.{10 + i}"},
                f"{name}-b": {"host": f"gz{second}", "ip": f"192.0.2.{60 + i}"},
            },
        }
    return {"ucarp": {"clusters": clusters}, "beacons": {"ucarp": [{"interval": 1}]}}


class Processes:
    """The global-zone processes the test bed's tools count (``SMARTOS_SIM_ACCOUNT``)."""

    def __init__(self, path):
        self.path = path
        self.mark()

    def mark(self):
        self.start = os.path.getsize(self.path) if os.path.exists(self.path) else 0

    def since_mark(self):
        """``{hypervisor: {tool: count}}`` since the last ``mark``."""
        counts = {}
        with open(self.path, "rb") as fh:
            fh.seek(self.start)
            for line in fh.read().decode().splitlines():
                gz, _, tool = line.partition(" ")
                counts.setdefault(gz, {}).setdefault(tool, 0)
                counts[gz][tool] += 1
        return counts


def nodes_per_host(size, hypervisors):
    placed = {}
    for cluster in pillar(size, hypervisors)["ucarp"]["clusters"].values():
        for node in cluster["nodes"].values():
            placed[node["host"]] = placed.get(node["host"], 0) + 1
    return placed


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
    """The moment every cluster settled (epoch seconds), or None while it has
    not: every cluster has one master and no alert, and no transition waits
    for the reactor.  That moment is the last reaction's (its event, or the
    return of the reactor's last runner), not the moment this poll noticed:
    ``salt-run ucarp.status`` alone takes a second or two.  A transition
    sent while ``ucarp.status`` ran means it was not settled yet."""
    if any(unanswered(bus, name, after) for name in names):
        return None
    checked = time.time()
    report = cluster.salt_run("ucarp.status", timeout=600)
    if not all(report.get(n, {}).get("master") and not report[n].get("alert") for n in names):
        return None
    if any(unanswered(bus, name, after) or bus.since(f"ucarp/{name}/*", checked) for name in names):
        return None
    reactions = [e.seen for n in names for e in bus.since(f"ucarp/{n}/*", after) if "/" in e.tag.split("/", 2)[2]]
    returns = [e.seen for e in bus.since("salt/run/*", after) if e.tag.endswith("/ret")
               and e.data.get("fun") == "runner.ucarp.transition"]  # fmt: skip
    return max(reactions + returns, default=checked)


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


def measure_size(size, hypervisors):
    """Build a bed with ``size`` clusters, time each step, take it all down again."""
    say(f"--- {size} cluster(s): {2 * size} zones on {hypervisors} hypervisor(s)")
    simbed.sweep()
    bed = simbed.Bed(prefix="ucarpscale")
    cluster = None
    account = os.path.join(bed.base, "processes.log")
    os.environ["SMARTOS_SIM_ACCOUNT"] = account  # the minions, and so their jobs, inherit it
    placed = nodes_per_host(size, hypervisors)
    busiest = max(sorted(placed), key=placed.get)
    try:
        cluster = SaltCluster(bed, pillar(size, hypervisors), minions=tuple(f"gz{n + 1}" for n in range(hypervisors)))
        cluster.start()
        cluster.salt_run("saltutil.sync_all")
        cluster.salt("gz*", "saltutil.sync_all")
        names = sorted(pillar(size, hypervisors)["ucarp"]["clusters"])
        sample = {"clusters": size, "zones": 2 * size, "hypervisors": hypervisors, "busiest_nodes": placed[busiest]}
        procs = Processes(account)
        with cluster.events() as bus:
            sample["zones_s"], _ = timed_apply(cluster, "state.apply", "ucarp.zones")
            say(f"state.apply ucarp.zones: {sample['zones_s']:.1f}s")
            started_epoch, started = time.time(), time.monotonic()
            sample["first_apply_s"], sample["first_apply_changed"] = timed_apply(cluster, "state.highstate")
            say(f"first highstate: {sample['first_apply_s']:.1f}s, {sample['first_apply_changed']} states changed")
            moment = poll(lambda: settled(cluster, bus, names, started_epoch), SETTLE_TIMEOUT, 1.0)
            if moment is None:
                raise BenchError(f"{size} clusters not settled within {SETTLE_TIMEOUT:.0f}s")
            sample["settled_noticed_s"] = time.monotonic() - started
            sample["settled_s"] = moment - started_epoch
            sample["settled_after_apply_s"] = sample["settled_s"] - sample["first_apply_s"]
            say(f"every cluster has one master and every transition its reaction: {sample['settled_s']:.1f}s")
            procs.mark()
            sample["noop_apply_s"], changed = timed_apply(cluster, "state.highstate")
            if changed:
                raise BenchError(f"the second highstate changed {changed} states; it must change none")
            counted = procs.since_mark().get(busiest, {})
            sample["noop_procs"] = counted
            sample["noop_procs_per_node"] = sum(counted.values()) / placed[busiest]
            say(
                f"second highstate (nothing to change): {sample['noop_apply_s']:.1f}s, "
                f"{sample['noop_procs_per_node']:.2f} processes per zone node on {busiest} ({counted})"
            )
            took, counts = [], []
            for _ in range(3):
                procs.mark()
                t0 = time.monotonic()
                report = cluster.salt_run("ucarp.status", timeout=600)
                took.append(time.monotonic() - t0)
                counts.append(sum(procs.since_mark().get(busiest, {}).values()))
                if sorted(report) != names:
                    raise BenchError(f"ucarp.status lists {sorted(report)}, not the {size} clusters")
            sample["status_s"] = statistics.median(took)
            sample["status_procs"] = max(counts)
            zones_there = placed[busiest]  # one zone per node here
            sample["status_procs_fixed"] = max(counts) - zones_there
            say(
                f"salt-run ucarp.status: {sample['status_s']:.2f}s (median of 3), {max(counts)} processes on "
                f"{busiest} for {zones_there} zones"
            )
            beacon_procs = Processes(account)
            minions = [pid for name, pid in cluster.pids.items() if name.startswith("salt-minion")]
            before = {pid: cpu_seconds(pid) for pid in minions}
            t0 = time.monotonic()
            time.sleep(IDLE_S)  # a measurement window, not a wait for a condition
            span = time.monotonic() - t0
            used = max(cpu_seconds(pid) - before[pid] for pid in minions)
            sample["minion_cpu_pct"] = 100.0 * used / span
            idle = sum(beacon_procs.since_mark().get(busiest, {}).values())
            sample["idle_procs_per_min"] = round(idle * 60 / span, 1)
            say(f"busier salt-minion, {IDLE_S:.0f}s idle: {sample['minion_cpu_pct']:.1f}% of a CPU")
        return {k: round(v, 3) if isinstance(v, float) else v for k, v in sample.items()}
    finally:
        os.environ.pop("SMARTOS_SIM_ACCOUNT", None)
        if cluster is not None:
            cluster.stop()
        bed.destroy()


def table(samples):
    head = "| clusters | zones | hypervisors | " + " | ".join(FIGURES) + " |"
    rows = [head, "|" + "---|" * (len(FIGURES) + 3)]
    for s in samples:
        cells = " | ".join(f"{s[k]:.2f}" for k in FIGURES)
        rows.append(f"| {s['clusters']} | {s['zones']} | {s['hypervisors']} | {cells} |")
    return "\n".join(rows)


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--sizes", default="1,4,8,16,32", help="numbers of clusters to measure (default 1,4,8,16,32)")
    parser.add_argument("--hypervisors", type=int, default=2, help="simulated hypervisors (default 2, at most 8)")
    parser.add_argument("--output", default=RESULTS, help=f"JSON results file (default {RESULTS})")
    args = parser.parse_args(argv)
    try:
        args.sizes = [int(s) for s in args.sizes.split(",")]
    except ValueError:
        parser.error(f"--sizes: a comma-separated list of numbers, not {args.sizes!r}")
    if any(not 1 <= s <= MAX_CLUSTERS for s in args.sizes):
        parser.error(f"--sizes: each between 1 and {MAX_CLUSTERS}")
    if not 1 <= args.hypervisors <= 8:
        parser.error("--hypervisors: between 1 and 8")
    return args


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if not bed_ready("scale.py"):
        return 1
    record = new_record(
        "scale: apply, convergence, status and beacon cost against the number of clusters",
        {
            "sizes": args.sizes,
            "hypervisors": args.hypervisors,
            "beacon_interval_s": 1,
            "idle_window_s": IDLE_S,
            "nodes_per_cluster": 2,
        },
    )
    samples = []
    try:
        for size in args.sizes:
            samples.append(measure_size(size, args.hypervisors))
            close_record(record, args.output, samples=samples)  # a later size that fails keeps these
    except KeyboardInterrupt:
        say("interrupted")
        return 130
    except (BenchError, SaltError) as exc:
        say(f"failed: {exc}")
        close_record(record, args.output, samples=samples, failed={"size": size, "reason": str(exc)})
        return 1
    closing = close_record(record, args.output, samples=samples)
    print(table(samples))
    print(f"\n{closing}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
