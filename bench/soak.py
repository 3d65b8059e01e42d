"""Soak: many failovers of the example ``web`` cluster in a row, every transition accounted for.

Builds one test bed (two simulated hypervisors gz1 and gz2, TEST-NET-1
addresses only), starts a real salt-master with the formula's reactor and a
salt-minion per hypervisor (``demo/saltcluster.py``), applies the formula
with the demo's cluster ``web`` (VIP 192.0.2.100, VHID 101, web-a on gz1,
web-b on gz2 at advskew 20, ``on_master`` / ``on_backup`` actions, the
``ucarp`` beacon every second) as ``bench/reaction.py`` does, then runs
``--failovers`` failovers in a row.  Each makes the current master lose, at
random (``random.Random(--seed)``) in one of two ways:

* ``kill``: ``vmadm stop -F`` of the master zone in its global zone; once
  the backup has taken the VIP and the reactor has answered, ``vmadm
  start`` it again;
* ``cut``: the link between the master zone and the backup is cut (the
  bed's ``isolate(uuid, True)`` on both zones' global zones: the bed cuts a
  port only from the other cut ports; clients still reach both zones), so
  the backup takes the VIP too; once the reactor has answered, the link is
  healed and UCARP leaves one master (the one with the lower advskew).

Every ``--restart-every``-th failover the salt-master is stopped before the
master zone is made to lose, and started again once the backup has taken
the VIP (the transition happens while the master is down).

What it reports, from the master's event bus (read in this process, as
``bench/reaction.py`` does, a reader per master run) and from the zones' own
record files (``/var/db/ucarp/web.transitions``, read from the global zone
under the zone root):

* recorded: every record the zones' hooks wrote during the soak; seen on
  the bus: every distinct ``ucarp/web/master|backup`` event (zone, epoch,
  seq);
* reacted to: the records covered (``transitions``) by the reactor's
  ``ucarp/web/failover/complete`` and ``ucarp/web/alert/*`` events, from the
  bus and from ``salt-run ucarp.history`` (which keeps every event the
  runner fired, also while this process was not listening); an alert and
  the ``failover/complete`` the same convergence fired after it (its
  follow-up watch saw one holder) are one reaction;
* lost (recorded, never reacted to) and doubled (covered by two different
  reactions); the goal is recorded == reacted, none lost, none twice;
* alerts by tag;
* per failover: kind, master restarted or not, the takeover, the time to
  the first reaction covering the new master's record, whether exactly one
  zone held the VIP (``salt-run ucarp.status`` and the zones' ``ifconfig``)
  within ``--settle-timeout`` after the failover and after the old master
  came back (or the link was healed);
* the total time.

Run as root: ``.venv/bin/python bench/soak.py --failovers 100``.
"""

import argparse
import json
import os
import platform
import random
import re
import signal
import subprocess
import sys
import time
import uuid

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(BENCH_DIR)
sys.path.insert(0, os.path.join(REPO, "demo"))
sys.path.insert(0, os.path.join(REPO, "tests", "sim"))

from failover import BenchError, bed_ready, close_record, new_record, percentile, poll, say  # noqa: E402
from reaction import cluster_status  # noqa: E402
from reaction import setup as set_up_cluster  # noqa: E402
from saltcluster import BIN, PILLAR, WEB, Daemon, SaltCluster, SaltError, runners_in_flight, tag_matches  # noqa: E402

from smartos_sim import bed as simbed  # noqa: E402
from smartos_sim.recipe import holds_vip  # noqa: E402

RESULTS = os.path.join(BENCH_DIR, "results", "soak.json")
CLUSTER = "web"
VIP = WEB["vip"]
KINDS = ("kill", "cut")
POLL = 0.2
TAKEOVER_TIMEOUT = 60.0  # the backup takes the VIP after advbase x deadratio (3 s) of silence
REACTION_TIMEOUT = 240.0  # after a master restart the beacon sends again after 30 s, up to 3 times
REVIVE_TIMEOUT = 180.0  # vmadm start -> the ucarp instance online and its backup record written
MASTER_START_TIMEOUT = 180.0
HISTORY_EVERY = 10  # failovers between two reads of ucarp.history (it keeps 1000 entries)
REACTION_TAGS = (f"ucarp/{CLUSTER}/failover/complete", f"ucarp/{CLUSTER}/alert/*")
FOLLOW_UP_ALERTS = ("no-master", "split-brain")  # a convergence may complete after these (the runner's FOLLOW_UP)
# A transition record: "<seq>@<epoch> <time> <role> <cluster> <vip> <vhid> <iface>", or, older, "<seq> <time> ...".
RECORD_RE = re.compile(r"^(\d+)(?:@([0-9a-f]+))? (\d+) (master|backup) (\S+) (\S+) (\d+) (\S+)$")


