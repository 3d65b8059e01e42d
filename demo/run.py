"""The whole formula from nothing: a salt-master, two hypervisors, a VIP that moves.

Run it with ``make demo`` (as root).  It builds two simulated SmartOS
hypervisors (gz1, gz2) on one LAN with a client host, starts a real
salt-master with the formula's reactor and a salt-minion on each hypervisor,
applies the formula from a pillar like ``pillar.example`` (cluster ``web``:
zone web-a on gz1, web-b on gz2, VIP 192.0.2.100), installs a small web
service bound to the VIP in each zone, and shows ``salt-run ucarp.status``.
Then maintenance: a clean ``vmadm stop`` of the zone holding the VIP while
the client pings the VIP every 20 ms.  The master's ucarp instance hands
the VIP over before it ends (it keeps answering until the backup's first
advert), so no ping goes unanswered; the old master's agent says so in its
log, and the reactor moves the web service.  The zone starts again as a
backup.  Then a crash of the new master (``vmadm stop -F``): the usual
failover, printed as it happens (the backup taking the VIP after three
missed adverts, the engine's event reaching the master, the reactor's
actions and its ``failover/complete`` report); the client gets its answer
from the other zone.  Last, a planned switchover back with ``salt-run
ucarp.switchover``: refused while the crashed zone is stopped, then, once
it runs again as a backup, the VIP moves at the new master's next advert
and the reactor moves the service with it.  Everything it started
(daemons, by PID; zones, LAN, client) is removed at the end, also on
Ctrl-C or SIGTERM.
"""

import os
import re
import signal
import subprocess
import sys
import threading
import time

import yaml

DEMO_DIR = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(DEMO_DIR, "..", "tests", "sim"))

from saltcluster import (  # noqa: E402
    APP,
    PILLAR,
    WEB,
    SaltCluster,
    SaltError,
    app_answer,
    install_app,
    parse_json,
    unanswered,
    zone_uuid,
)

from smartos_sim import bed as simbed  # noqa: E402

CLUSTER, VIP, VHID = "web", WEB["vip"], WEB["vhid"]
NODES = WEB["nodes"]
CLIENT = "192.0.2.200"
URL = f"http://{VIP}:8080/"
WAIT = 90  # seconds: the bound of every wait
T0 = time.monotonic()
EPOCH0 = time.time()


class DemoError(Exception):
    """Something the demo waits for did not happen."""


def say(text, at=None):
    """One timeline line: seconds since the start (``at``: an epoch time instead of now)."""
    elapsed = time.monotonic() - T0 if at is None else at - EPOCH0
    lines = text.split("\n")
    print(f"[{elapsed:6.2f}s] {lines[0]}", flush=True)
    for line in lines[1:]:
        print(f"          {line}", flush=True)


def poll(predicate, timeout=WAIT, interval=0.2):
    """``predicate()``'s first truthy value, or None after ``timeout`` s (bounded in count too)."""
    deadline = time.monotonic() + timeout
    for _ in range(int(timeout / interval) + 2):
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value or None
        time.sleep(interval)
    return None


# -- what the master's bus says, in words ------------------------------------------


def describe_transition(event):
    sender, item = event.data.get("id"), event.data.get("data") or {}
    return (
        f"master bus: {event.tag} from minion {sender} (its {item.get('via')}): zone {item.get('zone')} is "
        f"{item.get('role')} (transition #{item.get('seq')}, recorded by its ucarp hook at {item.get('ts')}: "
        "whole seconds)"
    )


def describe_actions(actions):
    if not actions:
        return ["no actions"]
    lines = []
    for a in actions:
        result = {True: "ok", False: f"FAILED: {a.get('detail')}", None: f"skipped: {a.get('detail')}"}[a.get("ok")]
        lines.append(f"  {a['action']} {a['arg']} in {a['zone']}: {result}")
    return lines


