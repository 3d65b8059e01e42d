"""Unplanned failover time: zones set up by the formula vs. the manual recipe.

Builds one test bed (two simulated hypervisors gz1 and gz2, a client host,
TEST-NET-1 addresses only) and measures, in two setups with the same UCARP
settings (advbase 1, advskew 0, deadratio 3, one VIP, one VHID):

* ``formula``: the zones are created and configured by ``state.apply ucarp``
  (masterless ``salt-call --local`` on each hypervisor); ucarp runs under the
  simulated SMF, which brings it back when a stopped zone boots again;
* ``by-hand``: the article's recipe (``recipe.start_by_hand``): ucarp started
  through zlogin, and started again by hand after the zone boots again.

One run: wait until exactly one zone holds the VIP and the client reaches
it; ``t0`` just before ``vmadm stop -F`` of that zone (a crash); probe from the client
(neighbour entry flushed, one ping) until the VIP answers from the backup's
MAC: ``t1``.  The failover time is ``t1 - t0``.  The stopped zone is then
started again and waited for as a healthy backup, and the next run stops the
new holder.

A packet socket in the client namespace also timestamps every CARP
advertisement on the LAN, which splits a failover into the random part (how
long before ``t0`` the old master last advertised) and the rest (from that
last advert to the VIP answering: deadratio x advbase, the hook, ARP).
Results: tables on stdout, every sample in ``bench/results/failover.json``.

Run as root: ``.venv/bin/python bench/failover.py --runs 10``.
"""

import argparse
import dataclasses
import datetime
import json
import math
import os
import random
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(BENCH_DIR)
sys.path.insert(0, os.path.join(REPO, "tests", "sim"))

from smartos_sim import bed as simbed  # noqa: E402
from smartos_sim.recipe import holds_vip, start_by_hand  # noqa: E402

SALT_CALL = os.path.join(os.path.dirname(sys.executable), "salt-call")
RESULTS = os.path.join(BENCH_DIR, "results", "failover.json")

VIP, VHID, PASSWORD, CLUSTER = "192.0.2.100", 77, "bench-s3cret", "bench"
TIMINGS = {"advbase": 1, "advskew": 0, "deadratio": 3}  # UCARP's defaults, which the recipe relies on
CLIENT = "192.0.2.200"
IMAGE = "d34c301e-10c3-11e4-9b79-5f67ca448df0"
SETUPS = {
    "formula": (("gz1", "fo-a", "192.0.2.11"), ("gz2", "fo-b", "192.0.2.12")),
    "by-hand": (("gz1", "hand-a", "192.0.2.21"), ("gz2", "hand-b", "192.0.2.22")),
}

PROBE_INTERVAL = 0.04  # a probe starts at most every 40 ms
PING_WAIT = "0.03"  # ping -W: an ARP + ICMP round trip on the bed takes well under 10 ms
FAILOVER_TIMEOUT = 30.0
STEADY_TIMEOUT = 60.0
REVIVE_TIMEOUT = 60.0
SETTLE = TIMINGS["advbase"] * TIMINGS["deadratio"] + 1.0  # one holder, unchanged, for this long
T_START = time.monotonic()


class BenchError(Exception):
    """A condition the benchmark waits for did not come in time."""


def say(text):
    print(f"[{time.monotonic() - T_START:7.2f}s] {text}", flush=True)


def poll(predicate, timeout, interval=0.1):
    """Return ``predicate()``'s first truthy value, or None after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    for _ in range(int(timeout / interval) + 2):
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value or None
        time.sleep(interval)
    return None


@dataclasses.dataclass
class Node:
    """One zone of the cluster."""

    alias: str
    gz: simbed.GlobalZone
    uuid: str
    ip: str
    mac: str


class Probe:
    """What the client sees of the VIP: one ARP resolution and one ping."""

    def __init__(self, bed, client):
        self.bed = bed
        self.client = client
        self.command = (
            f"ip neigh flush to {VIP}; ping -n -q -c 1 -W {PING_WAIT} {VIP} >/dev/null && ip neigh show {VIP}"
        )

    def mac(self):
        """The MAC that answered for the VIP (neighbour entry flushed first), or None."""
        try:
            proc = self.bed.in_host(self.client, "sh", "-c", self.command, timeout=5)
        except subprocess.TimeoutExpired:
            return None
        words = proc.stdout.split()
        if proc.returncode != 0 or "lladdr" not in words:
            return None
        return words[words.index("lladdr") + 1].lower()


LISTENER = """
import socket, time
sock = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(0x0800))
while True:
    data = sock.recv(2048)
    now = time.monotonic()
    if len(data) >= 20 and data[9] == 112:
        print(f"{now:.6f} {socket.inet_ntoa(data[12:16])}", flush=True)
