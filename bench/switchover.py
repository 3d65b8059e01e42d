"""Switchover gap: ``salt-run ucarp.switchover`` vs. an unplanned failover, as a client sees them.

Builds one test bed (two simulated hypervisors gz1 and gz2, a client host,
TEST-NET-1 addresses only), starts a real salt-master with the formula's
reactor and a salt-minion per hypervisor (``demo/saltcluster.py``) and
applies the formula with one cluster ``web``: VIP 192.0.2.100, VHID 101,
web-a on gz1 (192.0.2.11), web-b on gz2 (192.0.2.12), advbase 1, deadratio
3, both nodes at the formula's default advskew (1, so a switchover can
preempt either), ``preempt: false``, no ``on_master``/``on_backup`` actions,
the ``ucarp`` beacon every second.  The small web service of the test bed
(``smartos_sim.vipapp``, port 8080, answers the zone's hostname) is
installed bound to every address and enabled in both zones, after ``state.apply
ucarp.zones`` and before ``state.highstate``: a hot standby, so whichever
zone holds the VIP answers at once and the gap measured is the VIP's alone.

The prober: one process in the client's namespace (192.0.2.200), started
for each run, starts a probe every 20 ms on a fixed schedule, each
independent of the others (asyncio): TCP connect to VIP:8080, ``GET /``
(HTTP/1.0), read the answer, all within 0.5 s, else the probe is missed.  It
prints, per probe, its start time (CLOCK_MONOTONIC, the same in every
namespace) and who answered (the zone's hostname) or why not.  The client
keeps its neighbour entry, as a real client does: it follows the VIP by the
new master's gratuitous ARP.

The gap of a run: over its probes in start order, the longest interval
between the start of the last answered probe before a miss and the start of
the next answered probe; 0 when no probe was missed.  Resolution: one probe
interval (a single missed probe makes a 40 ms gap).  Every span of missed
probes is kept (times, who answered before and after it).  A packet socket
on the client (``failover.AdvertLog``) timestamps the CARP adverts, with the
same clock, to place the misses in the switchover's steps: the target's
first advert is its takeover; the silence of the target's adverts after it
is the keep-vip restart of its ucarp, which ends when the restarted ucarp
becomes master again and runs its up hook.

* **baseline** (``--baseline``, default 30 s): the prober alone against the
  settled cluster, nothing else happening: the misses it makes by itself
  on this machine.
* **switchover** (``--runs``, default 10, alternating web-a -> web-b,
  web-b -> web-a ...): once the cluster has settled (the reactor answered
  every transition, ``salt-run ucarp.status`` shows one master and no alert),
  start the prober, wait until the master has answered for 0.5 s, run
  ``salt-run ucarp.switchover web to=<the other zone>``, keep probing until
  the cluster has settled again with the target as master, stop the prober.
  The runner must return ``result: true`` from the master to the target, the
  first answers must come from the old master and the last ones from the
  target: otherwise the run is an error, not a sample.  The runner's own
  ``timings`` (``handover_s``: from the start of the hand-over, after the
  runner's checks, to the target alone holding the VIP; ``total_s``: from the
  runner's start to every node's ucarp running its own options again, the
  target alone holding the VIP) are kept beside the gap.
* **failover** (``--failovers``, default 5, after the switchovers, same
  setup): the prober as above, a random delay of 0 to advbase seconds (the
  stop's phase in the advert cycle: uniform), ``vmadm stop -F`` of the master
  zone, probe until the other zone answers and 1 s more.  Gap as above; the
  time from the stop to the first answer of the other zone is kept too.
  Then ``vmadm start`` of the stopped zone and wait until its ucarp instance
  is online, its backup transition has been answered, the cluster has
  settled with the other zone as master, and its web service answers again.

Results: a table on stdout, every sample in ``bench/results/switchover.json``.

Run as root: ``.venv/bin/python bench/switchover.py --runs 10``.
"""

import argparse
import collections
import itertools
import os
import random
import signal
import subprocess
import sys
import threading
import time

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(BENCH_DIR)
sys.path.insert(0, os.path.join(REPO, "demo"))
sys.path.insert(0, os.path.join(REPO, "tests", "sim"))

from failover import AdvertLog, BenchError, bed_ready, close_record, new_record, poll, say  # noqa: E402
from reaction import Node, apply_states, revive, summarise, wait_settled  # noqa: E402
from saltcluster import WEB, SaltCluster, SaltError, tail  # noqa: E402

from smartos_sim import bed as simbed  # noqa: E402
from smartos_sim import vipapp  # noqa: E402