def describe_complete(event):
    d = event.data
    t, master, tr = d.get("timings", {}), d.get("master", {}), d.get("transition", {})
    received, checked, done = (t.get(k, 0) - EPOCH0 for k in ("received", "checked", "actions_done"))
    lines = [
        f"master bus: {event.tag}: the runner handled {tr.get('zone')}@{tr.get('gz')} -> {tr.get('role')} "
        f"(#{tr.get('seq')}); exactly one zone holds the VIP: {master.get('zone')}@{master.get('gz')}",
        f"  its timings: event received {received:.2f}s, holder check done {checked:.2f}s "
        f"({checked - received:.2f} s), actions done {done:.2f}s ({done - checked:.2f} s); "
        "the actions follow the holder:",
    ]
    return "\n".join(lines + describe_actions(d.get("actions")))


def describe_alert(event):
    d = event.data
    holders = ", ".join(f"{h['zone']}@{h['gz']}" for h in d.get("holders", [])) or "none"
    return f"master bus: {event.tag}: ALERT {d.get('reason') or ''} holders: {holders}"


def describe(event):
    """A line for an interesting event, or None."""
    tag = event.tag
    if tag.startswith(f"ucarp/{CLUSTER}/"):
        if tag.endswith("/failover/complete"):
            return describe_complete(event)
        if tag.endswith("/switchover/complete"):
            d = event.data
            return f"master bus: {tag}: {d.get('from')} -> {d.get('to')}, timings {d.get('timings')}"
        if "/alert/" in tag:
            return describe_alert(event)
        if tag.rsplit("/", 1)[1] in ("master", "backup"):
            return describe_transition(event)
        return f"master bus: {tag}"
    if tag.startswith("salt/run/") and tag.endswith("/new") and event.data.get("fun") == "runner.ucarp.transition":
        return "reactor: runner ucarp.transition started for that event"
    return None


class Timeline:
    """Prints the master bus's interesting events as they arrive, at their arrival time."""

    def __init__(self, bus):
        self.bus = bus
        self.shown = 0

    def pump(self):
        with self.bus.cond:
            new = self.bus.events[self.shown :]
            self.shown = len(self.bus.events)
        for event in new:
            text = describe(event)
            if text:
                say(text, at=event.seen)

    def during(self, fn, *args, timeout=600):
        """Run ``fn(*args)`` in a thread, showing events meanwhile; its result."""
        box = {}

        def target():
            try:
                box["value"] = fn(*args)
            except Exception as exc:  # noqa: BLE001 - re-raised below, in the main thread
                box["error"] = exc

        thread = threading.Thread(target=target, daemon=True)
        thread.start()
        for _ in range(int(timeout / 0.1) + 2):
            self.pump()
            thread.join(0.1)
            if not thread.is_alive():
                break
        self.pump()
        if thread.is_alive():
            raise DemoError(f"{getattr(fn, '__name__', fn)} did not finish within {timeout}s")
        if "error" in box:
            raise box["error"]
        return box["value"]

    def wait(self, pattern, after, predicate=None, timeout=WAIT):
        """Show events until one matching arrives; that event."""
        found = None
        for _ in range(int(timeout / 0.1) + 2):
            self.pump()
            found = self.bus.since(pattern, after, predicate)
            if found or time.time() - after > timeout:
                break
            time.sleep(0.1)
        self.pump()
        if not found:
            raise DemoError(f"no event {pattern} within {timeout}s")
        return found[0]


# -- the formula, through Salt -------------------------------------------------------


def summarise_states(results):
    """One line per minion: states run, changed, failed."""
    lines, failed_any = [], []
    for minion in sorted(results):
        states = results[minion]
        if not isinstance(states, dict):
            raise DemoError(f"{minion}: {states}")
        changed = sum(1 for s in states.values() if s.get("changes"))
        failed = {k: s.get("comment") for k, s in states.items() if s.get("result") is False}
        seconds = sum(s.get("duration", 0) for s in states.values()) / 1000
        lines.append(f"  {minion}: {len(states)} states run, {changed} changed, {len(failed)} failed ({seconds:.1f} s)")
        failed_any += [f"{minion}: {k.split('_|-')[1]}: {c}" for k, c in failed.items()]
    if failed_any:
        raise DemoError("failed states:\n" + "\n".join(failed_any))
    return "\n".join(lines)