"""


class AdvertLog:
    """CARP advertisements as the client's NIC receives them, timestamped.

    A packet socket in the client namespace; CLOCK_MONOTONIC is the same in
    every namespace, so its times compare with the benchmark's own.
    """

    def __init__(self, client):
        argv = ["ip", "netns", "exec", client, sys.executable, "-u", "-c", LISTENER]
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
        self.adverts = []
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        for line in self.proc.stdout:
            when, src = line.split()
            with self.lock:
                self.adverts.append((float(when), src))

    def last_from(self, src, before):
        with self.lock:
            times = [t for t, s in self.adverts if s == src and t <= before]
        return max(times) if times else None

    def first_from(self, src, after):
        with self.lock:
            times = [t for t, s in self.adverts if s == src and t > after]
        return min(times) if times else None

    def close(self):
        self.proc.terminate()  # the listener this benchmark started, by its PID
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)


# -- the two setups ----------------------------------------------------------


def zone_mac(gz, uuid):
    return gz.get(uuid)["nics"][0]["mac"].lower()


def svc_state(node):
    fmri = f"svc:/network/ucarp:{CLUSTER}"
    return node.gz.zlogin(node.uuid, f"svcs -H -o state {fmri}").stdout.strip()


def ucarp_running(node):
    return node.gz.zlogin(node.uuid, "pgrep -x ucarp").returncode == 0


class FormulaSetup:
    """Zones and ucarp from ``state.apply ucarp``, masterless, per hypervisor."""

    name = "formula"

    def __init__(self, bed, workdir):
        self.bed = bed
        self.workdir = workdir
        self.nodes = []

    def pillar(self):
        nodes = {alias: {"host": gz, "ip": ip} for gz, alias, ip in SETUPS[self.name]}
        cluster = {"vip": VIP, "vhid": VHID, "password": PASSWORD, **TIMINGS, "nodes": nodes}
        return {"ucarp": {"clusters": {CLUSTER: cluster}}}

    def write_minion(self, gz_name, pillar_dir):
        base = os.path.join(self.workdir, f"minion-{gz_name}")
        os.makedirs(os.path.join(base, "conf"))
        opts = {
            "id": gz_name,
            "file_client": "local",
            "root_dir": os.path.join(base, "root"),
            "file_roots": {"base": [os.path.join(REPO, "salt"), REPO]},
            "pillar_roots": {"base": [pillar_dir]},
            "log_file": os.path.join(base, "root", "minion.log"),
        }
        with open(os.path.join(base, "conf", "minion"), "w") as fh:
            json.dump(opts, fh)
        return os.path.join(base, "conf")

    def salt_call(self, gz, confdir, *args):
        argv = [SALT_CALL, "--local", "-c", confdir, "--out=json", "--retcode-passthrough", *args]
        proc = gz.run(*argv, timeout=900)
        if proc.returncode != 0:
            raise BenchError(f"{gz.name}: salt-call {' '.join(args)} failed:\n{proc.stdout}{proc.stderr}")
        return proc

    def build(self):
        pillar_dir = os.path.join(self.workdir, "pillar")
        os.makedirs(pillar_dir)
        with open(os.path.join(pillar_dir, "top.sls"), "w") as fh:
            fh.write("base:\n  '*':\n    - ucarp\n")
        with open(os.path.join(pillar_dir, "ucarp.sls"), "w") as fh:
            json.dump(self.pillar(), fh)  # JSON is YAML
        for gz_name, alias, ip in SETUPS[self.name]:
            gz = self.bed.gz(gz_name)
            confdir = self.write_minion(gz_name, pillar_dir)
            self.salt_call(gz, confdir, "saltutil.sync_all")
            say(f"{gz_name}: salt-call --local state.apply ucarp")
            self.salt_call(gz, confdir, "state.apply", "ucarp")
            uuid = gz.run("vmadm", "lookup", "-1", f"alias={alias}", check=True).stdout.strip()
            self.nodes.append(Node(alias, gz, uuid, ip, zone_mac(gz, uuid)))

    def revive(self, node):
        """After ``vmadm start``: SMF brings the instance back by itself."""
        if poll(lambda: svc_state(node) == "online", REVIVE_TIMEOUT, 0.1) is None:
            raise BenchError(f"{node.alias}: svc:/network/ucarp:{CLUSTER} not online again: {svc_state(node)!r}")


class HandSetup:
    """The article's recipe: ucarp started through zlogin, restarted by hand."""

    name = "by-hand"

    def __init__(self, bed, workdir):
        self.bed = bed
        self.workdir = workdir
        self.nodes = []

    @staticmethod
    def payload(alias, ip):
        nic = {"nic_tag": "admin", "ip": ip, "netmask": "255.255.255.0", "primary": True}
        nic.update(allowed_ips=[VIP], allow_mac_spoofing=True)  # as the formula's NIC
        return {"alias": alias, "hostname": alias, "brand": "joyent", "image_uuid": IMAGE,
                "max_physical_memory": 512, "nics": [nic]}  # fmt: skip

    def build(self):
        for gz_name, alias, ip in SETUPS[self.name]:
            gz = self.bed.gz(gz_name)
            gz.import_image(IMAGE)  # the recipe's first step: a fresh hypervisor has no image
            uuid = gz.create(self.payload(alias, ip))
            node = Node(alias, gz, uuid, ip, zone_mac(gz, uuid))
            say(f"{gz_name}: imgadm import, vmadm create {alias}, ucarp started by hand (recipe.start_by_hand)")
            self.start_ucarp(node)
            self.nodes.append(node)

    @staticmethod
    def start_ucarp(node):
        start_by_hand(node.gz, node.uuid, node.ip, VIP, VHID, PASSWORD)

    def revive(self, node):
        """After ``vmadm start``: nothing runs ucarp again but the operator."""
        self.start_ucarp(node)
        if poll(lambda: ucarp_running(node), REVIVE_TIMEOUT, 0.1) is None:
            raise BenchError(f"{node.alias}: ucarp not running after starting it by hand")


