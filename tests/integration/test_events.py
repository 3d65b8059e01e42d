"""Failover events, the reactor's response, fleet status, health events and
planned switchovers, with a real salt-master and two hypervisor minions
(started once for this module).

In each ``web`` zone a small web service can be bound to the VIP; the
cluster's ``on_master`` action enables it in the zone that takes the VIP and
``on_backup`` disables it in the others, so a client reaching the VIP gets
its answer from the new master after a failover.  The ``db`` zones run the
same service on every address (a hot standby) with health checks, and are
the ones moved by ``salt-run ucarp.switchover``.
"""

import copy
import json
import os
import subprocess
import sys
import threading
import time

import pytest
import yaml
from support import ENGINE, REPO, formula_root, load_salt_module, wait_for

from smartos_sim import vipapp

pytestmark = pytest.mark.root
MODEL = load_salt_module("_utils", "ucarp_model")

APP = vipapp.FMRI
CLUSTERS = {
    "web": {
        "vip": "192.0.2.100",
        "vhid": 101,
        "password": "web-Secret-1",
        "nodes": {"web-a": {"host": "gz1", "ip": "192.0.2.11"}, "web-b": {"host": "gz2", "ip": "192.0.2.12"}},
        "on_master": [{"svc_enable": APP}],
        "on_backup": [{"svc_disable": APP}],
    },
    # A hot standby: the app runs in both zones (bound to every address) and
    # each node checks its own health; planned switchovers move this VIP.
    "db": {
        "vip": "192.0.2.110",
        "vhid": 102,
        "password": "db-Secret-1",
        "nodes": {"db-a": {"host": "gz1", "ip": "192.0.2.21"}, "db-b": {"host": "gz2", "ip": "192.0.2.22"}},
        "health": {
            "interval": 1,
            "fall": 2,
            "rise": 2,
            "checks": [{"tcp": vipapp.PORT}, {"command": "test ! -e /var/tmp/sick"}],
        },
        # A planned stop hands the VIP over while the app still answers.
        "fronts": [APP],
    },
}
SICK = "/var/tmp/sick"


def events(listener, master, pattern, after, predicate=lambda e: True):
    return sorted(
        (e for e in listener.get_events([(master.id, pattern)], after_time=after) if predicate(e)),
        key=lambda e: e.stamp,
    )


def wait_event(listener, master, pattern, after, predicate=lambda e: True, timeout=90):
    found = wait_for(lambda: events(listener, master, pattern, after, predicate), timeout=timeout, interval=0.5,
                     what=f"an event {pattern}")  # fmt: skip
    return found[0]


@pytest.fixture(scope="module")
def roots(tmp_path_factory):
    base = tmp_path_factory.mktemp("roots")
    (base / "states").mkdir()
    (base / "states" / "top.sls").write_text("base:\n  'gz*':\n    - ucarp\n")
    (base / "pillar").mkdir()
    (base / "pillar" / "top.sls").write_text("base:\n  '*':\n    - ucarp\n")
    pillar = {"ucarp": {"clusters": CLUSTERS}, "beacons": {"ucarp": [{"interval": 1}]}}
    (base / "pillar" / "ucarp.sls").write_text(yaml.safe_dump(pillar))
    return base


@pytest.fixture(scope="module")
def master(salt_factories, roots):
    overrides = {
        "file_roots": {"base": [str(roots / "states"), os.path.join(REPO, "salt"), formula_root(roots)]},
        "pillar_roots": {"base": [str(roots / "pillar")]},
        "reactor": [
            {"ucarp/*/master": ["salt://reactor/ucarp/transition.sls"]},
            {"ucarp/*/backup": ["salt://reactor/ucarp/transition.sls"]},
            {"ucarp/*/health/*": ["salt://reactor/ucarp/health.sls"]},
        ],
        # Named as an engine too, so the reactor runner (reactor.set_leader)
        # sees it running beside the factories' pytest engine.
        "engines": ["reactor"],
    }
    factory = salt_factories.salt_master_daemon("ucarp-master", overrides=overrides)
    with factory.started(start_timeout=120):
        yield factory


@pytest.fixture(scope="module")
def minions(master, bed):
    started = {}
    for name in ("gz1", "gz2"):
        factory = master.salt_minion_daemon(name, overrides=ENGINE)
        # A dict of its own: the factories share one environ object by default.
        factory.environ = {**factory.environ, **bed.gz(name).env}
        started[name] = factory
    for factory in started.values():
        factory.start(start_timeout=120)
    yield started
    for factory in started.values():
        factory.terminate()


@pytest.fixture(scope="module")
def client(bed):
    return bed.host("client", "192.0.2.200/24")


def salt(master, fun, *args, tgt="gz*", timeout=600):
    proc = master.salt_cli(timeout=timeout).run(fun, *args, minion_tgt=tgt)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.data


def apply(master, *args):
    results = salt(master, *args)
    assert set(results) == {"gz1", "gz2"}, results
    for minion, states in results.items():
        assert isinstance(states, dict), f"{minion}: {states}"
        failed = {k: v["comment"] for k, v in states.items() if not v["result"]}
        assert not failed, f"{minion}: {failed}"
    return results


@pytest.fixture(scope="module")
def highstate(master, minions, bed, event_listener):
    assert master.salt_run_cli(timeout=120).run("saltutil.sync_all").returncode == 0
    salt(master, "saltutil.sync_all")
    apply(master, "state.apply", "ucarp.zones")
    for gz_name, alias in (("gz1", "web-a"), ("gz2", "web-b")):
        gz = bed.gz(gz_name)
        uuid = gz.run("vmadm", "lookup", "-1", f"alias={alias}", check=True).stdout.strip()
        vipapp.install(gz, uuid, CLUSTERS["web"]["vip"])
    for alias, node in CLUSTERS["db"]["nodes"].items():
        gz = bed.gz(node["host"])
        uuid = gz.run("vmadm", "lookup", "-1", f"alias={alias}", check=True).stdout.strip()
        vipapp.install(gz, uuid, CLUSTERS["db"]["vip"], bind="0.0.0.0")
        assert gz.zlogin(uuid, f"svcadm enable {vipapp.FMRI}").returncode == 0
    started = time.time()
    apply(master, "state.highstate")
    for cluster in CLUSTERS:
        wait_event(event_listener, master, f"ucarp/{cluster}/failover/complete", started)
    return started