def status_table(report):
    """``salt-run ucarp.status`` as a small table."""
    rows = [("cluster", "VIP", "master", "backups", "alert")]
    for name, info in sorted(report.items()):
        master = info.get("master")
        backups = [f"{b['zone']}@{b['gz']} ({b.get('zone_state')})" for b in info.get("backups", [])]
        alert = info.get("alert")
        rows.append(
            (
                name,
                info.get("vip", "?"),
                f"{master['zone']}@{master['gz']}" if master else "NONE",
                ", ".join(backups) or "-",
                alert["kind"] if alert else "-",
            )
        )
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  " + "  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows)


def holds_vip(bed, alias):
    gz = bed.gz(NODES[alias]["host"])
    proc = gz.zlogin(zone_uuid(bed, alias), "/usr/sbin/ifconfig -a", timeout=10)
    return proc.returncode == 0 and f"inet {VIP} " in proc.stdout


# -- the story ----------------------------------------------------------------------


def build(bed):
    say("The ucarp formula end to end: a salt-master, two SmartOS hypervisors (simulated), one floating VIP")
    say("building the test bed: hypervisors gz1 and gz2 on one simulated LAN (TEST-NET-1, 192.0.2.0/24, only)")
    client = bed.host("client", f"{CLIENT}/24")
    say(f"a client host on the LAN at {CLIENT}")
    return client


def start_salt(bed):
    cluster = SaltCluster(bed, PILLAR, minions=("gz1", "gz2"))
    port = cluster.master_opts["ret_port"]
    say(f"starting salt-master (127.0.0.1:{port}, keys auto-accepted, the formula's reactor on "
        "ucarp/*/master and ucarp/*/backup)\nand salt-minion gz1 and gz2, one per hypervisor, together "
        "(each minion's vmadm and zlogin are its hypervisor's)")  # fmt: skip
    return cluster


def sync(cluster):
    say("syncing the formula's custom code: salt-run saltutil.sync_all (ucarp runner and util to the master)")
    cluster.salt_run("saltutil.sync_all")
    say("salt 'gz*' saltutil.sync_all (vmadm, zlogin, ucarp modules, states, the ucarp beacon and engine)")
    cluster.salt("gz*", "saltutil.sync_all")


def show_pillar():
    shown = {"ucarp": {"clusters": {CLUSTER: dict(PILLAR["ucarp"]["clusters"][CLUSTER], password="(secret)")}}}
    shown["beacons"] = PILLAR["beacons"]
    text = yaml.safe_dump(shown, sort_keys=False, default_flow_style=None).rstrip()
    say(
        "the pillar (as in pillar.example; the beacon reports VIP transitions every second, and each minion's\n"
        "config runs the ucarp engine, which sends a new record within 0.1 s):\n" + text
    )


def apply(cluster, bed, timeline):
    show_pillar()
    say(
        "salt 'gz*' state.apply ucarp.zones: each hypervisor imports the zone's image (imgadm: a fresh one has none)\n"
        "and creates its zone (vmadm), VIP in the NIC's allowed_ips"
    )
    results = timeline.during(cluster.salt, "gz*", "state.apply", "ucarp.zones")
    say(summarise_states(results))
    for alias in NODES:
        install_app(bed, alias)
    say(f"installed a small web service in each zone ({APP}, disabled): it serves the zone's name on {VIP}:8080")
    say("salt 'gz*' state.highstate: ucarp from pkgin, hooks, options, passfile, SMF manifest, instance online")
    started = time.time()
    results = timeline.during(cluster.salt, "gz*", "state.highstate")
    say(summarise_states(results))
    say("ucarp runs in both zones now; the CARP election picks a master, the engine reports it:")
    # A convergence covers every transition it confirmed (``transitions``): one of them a master's.
    is_master = lambda e: any(t["role"] == "master" for t in e.data.get("transitions") or [e.data["transition"]])  # noqa: E731
    timeline.wait(f"ucarp/{CLUSTER}/failover/complete", started, is_master)
    settle(timeline, started)


def settle(timeline, after):
    """Show events until the reactor has answered every transition so far (bounded)."""
    settled = poll(lambda: timeline.pump() or not unanswered(timeline.bus, CLUSTER, after), WAIT, 0.2)
    if not settled:
        raise DemoError(f"the reactor has not answered every transition within {WAIT}s")
    masters = timeline.bus.since(f"ucarp/{CLUSTER}/master", after)
    if len(masters) > 1:
        say("both zones started at the same moment, so for a moment both took the VIP until they heard each\n"
            "other's adverts and one stepped back; the reactor followed every step, in order")  # fmt: skip
    say("the reactor has answered every transition so far")