# -- records and reactions -------------------------------------------------------------


def rid(item):
    """A record's identity: zone, epoch ("" for a record from before epochs), seq."""
    return (item.get("zone"), item.get("epoch") or "", item.get("seq"))


def show(ident):
    zone, epoch, seq = ident
    return f"{zone} {seq}@{epoch}" if epoch else f"{zone} {seq}"


def as_dict(ident):
    zone, epoch, seq = ident
    return {"zone": zone, "epoch": epoch, "seq": seq}


def transitions_path(node):
    return os.path.join(node.gz.root, "zones", node.uuid, "root", "var", "db", "ucarp", f"{CLUSTER}.transitions")


def file_records(node):
    """The zone's transition records of the cluster, read from the global zone (the zone may be stopped)."""
    try:
        with open(transitions_path(node), encoding="utf-8", errors="replace") as fh:
            text = fh.read()
    except FileNotFoundError:
        return []
    found = {}
    for line in text.splitlines():
        match = RECORD_RE.match(line.strip())
        if not match or match.group(5) != CLUSTER or match.group(6) != VIP:
            continue
        record = {"zone": node.alias, "epoch": match.group(2) or "", "seq": int(match.group(1)),
                  "ts": int(match.group(3)), "role": match.group(4)}  # fmt: skip
        found[rid(record)] = record  # of two lines with the same epoch and number, the last
    return list(found.values())


def all_records(nodes):
    return {rid(r): r for node in nodes.values() for r in file_records(node)}


def covered_ids(data):
    """The records a reaction event covered."""
    items = data.get("transitions")
    if not isinstance(items, list):
        items = [data["transition"]] if isinstance(data.get("transition"), dict) else []
    return [rid(t) for t in items if isinstance(t, dict)]


def event_key(tag, data):
    """One fired event, whether read from the bus or from ``ucarp.history``."""
    timings = data.get("timings") if isinstance(data.get("timings"), dict) else {}
    if timings:
        return (tag, timings.get("received"), timings.get("checked"), tuple(covered_ids(data)))
    rest = {k: v for k, v in data.items() if k != "_stamp"}
    return (tag, json.dumps(rest, sort_keys=True, default=str))


class Bus:
    """The master's event bus across master restarts: one reader
    (``saltcluster.MasterEvents``) per master run, their events kept together.
    ``since`` and ``wait`` as ``MasterEvents``'s, so ``saltcluster``'s helpers take it."""

    def __init__(self, cluster):
        self.cluster = cluster
        self.closed_events = []
        self.reader = None
        self.gaps = []  # (closed, opened) epoch times: the bus was not read in between

    def open(self, started, timeout):
        """Read the bus of the master started at ``started`` (epoch); wait until it
        delivers an event this process sent (``salt-run event.send``)."""
        ipc = os.path.join(self.cluster.master_opts["sock_dir"], "master_event_pub.ipc")
        deadline = time.monotonic() + timeout
        for _ in range(int(timeout) + 2):
            if time.monotonic() > deadline:
                break
            try:
                fresh = os.stat(ipc).st_mtime >= started - 1  # not the socket file the stopped master left
            except FileNotFoundError:
                fresh = False
            if not fresh:
                time.sleep(0.5)
                continue
            reader = self.cluster.events()
            try:
                reader.__enter__()
            except SaltError:
                time.sleep(0.5)
                continue
            self.reader = reader
            token = f"soak/hello/{uuid.uuid4().hex}"
            try:
                self.cluster.salt_run("event.send", token, timeout=30)
            except (SaltError, subprocess.TimeoutExpired):
                pass
            if reader.wait(token, timeout=10) is not None:
                if self.gaps and self.gaps[-1][1] is None:
                    self.gaps[-1] = (self.gaps[-1][0], time.time())
                return
            self.close(gap=False)
            time.sleep(1)
        raise BenchError(f"cannot read the master's event bus within {timeout:.0f}s of its start")

    def close(self, gap=True):
        if self.reader is None:
            return
        self.reader.__exit__(None, None, None)
        with self.reader.cond:
            self.closed_events += self.reader.events
        self.reader = None
        if gap:
            self.gaps.append((time.time(), None))

    def since(self, pattern, after=0.0, predicate=None):
        found = [e for e in self.closed_events if e.seen >= after and tag_matches(e.tag, pattern)]
        if self.reader is not None:
            found += self.reader.since(pattern, after)
        return [e for e in found if predicate is None or predicate(e)]

    def wait(self, pattern, after=0.0, predicate=None, timeout=90.0):
        return poll(lambda: next(iter(self.since(pattern, after, predicate)), None), timeout, 0.1)