def status(master):
    proc = master.salt_run_cli(timeout=120).run("ucarp.status")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.data


def zone_uuid(bed, gz_name, alias):
    return bed.gz(gz_name).run("vmadm", "lookup", "-1", f"alias={alias}", check=True).stdout.strip()


def covered(event, **wanted):
    """Whether a reaction covered a transition with these ``zone``, ``role``,
    ``seq``: a convergence answers every transition of its cluster that came
    while it ran (``transitions``), the last one in ``transition``."""
    every = event.data.get("transitions") or [event.data["transition"]]
    return any(all(t.get(k) == v for k, v in wanted.items()) for t in every)


def taken_over(event, zone, since):
    """A reaction to ``zone`` becoming master at or after ``since``: not to the
    brief master role of the start-up election (both nodes start as master for
    a moment), whose reaction may come late, after a busy highstate."""
    every = event.data.get("transitions") or [event.data["transition"]]
    return any(t["zone"] == zone and t["role"] == "master" and t["ts"] >= int(since) for t in every)


def app_answer(bed, client):
    return vipapp.answer(bed, client, CLUSTERS["web"]["vip"])


@pytest.mark.matrix
def test_status_shows_one_master_per_cluster(master, highstate):
    report = status(master)
    assert set(report) == {"web", "db"}
    for name, info in report.items():
        assert info["master"] is not None, info
        assert info["master"]["zone"] in CLUSTERS[name]["nodes"]
        assert [b["zone"] for b in info["backups"]] == [
            z for z in CLUSTERS[name]["nodes"] if z != info["master"]["zone"]
        ]
        assert info["vip"] == CLUSTERS[name]["vip"]
        assert info["alert"] is None
    json_out = master.salt_run_cli(timeout=120).run("ucarp.status", "--out=json")
    assert json.loads(json_out.stdout)["web"]["vip"] == "192.0.2.100"


def test_one_holders_many_answers_each_cluster_as_its_own_holders_round_does(master, highstate):
    """What the runner sends when reactions of several clusters ask the same
    hypervisors at once: one job answers each cluster as ``ucarp.holders``
    does (records after a cursor included), and one it cannot answer about
    with an error of its own."""
    for gz in ("gz1", "gz2"):
        asks = [{"cluster": "web"}, {"cluster": "db", "after": {"db-a": None, "db-b": None}}, {"cluster": "nope"}]
        many = salt(master, "ucarp.holders_many", json.dumps(asks), tgt=gz)
        web = salt(master, "ucarp.holders", "web", tgt=gz)
        db = salt(master, "ucarp.holders", "db", 'after={"db-a": null, "db-b": null}', tgt=gz)
        assert many[0] == {"answer": web}
        assert many[1] == {"answer": db}
        assert many[1]["answer"]["records"], "the db zone's records on " + gz
        assert many[2] == {"error": "ucarp: no cluster 'nope' in pillar"}


@pytest.mark.matrix
def test_failover_runs_on_master_in_the_new_master(master, bed, client, highstate, event_listener):
    before = status(master)["web"]["master"]
    wait_for(lambda: app_answer(bed, client) == before["zone"], timeout=60, what="the app on the master")
    (new_alias,) = [z for z in CLUSTERS["web"]["nodes"] if z != before["zone"]]
    new_gz = CLUSTERS["web"]["nodes"][new_alias]["host"]
    started = time.time()
    old_uuid = zone_uuid(bed, before["gz"], before["zone"])
    bed.gz(before["gz"]).run("vmadm", "stop", "-F", old_uuid, check=True)  # the master zone dies
    try:
        # The reaction to the new master's own transition (an earlier event
        # handled meanwhile may already have converged on it too).
        done = wait_event(
            event_listener,
            master,
            "ucarp/web/failover/complete",
            started,
            lambda e: taken_over(e, new_alias, started),
        )
        assert done.data["master"] == {"zone": new_alias, "gz": new_gz}
        assert [a["ok"] for a in done.data["actions"] if a["zone"] == new_alias] == [True]
        timings = done.data["timings"]
        assert timings["actions_done"] >= timings["checked"] >= timings["received"]
        wait_for(lambda: app_answer(bed, client) == new_alias, timeout=30, what="the app answering from the new master")
    finally:
        bed.gz(before["gz"]).run("vmadm", "start", old_uuid, check=True)


@pytest.mark.matrix
def test_the_engine_delivers_a_transition_while_the_beacon_sleeps(master, roots, bed, highstate, event_listener):
    """The minion's ucarp engine sees a record file change and sends the
    record itself: with the beacon's interval at an hour on the new master's
    hypervisor (a beacon set in pillar cannot be disabled), the takeover
    still gets its reaction, from one event the engine sent."""
    before = wait_for(lambda: status(master)["web"]["master"], timeout=60, what="one web master")
    (new_alias,) = [z for z in CLUSTERS["web"]["nodes"] if z != before["zone"]]
    new_gz = CLUSTERS["web"]["nodes"][new_alias]["host"]
    write_pillar(roots, CLUSTERS, beacon_interval=3600)
    salt(master, "saltutil.refresh_pillar", "wait=True", tgt=new_gz)
    old_uuid = zone_uuid(bed, before["gz"], before["zone"])
    try:
        started = time.time()
        bed.gz(before["gz"]).run("vmadm", "stop", "-F", old_uuid, check=True)
        done = wait_event(event_listener, master, "ucarp/web/failover/complete", started,
                          lambda e: taken_over(e, new_alias, started))  # fmt: skip
        assert done.data["master"] == {"zone": new_alias, "gz": new_gz}
        seq = next(t["seq"] for t in done.data["transitions"] if t["zone"] == new_alias and t["role"] == "master")
        own = lambda e: (e.data.get("data") or {}).get("zone") == new_alias and e.data["data"].get("seq") == seq  # noqa: E731
        sent = events(event_listener, master, "ucarp/web/master", started, own)
        assert [e.data["data"].get("via") for e in sent] == ["engine"]
    finally:
        write_pillar(roots, CLUSTERS)
        salt(master, "saltutil.refresh_pillar", "wait=True", tgt=new_gz)
        bed.gz(before["gz"]).run("vmadm", "start", old_uuid, check=True)