# -- one run -----------------------------------------------------------------


def holders(nodes):
    return [n for n in nodes if holds_vip(n.gz, n.uuid, VIP)]


def wait_steady(nodes, probe):
    """The one holder, once exactly one zone holds the VIP and the client reaches it."""

    def steady():
        found = holders(nodes)
        return found[0] if len(found) == 1 and probe.mac() == found[0].mac else None

    holder = poll(steady, STEADY_TIMEOUT, 0.2)
    if holder is None:
        raise BenchError(f"no single reachable holder after {STEADY_TIMEOUT:.0f}s: {[n.alias for n in holders(nodes)]}")
    return holder


def wait_settled(nodes, expected):
    """Wait until ``expected`` alone has held the VIP for SETTLE seconds."""
    deadline = time.monotonic() + REVIVE_TIMEOUT
    since = None
    for _ in range(int(REVIVE_TIMEOUT / 0.25) + 2):
        now = time.monotonic()
        if [n.alias for n in holders(nodes)] == [expected.alias]:
            since = since or now
            if now - since >= SETTLE:
                return
        else:
            since = None
        if now >= deadline:
            break
        time.sleep(0.25)
    raise BenchError(f"{expected.alias} did not stay the only holder for {SETTLE:.0f}s")


def watch_failover(probe, backup, t0):
    """Probe until the VIP answers from ``backup``'s MAC; return (t1, probes, last failed probe start)."""
    probes, last_miss = 0, None
    for _ in range(int(FAILOVER_TIMEOUT / PROBE_INTERVAL) + 2):
        start = time.monotonic()
        probes += 1
        if probe.mac() == backup.mac:
            return time.monotonic(), probes, last_miss
        last_miss = start
        if start - t0 >= FAILOVER_TIMEOUT:
            break
        time.sleep(max(0.0, start + PROBE_INTERVAL - time.monotonic()))
    return None, probes, last_miss