class Reactions:
    """The reactor's reaction events (``failover/complete``, ``alert/*``) since the
    soak began, from the bus and from ``salt-run ucarp.history``, each once."""

    def __init__(self, cluster, bus, start):
        self.cluster, self.bus, self.start = cluster, bus, start
        self.history = {}  # event_key -> {"tag", "data", "at"}
        self.history_read = 0.0
        self.history_errors = []

    def read_history(self):
        self.history_read = time.monotonic()
        try:
            entries = self.cluster.salt_run("ucarp.history", CLUSTER, f"since={self.start - 1:.3f}", "limit=0",
                                            timeout=120)  # fmt: skip
        except (SaltError, subprocess.TimeoutExpired) as exc:
            self.history_errors.append(str(exc)[:300])
            return
        for entry in entries if isinstance(entries, list) else []:
            tag, data = entry.get("tag"), entry.get("data")
            if isinstance(tag, str) and isinstance(data, dict) and any(tag_matches(tag, p) for p in REACTION_TAGS):
                self.history[event_key(tag, data)] = {"tag": tag, "data": data, "at": entry.get("at")}

    def events(self):
        """Every reaction event, oldest first: {"tag", "data", "seen" (bus, or None), "at" (history, or None)}."""
        found = {}
        for pattern in REACTION_TAGS:
            for e in self.bus.since(pattern, self.start):
                found.setdefault(event_key(e.tag, e.data), {"tag": e.tag, "data": e.data, "seen": e.seen, "at": None})
        for key, entry in self.history.items():
            if key in found:
                found[key]["at"] = entry["at"]
            else:
                found[key] = dict(entry, seen=None)
        return sorted(found.values(), key=lambda e: e["at"] or e["seen"] or 0)

    def covered(self, refresh_after=None):
        """The records any reaction covered; with ``refresh_after`` (seconds), ucarp.history is read
        again first if it was read longer ago than that."""
        if refresh_after is not None and time.monotonic() - self.history_read > refresh_after:
            self.read_history()
        return {i for e in self.events() for i in covered_ids(e["data"])}

    def first_covering(self, ident, after):
        """The first reaction read from the bus after ``after`` (epoch) that covers ``ident``."""
        found = [e for p in REACTION_TAGS for e in self.bus.since(p, after) if ident in covered_ids(e.data)]
        return min(found, key=lambda e: e.seen) if found else None


def convergences(events):
    """The reactions as convergences: a ``failover/complete`` alone, an alert alone, or an
    alert (no-master, split-brain) with the ``failover/complete`` the same convergence fired
    after its follow-up watch (same ``timings.received``, checked later, covering the alert's
    transitions and those the watch took meanwhile: a split that heals brings the cut-off
    node's backup record, which that one convergence covers)."""
    groups, paired = [], set()
    for n, event in enumerate(events):
        if n in paired:
            continue
        group = [event]
        kind = event["tag"].rsplit("/", 1)[-1]
        timings = event["data"].get("timings") or {}
        if kind in FOLLOW_UP_ALERTS and "/alert/" in event["tag"]:
            for m in range(n + 1, len(events)):
                other = events[m]
                t = other["data"].get("timings") or {}
                if (m not in paired and other["tag"].endswith("/failover/complete")
                        and set(covered_ids(other["data"])) >= set(covered_ids(event["data"]))
                        and t.get("received") == timings.get("received")
                        and (t.get("checked") or 0) >= (timings.get("checked") or 0)):  # fmt: skip
                    group.append(other)
                    paired.add(m)
                    break
        groups.append(group)
    return groups


def describe(event, start):
    data = event["data"]
    out = {"tag": event["tag"], "covered": [show(i) for i in covered_ids(data)]}
    if event["seen"] is not None:
        out["seen_s"] = round(event["seen"] - start, 3)
    if event["at"] is not None:
        out["at_s"] = round(event["at"] - start, 3)
    timings = data.get("timings") or {}
    if timings.get("received"):
        out["received_s"] = round(timings["received"] - start, 3)
    if data.get("master"):
        out["master"] = data["master"].get("zone")
    return out