def show_status(cluster):
    report = cluster.salt_run("ucarp.status")
    say("salt-run ucarp.status:\n" + status_table(report))
    return report.get(CLUSTER, {}).get("master")


def show_history(cluster):
    """``salt-run ucarp.history``, as an operator types it: the table."""
    proc = cluster.run_cli("salt-run", "--no-color", "ucarp.history", CLUSTER, "limit=12", timeout=120)
    if proc.returncode != 0 or "time (UTC)" not in proc.stdout:
        raise DemoError(f"salt-run ucarp.history failed (exit {proc.returncode}): {proc.stdout}{proc.stderr}")
    say(f"salt-run ucarp.history {CLUSTER} limit=12 (kept in the master's salt.cache; --out=json for machines):\n"
        + proc.stdout.rstrip())  # fmt: skip


def client_fetch(bed, client, expected):
    answer = poll(lambda: app_answer(bed, client) == expected and expected, WAIT, 0.3)
    if not answer:
        last = app_answer(bed, client)
        raise DemoError(f"the client did not get {expected!r} from {URL} within {WAIT}s (last: {last!r})")
    say(f"client {CLIENT}: GET {URL} -> {answer!r} (the web service runs in the master zone only)")


class Pinger:
    """The client pinging the VIP every 20 ms (``ping -D -O``, at most 120 s), started and ended by its PID."""

    def __init__(self, bed, client):
        argv = ["ip", "netns", "exec", client, "ping", "-n", "-D", "-O", "-i", "0.02", "-w", "120", VIP]
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines = []
        self.thread = threading.Thread(target=lambda: self.lines.extend(self.proc.stdout), daemon=True)
        self.thread.start()

    def replies(self):
        return [float(m.group(1)) for line in list(self.lines) if (m := re.match(r"\[(\d+\.\d+)\] \d+ bytes", line))]

    def stop(self):
        """Sent, answered, and the longest time between two replies (s)."""
        self.proc.send_signal(signal.SIGINT)  # ping prints its summary
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)
        self.thread.join(timeout=5)
        summary = next(
            (m for line in self.lines if (m := re.match(r"(\d+) packets transmitted, (\d+) received", line))), None
        )
        if summary is None:
            raise DemoError("ping printed no summary: " + "".join(self.lines[-3:]))
        times = self.replies()
        gap = max((b - a for a, b in zip(times, times[1:], strict=False)), default=0.0)
        return int(summary.group(1)), int(summary.group(2)), gap


def zone_log(bed, gz_name, uuid, pattern):
    """Lines of the ucarp instance's SMF log in a zone matching ``pattern``, read from the zone's root in the
    global zone (the zone may be stopped)."""
    path = os.path.join(bed.gz(gz_name).get(uuid)["zonepath"], "root", "var", "svc", "log", "network-ucarp:web.log")
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return [line.rstrip() for line in f if pattern in line]
    except OSError:
        return []