RESULTS = os.path.join(BENCH_DIR, "results", "switchover.json")
CLUSTER = "web"  # reaction.Node, wait_settled and revive work on this cluster's nodes (WEB's)
# The demo's cluster without actions, every node at the default advskew.
SPEC = {k: v for k, v in WEB.items() if k not in ("on_master", "on_backup")}
SPEC["nodes"] = {alias: {"host": n["host"], "ip": n["ip"]} for alias, n in WEB["nodes"].items()}
PILLAR = {"ucarp": {"clusters": {CLUSTER: SPEC}}, "beacons": {"ucarp": [{"interval": 1}]}}
VIP = SPEC["vip"]
CLIENT = "192.0.2.200"
PROBE_INTERVAL = 0.02  # a probe starts every 20 ms
PROBE_TIMEOUT = 0.5  # connect, request and answer within this, or the probe is missed
PROBER_LIMIT = 300.0  # the prober ends by itself after this long
STEADY = 0.5  # the master answers every probe for this long before a run starts
STEADY_TIMEOUT = 30.0
FAILOVER_TIMEOUT = 30.0
TAIL = 1.0  # probing after the other zone first answered, in a failover run
APP_TIMEOUT = 60.0
RUNNER_TIMEOUT = 180


PROBER = r"""
import asyncio, sys, time
vip, port, interval, timeout, limit = sys.argv[1], int(sys.argv[2]), *map(float, sys.argv[3:6])
request = f"GET / HTTP/1.0\r\nHost: {vip}\r\n\r\n".encode()

async def exchange():
    reader, writer = await asyncio.open_connection(vip, port)
    try:
        writer.write(request)
        data = await reader.read()
    finally:
        writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    return (body.decode().strip() or "!empty") if head.split(b" ")[1:2] == [b"200"] else "!http"

async def probe(n, sent):
    try:
        who = await asyncio.wait_for(exchange(), timeout)
    except TimeoutError:
        who = "!timeout"
    except ConnectionRefusedError:
        who = "!refused"
    except OSError as exc:
        who = f"!errno{exc.errno}"
    print(n, f"{sent:.6f}", f"{time.monotonic() - sent:.4f}", who.split()[0], flush=True)

async def main():
    tasks = set()
    start = time.monotonic()
    for n in range(int(limit / interval)):
        await asyncio.sleep(max(0.0, start + n * interval - time.monotonic()))
        task = asyncio.create_task(probe(n, time.monotonic()))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

asyncio.run(main())
"""

Sample = collections.namedtuple("Sample", "n sent latency who")


class Prober:
    """The client's probes of the web service on the VIP, every PROBE_INTERVAL s (a context manager)."""

    def __init__(self, client, vip=VIP):
        argv = ["ip", "netns", "exec", client, sys.executable, "-u", "-c", PROBER, vip, str(vipapp.PORT),
                str(PROBE_INTERVAL), str(PROBE_TIMEOUT), str(PROBER_LIMIT)]  # fmt: skip
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
        self.samples = []
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        for line in self.proc.stdout:
            n, sent, latency, who = line.split()
            with self.lock:
                self.samples.append(Sample(int(n), float(sent), float(latency), who))

    def done(self):
        """The probes finished so far, in start order."""
        with self.lock:
            return sorted(self.samples)

    def wait_steady(self, alias):
        """Wait until ``alias`` has answered every probe for STEADY s; the start of that streak."""

        def steady():
            streak = []
            for s in reversed(self.done()):
                if s.who != alias:
                    break
                streak.append(s)
            return streak[-1].sent if streak and streak[0].sent - streak[-1].sent >= STEADY else None

        since = poll(steady, STEADY_TIMEOUT, 0.05)
        if since is None:
            last = [s.who for s in self.done()[-5:]]
            raise BenchError(f"the VIP did not answer steadily from {alias} within {STEADY_TIMEOUT:.0f}s: {last}")
        return since

    def first_answer(self, alias, after):
        return next((s for s in self.done() if s.who == alias and s.sent > after), None)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.proc.terminate()  # the prober this benchmark started, by its PID
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)
        self.thread.join(timeout=5)