def account(baseline, records, bus, reactions, start):
    """Recorded against reacted to: counts and the lists of lost, doubled and other mismatches."""
    recorded = {i: r for i, r in records.items() if i not in baseline}
    on_bus = {}
    for e in bus.since(f"ucarp/{CLUSTER}/*", start):
        if e.tag.split("/", 2)[2] in ("master", "backup"):
            item = e.data.get("data") or {}
            on_bus.setdefault(rid(item), item.get("role"))
    events = [e for e in reactions.events() if covered_ids(e["data"])]  # alert/rejected covers nothing
    groups = convergences(events)
    by_record = {}
    for n, group in enumerate(groups):
        for ident in {i for e in group for i in covered_ids(e["data"])}:
            by_record.setdefault(ident, []).append(n)
    roles = {}
    for e in events:
        for t in e["data"].get("transitions") or []:
            if isinstance(t, dict):
                roles.setdefault(rid(t), set()).add(t.get("role"))
    lost = sorted(i for i in recorded if i not in by_record)
    doubled = sorted(i for i in recorded if len(by_record.get(i, [])) > 1)
    reacted_not_recorded = sorted(i for i in by_record if i not in recorded)
    role_mismatch = sorted(i for i in recorded if roles.get(i, {recorded[i]["role"]}) != {recorded[i]["role"]})
    paired = sum(1 for g in groups if len(g) > 1)
    return {
        "recorded": len(recorded),
        "reacted": len([i for i in recorded if i in by_record]),
        "lost": len(lost),
        "doubled": len(doubled),
        "goal_met": not lost and not doubled and not reacted_not_recorded,
        "seen_on_bus": len([i for i in on_bus if i in recorded]),
        "reaction_events": len(events),
        "reactions": len(groups),
        "alert_then_complete": paired,
        "alert_then_complete_records": sorted(
            {show(i) for g in groups if len(g) > 1 for i in covered_ids(g[-1]["data"]) if i in recorded}
        ),
        "reaction_events_from_history_only": len([e for e in events if e["seen"] is None]),
        "lost_records": [dict(recorded[i]) for i in lost],
        "doubled_records": [
            dict(recorded[i], reactions=[[describe(e, start) for e in groups[n]] for n in by_record[i]])
            for i in doubled
        ],
        "reacted_not_recorded": [
            dict(
                as_dict(i),
                in_baseline=i in baseline,
                reactions=[[describe(e, start) for e in groups[n]] for n in by_record[i]],
            )
            for i in reacted_not_recorded
        ],
        "role_mismatch": [dict(recorded[i], reacted_roles=sorted(roles[i])) for i in role_mismatch],
        "not_seen_on_bus": [show(i) for i in sorted(recorded) if i not in on_bus],
        "on_bus_not_recorded": [show(i) for i in sorted(on_bus) if i not in recorded],
        "records": [dict(r, reactions=len(by_record.get(i, []))) for i, r in sorted(recorded.items())],
    }


def alerts_by_tag(reactions, bus, start):
    counts = {}
    seen = {event_key(e["tag"], e["data"]) for e in reactions.events()}
    for e in reactions.events():
        if "/alert/" in e["tag"]:
            key = e["tag"].split(f"ucarp/{CLUSTER}/", 1)[-1]
            counts[key] = counts.get(key, 0) + 1
    for e in bus.since("ucarp/*/alert/*", start):  # other clusters' (a rejected event names its own)
        if not e.tag.startswith(f"ucarp/{CLUSTER}/") and event_key(e.tag, e.data) not in seen:
            counts[e.tag] = counts.get(e.tag, 0) + 1
    return dict(sorted(counts.items()))


# -- the salt-master ------------------------------------------------------------------


def stop_master(cluster, bus):
    """Stop the salt-master (SIGTERM to its PID, SIGKILL to its group after 30 s)."""
    bus.close()
    for daemon in [d for d in cluster.daemons if d.name == "salt-master"]:
        daemon.terminate()
        daemon.stop(time.monotonic() + 30)
        cluster.daemons.remove(daemon)


def start_master(cluster, bus):
    """Start the salt-master again, as ``SaltCluster.start`` does; read its bus.  Its start (epoch)."""
    started = time.time()
    argv = [os.path.join(BIN, "salt-master"), "-c", cluster.master_conf, "-l", "quiet"]
    cluster.daemons.insert(0, Daemon("salt-master", argv, dict(os.environ), cluster.master_log))
    bus.open(started, MASTER_START_TIMEOUT)
    return started


# -- one failover ---------------------------------------------------------------------


def vip_holders(nodes):
    """The zones whose ``ifconfig -a`` shows the VIP up."""
    return [alias for alias, node in nodes.items() if holds_vip(node.gz, node.uuid, VIP)]