def rel(t, t0):
    return None if t is None else round(t - t0, 4)


def one_run(setup, client, index):
    """Stop the holder, time the VIP's return, bring the stopped zone back."""
    probe, adverts = client
    holder = wait_steady(setup.nodes, probe)
    (backup,) = [n for n in setup.nodes if n is not holder]
    # The harness's own rhythm would otherwise stop the holder at nearly the
    # same point of its advert cycle every run: a random delay over one
    # advbase makes the stop's phase uniform, as an unplanned failure's is.
    jitter = random.uniform(0, TIMINGS["advbase"])
    time.sleep(jitter)
    t0 = time.monotonic()
    holder.gz.run("vmadm", "stop", "-F", holder.uuid, check=True)
    stopped = time.monotonic()
    t1, probes, last_miss = watch_failover(probe, backup, t0)
    shown = "TIMEOUT" if t1 is None else f"{t1 - t0:.2f}s"
    say(f"{setup.name} run {index}: stopped {holder.alias}, {backup.alias} answers: failover {shown}")
    holder.gz.run("vmadm", "start", holder.uuid, check=True)
    setup.revive(holder)
    if t1 is not None:  # after a timeout, the next run's wait_steady sorts it out
        wait_settled(setup.nodes, backup)
    last_advert = adverts.last_from(holder.ip, stopped)
    first_advert = adverts.first_from(backup.ip, t0)
    return {
        "run": index,
        "stopped": holder.alias,
        "backup": backup.alias,
        "jitter_s": round(jitter, 4),
        "failover_s": rel(t1, t0),
        "vmadm_stop_s": rel(stopped, t0),
        "last_failed_probe_start_s": rel(last_miss, t0),
        "probes": probes,
        "old_master_last_advert_s": rel(last_advert, t0),
        "new_master_first_advert_s": rel(first_advert, t0),
        "last_advert_to_answer_s": None if t1 is None or last_advert is None else round(t1 - last_advert, 4),
    }


def measure(setup, client, runs):
    say(f"{setup.name}: building")
    began = time.monotonic()
    setup.build()
    build_s = time.monotonic() - began
    say(f"{setup.name}: built in {build_s:.1f}s; {runs} runs")
    samples = [one_run(setup, client, i) for i in range(1, runs + 1)]
    summary = {key: summarise(samples, key) for key in ("failover_s", "last_advert_to_answer_s")}
    return {"build_s": round(build_s, 2), "samples": samples, "summary": summary}


def delete_zones(setup):
    for node in setup.nodes:
        node.gz.run("vmadm", "delete", node.uuid, check=True)


# -- figures -----------------------------------------------------------------


def percentile(values, q):
    """Linear interpolation between closest ranks (numpy's default)."""
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q
    low, high = math.floor(pos), math.ceil(pos)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def summarise(samples, key):
    values = [s[key] for s in samples if s[key] is not None]
    summary = {"runs": len(samples), "missing": len(samples) - len(values)}
    if values:
        figures = {"min": min(values), "p50": statistics.median(values), "p95": percentile(values, 0.95)}
        summary.update({name: round(v, 4) for name, v in figures.items()}, max=max(values))
    return summary


def ratios(results, key="failover_s"):
    formula = results.get("formula", {}).get("summary", {}).get(key, {})
    hand = results.get("by-hand", {}).get("summary", {}).get(key, {})
    return {q: round(formula[q] / hand[q], 3) for q in ("p50", "p95") if formula.get(q) and hand.get(q)}


def table(results, key, title):
    lines = [f"{title}", "", "| setup | runs | min (s) | p50 (s) | p95 (s) | max (s) |", "|---|---|---|---|---|---|"]
    for name, result in results.items():
        s = result["summary"][key]
        runs = f"{s['runs']}" + (f" ({s['missing']} missing)" if s["missing"] else "")
        if "p50" not in s:
            lines.append(f"| {name} | {runs} | - | - | - | - |")
            continue
        lines.append(f"| {name} | {runs} | {s['min']:.2f} | {s['p50']:.2f} | {s['p95']:.2f} | {s['max']:.2f} |")
    ratio = ratios(results, key)
    if ratio:
        lines += ["", "formula / by-hand: " + ", ".join(f"{q} {v:.2f}" for q, v in ratio.items())]
    return "\n".join(lines)