def last_role(bed, gz_name, uuid, cluster):
    """The role of the last record a zone's hooks wrote (read from the global
    zone: the zone may be stopped)."""
    path = os.path.join(bed.gz(gz_name).root, "zones", uuid, "root", "var", "db", "ucarp", f"{cluster}.transitions")
    with open(path, encoding="utf-8") as fh:
        return fh.read().splitlines()[-1].split()[2]


def test_a_clean_stop_of_the_master_zone_moves_the_vip_with_no_false_alert(
    master, bed, client, highstate, event_listener
):
    """``vmadm stop`` without -F, as for maintenance: SMF stops the instance
    (SIGTERM), ucarp's down hook drops the VIP and records the master's step
    down, and the backup takes over after advbase x deadratio of silence. The
    reaction follows the new master, and no alert fires on the way."""
    before = wait_for(lambda: status(master)["web"]["master"], timeout=60, what="one web master")
    wait_for(lambda: app_answer(bed, client) == before["zone"], timeout=60, what="the app on the master")
    (new_alias,) = [z for z in CLUSTERS["web"]["nodes"] if z != before["zone"]]
    new_gz = CLUSTERS["web"]["nodes"][new_alias]["host"]
    old_uuid = zone_uuid(bed, before["gz"], before["zone"])
    started = time.time()
    bed.gz(before["gz"]).run("vmadm", "stop", old_uuid, check=True)  # a maintenance stop
    try:
        assert last_role(bed, before["gz"], old_uuid, "web") == "backup"  # the down hook ran and said so
        done = wait_event(event_listener, master, "ucarp/web/failover/complete", started,
                          lambda e: taken_over(e, new_alias, started))  # fmt: skip
        assert done.data["master"] == {"zone": new_alias, "gz": new_gz}
        assert [a["ok"] for a in done.data["actions"] if a["zone"] == new_alias] == [True]
        wait_for(lambda: app_answer(bed, client) == new_alias, timeout=30, what="the app answering from the new master")
        # The old master's own step down reaches the runner too (its zone's
        # files outlive it): a reaction that finds one holder, not an alarm.
        wait_event(event_listener, master, "ucarp/web/failover/complete", started,
                   lambda e: covered(e, zone=before["zone"], role="backup"))  # fmt: skip
        assert not events(event_listener, master, "ucarp/web/alert/*", started)
    finally:
        bed.gz(before["gz"]).run("vmadm", "start", old_uuid, check=True)
    wait_for(lambda: (status(master)["web"]["master"] or {}).get("zone") == new_alias, timeout=60,
             what=f"{new_alias} still the master once the old one is back")  # fmt: skip
    assert not events(event_listener, master, "ucarp/web/alert/*", started)


@pytest.mark.matrix
def test_forged_event_changes_nothing(master, minions, highstate, event_listener):
    before = status(master)["web"]
    (victim,) = [z for z, n in CLUSTERS["web"]["nodes"].items() if n["host"] == "gz2"]
    forged = {
        "cluster": "web", "zone": victim, "zone_uuid": "11111111-2222-3333-4444-555555555555", "role": "master",
        "seq": 999999, "ts": int(time.time()), "vip": "192.0.2.100", "vhid": 101, "gz": "gz2",
    }  # fmt: skip
    started = time.time()
    salt(master, "event.send", "ucarp/web/master", json.dumps(forged), tgt="gz1")  # gz1 does not host it
    alert = wait_event(event_listener, master, "ucarp/web/alert/rejected", started)
    assert alert.data["sender"] == "gz1"
    assert "hosted by gz2, not gz1" in alert.data["reason"]
    forged_seq = [
        e
        for e in events(event_listener, master, "ucarp/web/*", started)
        if e.data.get("transition", {}).get("seq") == 999999
    ]
    assert forged_seq == []  # the runner acted on nothing of it
    assert status(master)["web"]["master"] == before["master"]


def test_a_pillar_change_is_seen_by_the_next_event_without_a_restart(master, roots, highstate, event_listener):
    """The runner caches the model of each sender's pillar; a cluster added to
    the pillar files (no master restart, no pillar refresh) is known to the
    next event, and is gone again once removed."""
    extra = {"vip": "192.0.2.120", "vhid": 120, "password": "extra-Secret-1",
             "nodes": {"extra-a": {"host": "gz1", "ip": "192.0.2.31"}}}  # fmt: skip
    payload = {"cluster": "extra", "zone": "extra-a", "zone_uuid": "11111111-2222-3333-4444-555555555555",
               "role": "master", "ts": int(time.time()), "vip": "192.0.2.120", "vhid": 120, "gz": "gz1"}  # fmt: skip

    def send(seq):
        started = time.time()
        salt(master, "event.send", "ucarp/extra/master", json.dumps(dict(payload, seq=seq)), tgt="gz1")
        return wait_event(event_listener, master, "ucarp/extra/alert/*", started)

    first = send(1)
    assert first.tag == "ucarp/extra/alert/rejected"
    assert first.data["reason"] == "no cluster extra in the pillar of gz1"
    write_pillar(roots, dict(CLUSTERS, extra=extra))
    try:
        # Known now: it passes the pillar check and goes to gz1 to be
        # confirmed (gz1 cannot: the zone does not exist, and gz1's own
        # pillar has no such cluster yet, as it was not refreshed).
        second = send(2)
        assert second.tag == "ucarp/extra/alert/rejected", second.data
        assert second.data["reason"].startswith("gz1 could not confirm it: "), second.data
    finally:
        write_pillar(roots, CLUSTERS)
    third = send(3)
    assert third.data["reason"] == "no cluster extra in the pillar of gz1"