def status_master(cluster):
    """The master zone ``salt-run ucarp.status`` shows, if exactly one and no alert; else None."""
    try:
        info = cluster_status(cluster)
    except (SaltError, subprocess.TimeoutExpired):
        return None
    return (info.get("master") or {}).get("zone") if not info.get("alert") else None


class Soak:
    """The failovers, one after the other, and what they leave for the accounting."""

    def __init__(self, cluster, bus, nodes, args):
        self.cluster, self.bus, self.nodes, self.args = cluster, bus, nodes, args
        self.rng = random.Random(args.seed)
        self.start = time.time()
        self.master_started = 0.0  # the last master (re)start, epoch
        self.t0 = self.start  # the current failover's start, epoch
        self.baseline = all_records(nodes)
        self.reactions = Reactions(cluster, bus, self.start)
        self.samples = []

    def rel(self, t, t0):
        return None if t is None else round(t - t0, 3)

    def new_record(self, node, role, known, timeout):
        """The first record of ``role`` the zone writes that is not in ``known``, and when it was seen."""

        def look():
            fresh = [r for r in file_records(node) if rid(r) not in known and r["role"] == role]
            return (fresh[0], time.time()) if fresh else None

        return poll(look, timeout, 0.1) or (None, None)

    def settled(self, fresh_since, timeout):
        """Wait until every record written since ``fresh_since`` (ids not in it) has been
        reacted to, no reaction runs, and exactly one zone holds the VIP (``ifconfig``) and
        ``ucarp.status`` shows it as master with no alert.  (master alias, epoch) or (None, None)."""

        def check():
            fresh = set(all_records(self.nodes)) - fresh_since
            if fresh - self.reactions.covered():
                # The bus may have missed a reaction (not read while the master restarted): ask the history.
                if fresh - self.reactions.covered(refresh_after=10):
                    return None
            after = max(self.t0, self.master_started)
            if runners_in_flight(self.bus, after=after):
                return None
            holders = vip_holders(self.nodes)
            if len(holders) != 1:
                return None
            return (holders[0], time.time()) if status_master(self.cluster) == holders[0] else None

        return poll(check, timeout, 0.5) or (None, None)

    def one_holder(self, expected, timeout):
        """Wait until ``expected`` alone holds the VIP and ``ucarp.status`` says so, with no alert."""

        def check():
            if vip_holders(self.nodes) != [expected]:
                return None
            return time.time() if status_master(self.cluster) == expected else None

        return poll(check, timeout, 0.5)

    def failover(self, index, master_alias):
        args = self.args
        kind = self.rng.choice(args.kinds)
        restart = bool(args.restart_every) and index % args.restart_every == 0
        jitter = self.rng.uniform(0, 1)  # the loss's phase in the advert and beacon cycles
        master = self.nodes[master_alias]
        (backup,) = [n for a, n in self.nodes.items() if a != master_alias]
        known = set(all_records(self.nodes))
        sample = {"failover": index, "kind": kind, "master_restarted": restart, "old_master": master.alias,
                  "backup": backup.alias, "jitter_s": round(jitter, 3), "problems": []}  # fmt: skip
        problems = sample["problems"]
        time.sleep(jitter)
        t0 = self.t0 = time.time()
        sample["t0_s"] = round(t0 - self.start, 3)
        if restart:
            stop_master(self.cluster, self.bus)
            sample["master_stopped_s"] = self.rel(time.time(), t0)
        if kind == "kill":
            master.gz.run("vmadm", "stop", "-F", master.uuid, check=True)
        else:
            master.gz.isolate(master.uuid, True)
            backup.gz.isolate(backup.uuid, True)
        sample["lost_s"] = self.rel(time.time(), t0)
        took, took_at = self.new_record(backup, "master", known, TAKEOVER_TIMEOUT)
        sample["takeover_s"] = self.rel(took_at, t0)
        sample["takeover_record"] = None if took is None else show(rid(took))
        if took is None:
            problems.append(f"{backup.alias} wrote no master record within {TAKEOVER_TIMEOUT:.0f}s")
        elif kind == "cut":
            sample["holders_during_cut"] = vip_holders(self.nodes)
        if restart:
            self.master_started = start_master(self.cluster, self.bus)
            sample["master_started_s"] = self.rel(self.master_started, t0)
            sample["bus_read_again_s"] = self.rel(time.time(), t0)
        if took is not None:
            first = poll(lambda: self.reactions.first_covering(rid(took), t0), REACTION_TIMEOUT, 0.2)
            if first is None:
                self.reactions.read_history()
                late = [e for e in self.reactions.events() if rid(took) in covered_ids(e["data"])]
                note = f" (ucarp.history has {late[0]['tag']})" if late else ""
                problems.append(
                    f"no reaction covering {show(rid(took))} read from the bus within {REACTION_TIMEOUT:.0f}s{note}"
                )
            else:
                sample["reaction_s"] = self.rel(first.seen, t0)
                sample["reaction_after_takeover_s"] = self.rel(first.seen, took_at)
                sample["reaction_tag"] = first.tag
        if kind == "kill":
            at = self.one_holder(backup.alias, args.settle_timeout) if took is not None else None
            sample["one_holder_after_failover"] = at is not None
            sample["one_holder_after_failover_s"] = self.rel(at, t0)
            if at is None:
                problems.append(f"{backup.alias} not the one holder within {args.settle_timeout:.0f}s of the failover")
            revived = time.time()
            master.gz.run("vmadm", "start", master.uuid, check=True)
            online = poll(lambda: master.svc_state() == "online", REVIVE_TIMEOUT, 0.5)
            if online is None:
                problems.append(
                    f"{master.alias}: svc:/network/ucarp:{CLUSTER} not online again: {master.svc_state()!r}"
                )
            back, back_at = self.new_record(master, "backup", known, REVIVE_TIMEOUT)
            sample["revived_s"] = self.rel(revived, t0)
        else:
            sample["one_holder_after_failover"] = None  # by design: both hold the VIP while the link is cut
            revived = time.time()
            master.gz.isolate(master.uuid, False)
            backup.gz.isolate(backup.uuid, False)
            sample["healed_s"] = self.rel(revived, t0)
            found = poll(lambda: next((r for n in self.nodes.values() for r in file_records(n)
                                       if rid(r) not in known and r["role"] == "backup"), None),
                         REVIVE_TIMEOUT, 0.1)  # fmt: skip
            back, back_at = found, (time.time() if found else None)
        sample["stepped_down_record"] = None if back is None else show(rid(back))
        sample["stepped_down_s"] = self.rel(back_at, t0)
        if back is None:
            problems.append(f"no backup record written within {REVIVE_TIMEOUT:.0f}s of the revive/heal")
        holder, at = self.settled(known, args.settle_timeout)
        sample["one_holder_after_revive"] = holder is not None
        sample["settled_s"] = self.rel(at, t0)
        sample["new_master"] = holder
        if holder is None:
            problems.append(f"no single holder, all answered, within {args.settle_timeout:.0f}s of the revive/heal: "
                            f"ifconfig {vip_holders(self.nodes)}")  # fmt: skip
        fresh = {i: r for i, r in all_records(self.nodes).items() if i not in known}
        sample["records"] = [show(i) for i in sorted(fresh)]
        sample["alerts"] = [e.tag.split("/", 2)[2] for e in self.bus.since(f"ucarp/{CLUSTER}/alert/*", t0)]
        # What the bus carried meanwhile: the beacon's events (a record sent again shows twice), the reactions.
        sample["sent"] = [
            {
                "record": show(rid(e.data.get("data") or {})),
                "role": e.tag.rsplit("/", 1)[-1],
                "seen_s": self.rel(e.seen, t0),
            }
            for e in self.bus.since(f"ucarp/{CLUSTER}/*", t0)
            if e.tag.rsplit("/", 1)[-1] in ("master", "backup") and e.tag.count("/") == 2
        ]
        sample["reactions"] = [
            describe({"tag": e.tag, "data": e.data, "seen": e.seen, "at": None}, t0)
            for p in REACTION_TAGS
            for e in self.bus.since(p, t0)
        ]
        sample["reactions"].sort(key=lambda r: r.get("seen_s") or 0)
        sample["duration_s"] = self.rel(time.time(), t0)
        self.samples.append(sample)
        shown = "; ".join(problems) if problems else "ok"
        reaction = sample.get("reaction_s")
        say(
            f"failover {index}/{args.failovers} {kind}{' + master restart' if restart else ''}: {master.alias} lost, "
            f"{backup.alias} took over at {sample['takeover_s']}s, reaction "
            f"{'-' if reaction is None else f'{reaction:.2f}s'} ({sample.get('reaction_tag', '-')}), "
            f"master now {holder}, {sample['duration_s']:.0f}s; {shown}"
        )
        return holder

    def run(self):
        master = status_master(self.cluster)
        if master is None:
            raise BenchError("no single master before the first failover")
        say(f"soak: {self.args.failovers} failovers, seed {self.args.seed}; {master} holds the VIP")
        for index in range(1, self.args.failovers + 1):
            holder = self.failover(index, master)
            if index % HISTORY_EVERY == 0:
                self.reactions.read_history()
            if holder is None:
                holder = status_master(self.cluster)
                if holder is None:
                    raise BenchError(f"no single master after failover {index}: cannot go on")
            master = holder

    def report(self, failed=None):
        """Everything measured so far (also after a failure: the zones' files are still there)."""
        end = time.time()
        self.reactions.read_history()
        records = all_records(self.nodes)
        accounting = account(self.baseline, records, self.bus, self.reactions, self.start)
        return {
            "duration_s": round(end - self.start, 1),
            "summary": summarise(self.samples, accounting),
            "accounting": accounting,
            "alerts": alerts_by_tag(self.reactions, self.bus, self.start),
            "bus_gaps_s": [
                [round(a - self.start, 3), None if b is None else round(b - self.start, 3)] for a, b in self.bus.gaps
            ],  # fmt: skip
            "history_errors": self.reactions.history_errors,
            "failovers": self.samples,
            **({"failed": failed} if failed else {}),
        }