def host_info():
    uname = subprocess.run(["uname", "-srm"], capture_output=True, text=True, check=False).stdout.strip()
    return {"uname": uname, "nproc": os.cpu_count()}


def loadavg():
    with open("/proc/loadavg") as fh:
        return fh.read().strip()


def write_json(record, path):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as fh:
        json.dump(record, fh, indent=2)
        fh.write("\n")
    os.replace(tmp, path)


# -- main --------------------------------------------------------------------


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10, help="failovers per setup (default 10)")
    parser.add_argument("--setup", choices=[*SETUPS, "both"], default="both", help="which setup(s) to measure")
    parser.add_argument("--output", default=RESULTS, help=f"JSON results file (default {RESULTS})")
    args = parser.parse_args(argv)
    if not 1 <= args.runs <= 1000:
        parser.error("--runs must be between 1 and 1000")
    return args


def run(bed, workdir, args):
    client = bed.host("client", f"{CLIENT}/24")
    adverts = AdvertLog(client)
    try:
        results = {}
        for name in list(SETUPS) if args.setup == "both" else [args.setup]:
            setup = (FormulaSetup if name == "formula" else HandSetup)(bed, os.path.join(workdir, name))
            os.makedirs(setup.workdir)
            results[name] = measure(setup, (Probe(bed, client), adverts), args.runs)
            delete_zones(setup)  # the next setup reuses the VIP and the VHID
        return results
    finally:
        adverts.close()


def bed_ready(script):
    """Whether the test bed can run here (else why not, on stderr); from now on
    SIGTERM ends a run as Ctrl-C does, so the bed is removed either way."""
    problem = simbed.unavailable()
    if problem:
        print(f"bench/{script} {problem}", file=sys.stderr)
        return False
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    return True


def close_record(record, path, **fields):
    """Add the end load average and ``fields`` to ``record``, write it to
    ``path``; the closing line to print."""
    record.update(loadavg_end=loadavg(), **fields)
    write_json(record, path)
    return f"load average: start {record['loadavg_start']}, end {record['loadavg_end']}; written to {path}"


def new_record(benchmark, settings):
    """What every benchmark's JSON starts with: what, when, where, how."""
    return {
        "benchmark": benchmark,
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "host": host_info(),
        "command": shlex.join([os.path.relpath(sys.executable, REPO), *sys.argv]),
        "loadavg_start": loadavg(),
        "settings": settings,
    }


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if not bed_ready("failover.py"):
        return 1
    record = new_record(
        "unplanned failover: vmadm stop -F of the VIP holder -> VIP answering the client from the backup",
        {
            "vip": VIP,
            "vhid": VHID,
            **TIMINGS,
            "probe_interval_s": PROBE_INTERVAL,
            "ping_wait_s": float(PING_WAIT),
            "failover_timeout_s": FAILOVER_TIMEOUT,
            "settle_s": SETTLE,
        },
    )  # fmt: skip
    simbed.sweep()
    bed = simbed.Bed(prefix="ucarpbench")
    workdir = tempfile.mkdtemp(prefix=f"{bed.id}-salt-", dir="/var/tmp")
    try:
        results = run(bed, workdir, args)
    except KeyboardInterrupt:
        say("interrupted")
        return 130
    except BenchError as exc:
        say(f"failed: {exc}")
        return 1
    finally:
        say("removing the test bed")
        bed.destroy()
        shutil.rmtree(workdir, ignore_errors=True)
    closing = close_record(
        record,
        args.output,
        results=results,
        ratios={key: ratios(results, key) for key in ("failover_s", "last_advert_to_answer_s")},
    )
    print(table(results, "failover_s", "Failover: vmadm stop -F of the holder -> VIP answering from the backup"))
    print()
    print(table(results, "last_advert_to_answer_s", "From the old master's last advert -> VIP answering"))
    print(f"\n{closing}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