def test_split_brain_alert_and_recovery(master, bed, highstate, event_listener):
    uuids = {a: zone_uuid(bed, n["host"], a) for a, n in CLUSTERS["web"]["nodes"].items()}
    wait_for(lambda: status(master)["web"]["master"] is not None, timeout=60, what="one web master")
    started = time.time()
    for alias, uuid in uuids.items():
        bed.gz(CLUSTERS["web"]["nodes"][alias]["host"]).isolate(uuid, True)
    try:
        alert = wait_event(event_listener, master, "ucarp/web/alert/split-brain", started)
        assert sorted(h["zone"] for h in alert.data["holders"]) == sorted(uuids)
    finally:
        restored = time.time()
        for alias, uuid in uuids.items():
            bed.gz(CLUSTERS["web"]["nodes"][alias]["host"]).isolate(uuid, False)
    wait_event(event_listener, master, "ucarp/web/failover/complete", restored)
    wait_for(lambda: status(master)["web"]["master"] is not None, timeout=60, what="one web master again")


def test_transition_while_master_is_down_arrives_once(master, bed, highstate, event_listener):
    before = wait_for(lambda: status(master)["web"]["master"], timeout=60, what="one web master")
    (new_alias,) = [z for z in CLUSTERS["web"]["nodes"] if z != before["zone"]]
    new_gz = CLUSTERS["web"]["nodes"][new_alias]["host"]
    new_uuid = zone_uuid(bed, new_gz, new_alias)
    old_uuid = zone_uuid(bed, before["gz"], before["zone"])
    master.terminate()
    try:
        try:
            stopped = time.time()
            bed.gz(before["gz"]).run("vmadm", "stop", "-F", old_uuid, check=True)
            vip_up = f"inet {CLUSTERS['web']['vip']} "
            wait_for(lambda: vip_up in bed.gz(new_gz).zlogin(new_uuid, "/usr/sbin/ifconfig -a").stdout, timeout=30,
                     what=f"{new_alias} taking the VIP without Salt")  # fmt: skip
            taken = time.time()
        finally:
            master.start(start_timeout=120)
        # Just after the restart the minions drop the first jobs they cannot
        # decrypt yet: the runner asks again, and does not take the silence
        # for "no master".
        done = wait_event(event_listener, master, "ucarp/web/failover/complete", taken,
                          lambda e: taken_over(e, new_alias, stopped), timeout=180)  # fmt: skip
        seq = next(t["seq"] for t in done.data["transitions"] if t["zone"] == new_alias and t["role"] == "master")
        # Once: one reaction to that transition (a repeat would make a second;
        # the event itself may reach the bus before the listener is back).
        reactions = events(
            event_listener,
            master,
            "ucarp/web/failover/complete",
            taken,
            lambda e: covered(e, zone=new_alias, seq=seq),
        )
        assert len(reactions) == 1
        assert not events(event_listener, master, "ucarp/web/alert/*", taken)
    finally:
        bed.gz(before["gz"]).run("vmadm", "start", old_uuid, check=True)


def test_a_transition_no_reaction_acknowledged_is_sent_again(master, bed, highstate, event_listener):
    """The reactor ignores events for a while, as a restarted master's reactor
    does until it has started: the master takes the transition, nothing
    reacts, and the beacon sends it again until a reaction acknowledges it."""
    before = wait_for(lambda: status(master)["web"]["master"], timeout=60, what="one web master")
    (new_alias,) = [z for z in CLUSTERS["web"]["nodes"] if z != before["zone"]]
    new_gz = CLUSTERS["web"]["nodes"][new_alias]["host"]
    key = f"{zone_uuid(bed, new_gz, new_alias)}/web/transition"
    old_uuid = zone_uuid(bed, before["gz"], before["zone"])

    def acked():
        return salt(master, "ucarp.acks", tgt=new_gz).get(key, {}).get("seq", 0)  # one target: its return alone

    def reactor_listens(value):
        proc = master.salt_run_cli(timeout=120).run("reactor.set_leader", f"value={value}")
        # The runner prints its request, then the reactor's answer.
        assert proc.returncode == 0 and proc.stdout.split()[-1] == str(value).lower(), proc.stdout

    started = time.time()
    try:
        reactor_listens(False)
        bed.gz(before["gz"]).run("vmadm", "stop", "-F", old_uuid, check=True)
        taken = wait_event(event_listener, master, "ucarp/web/master", started,
                           lambda e: e.data["data"]["zone"] == new_alias, timeout=60)  # fmt: skip
        seq = taken.data["data"]["seq"]
        assert taken.data["data"]["ack"] == key
        assert acked() < seq  # taken by the master, but no reaction to acknowledge it
    finally:
        reactor_listens(True)
    try:
        done = wait_event(event_listener, master, "ucarp/web/failover/complete", started,
                          lambda e: covered(e, zone=new_alias, seq=seq), timeout=180)  # fmt: skip
        assert done.data["master"] == {"zone": new_alias, "gz": new_gz}
        wait_for(lambda: acked() >= seq, timeout=60, what=f"{new_gz} told that record {seq} of {key} was handled")
        sent = events(event_listener, master, "ucarp/web/master", started,
                      lambda e: e.data["data"]["zone"] == new_alias and e.data["data"]["seq"] == seq)  # fmt: skip
        assert len(sent) >= 2  # the first, which nothing reacted to, and the one sent again
    finally:
        bed.gz(before["gz"]).run("vmadm", "start", old_uuid, check=True)


# Trust only what the hypervisor confirms; records that go back ------------------