# -- figures ---------------------------------------------------------------------------


def stats(values):
    values = [v for v in values if v is not None]
    if not values:
        return {"n": 0}
    return {"n": len(values), "min": round(min(values), 3), "p50": round(percentile(values, 0.5), 3),
            "p95": round(percentile(values, 0.95), 3), "max": round(max(values), 3)}  # fmt: skip


def summarise(samples, accounting):
    groups = {
        "all": samples,
        "kill": [s for s in samples if s["kind"] == "kill"],
        "cut": [s for s in samples if s["kind"] == "cut"],
        "master_restarted": [s for s in samples if s["master_restarted"]],
        "master_running": [s for s in samples if not s["master_restarted"]],
    }
    return {
        "failovers": len(samples),
        "kill": len(groups["kill"]),
        "cut": len(groups["cut"]),
        "master_restarted": len(groups["master_restarted"]),
        "with_problems": len([s for s in samples if s["problems"]]),
        "one_holder_after_every_failover": all(s["one_holder_after_failover"] is not False for s in samples),
        "one_holder_after_every_revive": all(s["one_holder_after_revive"] for s in samples),
        "master_moved": len([s for s in samples if s.get("new_master") == s["backup"]]),
        "recorded": accounting["recorded"],
        "reacted": accounting["reacted"],
        "lost": accounting["lost"],
        "doubled": accounting["doubled"],
        "goal_met": accounting["goal_met"],
        "takeover_s": stats([s.get("takeover_s") for s in samples]),
        "reaction_s": {name: stats([s.get("reaction_s") for s in group]) for name, group in groups.items()},
        "duration_s": stats([s.get("duration_s") for s in samples]),
    }