def maintenance(cluster, bed, client, timeline, master):
    """A clean ``vmadm stop`` of the master's zone: the VIP is handed over first, no ping is lost."""
    old = master["zone"]
    (new,) = [a for a in NODES if a != old]
    gz_name = master["gz"]
    gz = bed.gz(gz_name)
    uuid = zone_uuid(bed, old)
    say(f"maintenance of {old}: {gz_name}: vmadm stop {uuid} (clean: SMF stops the zone's services, ucarp too)\n"
        f"its instance hands {VIP} over first: ucarp is stopped without its down hook, so {old} keeps the VIP\n"
        f"and answers while {new} notices the silence; a listening ucarp hears {new}'s first advert\n"
        f"(authenticated with the password) and only then {old} lets go.  Meanwhile the client pings {VIP}\n"
        "every 20 ms")  # fmt: skip
    pinger = Pinger(bed, client)
    if not poll(lambda: len(pinger.replies()) >= 25, 30, 0.1):
        pinger.stop()
        raise DemoError(f"the client gets no ping replies from {VIP}")
    before = len(zone_log(bed, gz_name, uuid, "a backup took"))
    started = time.time()
    timeline.during(gz.run, "vmadm", "stop", uuid, timeout=120)
    stopped = time.time()
    if not poll(lambda: timeline.pump() or holds_vip(bed, new), WAIT, 0.05):
        pinger.stop()
        raise DemoError(f"{new} did not take {VIP} within {WAIT}s")
    taken = len(pinger.replies())
    poll(lambda: len(pinger.replies()) >= taken + 25, 10, 0.1)  # half a second more of replies from the new master
    sent, answered, gap = pinger.stop()
    say(f"vmadm stop returned after {stopped - started:.1f} s; {new} holds {VIP}")
    for line in zone_log(bed, gz_name, uuid, "ucarp-agent[web]: ")[-2:]:
        say(f"  {old}'s log: {line}")
    if len(zone_log(bed, gz_name, uuid, "a backup took")) <= before:
        raise DemoError(f"{old}'s agent did not hand the VIP over")
    say(f"client {CLIENT}: ping {VIP}: {sent} sent, {sent - answered} unanswered, longest time between two "
        f"replies {gap * 1000:.0f} ms (one every 20 ms)")  # fmt: skip
    took_over = lambda e: e.data["transition"]["role"] == "master" and e.data["transition"]["zone"] == new  # noqa: E731
    timeline.wait(f"ucarp/{CLUSTER}/failover/complete", started, took_over)
    client_fetch(bed, client, new)
    say("the VIP never stopped answering; the web service of this demo runs in the master only (on_master\n"
        "starts it), so its first answer from the new master waits for the reactor.  A service running in every\n"
        "zone (a hot standby with health checks) answers all along: bench/maintenance.py measures that")  # fmt: skip
    say(f"{gz_name}: vmadm start {uuid}\n{old} comes back as a backup: the VIP stays with {new}")
    gz.run("vmadm", "start", uuid, check=True)

    def back_as_backup():
        timeline.pump()
        info = cluster.salt_run("ucarp.status").get(CLUSTER, {})
        online = any(b["zone"] == old and b.get("service") == "online" for b in info.get("backups", []))
        return online and (info.get("master") or {}).get("zone") == new

    if not poll(back_as_backup, WAIT, 0.5):
        raise DemoError(f"{old} did not come back as an online backup within {WAIT}s")
    settle(timeline, started)


def failover(bed, client, timeline, master):
    old = master["zone"]
    (new,) = [a for a in NODES if a != old]
    gz = bed.gz(master["gz"])
    uuid = zone_uuid(bed, old)
    say(
        "from here on nobody types anything: UCARP moves the VIP, the engine on the new master's hypervisor\n"
        f"sends ucarp/{CLUSTER}/master, the reactor runs the ucarp.transition runner, which checks the sender\n"
        "against pillar, checks that exactly one zone holds the VIP, runs on_master in that zone and on_backup\n"
        f"in the other, and fires ucarp/{CLUSTER}/failover/complete"
    )
    say(f"{master['gz']}: vmadm stop -F {uuid}\n{old} dies abruptly: no down hook, no goodbye; "
        f"{new} takes over after 3 missed adverts (advbase 1 s x deadratio 3)")  # fmt: skip
    stopped_at = time.time()
    gz.run("vmadm", "stop", "-F", uuid, check=True)
    taken = poll(lambda: timeline.pump() or holds_vip(bed, new), WAIT, 0.05)
    if not taken:
        raise DemoError(f"{new} did not take {VIP} within {WAIT}s")
    taken_at = time.time()
    say(f"{new} holds {VIP} now (ifconfig net0:{VHID} in the zone): {taken_at - stopped_at:.1f} s after the stop")
    took_over = lambda e: e.data["transition"]["role"] == "master" and e.data["transition"]["zone"] == new  # noqa: E731
    done = timeline.wait(f"ucarp/{CLUSTER}/failover/complete", stopped_at, took_over)
    say(f"the reactor's response came {done.seen - taken_at:.1f} s after the takeover, without anyone typing")
    client_fetch(bed, client, new)