def analyse(samples, start, old, new, t0):
    """The gap, the spans of missed probes and the answerers of a run's probes (started at ``start`` or later).

    Times in the result are relative to ``t0``.
    """
    window = [s for s in samples if s.sent >= start]
    answered = [s for s in window if not s.who.startswith("!")]
    if not answered or window[-1].who.startswith("!"):
        raise BenchError(f"the VIP was not answering when the run ended: last probes {[s.who for s in window[-5:]]}")
    gap, gap_start, last_ok, missed, spans = 0.0, None, None, 0, []
    for s in window:
        if s.who.startswith("!"):
            missed += 1
            continue
        if missed:
            spans.append({"from_s": rel(last_ok.sent, t0), "to_s": rel(s.sent, t0), "missed": missed,
                          "before": last_ok.who, "after": s.who})  # fmt: skip
            if s.sent - last_ok.sent > gap:
                gap, gap_start = s.sent - last_ok.sent, last_ok.sent
        last_ok, missed = s, 0
    answerers = [who for who, _ in itertools.groupby(s.who for s in answered)]
    if answerers[0] != old or answerers[-1] != new:
        raise BenchError(f"the VIP answered from {' -> '.join(answerers)}, expected {old} then {new}")
    misses = collections.Counter(s.who for s in window if s.who.startswith("!"))
    return {
        "gap_s": round(gap, 4),
        "gap_start_s": rel(gap_start, t0),
        "probes": len(window),
        "missed": sum(misses.values()),
        "miss_kinds": dict(misses),
        "miss_spans": spans,
        "answerers": answerers,
        "max_answer_latency_s": max(s.latency for s in answered),
    }


def rel(t, t0):
    return None if t is None else round(t - t0, 4)


# -- setting up ----------------------------------------------------------------------


def app_ready(bed, client, node):
    """Wait until the web service is online in ``node`` and answers on the zone's own address."""

    def state():
        return node.gz.zlogin(node.uuid, f"svcs -H -o state {vipapp.FMRI}", timeout=20).stdout.strip()

    if poll(lambda: state() == "online", APP_TIMEOUT, 0.5) is None:
        raise BenchError(f"{node.alias}: {vipapp.FMRI} is {state()!r}, not online")
    if poll(lambda: vipapp.answer(bed, client, node.ip) == node.alias, APP_TIMEOUT, 0.5) is None:
        raise BenchError(f"{node.alias}: the web service does not answer on {node.ip}:{vipapp.PORT}")


def setup(bed, client, cluster, bus):
    say("salt-run saltutil.sync_all; salt 'gz*' saltutil.sync_all")
    cluster.salt_run("saltutil.sync_all")
    cluster.salt("gz*", "saltutil.sync_all")
    say("state.apply ucarp.zones, the web service (every address, enabled) in each zone, state.highstate")
    apply_states(cluster, "state.apply", "ucarp.zones")
    nodes = {alias: Node(bed, alias) for alias in SPEC["nodes"]}
    for node in nodes.values():
        try:
            vipapp.install(node.gz, node.uuid, VIP, bind="0.0.0.0")
        except RuntimeError as exc:
            raise BenchError(f"{node.alias}: {exc}") from None
        proc = node.gz.zlogin(node.uuid, f"svcadm enable {vipapp.FMRI}")
        if proc.returncode != 0:
            raise BenchError(f"{node.alias}: svcadm enable {vipapp.FMRI}: {proc.stderr.strip()}")
    started = time.time()
    apply_states(cluster, "state.highstate")
    for node in nodes.values():
        app_ready(bed, client, node)
    return nodes, wait_settled(cluster, bus, started)


# -- the prober alone ----------------------------------------------------------------


def baseline(client, master, seconds):
    """Probe the steady cluster, nothing else happening: the misses the prober makes by itself."""
    with Prober(client) as prober:
        start = prober.wait_steady(master)
        time.sleep(seconds)
        samples = prober.done()
    found = analyse(samples, start, master, master, start)
    say(f"baseline: {found['missed']} of {found['probes']} probes missed in {seconds:.0f}s, gap {found['gap_s']:.3f}s")
    return dict(found, seconds=seconds)


# -- one switchover ------------------------------------------------------------------


def advert_times(adverts, node, since, until):
    with adverts.lock:
        return [t for t, src in adverts.adverts if src == node.ip and since <= t <= until]