def print_summary(result):
    s, acc = result["summary"], result["accounting"]
    print(f"\n{s['failovers']} failovers ({s['kill']} kill, {s['cut']} cut, {s['master_restarted']} with a master "
          f"restart) in {result['duration_s']:.0f}s; {s['with_problems']} with problems")  # fmt: skip
    print(f"records: {acc['recorded']} recorded, {acc['reacted']} reacted to, {acc['lost']} lost, "
          f"{acc['doubled']} twice, {len(acc['reacted_not_recorded'])} reacted to but not recorded during the soak; "
          f"{acc['seen_on_bus']} seen on the bus; goal {'met' if acc['goal_met'] else 'NOT met'}")  # fmt: skip
    for name in ("lost_records", "doubled_records", "reacted_not_recorded", "role_mismatch"):
        for item in acc[name]:
            print(f"  {name}: {json.dumps(item)}")
    print(f"alerts: {json.dumps(result['alerts'])}")
    print(f"one holder after every failover: {s['one_holder_after_every_failover']}, "
          f"after every revive/heal: {s['one_holder_after_every_revive']}")  # fmt: skip
    print("| reaction (t0 -> first reaction read) | n | min (s) | p50 (s) | p95 (s) | max (s) |")
    print("|---|---|---|---|---|---|")
    for name, st in s["reaction_s"].items():
        if st["n"]:
            print(f"| {name} | {st['n']} | {st['min']:.2f} | {st['p50']:.2f} | {st['p95']:.2f} | {st['max']:.2f} |")


# -- main ------------------------------------------------------------------------------