def switchover_back(cluster, bed, client, timeline, master):
    """``salt-run ucarp.switchover``: refused while the target is stopped, then done."""
    (target,) = [a for a in NODES if a != master["zone"]]
    command = ("ucarp.switchover", CLUSTER, f"to={target}")
    say(f"move the VIP back to {target} on purpose: salt-run {' '.join(command)}")
    proc = cluster.run_cli("salt-run", "--out=json", *command)
    answer = parse_json(proc.stdout) or {}
    if proc.returncode == 0:
        raise DemoError(f"the switchover to the stopped {target} was not refused: {answer}")
    say(f"-> exit {proc.returncode}: {answer.get('comment')} (nothing was changed)")
    gz = bed.gz(NODES[target]["host"])
    uuid = zone_uuid(bed, target)
    say(f"{NODES[target]['host']}: vmadm start {uuid}\nSMF brings {target}'s ucarp instance back, as a backup")
    gz.run("vmadm", "start", uuid, check=True)

    def backup_online():
        timeline.pump()
        info = cluster.salt_run("ucarp.status").get(CLUSTER, {})
        return any(b["zone"] == target and b.get("service") == "online" for b in info.get("backups", []))

    if not poll(backup_online, WAIT, 0.5):
        raise DemoError(f"{target} did not come back as an online backup within {WAIT}s")
    say(f"salt-run {' '.join(command)} (again): {target} restarts ucarp with --preempt and advskew 0 and takes\n"
        "the VIP at the master's next advert; then every node gets its own options back")  # fmt: skip
    started = time.time()
    result = timeline.during(cluster.salt_run, *command)
    timings = result.get("timings", {})
    say(f"-> {result.get('comment')} (handover {timings.get('handover_s')} s, "
        f"all done {timings.get('total_s')} s)")  # fmt: skip
    timeline.wait(f"ucarp/{CLUSTER}/switchover/complete", started)
    took_over = lambda e: e.data["transition"]["role"] == "master" and e.data["transition"]["zone"] == target  # noqa: E731
    timeline.wait(f"ucarp/{CLUSTER}/failover/complete", started, took_over)
    client_fetch(bed, client, target)


def story(bed, holder):
    client = build(bed)
    cluster = start_salt(bed)
    holder.append(cluster)
    cluster.start(timeout=WAIT + 60)
    pids = ", ".join(f"{name} {pid}" for name, pid in cluster.pids.items())
    say(f"master and minions up, gz1 and gz2 answer test.ping (PIDs: {pids})")
    with cluster.events() as bus:
        timeline = Timeline(bus)
        sync(cluster)
        apply(cluster, bed, timeline)
        master = show_status(cluster)
        if not master:
            raise DemoError("ucarp.status shows no master")
        client_fetch(bed, client, master["zone"])
        maintenance(cluster, bed, client, timeline, master)
        master = show_status(cluster)
        if not master:
            raise DemoError("ucarp.status shows no master after the maintenance stop")
        failover(bed, client, timeline, master)
        master = show_status(cluster)
        if not master:
            raise DemoError("ucarp.status shows no master after the failover")
        switchover_back(cluster, bed, client, timeline, master)
        if not show_status(cluster):
            raise DemoError("ucarp.status shows no master after the switchover")
        timeline.pump()
        show_history(cluster)
    say("done: a maintenance stop handed the VIP over with no gap; after a crash UCARP moved it on its own;\n"
        "Salt saw both, moved the service, moved the VIP back on request, and reports the cluster healthy")  # fmt: skip


def cleanup(bed, holder):
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not leave half a bed
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if holder:
        say("stopping salt-master and the minions (by PID)")
        holder[0].stop()
    say("removing the test bed (zones, LAN, client)")
    bed.destroy()


def main():
    problem = simbed.unavailable()
    if problem:
        print(f"make demo {problem}", file=sys.stderr)
        return 1
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    simbed.sweep()
    bed = simbed.Bed(prefix="ucarpdemo")
    holder = []
    try:
        story(bed, holder)
        return 0
    except KeyboardInterrupt:
        say("interrupted")
        return 130
    except (DemoError, SaltError) as exc:
        say(f"FAILED: {exc}")
        return 1
    finally:
        cleanup(bed, holder)


if __name__ == "__main__":
    sys.exit(main())