def records_of(bed, gz_name, uuid, cluster="web"):
    """A zone's transition records as the global zone sees them (the zone may be stopped)."""
    path = os.path.join(bed.gz(gz_name).root, "zones", uuid, "root", "var", "db", "ucarp", f"{cluster}.transitions")
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except FileNotFoundError:
        text = ""
    return MODEL.parse_records("transition", text, cluster, CLUSTERS[cluster]["vip"])


SEND_LIST = """
import json, sys
import salt.client
caller = salt.client.Caller(sys.argv[1])
with open(sys.argv[2], encoding="utf-8") as fh:
    preload = json.load(fh)
assert caller.cmd("event.send", "ucarp/batch", preload=preload) is True
"""


def send_list(minions, sender, items, tmp_path):
    """Events sent as a list in one load, as ``salt-call event.send ...
    preload='{"events": [...]}'`` does on ``sender`` (what a beacon sends; any
    minion can write one): Salt does not check the ``id`` inside them.  Through
    Salt's Caller with the minion's own configuration and keys, the load in a
    file: a thousand events do not fit on a command line."""
    path = tmp_path / "load.json"
    path.write_text(json.dumps({"events": [{"tag": tag, "data": data} for tag, data in items]}))
    proc = subprocess.run([sys.executable, "-c", SEND_LIST, minions[sender].config_file, str(path)],
                          check=False, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr


def web_roles(master):
    info = wait_for(lambda: (s := status(master)["web"])["master"] and not s["alert"] and s, timeout=90,
                    what="one web master and no alert")  # fmt: skip
    backup = info["backups"][0]
    return info["master"], backup


@pytest.mark.matrix
def test_an_event_list_claiming_another_hypervisor_changes_nothing(
    master, minions, bed, highstate, event_listener, tmp_path
):
    """gz1 sends an event list whose data claims gz2's id and a plausible
    master transition of gz2's zone (its real UUID and epoch, the next
    number): gz2's own answer does not have it, so nothing reacts, gz2 gets no
    acknowledgement, and alert/rejected names the claimed sender."""
    web_roles(master)
    victim = "web-b"  # hosted by gz2
    uuid = zone_uuid(bed, "gz2", victim)
    last = records_of(bed, "gz2", uuid)[-1]
    key = f"{uuid}/web/transition"
    before = status(master)["web"]
    forged = {"cluster": "web", "zone": victim, "zone_uuid": uuid, "role": "master", "epoch": last["epoch"],
              "seq": last["seq"] + 1, "ts": int(time.time()), "vip": "192.0.2.100", "vhid": 101, "interface": "net0",
              "gz": "gz2", "kind": "transition", "ack": key}  # fmt: skip
    started = time.time()
    send_list(minions, "gz1", [("ucarp/web/master", {"id": "gz2", "data": forged})], tmp_path)
    alert = wait_event(event_listener, master, "ucarp/web/alert/rejected", started)
    assert (alert.data["claimed"], alert.data["actual"]) == ("gz2", None)
    assert f"gz2 has no record {forged['seq']} of {victim}" in alert.data["reason"]
    wait_for(lambda: not runners_in_flight(event_listener, master, started), timeout=60, what="the reaction done")
    reacted = events(event_listener, master, "ucarp/web/failover/complete", started,
                     lambda e: covered(e, zone=victim, seq=forged["seq"], epoch=forged["epoch"]))  # fmt: skip
    assert reacted == []
    # No acknowledgement for it reached gz2 (its own records may move on meanwhile: those are acknowledged).
    assert not MODEL.covers(salt(master, "ucarp.acks", tgt="gz2").get(key), forged)
    after = status(master)["web"]
    assert after["master"] == before["master"]
    assert (after["last_transition"] or {}).get("ts") != forged["ts"] or after["last_transition"]["zone"] != victim


def runners_in_flight(listener, master, after):
    """Reactor runner jobs started after ``after`` that have not returned."""
    jobs = events(listener, master, "salt/run/*", after)
    started = {e.data.get("jid") for e in jobs if e.tag.endswith("/new")}
    return started - {e.data.get("jid") for e in jobs if e.tag.endswith("/ret")}


def fail_over(master, bed, event_listener, old, new):
    """Crash ``old`` (``vmadm stop -F``), wait for the reaction to ``new``
    taking the VIP, start ``old`` again and wait for one master."""
    started = time.time()
    old_uuid = zone_uuid(bed, old["gz"], old["zone"])
    bed.gz(old["gz"]).run("vmadm", "stop", "-F", old_uuid, check=True)
    try:
        return wait_event(event_listener, master, "ucarp/web/failover/complete", started,
                          lambda e: taken_over(e, new["zone"], started), timeout=120)  # fmt: skip
    finally:
        bed.gz(old["gz"]).run("vmadm", "start", old_uuid, check=True)
        web_roles(master)


def test_a_record_file_emptied_still_gets_its_next_failover_reacted_to(master, bed, highstate, event_listener):
    """A restore or a rollback empties a backup's record: its next records
    start again at 1 (a new epoch), and the master reacts to them."""
    primary, backup = web_roles(master)
    uuid = zone_uuid(bed, backup["gz"], backup["zone"])
    assert bed.gz(backup["gz"]).zlogin(uuid, ": > /var/db/ucarp/web.transitions").returncode == 0
    done = fail_over(master, bed, event_listener, primary, backup)
    (taken,) = [t for t in done.data["transitions"] if t["zone"] == backup["zone"] and t["role"] == "master"]
    assert taken["seq"] == 1 and taken["epoch"] != ""


def test_an_older_copy_of_the_record_still_gets_its_next_failover_reacted_to(master, bed, highstate, event_listener):
    """The master's record is put back to an older copy; after it has moved
    on, the old records are not reacted to again, and its next takeover is."""
    primary, backup = web_roles(master)
    gz, uuid = bed.gz(primary["gz"]), zone_uuid(bed, primary["gz"], primary["zone"])
    assert gz.zlogin(uuid, "cp -p /var/db/ucarp/web.transitions /var/tmp/web.transitions.old").returncode == 0
    old = records_of(bed, primary["gz"], uuid)
    fail_over(master, bed, event_listener, primary, backup)  # the primary's record moves on
    primary, backup = backup, primary
    restored = time.time()
    assert gz.zlogin(uuid, "cp -p /var/tmp/web.transitions.old /var/db/ucarp/web.transitions").returncode == 0
    done = fail_over(master, bed, event_listener, primary, backup)
    taken = [t for t in done.data["transitions"] if t["zone"] == backup["zone"] and t["role"] == "master"]
    assert taken and all(t["epoch"] not in {r["epoch"] for r in old} for t in taken)

    def replays(event):
        return any(covered(event, zone=backup["zone"], epoch=r["epoch"], seq=r["seq"]) for r in old)

    assert events(event_listener, master, "ucarp/web/failover/complete", restored, replays) == []


def test_a_zone_rolled_back_to_a_snapshot_still_gets_its_next_failover_reacted_to(
    master, bed, highstate, event_listener
):
    """``vmadm rollback-snapshot`` puts a backup's whole root back, its record
    included: it boots as a backup, and when it next takes the VIP the master
    reacts."""
    primary, backup = web_roles(master)
    rolled = backup["zone"]
    gz, uuid = bed.gz(backup["gz"]), zone_uuid(bed, backup["gz"], rolled)
    gz.run("vmadm", "create-snapshot", uuid, "before", check=True)
    try:
        fail_over(master, bed, event_listener, primary, backup)  # its record moves on past the snapshot
        # Roll the (now) master back: it halts, is restored and boots. The
        # other takes the VIP meanwhile, unless the rolled zone is back
        # before UCARP's dead time runs out (the bed's rollback is quick) and
        # takes it again itself: either way, wait for one master.
        started = time.time()
        gz.run("vmadm", "rollback-snapshot", uuid, "before", check=True)
        primary, backup = web_roles(master)
        if primary["zone"] == rolled:
            # It came back and took the VIP (again): that transition was reacted to.
            wait_event(event_listener, master, "ucarp/web/failover/complete", started,
                       lambda e: taken_over(e, rolled, started), timeout=120)  # fmt: skip
        else:
            done = fail_over(master, bed, event_listener, primary, backup)
            assert [t for t in done.data["transitions"] if t["zone"] == rolled and t["role"] == "master"]
    finally:
        gz.run("vmadm", "delete-snapshot", uuid, "before")


def test_history_lists_transitions_and_reactions_newest_last(master, highstate):
    proc = master.salt_run_cli(timeout=120).run("ucarp.history", "web", "limit=0", "--out=json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    entries = json.loads(proc.stdout)
    kinds = {e["kind"] for e in entries}
    assert {"transition", "reaction"} <= kinds, kinds
    assert all(e["cluster"] == "web" for e in entries)
    assert [e["at"] for e in entries] == sorted(e["at"] for e in entries)
    reaction = next(e for e in reversed(entries) if e["kind"] == "reaction")
    assert reaction["data"]["actions"] and set(reaction["data"]["timings"]) >= {"transition", "actions_done"}
    table = master.salt_run_cli(timeout=120).run("ucarp.history", "since=1h", "limit=5", "--out=nested")
    assert table.returncode == 0 and "time (UTC)" in table.stdout, table.stdout
    assert len([line for line in table.stdout.splitlines() if " web " in line]) <= 5
    bad = master.salt_run_cli(timeout=120).run("ucarp.history", "since=yesterday", "--out=nested")
    assert bad.returncode == 1 and "since='yesterday'" in bad.stdout


def test_malformed_events_on_the_bus_are_each_rejected_with_the_reason(
    master, minions, bed, highstate, event_listener, tmp_path
):
    """Sent as one list from gz1: each bad field gets its own alert/rejected,
    and nothing else happens."""
    uuid = zone_uuid(bed, "gz1", "web-a")
    good = {"cluster": "web", "zone": "web-a", "zone_uuid": uuid, "role": "master", "epoch": "", "seq": 5,
            "ts": int(time.time()), "vip": "192.0.2.100", "vhid": 101, "interface": "net0", "gz": "gz1"}  # fmt: skip
    bad = {
        "malformed sequence number or time (0)": dict(good, seq=0),
        "malformed sequence number or time (-1)": dict(good, seq=-1),
        "malformed sequence number or time ('5')": dict(good, seq="5"),
        "malformed zone UUID 'not-a-uuid'": dict(good, zone_uuid="not-a-uuid"),
        "no cluster mail in the pillar of gz1": dict(good, cluster="mail"),
        "malformed zone '" + "z" * 59 + "...": dict(good, zone="z" * 200_000),
        "malformed role or VHID": dict(good, vhid=[101]),
    }
    items = [(f"ucarp/{d['cluster']}/master", {"id": "gz1", "data": d}) for d in bad.values()]
    items.append(("ucarp/web/backup", {"id": "gz1", "data": good}))  # the tag says backup, the data master
    started = time.time()
    send_list(minions, "gz1", items, tmp_path)
    wanted = set(bad) | {"the tag 'ucarp/web/backup' does not match the data"}
    got = wait_for(lambda: (r := {e.data["reason"] for e in events(event_listener, master, "ucarp/*/alert/rejected",
                                                                   started)}) >= wanted and r,
                   timeout=120, what="every bad event rejected")  # fmt: skip
    assert got == wanted
    wait_for(lambda: not runners_in_flight(event_listener, master, started), timeout=120, what="the reactions done")
    assert not events(event_listener, master, "ucarp/*/failover/complete", started)


def test_a_thousand_events_in_one_load_are_rejected_in_bounded_alerts(
    master, minions, bed, highstate, event_listener, tmp_path
):
    """A thousand forged records in one event list: each rejected, at most
    100 alerts per cluster, claimed sender and 60 s window (the rest
    counted), nothing reacted to.  Their cluster name is the test's own, so
    no rate window a test before opened is still open: the first alert
    opens the only one."""
    started = time.time()
    forged = {"cluster": "flood", "zone": "web-b", "zone_uuid": "nope", "role": "master", "seq": 1, "ts": 1,
              "vip": "192.0.2.100", "vhid": 101, "gz": "gz2"}  # fmt: skip
    items = [("ucarp/flood/master", {"id": "gz2", "data": dict(forged, seq=n)}) for n in range(1, 1001)]
    send_list(minions, "gz1", items, tmp_path)
    wait_for(lambda: len([e for e in events(event_listener, master, "salt/run/*/ret", started)]) >= 1000,
             timeout=900, interval=2, what="a reaction to each of the thousand events")  # fmt: skip
    alerts = events(event_listener, master, "ucarp/flood/alert/rejected", started)
    assert {e.data["reason"] for e in alerts} == {"malformed zone UUID 'nope'"}
    # At most REJECT_BURST (100) per window; the rest counted, and the next window's first alert says how many.
    windows = 1 + int((alerts[-1].stamp - alerts[0].stamp).total_seconds() // 60)
    assert 1 <= len(alerts) <= 100 * windows < 1000
    if len(alerts) > 100:
        assert any(e.data.get("suppressed") for e in alerts)
    assert not events(event_listener, master, "ucarp/flood/failover/complete", started)
    assert status(master)["web"]["master"] is not None


# Health and planned switchover (the db cluster) ---------------------------------


def db_zone(bed, alias):
    gz = bed.gz(CLUSTERS["db"]["nodes"][alias]["host"])
    return gz, zone_uuid(bed, CLUSTERS["db"]["nodes"][alias]["host"], alias)


def set_sick(bed, alias, sick):
    gz, uuid = db_zone(bed, alias)
    assert gz.zlogin(uuid, f"touch {SICK}" if sick else f"rm -f {SICK}").returncode == 0


def db_settled(master):
    """The db status once it has one master, no alert and every node healthy and online."""

    def settled():
        info = status(master)["db"]
        nodes = [info["master"], *info["backups"]] if info["master"] else []
        good = all(n["service"] == "online" and (n["health"] or {}).get("state") == "healthy" for n in nodes)
        return info if nodes and good and not info["alert"] else None

    return wait_for(settled, timeout=120, interval=1, what="db settled: one master, every node healthy")


def switchover(master, *args):
    proc = master.salt_run_cli(timeout=300).run("ucarp.switchover", "db", *args)
    return proc.returncode, proc.data


class Prober:
    """Ask the db VIP who answers, again and again, in a thread: (time, answer) samples."""

    def __init__(self, bed, client):
        self.bed, self.client, self.samples = bed, client, []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        deadline = time.monotonic() + 300
        while not self.stop.is_set() and time.monotonic() < deadline:
            self.samples.append((time.monotonic(), vipapp.answer(self.bed, self.client, CLUSTERS["db"]["vip"], 1)))

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(timeout=30)

    def gap(self):
        """The longest time without an answer (from the last answer before to the first after)."""
        longest, last_ok = 0.0, None
        for at, who in self.samples:
            if who:
                if last_ok is not None:
                    longest = max(longest, at - last_ok)
                last_ok = at
        return longest


def test_switchover_to_a_named_zone_and_back(master, bed, client, highstate, event_listener, record_property):
    first = db_settled(master)["master"]["zone"]
    (other,) = [z for z in CLUSTERS["db"]["nodes"] if z != first]
    for source, target in ((first, other), (other, first)):
        started = time.time()
        with Prober(bed, client) as probe:
            wait_for(lambda: any(probe.samples), timeout=30, what="the prober's first answer")
            rc, ret = switchover(master, f"to={target}")
            wait_for(lambda t=target: probe.samples[-1][1] == t, timeout=30, what=f"{target} answering on the VIP")
        assert rc == 0 and ret["result"] is True, ret
        assert (ret["from"], ret["to"]) == (source, target)
        answers = [who for _, who in probe.samples if who]
        # The old master answered until the target did, and nobody else ever.
        assert answers[0] == source and answers[-1] == target, answers
        assert set(answers) == {source, target}
        assert answers.index(target) > answers.index(source) and source not in answers[answers.index(target) :]
        record_property(f"gap_{source}_to_{target}_s", round(probe.gap(), 3))
        done = wait_event(event_listener, master, "ucarp/db/switchover/complete", started)
        assert (done.data["from"], done.data["to"]) == (source, target)
        info = db_settled(master)
        assert info["master"]["zone"] == target
        assert [b["zone"] for b in info["backups"]] == [source]  # a healthy, online backup


def test_switchover_refusals(master, bed, highstate):
    info = db_settled(master)
    holder = info["master"]["zone"]
    (backup,) = [z for z in CLUSTERS["db"]["nodes"] if z != holder]
    rc, ret = switchover(master, "to=db-z")
    assert rc == 1 and ret["result"] is False
    assert "db-z is not a member of cluster db (members: db-a, db-b)" in ret["comment"]
    set_sick(bed, backup, True)
    try:
        wait_for(lambda: (status(master)["db"]["backups"][0]["health"] or {}).get("state") == "sick", timeout=60,
                 what=f"{backup} sick")  # fmt: skip
        rc, ret = switchover(master)
        assert rc == 1 and "no running, healthy backup" in ret["comment"], ret
        rc, ret = switchover(master, f"to={backup}")
        assert rc == 1 and f"cannot switch to {backup}: {backup} is unhealthy" in ret["comment"], ret
    finally:
        set_sick(bed, backup, False)
    db_settled(master)
    gz, uuid = db_zone(bed, backup)
    gz.run("vmadm", "stop", uuid, check=True)
    try:
        rc, ret = switchover(master, f"to={backup}")
        assert rc == 1 and f"zone {backup} is stopped" in ret["comment"], ret
    finally:
        gz.run("vmadm", "start", uuid, check=True)
    assert db_settled(master)["master"]["zone"] == holder  # nothing moved


def write_pillar(roots, clusters, beacon_interval=1):
    pillar = {"ucarp": {"clusters": clusters}, "beacons": {"ucarp": [{"interval": beacon_interval}]}}
    (roots / "pillar" / "ucarp.sls").write_text(yaml.safe_dump(pillar))


def passfile_digests(bed):
    out = {}
    for alias in CLUSTERS["db"]["nodes"]:
        gz, uuid = db_zone(bed, alias)
        out[alias] = gz.zlogin(uuid, "sha256sum /opt/local/etc/ucarp/db.pass").stdout.split()[0]
    return out


def rollout(master, cluster="db"):
    proc = master.salt_run_cli(timeout=300).run("ucarp.rollout", cluster)
    return proc.returncode, proc.data


def test_a_highstate_refuses_a_running_clusters_new_password_and_rollout_changes_it(
    master, bed, client, roots, highstate, event_listener, record_property
):
    holder = db_settled(master)["master"]["zone"]
    before = passfile_digests(bed)
    changed = copy.deepcopy(CLUSTERS)
    changed["db"]["password"] = "db-Secret-2"
    write_pillar(roots, changed)
    try:
        salt(master, "saltutil.refresh_pillar")
        proc = master.salt_cli(timeout=600).run("state.apply", "ucarp", minion_tgt="gz*")
        assert proc.returncode != 0
        refused = [r for per in proc.data.values() for r in per.values() if not r["result"]]
        guards = [r for r in refused if r["__id__"].startswith("ucarp-identity-kept-db-")]
        assert len(guards) == 2, refused
        assert all("salt-run ucarp.rollout db" in r["comment"] for r in guards)
        assert all("db-Secret" not in r["comment"] for r in refused)
        assert passfile_digests(bed) == before  # nothing written
        assert db_settled(master)["master"]["zone"] == holder

        started = time.time()
        with Prober(bed, client) as probe:
            wait_for(lambda: any(probe.samples), timeout=30, what="the prober's first answer")
            rc, ret = rollout(master)
        assert rc == 0 and ret["result"] is True, ret
        assert ret["master"] == holder
        answers = {who for _, who in probe.samples if who}
        assert answers == {holder}, answers  # the master answered all along
        record_property("rollout_gap_s", round(probe.gap(), 3))
        record_property("rollout_timings", ret["timings"])
        after = passfile_digests(bed)
        assert after["db-a"] == after["db-b"] != before["db-a"]
        done = wait_event(event_listener, master, "ucarp/db/rollout/complete", started)
        assert done.data["master"] == holder
        info = db_settled(master)
        assert info["master"]["zone"] == holder and not info["alert"]
        assert not events(event_listener, master, "ucarp/db/alert/*", started)  # never two masters
        # The new pillar is in place: a highstate has nothing left to do.
        results = apply(master, "state.apply", "ucarp")
        assert not [r for per in results.values() for r in per.values() if r["changes"]]
    finally:
        write_pillar(roots, CLUSTERS)
        salt(master, "saltutil.refresh_pillar")
    rc, ret = rollout(master)  # back to the module's password, the same way
    assert rc == 0 and ret["result"] is True, ret


def test_rollout_refusals(master, bed, highstate):
    holder = db_settled(master)["master"]["zone"]
    (backup,) = [z for z in CLUSTERS["db"]["nodes"] if z != holder]
    rc, ret = rollout(master, "nosuch")
    assert rc == 1 and "no hypervisor reports cluster nosuch" in ret["comment"], ret
    gz, uuid = db_zone(bed, backup)
    gz.run("vmadm", "stop", uuid, check=True)
    try:
        rc, ret = rollout(master)
        assert rc == 1 and f"zone {backup} is stopped" in ret["comment"], ret
    finally:
        gz.run("vmadm", "start", uuid, check=True)
    assert db_settled(master)["master"]["zone"] == holder  # nothing moved


def test_health_events_and_the_all_unhealthy_alert(master, bed, client, highstate, event_listener):
    holder = db_settled(master)["master"]["zone"]
    (backup,) = [z for z in CLUSTERS["db"]["nodes"] if z != holder]
    started = time.time()
    set_sick(bed, holder, True)
    try:
        # The beacon's event: the sender's id (checked by the master), the agent's record in data.
        sick = wait_event(event_listener, master, "ucarp/db/health/sick", started,
                          lambda e: e.data["data"]["zone"] == holder)  # fmt: skip
        assert sick.data["id"] == CLUSTERS["db"]["nodes"][holder]["host"]
        record = sick.data["data"]
        assert record["action"] == "stepped-down" and "command check 1" in record["detail"], record
        wait_for(lambda: vipapp.answer(bed, client, CLUSTERS["db"]["vip"]) == backup, timeout=60,
                 what=f"{backup} answering on the VIP")  # fmt: skip
        info = status(master)["db"]
        assert info["master"]["zone"] == backup
        assert [(b["zone"], b["health"]["state"]) for b in info["backups"]] == [(holder, "sick")]
        # Every node sick: the VIP stays with backup, which says so.
        all_sick = time.time()
        set_sick(bed, backup, True)
        alert = wait_event(event_listener, master, "ucarp/db/alert/all-unhealthy", all_sick)
        assert alert.data["holder"] == {"zone": backup, "gz": CLUSTERS["db"]["nodes"][backup]["host"]}
        info = status(master)["db"]
        assert info["master"]["zone"] == backup and info["alert"]["kind"] == "all-unhealthy"
        assert vipapp.answer(bed, client, CLUSTERS["db"]["vip"]) == backup
    finally:
        recovered = time.time()
        set_sick(bed, holder, False)
        set_sick(bed, backup, False)
    wait_event(event_listener, master, "ucarp/db/health/healthy", recovered,
               lambda e: e.data["data"]["zone"] == holder)  # fmt: skip
    assert db_settled(master)["alert"] is None