def environment():
    def out(*argv):
        try:
            proc = subprocess.run(argv, capture_output=True, text=True, cwd=REPO, timeout=30, check=False)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return proc.stdout.rstrip("\n") if proc.returncode == 0 else None

    import salt.version  # noqa: PLC0415

    dirty = out("git", "status", "--porcelain", "--untracked-files=no")
    return {
        "git_commit": out("git", "rev-parse", "HEAD"),
        "git_modified": [line[3:] for line in (dirty or "").splitlines()],
        "python": platform.python_version(),
        "salt": salt.version.__version__,
        "ucarp": out("dpkg-query", "-W", "-f", "${Version}", "ucarp"),
    }


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--failovers", type=int, default=100, help="failovers in a row (default 100)")
    parser.add_argument("--restart-every", type=int, default=10,
                        help="restart the salt-master during every Nth failover (default 10; 0: never)")  # fmt: skip
    parser.add_argument("--seed", type=int, default=None, help="seed of the kinds and delays (default: drawn, shown)")
    parser.add_argument("--kinds", default=",".join(KINDS), help="kinds of loss to draw from (default kill,cut)")
    parser.add_argument("--settle-timeout", type=float, default=180.0,
                        help="seconds to wait for one holder, every record answered (default 180)")  # fmt: skip
    parser.add_argument("--out", default=RESULTS, help=f"JSON results file (default {RESULTS})")
    args = parser.parse_args(argv)
    if not 1 <= args.failovers <= 10000:
        parser.error("--failovers must be between 1 and 10000")
    if args.restart_every < 0:
        parser.error("--restart-every must be 0 or more")
    if not 10 <= args.settle_timeout <= 3600:
        parser.error("--settle-timeout must be between 10 and 3600")
    args.kinds = [k for k in args.kinds.split(",") if k]
    if not args.kinds or set(args.kinds) - set(KINDS):
        parser.error(f"--kinds: a comma-separated list of {', '.join(KINDS)}")
    if args.seed is None:
        args.seed = random.SystemRandom().randrange(2**31)
    return args


def soak(bed, holder, args):
    cluster = SaltCluster(bed, PILLAR, minions=("gz1", "gz2"))
    holder.append(cluster)
    say("starting salt-master and salt-minion gz1, gz2")
    started = time.time()
    cluster.start(timeout=180)
    bus = Bus(cluster)
    holder.append(bus)
    bus.open(started, MASTER_START_TIMEOUT)
    nodes = set_up_cluster(bed, cluster, bus)
    runner = Soak(cluster, bus, nodes, args)
    holder.append(runner)
    runner.run()
    return runner


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if not bed_ready("soak.py"):
        return 1
    record = new_record(
        "soak: failovers in a row (kill or cut of the master zone, salt-master restarts), every transition accounted",
        {
            "cluster": {k: v for k, v in WEB.items() if k != "password"},
            "beacon_interval_s": 1,
            "failovers": args.failovers,
            "restart_every": args.restart_every,
            "seed": args.seed,
            "kinds": args.kinds,
            "settle_timeout_s": args.settle_timeout,
            "takeover_timeout_s": TAKEOVER_TIMEOUT,
            "reaction_timeout_s": REACTION_TIMEOUT,
            "revive_timeout_s": REVIVE_TIMEOUT,
        },
    )  # fmt: skip
    record["environment"] = environment()
    simbed.sweep()
    bed = simbed.Bed(prefix="ucarpsoak")
    holder, result, code = [], None, 0
    began = time.monotonic()
    try:
        try:
            soak(bed, holder, args)
            failed = None
        except KeyboardInterrupt:
            say("interrupted")
            failed, code = "interrupted", 130
        except (BenchError, SaltError, subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
            say(f"failed: {exc}")
            failed, code = str(exc), 1
        runner = next((h for h in holder if isinstance(h, Soak)), None)
        if runner is not None:
            try:
                result = runner.report(failed)
            except (BenchError, SaltError, subprocess.TimeoutExpired) as exc:
                say(f"cannot report: {exc}")
        elif failed:
            result = {"failed": failed}
    except KeyboardInterrupt:
        say("interrupted")
        code = 130
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        say("stopping the Salt daemons (by PID) and removing the test bed")
        for item in holder:
            if isinstance(item, Bus):
                item.close(gap=False)
        if holder:
            holder[0].stop()
        bed.destroy()
    if result is None:
        return code or 1
    result["total_s"] = round(time.monotonic() - began, 1)
    closing = close_record(record, args.out, **result)
    if "summary" in result:
        print_summary(result)
    print(f"\ntotal {result['total_s']:.0f}s; {closing}")
    return code


if __name__ == "__main__":
    sys.exit(main())