def switchover_run(ctx, index, master):
    cluster, bus, nodes, client, adverts = ctx
    (target,) = [a for a in nodes if a != master]
    with Prober(client) as prober:
        start = prober.wait_steady(master)
        after = time.time()
        t_call = time.monotonic()
        ret = cluster.salt_run("ucarp.switchover", CLUSTER, f"to={target}", timeout=RUNNER_TIMEOUT)
        t_return = time.monotonic()
        if not isinstance(ret, dict) or ret.get("result") is not True:
            raise BenchError(f"salt-run ucarp.switchover {CLUSTER} to={target}: {ret}")
        if (ret.get("from"), ret.get("to")) != (master, target):
            raise BenchError(f"switched from {ret.get('from')} to {ret.get('to')}, expected {master} -> {target}")
        holder = wait_settled(cluster, bus, after)
        if holder != target:
            raise BenchError(f"after the switchover to {target}, {holder} holds the VIP")
        prober.wait_steady(target)
        samples = prober.done()
    found = analyse(samples, start, master, target, t_call)
    moved = next(s for s in samples if s.sent >= t_call and s.who == target)
    timings = ret.get("timings") or {}
    # The target's adverts: the first is its takeover; a silence of more than
    # deadratio x advbase is its keep-vip restart, the advert after it comes
    # right after its up hook ran again.
    sent = advert_times(adverts, nodes[target], t_call, samples[-1].sent)
    old_last = max(advert_times(adverts, nodes[master], start, samples[-1].sent), default=None)
    silences = [[rel(a, t_call), rel(b, t_call)] for a, b in itertools.pairwise(sent) if b - a > 1.5 * SPEC["advbase"]]
    sample = {
        "run": index,
        "direction": f"{master} -> {target}",
        "from": master,
        "to": target,
        **found,
        "first_answer_from_target_s": rel(moved.sent, t_call),
        "target_first_advert_s": rel(sent[0], t_call) if sent else None,
        "target_advert_silences_s": silences,
        "old_master_last_advert_s": rel(old_last, t_call),
        "runner_wall_s": round(t_return - t_call, 4),
        "handover_s": timings.get("handover_s"),
        "total_s": timings.get("total_s"),
        "comment": ret.get("comment"),
    }
    say(
        f"switchover {index}: {master} -> {target}: gap {sample['gap_s'] * 1000:.0f} ms "
        f"({sample['missed']}/{sample['probes']} probes missed); handover_s {sample['handover_s']}, "
        f"total_s {sample['total_s']}"
    )
    return sample, target


# -- one unplanned failover ----------------------------------------------------------


def failover_run(ctx, index, master):
    cluster, bus, nodes, client, _adverts = ctx
    (backup,) = [a for a in nodes if a != master]
    stopped = nodes[master]
    with Prober(client) as prober:
        start = prober.wait_steady(master)
        jitter = random.uniform(0, SPEC["advbase"])
        time.sleep(jitter)
        t0, stop_epoch = time.monotonic(), time.time()
        stopped.gz.run("vmadm", "stop", "-F", stopped.uuid, check=True)
        t_stopped = time.monotonic()
        answer = poll(lambda: prober.first_answer(backup, t0), FAILOVER_TIMEOUT, 0.05)
        if answer is None:
            raise BenchError(f"{backup} did not answer on the VIP within {FAILOVER_TIMEOUT:.0f}s of stopping {master}")
        time.sleep(TAIL)
        samples = prober.done()
    found = analyse(samples, start, master, backup, t0)
    sample = {
        "run": index,
        "direction": f"{master} -> {backup}",
        "stopped": master,
        "backup": backup,
        "jitter_s": round(jitter, 4),
        **found,
        "stop_to_answer_s": rel(answer.sent, t0),
        "vmadm_stop_s": rel(t_stopped, t0),
    }
    say(
        f"failover {index}: stopped {master}, {backup} answers: gap {sample['gap_s']:.2f}s "
        f"({sample['missed']}/{sample['probes']} probes missed), stop -> answer {sample['stop_to_answer_s']:.2f}s"
    )
    revive(cluster, bus, stopped, stop_epoch)
    app_ready(cluster.bed, client, stopped)
    return sample, backup


# -- figures -------------------------------------------------------------------------

FIGURES = (
    ("switchovers", "gap_s", "**switchover gap** (`ucarp.switchover`, client's view)"),
    ("switchovers", "handover_s", "switchover `handover_s` (runner: start -> target alone holds the VIP)"),
    ("switchovers", "total_s", "switchover `total_s` (runner: the whole switchover)"),
    ("failovers", "gap_s", "**unplanned failover gap** (`vmadm stop -F` of the master, client's view)"),
    ("failovers", "stop_to_answer_s", "unplanned failover: `vmadm stop -F` -> other zone answers"),
)


def table(summary):
    lines = ["| figure | runs | min (s) | p50 (s) | p95 (s) | max (s) |", "|---|---|---|---|---|---|"]
    for kind, key, label in FIGURES:
        s = summary[kind][key]
        if not s["runs"]:
            lines.append(f"| {label} | 0 | - | - | - | - |")
            continue
        lines.append(f"| {label} | {s['runs']} | {s['min']:.3f} | {s['p50']:.3f} | {s['p95']:.3f} | {s['max']:.3f} |")
    return "\n".join(lines)


def probe_totals(samples):
    return {"probes": sum(s["probes"] for s in samples), "missed": sum(s["missed"] for s in samples)}


# -- main ----------------------------------------------------------------------------


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10, help="switchovers to measure (default 10)")
    parser.add_argument("--failovers", type=int, default=5, help="unplanned failovers to measure (default 5)")
    parser.add_argument("--baseline", type=float, default=30.0,
                        help="seconds of probing the steady cluster first, 0 for none (default 30)")  # fmt: skip
    parser.add_argument("--output", default=RESULTS, help=f"JSON results file (default {RESULTS})")
    args = parser.parse_args(argv)
    if not 1 <= args.runs <= 1000:
        parser.error("--runs must be between 1 and 1000")
    if not 0 <= args.failovers <= 1000:
        parser.error("--failovers must be between 0 and 1000")
    if not 0 <= args.baseline <= 600:
        parser.error("--baseline must be between 0 and 600 seconds")
    return args


def measure(bed, holder, args, results):
    client = bed.host("client", f"{CLIENT}/24")
    adverts = AdvertLog(client)
    try:
        cluster = SaltCluster(bed, PILLAR, minions=("gz1", "gz2"))
        holder.append(cluster)
        say("starting salt-master and salt-minion gz1, gz2")
        cluster.start(timeout=180)
        with cluster.events() as bus:
            nodes, master = setup(bed, client, cluster, bus)
            say(f"set up; {master} holds the VIP; {args.runs} switchovers, then {args.failovers} failovers")
            if args.baseline:
                results["baseline"] = baseline(client, master, args.baseline)
            ctx = (cluster, bus, nodes, client, adverts)
            for index in range(1, args.runs + 1):
                sample, master = switchover_run(ctx, index, master)
                results["switchovers"].append(sample)
            for index in range(1, args.failovers + 1):
                sample, master = failover_run(ctx, index, master)
                results["failovers"].append(sample)
    finally:
        adverts.close()


def show_logs(cluster):
    """The end of the Salt daemons' logs, before the bed (and they) are removed."""
    for name, path in [("salt-master", cluster.master_log)] + [
        (f"salt-minion {m}", cluster.minion_log(m)) for m in cluster.minions
    ]:
        print(f"--- {name}: {path}\n{tail(path, 30)}", flush=True)


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if not bed_ready("switchover.py"):
        return 1
    record = new_record(
        "switchover gap: salt-run ucarp.switchover, VIP not answering a client; beside it the unplanned failover gap",
        {
            "cluster": {k: v for k, v in SPEC.items() if k != "password"},
            "beacon_interval_s": 1,
            "probe": f"TCP connect + HTTP/1.0 GET to {VIP}:{vipapp.PORT} from {CLIENT}",
            "probe_interval_s": PROBE_INTERVAL,
            "probe_timeout_s": PROBE_TIMEOUT,
            "steady_s": STEADY,
            "failover_tail_s": TAIL,
        },
    )  # fmt: skip
    simbed.sweep()
    bed = simbed.Bed(prefix="ucarpswitch")
    holder, results = [], {"baseline": None, "switchovers": [], "failovers": []}
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
    summary = {
        "switchovers": {key: summarise(results["switchovers"], key) for key in ("gap_s", "handover_s", "total_s")},
        "failovers": {key: summarise(results["failovers"], key) for key in ("gap_s", "stop_to_answer_s")},
    }
    totals = {kind: probe_totals(results[kind]) for kind in ("switchovers", "failovers")}
    if results["baseline"]:
        totals["baseline"] = {k: results["baseline"][k] for k in ("probes", "missed")}
    closing = close_record(record, args.output, duration_s=round(time.monotonic() - began, 1), summary=summary,
                           probe_totals=totals, baseline=results["baseline"],
                           samples={k: results[k] for k in ("switchovers", "failovers")})  # fmt: skip
    print(table(summary))
    print(
        f"\nprobe resolution {PROBE_INTERVAL * 1000:.0f} ms (a gap is 0, or at least two intervals); "
        + "; ".join(f"{kind}: {t['missed']} of {t['probes']} probes missed" for kind, t in totals.items())
    )
    if results["baseline"]:
        b = results["baseline"]
        print(f"baseline ({b['seconds']:.0f}s, nothing happening): {b['missed']} of {b['probes']} probes missed")
    print(f"{closing}; took {record['duration_s']:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
