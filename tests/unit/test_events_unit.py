"""Unit tests of the beacon (_beacons/ucarp.py) and the runner (_runners/ucarp.py)."""

import json
import logging
import os
import threading

import pytest
import salt.config
from support import load_salt_module

UTIL = load_salt_module("_utils", "ucarp_model")
UTILS = {f"ucarp_model.{name}": getattr(UTIL, name) for name in dir(UTIL) if callable(getattr(UTIL, name))}
ZONE_A = "5c1b5a8e-0c55-4b2c-8b3a-2d7d0e6d0f7e"
ZONE_B = "7d2c6b9f-1d66-4c3d-9c4b-3e8e1f7e1a8f"
PILLAR = {
    "ucarp": {
        "clusters": {
            "web": {
                "vip": "192.0.2.100",
                "vhid": 101,
                "password": "s3cret",
                "nodes": {"web-a": {"host": "gz1", "ip": "192.0.2.11"}, "web-b": {"host": "gz2", "ip": "192.0.2.12"}},
                "on_master": [{"svc_enable": "svc:/site/app:default"}],
                "on_backup": [{"svc_disable": "svc:/site/app:default"}],
            }
        }
    }
}


# The beacon ---------------------------------------------------------------------


@pytest.fixture
def beacon(tmp_path):
    module = load_salt_module("_beacons", "ucarp", opts={"id": "gz1", "cachedir": str(tmp_path / "cache")})
    module.__utils__ = dict(module.__utils__, **UTILS)  # the formula's utils (zone_root too)
    module.log = logging.getLogger("ucarp-beacon-unit")  # quiet: not through Salt's log handlers
    module.log.propagate = False
    module._ZONES.update(at=0.0, by_alias={})
    module._WAITING.clear()
    module.acked = {}  # what ucarp.acks returns: the records a reaction acknowledged
    return module


def zone_root(tmp_path, text):
    root = tmp_path / "zones" / ZONE_A / "root"
    (root / "var" / "db" / "ucarp").mkdir(parents=True, exist_ok=True)
    (root / "var" / "db" / "ucarp" / "web.transitions").write_text(text)
    return root


def test_read_in_zone_reads_a_regular_file(beacon, tmp_path):
    root = zone_root(tmp_path, "1 10 backup web 192.0.2.100 101 net0\n")
    assert beacon.read_in_zone(str(root), "/var/db/ucarp/web.transitions").startswith("1 10 backup")
    assert beacon.read_in_zone(str(root), "/var/db/ucarp/db.transitions") is None


def test_read_in_zone_never_follows_a_planted_link(beacon, tmp_path):
    secret = tmp_path / "gz-secret"
    secret.write_text("1 10 master web 192.0.2.100 101 net0\n")
    root = zone_root(tmp_path, "")
    planted = root / "var" / "db" / "ucarp" / "web.transitions"
    planted.unlink()
    planted.symlink_to(secret)
    assert beacon.read_in_zone(str(root), "/var/db/ucarp/web.transitions") is None
    # a link higher up the path too
    other = tmp_path / "other-root"
    (other / "var").mkdir(parents=True)
    (other / "var" / "db").symlink_to(root / "var" / "db")
    assert beacon.read_in_zone(str(other), "/var/db/ucarp/web.transitions") is None


def test_read_in_zone_does_not_block_on_a_fifo(beacon, tmp_path):
    root = zone_root(tmp_path, "")
    fifo = root / "var" / "db" / "ucarp" / "web.transitions"
    fifo.unlink()
    os.mkfifo(fifo)
    assert beacon.read_in_zone(str(root), "/var/db/ucarp/web.transitions") is None


def setup_beacon(beacon, tmp_path, text, sent, fail_after=None):
    root = zone_root(tmp_path, text)
    beacon.__salt__ = {
        "ucarp.watch_list": lambda: [
            {
                "zone": "web-a",
                "cluster": "web",
                "vip": "192.0.2.100",
                "vhid": 101,
                "records": {"transition": "/var/db/ucarp/web.transitions"},
            }
        ],
        "ucarp.acks": lambda: dict(beacon.acked),
        "vmadm.list": lambda **kw: [{"uuid": ZONE_A, "alias": "web-a", "zonepath": str(root.parent)}],
    }

    def send(tag, data):
        if fail_after is not None and len(sent) >= fail_after:
            return False
        sent.append((tag, data["seq"]))
        return True

    beacon._send = send


def test_beacon_sends_each_transition_once_in_order(beacon, tmp_path):
    sent = []
    text = (
        "2 20 master web 192.0.2.100 101 net0\n"
        "1 10 backup web 192.0.2.100 101 net0\n"
        "garbage line\n"
        "3 30 master db 192.0.2.110 102 net0\n"  # another cluster: not this file's
    )
    setup_beacon(beacon, tmp_path, text, sent)
    assert beacon.beacon([{"interval": 1}]) == []
    assert sent == [("ucarp/web/backup", 1), ("ucarp/web/master", 2)]
    beacon.beacon([{"interval": 1}])
    assert sent == [("ucarp/web/backup", 1), ("ucarp/web/master", 2)]  # nothing twice


def test_beacon_keeps_what_the_master_did_not_take(beacon, tmp_path):
    sent = []
    text = "1 10 backup web 192.0.2.100 101 net0\n2 20 master web 192.0.2.100 101 net0\n"
    setup_beacon(beacon, tmp_path, text, sent, fail_after=1)
    beacon.beacon([{"interval": 1}])
    assert sent == [("ucarp/web/backup", 1)]  # the master went away after the first
    setup_beacon(beacon, tmp_path, text, sent)
    beacon._ZONES.update(at=0.0)
    beacon.beacon([{"interval": 1}])
    assert sent == [("ucarp/web/backup", 1), ("ucarp/web/master", 2)]
    assert oct(os.stat(beacon._cursor_path()).st_mode & 0o777) == "0o600"


@pytest.fixture
def clock(beacon, monkeypatch):
    """The beacon's monotonic clock, moved by hand."""
    now = {"t": 5000.0}
    monkeypatch.setattr(beacon.time, "monotonic", lambda: now["t"])
    return now


def test_a_record_no_reaction_acknowledged_is_sent_again(beacon, tmp_path, clock):
    sent = []
    setup_beacon(beacon, tmp_path, "1 10 backup web 192.0.2.100 101 net0\n2 20 master web 192.0.2.100 101 net0\n", sent)
    beacon.beacon([{"interval": 1}])
    beacon.beacon([{"interval": 1}])  # the master took both; no acknowledgement yet
    clock["t"] += beacon.ACK_WAIT - 1
    beacon.beacon([{"interval": 1}])
    assert sent == [("ucarp/web/backup", 1), ("ucarp/web/master", 2)]
    clock["t"] += 1
    beacon.beacon([{"interval": 1}])
    assert sent[2:] == [("ucarp/web/master", 2)]  # the last one again: the runner fills any gap itself
    beacon.beacon([{"interval": 1}])
    assert len(sent) == 3  # once per ACK_WAIT
    beacon.acked = {f"{ZONE_A}/web/transition": {"epoch": "", "seq": 2, "passed": []}}
    clock["t"] += beacon.ACK_WAIT * 10
    beacon.beacon([{"interval": 1}])
    assert len(sent) == 3
    assert beacon._WAITING == {}


def test_a_record_is_sent_again_only_resends_times_then_a_warning(beacon, tmp_path, clock, monkeypatch):
    sent, warnings = [], []
    monkeypatch.setattr(beacon.log, "warning", lambda msg, *args: warnings.append(msg % args))
    setup_beacon(beacon, tmp_path, "1 10 master web 192.0.2.100 101 net0\n", sent)
    for _ in range(beacon.RESENDS + 5):
        beacon.beacon([{"interval": 1}])
        clock["t"] += beacon.ACK_WAIT
    assert sent == [("ucarp/web/master", 1)] * (1 + beacon.RESENDS)
    assert len(warnings) == 1
    assert f"record 1 of {ZONE_A}/web/transition (cluster web, zone web-a)" in warnings[0]
    assert "reactor" in warnings[0]


def test_a_new_record_starts_the_wait_again(beacon, tmp_path, clock):
    sent = []
    setup_beacon(beacon, tmp_path, "1 10 backup web 192.0.2.100 101 net0\n", sent)
    beacon.beacon([{"interval": 1}])
    beacon.beacon([{"interval": 1}])
    clock["t"] += beacon.ACK_WAIT - 1
    zone_root(tmp_path, "1 10 backup web 192.0.2.100 101 net0\n2 20 master web 192.0.2.100 101 net0\n")
    beacon.beacon([{"interval": 1}])  # record 2 is new: sent, and its own wait begins
    clock["t"] += beacon.ACK_WAIT - 1  # record 1 would have been due long ago
    beacon.beacon([{"interval": 1}])
    assert sent == [("ucarp/web/backup", 1), ("ucarp/web/master", 2)]
    clock["t"] += 1
    beacon.beacon([{"interval": 1}])
    assert sent[2:] == [("ucarp/web/master", 2)]


def test_a_resend_the_master_did_not_take_is_tried_again(beacon, tmp_path, clock):
    sent = []
    text = "1 10 master web 192.0.2.100 101 net0\n"
    setup_beacon(beacon, tmp_path, text, sent)
    beacon.beacon([{"interval": 1}])
    beacon.beacon([{"interval": 1}])
    clock["t"] += beacon.ACK_WAIT
    setup_beacon(beacon, tmp_path, text, sent, fail_after=0)  # the master is away
    beacon.beacon([{"interval": 1}])
    assert beacon._WAITING[f"{ZONE_A}/web/transition"]["tries"] == 0
    setup_beacon(beacon, tmp_path, text, sent)
    beacon.beacon([{"interval": 1}])
    assert sent == [("ucarp/web/master", 1)] * 2
    assert beacon._WAITING[f"{ZONE_A}/web/transition"]["tries"] == 1


def test_every_record_names_its_cursor_for_the_acknowledgement(beacon, tmp_path):
    sent = []
    setup_health_beacon(beacon, tmp_path, sent)
    beacon.beacon([{"interval": 1}])
    assert {(tag.split("/")[2] == "health", data["ack"]) for tag, data in sent} == {
        (False, f"{ZONE_A}/web/transition"),
        (True, f"{ZONE_A}/web/health"),
    }


E1, E2, E3 = "1111111111111111", "2222222222222222", "3333333333333333"


def lines(*records):
    """Transition lines as ucarp-record writes them: (seq, epoch, role)."""
    return "".join(f"{seq}@{epoch} {seq * 10} {role} web 192.0.2.100 101 net0\n" for seq, epoch, role in records)


def test_a_file_emptied_starts_again_and_its_new_records_are_sent(beacon, tmp_path):
    sent = []
    setup_beacon(beacon, tmp_path, lines((1, E1, "backup"), (2, E1, "master"), (3, E1, "backup")), sent)
    beacon.beacon([{"interval": 1}])
    zone_root(tmp_path, "")  # emptied (a restore, say): nothing to send
    beacon.beacon([{"interval": 1}])
    zone_root(tmp_path, lines((1, E2, "master")))  # the recorder's new epoch starts at 1 again
    beacon.beacon([{"interval": 1}])
    assert sent == [("ucarp/web/backup", 1), ("ucarp/web/master", 2), ("ucarp/web/backup", 3), ("ucarp/web/master", 1)]


def test_a_file_rolled_back_sends_what_came_after_and_never_the_old_records(beacon, tmp_path):
    sent = []
    older = lines((1, E1, "backup"), (2, E1, "master"))
    setup_beacon(beacon, tmp_path, older + lines((3, E1, "backup"), (4, E1, "master")), sent)
    beacon.beacon([{"interval": 1}])
    zone_root(tmp_path, older)  # an older copy, or the zone rolled back to a snapshot
    beacon.beacon([{"interval": 1}])
    assert len(sent) == 4  # records 1 and 2 of E1 are not sent again
    zone_root(tmp_path, older + lines((3, E2, "backup")))  # numbered on, in a new epoch
    beacon.beacon([{"interval": 1}])
    assert sent[4:] == [("ucarp/web/backup", 3)]
    zone_root(tmp_path, lines((1, E1, "backup"), (2, E1, "master")))  # rolled back once more, to the old epoch
    beacon.beacon([{"interval": 1}])
    zone_root(tmp_path, older + lines((3, E3, "master")))
    beacon.beacon([{"interval": 1}])
    assert sent[5:] == [("ucarp/web/master", 3)]
    cursors = json.loads(open(beacon._cursor_path(), encoding="utf-8").read())
    assert cursors[f"{ZONE_A}/web/transition"] == {"epoch": E3, "seq": 3, "passed": [E1, E2]}


def test_a_cursor_from_before_epochs_is_taken_over(beacon, tmp_path):
    sent = []
    old = "1 10 backup web 192.0.2.100 101 net0\n2 20 master web 192.0.2.100 101 net0\n"
    setup_beacon(beacon, tmp_path, old, sent)
    os.makedirs(os.path.dirname(beacon._cursor_path()))
    with open(beacon._cursor_path(), "w", encoding="utf-8") as fh:
        json.dump({f"{ZONE_A}/web": 2, "junk": "x"}, fh)
    beacon.beacon([{"interval": 1}])
    assert sent == []  # what the old beacon sent is not sent again
    zone_root(tmp_path, old + lines((3, E1, "backup")))
    beacon.beacon([{"interval": 1}])
    assert sent == [("ucarp/web/backup", 3)]


def test_an_acknowledgement_of_an_epoch_left_does_not_stop_the_resends(beacon, tmp_path, clock):
    sent = []
    setup_beacon(beacon, tmp_path, lines((1, E1, "master")), sent)
    beacon.beacon([{"interval": 1}])
    zone_root(tmp_path, lines((1, E2, "backup")))
    beacon.beacon([{"interval": 1}])
    beacon.acked = {f"{ZONE_A}/web/transition": {"epoch": E1, "seq": 5, "passed": []}}
    clock["t"] += beacon.ACK_WAIT
    beacon.beacon([{"interval": 1}])
    beacon.beacon([{"interval": 1}])
    clock["t"] += beacon.ACK_WAIT
    beacon.beacon([{"interval": 1}])
    assert sent == [("ucarp/web/master", 1)] + [("ucarp/web/backup", 1)] * 3  # sent, then again twice


def test_beacon_survives_a_bad_pillar(beacon):
    def broken():
        raise RuntimeError("ucarp: the pillar has 1 problem(s)")

    beacon.__salt__ = {"ucarp.watch_list": broken}
    assert beacon.beacon([{"interval": 1}]) == []
    assert beacon.validate([{"interval": 1}])[0] is True
    assert beacon.validate({"interval": 1})[0] is False


# The runner ---------------------------------------------------------------------


ROUNDS = ("ucarp.holders", "ucarp.run_actions")  # sent to every hypervisor of the cluster at once
HOSTS = {"web-a": ("gz1", ZONE_A), "web-b": ("gz2", ZONE_B)}
ZONES = {}  # (zone, kind) -> the records in the zone's file, as its hypervisor would return them


def written(zone, kind="transition", **record):
    """A record in a zone's file (what the hypervisor confirms)."""
    found = ZONES.setdefault((zone, kind), [])
    found[:] = [r for r in found if (r["epoch"], r["seq"]) != (record.get("epoch", ""), record["seq"])]
    found.append(dict(record, epoch=record.get("epoch", "")))
    found.sort(key=lambda r: r["seq"])


class FakeLocal:
    def __init__(self, holders):
        self.holders = holders
        self.calls = []

    def cmd(self, tgt, fun, arg=(), kwarg=None, timeout=None, full_return=False, tgt_type="glob"):
        """LocalClient.cmd with full returns, over a list of hypervisors."""
        self.calls.append((tgt[0] if len(tgt) == 1 and fun not in ROUNDS else tgt, fun, list(arg), kwarg))
        if fun == "ucarp.holders":
            replies = {}
            for host in tgt:
                mine = [z for z, (h, _u) in HOSTS.items() if h == host]
                held = {z: z in self.holders for z in mine}
                if "after" not in (kwarg or {}):
                    replies[host] = {"ret": held}
                    continue
                found = {
                    z: {"uuid": HOSTS[z][1], "records": UTIL.records_after(ZONES.get((z, "transition"), []), cur)}
                    for z, cur in kwarg["after"].items() if z in mine
                }  # fmt: skip
                replies[host] = {"ret": {"holders": held, "records": found}}
            return replies
        if fun == "ucarp.run_actions":  # what the minion function returns for its own entries
            return {
                h: {"ret": [dict(a, zone=w["zone"], role=w["role"], ok=True, detail=True)
                            for w in kwarg["work"] if w["host"] == h for a in w["actions"]], "retcode": 0}
                for h in tgt
            }  # fmt: skip
        if fun == "ucarp.records":
            zone, _cluster, kind = arg
            ret = {"zone": zone, "uuid": HOSTS[zone][1],
                   "records": UTIL.records_after(ZONES.get((zone, kind), []), kwarg.get("after"))}  # fmt: skip
        elif fun == "vmadm.state":
            ret = "running"
        else:
            ret = True
        return {host: {"ret": ret, "retcode": 0} for host in tgt}

    def cmd_async(self, tgt, fun, arg=(), tgt_type="glob", kwarg=None):
        self.calls.append((tgt, fun, list(arg), kwarg))
        return "20261126000000000000"


@pytest.fixture
def runner(tmp_path, monkeypatch):
    pki = tmp_path / "pki"
    (pki / "minions").mkdir(parents=True)
    for minion in ("gz1", "gz2"):
        (pki / "minions" / minion).write_text("an accepted key\n")
    opts = dict(salt.config.DEFAULT_MASTER_OPTS, cachedir=str(tmp_path), sock_dir=str(tmp_path), conf_file="",
                pki_dir=str(pki))  # fmt: skip
    module = load_salt_module("_runners", "ucarp", opts=opts)
    module.__utils__ = UTILS
    module.__salt__ = {"pillar.show_pillar": lambda minion: PILLAR}
    module.log = logging.getLogger("ucarp-runner-unit")  # quiet: not through Salt's log handlers
    module.log.propagate = False
    module.fired = []
    module._publish = lambda tag, data: module.fired.append((tag, data))
    module.local = FakeLocal(holders={"web-b"})
    module._local = lambda: module.local
    module._CACHES.clear()
    ZONES.clear()
    clock = {"now": 1000.0}
    monkeypatch.setattr(module.time, "time", lambda: clock.__setitem__("now", clock["now"] + 1) or clock["now"])
    monkeypatch.setattr(module.time, "sleep", lambda s: None)
    return module


def event(sender="gz2", zone="web-b", role="master", seq=1, forged=False, **changes):
    """A transition event as the beacon sends it; its record is in the zone's file unless ``forged``."""
    payload = {"cluster": "web", "zone": zone, "zone_uuid": ZONE_B, "role": role, "epoch": "", "seq": seq,
               "ts": 1000 + seq if isinstance(seq, int) else 1000, "vip": "192.0.2.100", "vhid": 101,
               "interface": "net0", "gz": sender, "kind": "transition"}  # fmt: skip
    payload.update(changes)
    if not forged and zone in HOSTS:
        written(zone, **{k: payload[k] for k in ("epoch", "seq", "ts", "role", "vhid", "interface")})
    return f"ucarp/web/{role}", {"id": sender, "tag": f"ucarp/web/{role}", "data": payload}


def publishes(runner):
    """The jobs the runner waited for (an acknowledgement is sent without waiting)."""
    return [c[1] for c in runner.local.calls if c[1] != "ucarp.ack_many"]


def test_a_failover_runs_the_actions_and_completes_in_two_rounds(runner):
    tag, data = event()
    (result,) = runner.transition(tag, data)
    assert result["complete"] == {"zone": "web-b", "gz": "gz2"}
    # One round asks every hypervisor who holds the VIP, one runs every action: each to all the hosts at once.
    assert publishes(runner) == ["ucarp.holders", "ucarp.run_actions"]
    (tgt, fun, args, kwarg) = runner.local.calls[1]
    assert (tgt, args) == (["gz1", "gz2"], ["web"])
    assert kwarg == {
        "work": [
            {"zone": "web-b", "host": "gz2", "role": "master",
             "actions": [{"action": "svc_enable", "arg": "svc:/site/app:default"}]},
            {"zone": "web-a", "host": "gz1", "role": "backup",
             "actions": [{"action": "svc_disable", "arg": "svc:/site/app:default"}]},
        ]
    }  # fmt: skip
    ((tag, fired),) = runner.fired
    assert tag == "ucarp/web/failover/complete"
    assert fired["master"] == {"zone": "web-b", "gz": "gz2"}
    assert fired["transition"]["seq"] == 1
    assert [t["seq"] for t in fired["transitions"]] == [1]
    assert [(a["zone"], a["action"], a["ok"]) for a in fired["actions"]] == [
        ("web-b", "svc_enable", True),
        ("web-a", "svc_disable", True),
    ]
    assert set(fired["timings"]) == {"transition", "received", "checked", "actions_done"}


def test_a_cluster_without_actions_converges_in_one_round(runner, monkeypatch):
    bare = json.loads(json.dumps(PILLAR))
    del bare["ucarp"]["clusters"]["web"]["on_master"], bare["ucarp"]["clusters"]["web"]["on_backup"]
    runner.__salt__["pillar.show_pillar"] = lambda minion: bare
    (result,) = runner.transition(*event())
    assert result == {"complete": {"zone": "web-b", "gz": "gz2"}, "actions": []}
    assert publishes(runner) == ["ucarp.holders"]


def test_actions_follow_the_holder_not_the_event(runner):
    runner.local.holders = {"web-a"}  # web-b's master event arrives after web-a took the VIP back
    (result,) = runner.transition(*event())
    assert result["complete"] == {"zone": "web-a", "gz": "gz1"}
    work = runner.local.calls[1][3]["work"]
    assert [(w["host"], w["zone"], w["role"]) for w in work] == [("gz1", "web-a", "master"), ("gz2", "web-b", "backup")]


@pytest.mark.parametrize(
    ("reply", "detail"),
    [
        ({"ret": "ERROR: ucarp.run_actions: work[0].zone: 'web-a' is not a node", "retcode": 1},
         "ERROR: ucarp.run_actions: work[0].zone: 'web-a' is not a node"),
        ({"ret": "'ucarp.run_actions' is not available.", "retcode": 254}, "'ucarp.run_actions' is not available."),
        ({"ret": [], "retcode": 0}, "gz1 returned 1 action results in an unexpected shape"),
        (None, "gz1 did not answer"),
    ],
    ids=["error", "not-synced", "bad-shape", "silent"],
)  # fmt: skip
def test_a_hypervisor_whose_actions_round_failed_reports_each_of_its_actions(runner, reply, detail):
    answer = runner.local.cmd

    def gz1_fails(tgt, fun, *args, **kwargs):
        got = answer(tgt, fun, *args, **kwargs)
        if fun == "ucarp.run_actions":
            if reply is None:
                got.pop("gz1", None)
            else:
                got["gz1"] = dict(reply)
        return got

    runner.local.cmd = gz1_fails
    (result,) = runner.transition(*event())
    assert [(a["zone"], a["ok"], a["detail"]) for a in result["actions"]] == [
        ("web-b", True, True),
        ("web-a", False, detail),
    ]
    assert runner.fired[-1][0] == "ucarp/web/failover/complete"


BAD_TRANSITIONS = [
    ({"sender": "gz1"}, "zone web-b of cluster web is hosted by gz2, not gz1"),
    ({"zone": "web-z"}, "zone web-z is not a node of cluster web in pillar"),
    ({"vip": "192.0.2.99"}, "the VIP or VHID does not match pillar"),
    ({"vhid": 102}, "the VIP or VHID does not match pillar"),
    ({"seq": "1; reboot"}, "malformed sequence number or time ('1; reboot')"),
    ({"seq": 0}, "malformed sequence number or time (0)"),
    ({"seq": -3}, "malformed sequence number or time (-3)"),
    ({"seq": True}, "malformed sequence number or time (True)"),
    ({"seq": 2**64}, "malformed sequence number or time (18446744073709551616)"),
    ({"seq": 1.5}, "malformed sequence number or time (1.5)"),
    ({"ts": "noon"}, "malformed sequence number or time (1)"),
    ({"zone_uuid": "../../etc"}, "malformed zone UUID '../../etc'"),
    ({"zone_uuid": None}, "malformed zone UUID None"),
    ({"cluster": "web; rm -rf /"}, "malformed cluster name 'web; rm -rf /'"),
    ({"cluster": ["web"]}, "malformed cluster name ['web']"),
    ({"zone": 7}, "malformed zone 7"),
    ({"zone": "x" * 1_000_000}, "malformed zone '" + "x" * 59 + "..."),
    ({"vhid": "101"}, "malformed role or VHID"),
    ({"interface": ["net0"]}, "malformed role or VHID"),
    ({"epoch": "not-hex"}, "malformed epoch 'not-hex'"),
    ({"epoch": 5}, "malformed epoch 5"),
    ({"kind": "health"}, "a 'health' record sent as a transition event"),
]


@pytest.mark.parametrize(("changes", "reason"), BAD_TRANSITIONS)
def test_malformed_or_hostile_transitions_are_rejected_and_change_nothing(runner, changes, reason):
    sender = changes.pop("sender", "gz2")
    tag, data = event(sender=sender, forged=True, **changes)
    assert runner.transition(tag, data) == {"rejected": reason}
    assert runner.local.calls == []  # no round, no acknowledgement
    ((alert, fired),) = runner.fired
    assert alert in ("ucarp/web/alert/rejected", "ucarp/unknown/alert/rejected")
    assert fired["reason"] == reason and fired["sender"] == sender
    assert len(repr(fired)) < 1000  # a huge field is never echoed
    assert runner._fetch(runner.STATE_BANK, "web") == {}


@pytest.mark.parametrize(
    ("tag", "data", "reason"),
    [
        ("ucarp/web/master", None, "the event's data is not a mapping"),
        ("ucarp/web/master", {"id": 12, "data": {}}, "malformed sender id 12"),
        ("ucarp/web/master", {"id": "", "data": {}}, "malformed sender id ''"),
        ("ucarp/web/master", {"id": "gz9", "data": {}}, "'gz9' is not a minion whose key this master has accepted"),
        (
            "ucarp/web/master",
            {"id": "../gz1", "data": {}},
            "'../gz1' is not a minion whose key this master has accepted",
        ),
        ("ucarp/web/master", {"id": "gz2", "data": "master"}, "the event has no data"),
        ("ucarp/web/admin", event(role="admin", forged=True)[1], "malformed role or VHID"),
        ("ucarp/db/master", event(forged=True)[1], "the tag 'ucarp/db/master' does not match the data"),
        ("ucarp/db/master", event(cluster="db", forged=True)[1], "no cluster db in the pillar of gz2"),
    ],
    ids=[
        "no-data",
        "id-not-a-string",
        "empty-id",
        "unknown-minion",
        "traversal",
        "data-not-a-mapping",
        "role",
        "tag",
        "unknown-cluster",
    ],
)
def test_events_of_the_wrong_shape_are_rejected(runner, tag, data, reason):
    assert runner.transition(tag, data) == {"rejected": reason}
    assert runner.local.calls == []
    assert [fired["reason"] for _tag, fired in runner.fired] == [reason]


def test_a_transition_its_hypervisor_did_not_record_is_rejected_and_changes_nothing(runner):
    """An event in a list may carry any id: gz1 sends one claiming gz2's zone
    took the VIP.  gz2's own answer to the holders round has no such record."""
    tag, data = event(seq=7, forged=True)
    ((result,),) = [runner.transition(tag, data)]
    assert list(result) == ["rejected"] and "gz2 has no record 7 of web-b" in result["rejected"][0]
    assert publishes(runner) == ["ucarp.holders"]  # the round that asked gz2; no actions
    assert acks(runner) == []  # nothing acknowledged for a record gz2 did not write
    ((alert, fired),) = runner.fired
    assert alert == "ucarp/web/alert/rejected"
    assert (fired["claimed"], fired["actual"]) == ("gz2", None)
    assert "Salt does not say who sent it" in fired["reason"]
    state = saved(runner)
    assert state["cursors"] == {} and state["pending"] == [] and state["last"] is None


def test_a_claim_that_differs_from_the_record_is_rejected(runner):
    written("web-b", seq=1, ts=1001, role="backup", vhid=101, interface="net0")
    runner.transition(*event(seq=1, forged=True))  # claims master; the zone recorded backup
    (rejected, complete) = runner.fired
    assert rejected[0] == "ucarp/web/alert/rejected"
    assert rejected[1]["reason"] == "record 1 of web-b is not what gz2 recorded"
    # The zone's own record is real: the runner takes it (as recorded) and converges.
    assert complete[0] == "ucarp/web/failover/complete"
    assert [(t["seq"], t["role"]) for t in complete[1]["transitions"]] == [(1, "backup")]


def test_a_forged_event_does_not_stand_in_the_way_of_the_real_one(runner):
    runner.transition(*event(seq=1, forged=True))
    (result,) = runner.transition(*event(seq=1))
    assert result["complete"] == {"zone": "web-b", "gz": "gz2"}
    assert saved(runner)["cursors"][f"{ZONE_B}/web/transition"] == {"epoch": "", "seq": 1, "passed": []}


def test_a_flood_of_rejections_fires_a_bounded_number_of_alerts(runner, monkeypatch):
    now = {"t": 10_000.0}
    monkeypatch.setattr(runner.time, "time", lambda: now["t"])
    for seq in range(1, 1001):  # a list of a thousand events in one load
        runner.transition(*event(seq=seq, zone_uuid="nope", forged=True))
    assert len(runner.fired) == runner.REJECT_BURST
    now["t"] += runner.REJECT_WINDOW + 1
    runner.transition(*event(seq=1, zone_uuid="nope", forged=True))
    assert runner.fired[-1][1]["suppressed"] == 1000 - runner.REJECT_BURST
    assert runner.local.calls == []


def test_claims_waiting_to_be_confirmed_are_bounded(runner):
    queued = runner._Flock("web", ".queue")
    assert queued.acquire(wait=False)
    try:
        for seq in range(1, runner.MAX_PENDING + 1):
            assert runner.transition(*event(seq=seq, forged=True)) == []
        assert runner.transition(*event(seq=runner.MAX_PENDING + 1, forged=True)) == {
            "rejected": f"{runner.MAX_PENDING} transitions of cluster web already wait to be confirmed"
        }
    finally:
        queued.release()


def test_repeats_are_ignored_and_gaps_filled_in_one_convergence(runner):
    runner.transition(*event(seq=1))
    assert runner.transition(*event(seq=1)) == {"duplicate": 1}
    runner.fired.clear()
    runner.local.calls.clear()
    written("web-b", seq=2, ts=1002, role="backup", vhid=101, interface="net0")  # the master missed its event
    results = runner.transition(*event(seq=3))
    assert runner.local.calls[0][3] == {"after": {"web-b": {"epoch": "", "seq": 1, "passed": []}}}
    assert [r.get("complete", {}).get("zone") for r in results] == ["web-b"]  # the gap and the event: converged once
    ((_tag, fired),) = runner.fired
    assert fired["transition"]["seq"] == 3
    assert [t["seq"] for t in fired["transitions"]] == [2, 3]
    assert publishes(runner) == ["ucarp.holders", "ucarp.run_actions"]  # the gap came with the holders round
    state = saved(runner)
    assert state["cursors"] == {f"{ZONE_B}/web/transition": {"epoch": "", "seq": 3, "passed": []}}
    assert state["last"]["seq"] == 3 and state["pending"] == [] and state["ready"] == []
    assert runner.transition(*event(seq=2, role="backup")) == {"duplicate": 2}


def test_records_that_went_back_are_taken_in_their_new_epoch_and_old_ones_never_again(runner):
    e1, e2 = "1111111111111111", "2222222222222222"
    for seq in (1, 2, 3):
        runner.transition(*event(seq=seq, epoch=e1, role="master" if seq % 2 else "backup"))
    ZONES[("web-b", "transition")] = []  # the file emptied: its new records start at 1 in a new epoch
    (result,) = runner.transition(*event(seq=1, epoch=e2))
    assert result["complete"] == {"zone": "web-b", "gz": "gz2"}
    # The file replaced by an older copy: the old records are repeats, the new epoch's are new.
    ZONES[("web-b", "transition")] = []
    for seq in (1, 2):
        written("web-b", epoch=e1, seq=seq, ts=1000 + seq, role="master" if seq % 2 else "backup", vhid=101,
                interface="net0")  # fmt: skip
    assert runner.transition(*event(seq=2, epoch=e1, role="backup")) == {"duplicate": 2}
    runner.fired.clear()
    (result,) = runner.transition(*event(seq=3, epoch="3333333333333333", role="backup"))
    assert [t["epoch"] for t in runner.fired[-1][1]["transitions"]] == ["3333333333333333"]
    assert saved(runner)["cursors"][f"{ZONE_B}/web/transition"]["passed"] == [e1, e2]


def acks(runner):
    """Every acknowledgement sent, ``(host, key, seq, epoch)``: in a job of
    its own (``ucarp.ack_many``) or carried by a holders round."""
    sent = []
    for _tgt, fun, _arg, kwarg in runner.local.calls:
        if fun in ("ucarp.ack_many", "ucarp.holders") and "acks" in (kwarg or {}):
            for host, owed in sorted(kwarg["acks"].items()):
                sent += [(host, key, cur["seq"], cur["epoch"]) for key, cur in sorted(owed.items())]
    return sent


def test_acknowledgements_go_only_for_records_their_hypervisor_confirmed(runner):
    key = f"{ZONE_B}/web/transition"
    runner.transition(*event(seq=1, ack="../../etc/passwd"))  # the event's own ack field is not used
    runner.transition(*event(seq=1))  # a repeat: the first acknowledgement was lost
    runner.transition(*event(seq=2, vhid=7, forged=True))  # rejected
    runner.transition(*event(seq=3, forged=True))  # not confirmed
    assert acks(runner) == [("gz2", key, 1, "")] * 2
    assert runner.fired[-1][0] == "ucarp/web/alert/rejected"


def test_a_health_record_is_acknowledged_with_its_own_cursor(runner):
    runner.health(*health_event())
    assert acks(runner) == [("gz2", f"{ZONE_B}/web/health", 1, "")]


def test_a_record_whose_handling_failed_is_not_acknowledged(runner):
    def broken(*args):
        raise RuntimeError("the cache is full")

    runner._save = broken
    with pytest.raises(RuntimeError):
        runner.transition(*event(seq=1))
    assert acks(runner) == []  # so the beacon sends it again


def test_two_holders_raise_split_brain(runner):
    runner.local.holders = {"web-a", "web-b"}
    (result,) = runner.transition(*event())
    assert result["alert"] == "split-brain"
    assert not [c for c in runner.local.calls if c[1].startswith("zlogin.")]  # nothing done while split
    ((tag, fired),) = runner.fired
    assert tag == "ucarp/web/alert/split-brain"
    assert [h["zone"] for h in fired["holders"]] == ["web-a", "web-b"]


def test_no_holder_raises_no_master(runner):
    runner.local.holders = set()
    (result,) = runner.transition(*event(role="backup"))
    assert result["alert"] == "no-master"
    assert runner.fired[0][0] == "ucarp/web/alert/no-master"


def test_an_alert_does_not_outlive_what_it_says(runner):
    """No holder when the convergence looked (an election still running on a
    slow hypervisor): the alert fires, the convergence watches on, and when
    one holder appears it runs the actions and completes, with no alert left,
    though no transition came to say so."""
    rounds = {"n": 0}
    cmd = runner.local.cmd

    def later_a_holder(tgt, fun, *args, **kwargs):
        if fun == "ucarp.holders":
            rounds["n"] += 1
            runner.local.holders = {"web-b"} if rounds["n"] > 8 else set()
        return cmd(tgt, fun, *args, **kwargs)

    runner.local.cmd = later_a_holder
    (result,) = runner.transition(*event(role="backup"))
    assert [tag for tag, _ in runner.fired] == ["ucarp/web/alert/no-master", "ucarp/web/failover/complete"]
    assert result["complete"] == {"zone": "web-b", "gz": "gz2"}
    assert runner._load("web")["alert"] is None


class SleepClock:
    """Time that passes only when the runner sleeps; ``at`` runs a callable
    once the clock reaches a moment."""

    def __init__(self, runner, monkeypatch):
        self.now, self.plan = 1000.0, []
        monkeypatch.setattr(runner.time, "time", lambda: self.now)
        monkeypatch.setattr(runner.time, "sleep", self.sleep)

    def sleep(self, seconds):
        self.now += seconds
        for when, what in list(self.plan):
            if self.now >= when:
                self.plan.remove((when, what))
                what()

    def at(self, delay, what):
        self.plan.append((self.now + delay, what))


def holders_rounds(runner):
    return [c for c in runner.local.calls if c[1] == "ucarp.holders"]


def test_an_election_converges_once_covering_the_transitions_claimed_while_it_settles(runner, monkeypatch):
    """A start-up election: no holder yet when web-b's backup record is
    converged on. web-b's master record is claimed (by its own reaction,
    which queues) 1.3 s on: the next holders round goes out at once, not at
    the next RECHECK, confirms that record too, and the one convergence
    covers both; the queued reaction finds nothing left to do."""
    clock = SleepClock(runner, monkeypatch)
    runner.local.holders = set()
    queued = {}

    def web_b_takes_the_vip():
        runner.local.holders = {"web-b"}
        thread = threading.Thread(target=lambda: queued.setdefault("result", runner.transition(*event(seq=2))))
        thread.start()
        queued["thread"] = thread
        for _ in range(500):  # until its claim is recorded (it then waits for this convergence)
            if runner._load("web")["pending"]:
                return
            threading.Event().wait(0.01)

    clock.at(1.3, web_b_takes_the_vip)
    started = clock.now
    (result,) = runner.transition(*event(role="backup", seq=1))
    queued["thread"].join(timeout=30)
    assert result["complete"] == {"zone": "web-b", "gz": "gz2"}
    assert queued["result"] == []  # covered: nothing left for it
    assert len(holders_rounds(runner)) == 2  # the first, and one as soon as the claim came
    assert clock.now - started < runner.RECHECK
    ((tag, fired),) = runner.fired
    assert tag == "ucarp/web/failover/complete"
    assert [(t["role"], t["seq"]) for t in fired["transitions"]] == [("backup", 1), ("master", 2)]
    assert fired["transition"]["seq"] == 2
    assert saved(runner)["cursors"][f"{ZONE_B}/web/transition"]["seq"] == 2
    assert saved(runner)["pending"] == [] and saved(runner)["ready"] == []
    assert acks(runner) == [("gz2", f"{ZONE_B}/web/transition", 2, "")]


def test_a_backup_claim_while_no_zone_holds_the_vip_waits_for_the_next_round(runner, monkeypatch):
    """Start-up: web-b's backup record is converged on with no holder yet;
    web-a's backup record is claimed 0.4 s on (it cannot give the VIP a
    holder: no round for it), web-b's master record 1.3 s on (a round at
    once). That one round confirms both, and the one convergence covers
    all three records."""
    clock = SleepClock(runner, monkeypatch)
    runner.local.holders = set()
    threads = []

    def claim(**changes):
        def send():
            seq, zone = changes.get("seq", 1), changes.get("zone", "web-b")
            thread = threading.Thread(target=lambda: runner.transition(*event(**changes)))
            thread.start()
            threads.append(thread)
            for _ in range(500):  # until its claim is recorded (it then waits for this convergence)
                if any((p["zone"], p["seq"]) == (zone, seq) for p in runner._load("web")["pending"]):
                    return
                threading.Event().wait(0.01)

        return send

    def web_b_takes_the_vip():
        runner.local.holders = {"web-b"}
        claim(seq=2)()

    clock.at(0.4, claim(sender="gz1", zone="web-a", zone_uuid=ZONE_A, role="backup", seq=1))
    clock.at(1.3, web_b_takes_the_vip)
    (result,) = runner.transition(*event(role="backup", seq=1))
    for thread in threads:
        thread.join(timeout=30)
    assert result["complete"] == {"zone": "web-b", "gz": "gz2"}
    rounds = holders_rounds(runner)
    assert len(rounds) == 2  # the first, and the one for the master claim
    assert set(rounds[1][3]["after"]) == {"web-a", "web-b"}  # which confirmed the backup claim too
    ((tag, fired),) = runner.fired
    assert [(t["zone"], t["role"], t["seq"]) for t in fired["transitions"]] == [
        ("web-b", "backup", 1), ("web-a", "backup", 1), ("web-b", "master", 2)]  # fmt: skip
    assert saved(runner)["pending"] == [] and saved(runner)["ready"] == []


def test_a_backup_claim_alone_is_confirmed_at_the_next_recheck(runner, monkeypatch):
    """No master claim follows web-a's backup record: it is confirmed by the
    round RECHECK seconds after the last, not left for another convergence."""
    clock = SleepClock(runner, monkeypatch)
    runner.local.holders = set()
    threads = []

    def web_a_backup():
        thread = threading.Thread(target=lambda: runner.transition(
            *event(sender="gz1", zone="web-a", zone_uuid=ZONE_A, role="backup", seq=1)))  # fmt: skip
        thread.start()
        threads.append(thread)
        for _ in range(500):
            if any(p["zone"] == "web-a" for p in runner._load("web")["pending"]):
                return
            threading.Event().wait(0.01)

    answer, asked = runner.local.cmd, []

    def timed(tgt, fun, *args, **kwargs):
        if fun == "ucarp.holders":
            asked.append(clock.now - started)
        return answer(tgt, fun, *args, **kwargs)

    runner.local.cmd = timed
    clock.at(0.4, web_a_backup)
    clock.at(runner.RECHECK + 0.5, lambda: runner.local.holders.add("web-b"))
    started = clock.now
    (result,) = runner.transition(*event(role="backup", seq=1))
    for thread in threads:
        thread.join(timeout=30)
    rounds = holders_rounds(runner)
    assert "web-a" in rounds[1][3]["after"]  # the second round confirmed it ...
    assert asked[0] == 0 and asked[1] >= runner.RECHECK  # ... at RECHECK, not at once
    assert result["complete"] == {"zone": "web-b", "gz": "gz2"}
    ((_tag, fired),) = runner.fired
    assert ("web-a", "backup", 1) in [(t["zone"], t["role"], t["seq"]) for t in fired["transitions"]]


def test_acknowledgements_ride_on_the_next_round_while_other_reactions_run(runner):
    """While another reaction runs in the process, what a reaction owes a
    hypervisor is not a job of its own: the next holders round to it
    carries it, and the last reaction to end sends what is left."""
    with runner._Reacting():  # another reaction, still running
        runner.transition(*event(seq=1))
        assert [c[1] for c in runner.local.calls].count("ucarp.ack_many") == 0
        runner._holders(runner._clusters("gz2")["web"])  # the next round to gz1 and gz2
        (carried,) = [c for c in holders_rounds(runner) if "acks" in (c[3] or {})]
        assert carried[3]["acks"] == {"gz2": {f"{ZONE_B}/web/transition": {"epoch": "", "seq": 1}}}
        runner.transition(*event(seq=2))
    # The last to end sends what no round carried, in one job.
    ((tgt, fun, _arg, kwarg),) = [c for c in runner.local.calls if c[1] == "ucarp.ack_many"]
    assert (tgt, kwarg) == (["gz2"], {"acks": {"gz2": {f"{ZONE_B}/web/transition": {"epoch": "", "seq": 2}}}})
    assert runner._OWED == {}


def test_an_acknowledgement_a_silent_hypervisor_missed_is_sent_again(runner):
    """A round gz2 does not answer carries its acknowledgement in vain: it is
    owed again, and sent when the reactions end."""
    answer = runner.local.cmd

    def gz2_silent(tgt, fun, *args, **kwargs):
        got = answer(tgt, fun, *args, **kwargs)
        return {h: r for h, r in got.items() if h != "gz2"} if fun == "ucarp.holders" else got

    with runner._Reacting():
        runner.transition(*event(seq=1))
        runner.local.cmd = gz2_silent
        runner._holders(runner._clusters("gz2")["web"])
        runner.local.cmd = answer
        assert runner._OWED["gz2"][f"{ZONE_B}/web/transition"][0] == {"epoch": "", "seq": 1}
    ((_tgt, _fun, _arg, kwarg),) = [c for c in runner.local.calls if c[1] == "ucarp.ack_many"]
    assert kwarg["acks"]["gz2"] == {f"{ZONE_B}/web/transition": {"epoch": "", "seq": 1}}


def test_an_acknowledgement_waits_at_most_ack_hold_for_a_round(runner, monkeypatch):
    """Reactions that keep running elsewhere do not hold an acknowledgement
    back for long: a reaction that ends sends those owed ACK_HOLD seconds."""
    clock = SleepClock(runner, monkeypatch)
    with runner._Reacting():
        runner.transition(*event(seq=1))
        assert not [c for c in runner.local.calls if c[1] == "ucarp.ack_many"]
        clock.sleep(runner.ACK_HOLD)
        with runner._Reacting():
            pass  # another reaction ends, with others still running
        assert [c[3]["acks"] for c in runner.local.calls if c[1] == "ucarp.ack_many"] == [
            {"gz2": {f"{ZONE_B}/web/transition": {"epoch": "", "seq": 1}}}]  # fmt: skip


class HeldRounds:
    """``_cmd`` that holds its first call until released, and records every call."""

    def __init__(self, answer):
        self.answer, self.calls, self.release, self.first_out = answer, [], threading.Event(), threading.Event()

    def __call__(self, hosts, fun, args=(), kwarg=None):
        self.calls.append((list(hosts), fun, list(args), kwarg))
        if len(self.calls) == 1:
            self.first_out.set()
            assert self.release.wait(30)
        return self.answer(hosts, fun, args, kwarg)


def answers_per_cluster(hosts, fun, args, kwarg):
    """gz1 and gz2: web-a, db-a held; db's records are an error on gz2."""

    def one(host, name, after):
        if name == "db" and host == "gz2":
            return {"error": "ucarp: no cluster 'db' in pillar"}
        return {"answer": {f"{name}-a": host == "gz1"}}

    if fun == "ucarp.holders":
        return {h: {"ret": one(h, args[0], None)["answer"], "retcode": 0} for h in hosts}
    return {h: {"ret": [one(h, a["cluster"], a["after"]) for a in kwarg["asks"]], "retcode": 0} for h in hosts}


def test_rounds_asked_while_one_is_out_to_the_same_hypervisors_go_together(runner, monkeypatch):
    """web's round is out; db's and app's, asked meanwhile, wait for it and
    then go as one ucarp.holders_many, each answered with its own part (an
    error for db on gz2 is db's alone)."""
    cmd = HeldRounds(answers_per_cluster)
    monkeypatch.setattr(runner, "_cmd", cmd)
    got = {}

    def ask(name):
        got[name] = runner._ROUNDS.ask(("gz1", "gz2"), name, None if name == "web" else {f"{name}-a": None})

    first = threading.Thread(target=ask, args=("web",))
    first.start()
    assert cmd.first_out.wait(30)
    others = [threading.Thread(target=ask, args=(n,)) for n in ("db", "app")]
    for thread in others:
        thread.start()
    for _ in range(500):  # until both wait for the round that is out
        if len(runner._ROUNDS.waiting.get(("gz1", "gz2"), [])) == 2:
            break
        threading.Event().wait(0.01)
    cmd.release.set()
    for thread in [first, *others]:
        thread.join(timeout=30)
    assert [c[1] for c in cmd.calls] == ["ucarp.holders", "ucarp.holders_many"]
    assert sorted(a["cluster"] for a in cmd.calls[1][3]["asks"]) == ["app", "db"]
    assert got["web"]["gz1"] == {"ret": {"web-a": True}, "retcode": 0}
    assert got["app"]["gz2"] == {"ret": {"app-a": False}, "retcode": 0}
    assert got["db"]["gz1"] == {"ret": {"db-a": True}, "retcode": 0}
    assert got["db"]["gz2"] == {"ret": "ucarp: no cluster 'db' in pillar", "retcode": 1}
    assert runner._ROUNDS.out == set() and runner._ROUNDS.waiting == {}


def test_a_round_to_other_hypervisors_does_not_wait(runner, monkeypatch):
    """A round out to gz1 and gz2 does not hold back one to gz3 and gz4."""
    cmd = HeldRounds(answers_per_cluster)
    monkeypatch.setattr(runner, "_cmd", cmd)
    first = threading.Thread(target=lambda: runner._ROUNDS.ask(("gz1", "gz2"), "web", None))
    first.start()
    assert cmd.first_out.wait(30)
    assert runner._ROUNDS.ask(("gz3", "gz4"), "db", None)["gz3"]["ret"] == {"db-a": False}  # while web's is out
    cmd.release.set()
    first.join(timeout=30)
    assert [c[0] for c in cmd.calls] == [["gz1", "gz2"], ["gz3", "gz4"]]


def test_a_merged_round_that_fails_fails_for_each_and_the_next_still_goes(runner, monkeypatch):
    """LocalClient itself fails for the merged round: each reaction in it
    gets the error, the acknowledgements it carried are owed again, and a
    later round goes out as usual."""

    def broken(hosts, fun, args, kwarg):
        if fun == "ucarp.holders_many":
            raise OSError("the master's publisher went away")
        return answers_per_cluster(hosts, fun, args, kwarg)

    cmd = HeldRounds(broken)
    monkeypatch.setattr(runner, "_cmd", cmd)
    errors = {}

    def ask(name):
        try:
            runner._ROUNDS.ask(("gz1", "gz2"), name, None)
        except OSError as exc:
            errors[name] = str(exc)

    threads = [threading.Thread(target=ask, args=("web",))]
    threads[0].start()
    assert cmd.first_out.wait(30)
    runner._send_ack("gz2", f"{ZONE_B}/web/transition", {"epoch": "", "seq": 3})  # for the next round to carry
    threads += [threading.Thread(target=ask, args=(n,)) for n in ("db", "app")]
    for thread in threads[1:]:
        thread.start()
    for _ in range(500):
        if len(runner._ROUNDS.waiting.get(("gz1", "gz2"), [])) == 2:
            break
        threading.Event().wait(0.01)
    cmd.release.set()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == {"db": "the master's publisher went away", "app": "the master's publisher went away"}
    assert cmd.calls[1][3]["acks"] == {"gz2": {f"{ZONE_B}/web/transition": {"epoch": "", "seq": 3}}}
    assert runner._OWED["gz2"][f"{ZONE_B}/web/transition"][0] == {"epoch": "", "seq": 3}  # owed again
    assert runner._ROUNDS.ask(("gz1", "gz2"), "web", None)["gz1"]["ret"] == {"web-a": True}
    assert "acks" in cmd.calls[2][3]  # which carries it
    assert runner._ROUNDS.out == set()


def test_a_transition_claimed_during_the_first_round_and_taken_by_it_is_not_rejected(runner, monkeypatch):
    """web-b's next record is written, and its event claimed, while the first
    holders round is out: that round's answer already carries it (every
    record after the cursor), so the settling convergence finds the claim
    done, with no alert/rejected, and covers it."""
    clock = SleepClock(runner, monkeypatch)
    runner.local.holders = set()
    answer, queued = runner.local.cmd, {}

    def claim_meanwhile(tgt, fun, *args, **kwargs):
        if fun == "ucarp.holders" and not queued:
            thread = threading.Thread(target=lambda: queued.setdefault("result", runner.transition(*event(seq=2))))
            queued["thread"] = thread
            thread.start()
            for _ in range(500):
                if any(p["seq"] == 2 for p in runner._load("web")["pending"]):
                    break
                threading.Event().wait(0.01)
        elif fun == "ucarp.holders":
            runner.local.holders = {"web-b"}
        return answer(tgt, fun, *args, **kwargs)

    runner.local.cmd = claim_meanwhile
    clock.at(100, lambda: None)
    (result,) = runner.transition(*event(role="backup", seq=1))
    queued["thread"].join(timeout=30)
    assert result["complete"] == {"zone": "web-b", "gz": "gz2"}
    assert queued["result"] == []
    assert [tag for tag, _ in runner.fired] == ["ucarp/web/failover/complete"]
    assert [(t["role"], t["seq"]) for t in runner.fired[0][1]["transitions"]] == [("backup", 1), ("master", 2)]
    assert saved(runner)["pending"] == [] and saved(runner)["ready"] == []


def test_a_settling_vip_with_no_transition_is_asked_again_every_recheck(runner, monkeypatch):
    """A holder that appears without a transition being claimed (its event
    not yet sent) is found by the next round, RECHECK seconds on: not one
    round every WATCH."""
    clock = SleepClock(runner, monkeypatch)
    runner.local.holders = set()
    clock.at(0.5, lambda: setattr(runner.local, "holders", {"web-b"}))
    started = clock.now
    (result,) = runner.transition(*event(role="backup"))
    assert result["complete"] == {"zone": "web-b", "gz": "gz2"}
    assert len(holders_rounds(runner)) == 2
    assert clock.now - started >= runner.RECHECK


NO_RESPONSE = {"out": "no_return", "ret": "Minion did not return. [No response]\n...", "retcode": 1}


@pytest.mark.parametrize("missing", [None, NO_RESPONSE], ids=["left-out", "no-response"])
def test_a_hypervisor_that_missed_the_job_is_asked_again(runner, missing):
    """LocalClient.cmd leaves a silent minion out, or (when saltutil.find_job
    finds the job gone: it dropped it, just after a master restart) reports it
    as not returning: neither is an answer."""
    answer = runner.local.cmd
    dropped = []

    def first_job_lost(tgt, fun, *args, **kwargs):
        reply = answer(tgt, fun, *args, **kwargs)
        if fun == "ucarp.holders" and "gz2" in reply and not dropped:
            dropped.append(reply.pop("gz2"))  # gz2 has just reconnected to a restarted master
            if missing:
                reply["gz2"] = dict(missing)
        return reply

    runner.local.cmd = first_job_lost
    (result,) = runner.transition(*event())
    assert dropped and result["complete"] == {"zone": "web-b", "gz": "gz2"}


def test_a_record_whose_hypervisor_does_not_answer_waits_to_be_confirmed(runner):
    answer = runner.local.cmd
    silent = {"gz2"}

    def gz2_silent(tgt, fun, *args, **kwargs):
        reply = answer(tgt, fun, *args, **kwargs)
        for host in silent & set(reply):
            reply[host] = dict(NO_RESPONSE)
        return reply

    runner.local.cmd = gz2_silent
    (result,) = runner.transition(*event())
    assert result == {"unconfirmed": "gz2 did not answer: the records wait to be confirmed"}
    assert runner.fired == [] and acks(runner) == []  # not acknowledged: the beacon sends it again
    assert [p["seq"] for p in saved(runner)["pending"]] == [1]
    silent.clear()
    assert runner.transition(*event()) == {"duplicate": 1}  # the beacon's resend: now it is confirmed
    assert [tag for tag, _ in runner.fired] == ["ucarp/web/failover/complete"]
    assert saved(runner)["pending"] == []


# The beacon: health records -----------------------------------------------------

TWO_TRANSITIONS = "1 10 backup web 192.0.2.100 101 net0\n2 20 master web 192.0.2.100 101 net0\n"
HEALTH_TEXT = (
    "2 110 healthy web eligible\n"
    "1 100 sick web ineligible tcp 192.0.2.11:80 refused\n"
    "3 120 sick db stepped-down\n"  # another cluster: not this node's
    "not a record\n"
)


def setup_health_beacon(beacon, tmp_path, sent, health_path="/var/db/ucarp/web.health", fail_on=None):
    """A node with health checks; ``sent`` gets (tag, payload); ``fail_on`` (tag, seq) is not taken."""
    root = zone_root(tmp_path, TWO_TRANSITIONS)
    health = root / "var" / "db" / "ucarp" / "web.health"
    if not health.exists():
        health.write_text(HEALTH_TEXT)
    records = {"transition": "/var/db/ucarp/web.transitions"}
    if health_path:
        records["health"] = health_path
    node = {"zone": "web-a", "cluster": "web", "vip": "192.0.2.100", "vhid": 101, "records": records}
    beacon.__salt__ = {
        "ucarp.watch_list": lambda: [dict(node)],
        "ucarp.acks": lambda: dict(beacon.acked),
        "vmadm.list": lambda **kw: [{"uuid": ZONE_A, "alias": "web-a", "zonepath": str(root.parent)}],
    }

    def send(tag, data):
        if (tag, data["seq"]) == fail_on:
            return False
        sent.append((tag, data))
        return True

    beacon._send = send
    return health


def tags(sent):
    return [(tag, data["seq"]) for tag, data in sent]


def test_beacon_sends_each_health_record_once_in_order_after_the_transitions(beacon, tmp_path):
    sent = []
    health = setup_health_beacon(beacon, tmp_path, sent)
    assert beacon.beacon([{"interval": 1}]) == []
    assert tags(sent) == [
        ("ucarp/web/backup", 1),
        ("ucarp/web/master", 2),
        ("ucarp/web/health/sick", 1),  # its own cursor: seq 1 and 2 are not taken for transitions already sent
        ("ucarp/web/health/healthy", 2),
    ]
    assert sent[2][1] == {
        "cluster": "web",
        "zone": "web-a",
        "zone_uuid": ZONE_A,
        "gz": "gz1",
        "vip": "192.0.2.100",
        "vhid": 101,
        "state": "sick",
        "action": "ineligible",
        "detail": "tcp 192.0.2.11:80 refused",
        "epoch": "",
        "seq": 1,
        "ts": 100,
        "kind": "health",
        "ack": f"{ZONE_A}/web/health",
        "via": "beacon",
    }
    assert sent[3][1]["detail"] is None
    beacon.beacon([{"interval": 1}])
    assert len(sent) == 4  # nothing twice
    health.write_text(HEALTH_TEXT + "3 130 sick web kept-vip service svc:/site/app:default is offline\n")
    beacon.beacon([{"interval": 1}])
    assert tags(sent)[4:] == [("ucarp/web/health/sick", 3)]
    assert sent[4][1]["action"] == "kept-vip"


def test_beacon_keeps_the_health_records_the_master_did_not_take(beacon, tmp_path):
    sent = []
    setup_health_beacon(beacon, tmp_path, sent, fail_on=("ucarp/web/health/healthy", 2))
    beacon.beacon([{"interval": 1}])
    assert tags(sent) == [("ucarp/web/backup", 1), ("ucarp/web/master", 2), ("ucarp/web/health/sick", 1)]
    setup_health_beacon(beacon, tmp_path, sent)
    beacon.beacon([{"interval": 1}])
    assert tags(sent)[3:] == [("ucarp/web/health/healthy", 2)]
    with open(beacon._cursor_path(), encoding="utf-8") as fh:
        assert json.load(fh) == {
            f"{ZONE_A}/web/transition": {"epoch": "", "seq": 2, "passed": []},
            f"{ZONE_A}/web/health": {"epoch": "", "seq": 2, "passed": []},
        }


def test_beacon_sends_no_health_record_while_a_transition_waits(beacon, tmp_path):
    sent = []
    setup_health_beacon(beacon, tmp_path, sent, fail_on=("ucarp/web/master", 2))
    beacon.beacon([{"interval": 1}])
    assert tags(sent) == [("ucarp/web/backup", 1)]
    setup_health_beacon(beacon, tmp_path, sent)
    beacon.beacon([{"interval": 1}])
    assert tags(sent)[1:] == [("ucarp/web/master", 2), ("ucarp/web/health/sick", 1), ("ucarp/web/health/healthy", 2)]


def test_beacon_reads_no_health_file_without_health_checks(beacon, tmp_path, monkeypatch):
    sent = []
    setup_health_beacon(beacon, tmp_path, sent, health_path=None)
    read = beacon.read_in_zone
    paths = []
    monkeypatch.setattr(beacon, "read_in_zone", lambda root, path: paths.append(path) or read(root, path))
    beacon.beacon([{"interval": 1}])
    assert paths == ["/var/db/ucarp/web.transitions"]
    assert tags(sent) == [("ucarp/web/backup", 1), ("ucarp/web/master", 2)]  # transitions as before


# The runner: health events ------------------------------------------------------


def health_event(sender="gz2", zone="web-b", state="sick", action="stepped-down", seq=1, detail="tcp 192.0.2.12:80",
                 forged=False, **changes):  # fmt: skip
    """A health event as the beacon sends it; its record is in the zone's file unless ``forged``."""
    payload = {"cluster": "web", "zone": zone, "zone_uuid": ZONE_B if zone == "web-b" else ZONE_A, "state": state,
               "action": action, "detail": detail, "epoch": "", "seq": seq, "ts": 2000 + seq, "vip": "192.0.2.100",
               "vhid": 101, "gz": sender, "kind": "health"}  # fmt: skip
    payload.update(changes)
    if not forged and zone in HOSTS:
        written(zone, "health", **{k: payload[k] for k in ("epoch", "seq", "ts", "state", "action", "detail")})
    tag = f"ucarp/web/health/{payload['state']}"
    return tag, {"id": sender, "tag": tag, "data": payload}


def saved(runner):
    """The cluster's state as the runner keeps it in the master's cache."""
    return runner._load("web")


@pytest.mark.parametrize(
    ("state", "action"), [("sick", "stepped-down"), ("sick", "ineligible"), ("healthy", "eligible")]
)
def test_a_health_record_is_recorded(runner, state, action):
    (result,) = runner.health(*health_event(state=state, action=action))
    node = {"gz": "gz2", "state": state, "action": action, "detail": "tcp 192.0.2.12:80", "epoch": "", "seq": 1,
            "ts": 2001}  # fmt: skip
    assert result == {"health": dict(node, zone="web-b")}
    state_saved = saved(runner)
    assert state_saved["health"] == {"web-b": node}
    assert state_saved["cursors"] == {f"{ZONE_B}/web/health": {"epoch": "", "seq": 1, "passed": []}}
    assert state_saved["alert"] is None
    assert runner.fired == []
    # gz2 confirmed the record in its own return; nothing else is done in the fleet
    assert publishes(runner) == ["ucarp.records"]
    assert runner.local.calls[0] == ("gz2", "ucarp.records", ["web-b", "web", "health"], {"after": None})


def test_kept_vip_raises_all_unhealthy_with_the_holder(runner):
    (result,) = runner.health(*health_event(action="kept-vip", detail="service svc:/site/app:default is offline"))
    assert result == {"alert": "all-unhealthy", "holder": {"zone": "web-b", "gz": "gz2"}}
    ((tag, fired),) = runner.fired
    assert tag == "ucarp/web/alert/all-unhealthy"
    assert fired["holder"] == {"zone": "web-b", "gz": "gz2"}
    assert fired["zone"] == "web-b" and fired["vip"] == "192.0.2.100"
    assert fired["detail"] == "service svc:/site/app:default is offline"
    assert fired["health"]["web-b"]["action"] == "kept-vip"
    alert = saved(runner)["alert"]
    assert alert["kind"] == "all-unhealthy" and alert["holders"] == [{"zone": "web-b", "gz": "gz2"}]


@pytest.mark.parametrize(
    ("later", "cleared"),
    [
        ({"state": "healthy", "action": "eligible"}, True),  # the master is healthy again
        ({"state": "sick", "action": "stepped-down"}, True),  # it gave the VIP up
        ({"state": "healthy", "action": "eligible", "sender": "gz1", "zone": "web-a", "seq": 1}, True),  # a peer
        ({"state": "sick", "action": "ineligible", "sender": "gz1", "zone": "web-a", "seq": 1}, False),
    ],
)
def test_the_all_unhealthy_alert_clears_when_a_node_is_healthy_or_steps_down(runner, later, cleared):
    runner.health(*health_event(action="kept-vip"))
    runner.fired.clear()
    runner.health(*health_event(**dict({"seq": 2}, **later)))
    alert = saved(runner)["alert"]
    assert (alert is None) is cleared
    assert runner.fired == []


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"sender": "gz1"}, "zone web-b of cluster web is hosted by gz2, not gz1"),
        ({"state": "dying"}, "malformed health state, action or detail"),
        ({"action": "reboot"}, "malformed health state, action or detail"),
        ({"vhid": 102}, "the VIP or VHID does not match pillar"),
    ],
)
def test_health_events_not_matching_pillar_are_rejected(runner, changes, reason):
    sender = changes.pop("sender", "gz2")
    assert runner.health(*health_event(sender=sender, **{"action": "kept-vip", **changes})) == {"rejected": reason}
    ((alert, fired),) = runner.fired
    assert alert == "ucarp/web/alert/rejected"
    assert fired["reason"] == reason and fired["sender"] == sender
    assert runner._fetch(runner.STATE_BANK, "web") == {}  # nothing recorded


def test_a_health_tag_that_does_not_match_the_data_is_rejected(runner):
    _tag, data = health_event(state="sick")
    assert runner.health("ucarp/web/health/healthy", data) == {
        "rejected": "the tag 'ucarp/web/health/healthy' does not match the data"
    }
    # a transition is not a health record
    assert runner.health(*event()) == {"rejected": "a 'transition' record sent as a health event"}


def test_health_repeats_are_ignored_with_a_cursor_of_their_own(runner):
    runner.transition(*event(seq=5))
    runner.local.calls.clear()
    runner.fired.clear()
    (result,) = runner.health(*health_event(seq=1))  # not a repeat of transition 1..5
    assert result["health"]["seq"] == 1
    assert runner.health(*health_event(seq=1)) == {"duplicate": 1}
    runner.health(*health_event(seq=2, state="healthy", action="eligible"))
    assert runner.health(*health_event(seq=1, action="kept-vip", forged=True)) == {"duplicate": 1}
    assert runner.fired == []
    assert publishes(runner) == ["ucarp.records", "ucarp.records"]  # one confirmation per new record
    assert saved(runner)["health"]["web-b"]["state"] == "healthy"


def test_a_health_gap_is_filled_from_the_zone_in_order(runner):
    runner.health(*health_event(seq=1, detail="a"))
    # what the master missed while it was down, then the event that comes through
    written("web-b", "health", seq=2, ts=2002, state="healthy", action="eligible", detail=None)
    written("web-b", "health", seq=3, ts=2003, state="sick", action="kept-vip", detail="b")
    results = runner.health(*health_event(seq=4, state="healthy", action="eligible", detail="c2"))
    assert [c[3] for c in runner.local.calls if c[1] == "ucarp.records"][-1] == {
        "after": {"epoch": "", "seq": 1, "passed": []}
    }
    assert [r.get("health", {}).get("seq") for r in results] == [2, None, 4]
    assert results[1] == {"alert": "all-unhealthy", "holder": {"zone": "web-b", "gz": "gz2"}}
    assert [(tag, fired["detail"]) for tag, fired in runner.fired] == [("ucarp/web/alert/all-unhealthy", "b")]
    state = saved(runner)
    assert state["health"]["web-b"] == {"gz": "gz2", "state": "healthy", "action": "eligible", "detail": "c2",
                                        "epoch": "", "seq": 4, "ts": 2004}  # fmt: skip
    assert state["alert"] is None  # the event's own record (healthy) cleared it
    assert state["cursors"][f"{ZONE_B}/web/health"]["seq"] == 4


def test_a_health_record_its_hypervisor_did_not_record_changes_nothing(runner):
    assert "gz2 has no record 1 of web-b" in runner.health(*health_event(action="kept-vip", forged=True))["rejected"]
    assert [tag for tag, _ in runner.fired] == ["ucarp/web/alert/rejected"]  # not all-unhealthy
    assert acks(runner) == []
    assert saved(runner).get("health", {}) == {} and saved(runner)["cursors"] == {}


# The runner: one convergence for a backlog -------------------------------------


def test_transitions_while_a_convergence_is_queued_are_recorded_and_left_to_it(runner):
    queued = runner._Flock("web", ".queue")
    assert queued.acquire(wait=False)  # another reaction waits to converge the cluster
    try:
        assert runner.transition(*event(seq=1, ack=f"{ZONE_B}/web")) == []
        assert runner.transition(*event(sender="gz1", zone="web-a", zone_uuid=ZONE_A, role="backup", seq=1,
                                        ack=f"{ZONE_A}/web")) == []  # fmt: skip
    finally:
        queued.release()
    assert runner.local.calls == [] and runner.fired == []  # no round, no acknowledgement yet
    state = saved(runner)
    assert state["cursors"] == {} and state["last"] is None  # claimed, not yet confirmed
    assert [(p["zone"], p["seq"]) for p in state["pending"]] == [("web-b", 1), ("web-a", 1)]
    # The queued convergence (here: the next event's) covers all three, once.
    (result,) = runner.transition(*event(seq=2, ack=f"{ZONE_B}/web"))
    assert result["complete"] == {"zone": "web-b", "gz": "gz2"}
    ((tag, fired),) = runner.fired
    assert [(t["zone"], t["seq"]) for t in fired["transitions"]] == [("web-b", 1), ("web-a", 1), ("web-b", 2)]
    assert fired["transition"]["seq"] == 2
    assert publishes(runner) == ["ucarp.holders", "ucarp.run_actions"]
    assert acks(runner) == [("gz1", f"{ZONE_A}/web/transition", 1, ""), ("gz2", f"{ZONE_B}/web/transition", 2, "")]
    state = saved(runner)
    assert state["pending"] == [] and state["ready"] == [] and state["last"]["zone"] == "web-b"


def test_a_backlog_of_concurrent_reactions_converges_once_more_not_once_each(runner):
    """Reactions run in the reactor's threads: while one converges, the next
    queues, and the ones after it return at once, their transitions recorded."""
    import threading

    inside, release = threading.Event(), threading.Event()
    answer = runner.local.cmd
    rounds = []

    def slow_first_round(tgt, fun, *args, **kwargs):
        if fun == "ucarp.holders":
            rounds.append(fun)
            if len(rounds) == 1:
                inside.set()
                assert release.wait(10)
        return answer(tgt, fun, *args, **kwargs)

    runner.local.cmd = slow_first_round
    results = {}

    def react(seq, **changes):
        results[seq] = runner.transition(*event(seq=seq, **changes))

    first = threading.Thread(target=react, args=(1,))
    first.start()
    assert inside.wait(10)  # the first convergence is asking who holds the VIP
    second = threading.Thread(target=react, args=(2,))
    queued, converging = threading.Event(), runner._converging

    def watched(name):
        if threading.current_thread() is second:
            queued.set()  # it holds the queue and waits for the first convergence to end
        return converging(name)

    runner._converging = watched
    second.start()
    assert queued.wait(10)
    for seq in (3, 4, 5):  # in order, as the beacon sends them
        thread = threading.Thread(target=react, args=(seq,))
        thread.start()
        thread.join(10)
        assert not thread.is_alive()  # returned while the first still converges
    assert [results[seq] for seq in (3, 4, 5)] == [[], [], []]
    release.set()
    first.join(10)
    second.join(10)
    # One convergence for five transitions: its holders round found all five in the zone's record
    # (the events for 2 to 5 came while it waited), and the queued one had nothing left to do.
    assert len(rounds) == 1
    assert [[t["seq"] for t in fired["transitions"]] for _tag, fired in runner.fired] == [[1, 2, 3, 4, 5]]
    assert saved(runner)["cursors"] == {f"{ZONE_B}/web/transition": {"epoch": "", "seq": 5, "passed": []}}
    assert saved(runner)["pending"] == []


def test_a_convergence_cut_short_runs_again_with_the_repeat_of_its_record(runner):
    def broken(cluster, batch, first=None, take=None, known=None):
        raise RuntimeError("the master is stopping")

    real = runner._converge_once
    runner._converge_once = broken
    with pytest.raises(RuntimeError):
        runner.transition(*event(seq=1, ack=f"{ZONE_B}/web"))
    assert acks(runner) == []  # so the beacon sends it again
    assert [p["seq"] for p in saved(runner)["ready"]] == [1]  # confirmed, not yet converged on
    runner._converge_once = real
    assert runner.transition(*event(seq=1, ack=f"{ZONE_B}/web")) == {"duplicate": 1}
    assert [tag for tag, _ in runner.fired] == ["ucarp/web/failover/complete"]  # converged this time
    assert saved(runner)["ready"] == []
    assert runner.transition(*event(seq=1)) == {"duplicate": 1}
    assert len(runner.fired) == 1  # nothing left to converge: a repeat changes nothing


# The runner: the sender's pillar, compiled once per change -------------------------


@pytest.fixture
def compiles(runner, tmp_path, monkeypatch):
    roots = tmp_path / "pillar"
    roots.mkdir()
    (roots / "top.sls").write_text("base:\n  '*':\n    - ucarp\n")
    (roots / "ucarp.sls").write_text("ucarp: {}\n")
    runner.__opts__["pillar_roots"] = {"base": [str(roots)]}
    grains = {"gz1": {"os": "SmartOS"}, "gz2": {"os": "SmartOS"}}
    monkeypatch.setattr(runner.salt.utils.minions, "get_minion_data", lambda m, opts: (m, grains.get(m), None))
    count = []
    runner.__salt__["pillar.show_pillar"] = lambda minion: count.append(minion) or json.loads(json.dumps(PILLAR))
    return {"count": count, "roots": roots, "grains": grains}


def test_the_pillar_is_compiled_once_until_it_may_have_changed(runner, compiles):
    for seq in (1, 2, 3):
        runner.transition(*event(seq=seq))
    assert compiles["count"] == ["gz2"]
    runner._MODELS.clear()  # the reactor's next loader: the cache on disk is still good
    runner.transition(*event(seq=4))
    assert compiles["count"] == ["gz2"]
    models = compiles["roots"].parent / "ucarp" / "models"  # the master's cache (localfs) bank
    assert "s3cret" not in "".join(p.read_bytes().decode("latin-1") for p in models.iterdir())


@pytest.mark.parametrize(
    "change",
    [
        lambda c: (c["roots"] / "ucarp.sls").write_text("ucarp: {clusters: {}}\n"),  # an SLS edited
        lambda c: (c["roots"] / "new.sls").write_text("x: 1\n"),  # a file added
        lambda c: (c["roots"] / "ucarp.sls").unlink(),  # a file gone
        lambda c: c["grains"]["gz2"].update(role="db"),  # grains the top file may match on
    ],
    ids=["edited", "added", "removed", "grains"],
)
def test_a_pillar_change_is_seen_by_the_next_event(runner, compiles, change):
    runner.transition(*event(seq=1))
    change(compiles)
    runner.transition(*event(seq=2))
    assert compiles["count"] == ["gz2", "gz2"]


def test_a_new_cluster_in_pillar_is_accepted_without_a_restart(runner, compiles):
    tag, data = event(seq=1, cluster="db", vip="192.0.2.110", vhid=102)
    tag = "ucarp/db/master"
    assert runner.transition(tag, data) == {"rejected": "no cluster db in the pillar of gz2"}
    grown = json.loads(json.dumps(PILLAR))
    grown["ucarp"]["clusters"]["db"] = dict(grown["ucarp"]["clusters"]["web"], vip="192.0.2.110", vhid=102)
    runner.__salt__["pillar.show_pillar"] = lambda minion: grown
    (compiles["roots"] / "ucarp.sls").write_text("ucarp: {clusters: {db: {}}}\n")
    (result,) = runner.transition(tag, data)
    assert result["complete"] == {"zone": "web-b", "gz": "gz2"}


def test_with_an_external_pillar_the_cache_lasts_a_while_only(runner, compiles, monkeypatch):
    runner.__opts__["ext_pillar"] = [{"git": "main https://example.invalid/pillar.git"}]
    runner.transition(*event(seq=1))
    runner.transition(*event(seq=2))
    assert compiles["count"] == ["gz2"]
    later = runner.time.time() + runner.EXT_PILLAR_TTL + 1
    monkeypatch.setattr(runner.time, "time", lambda: later)
    runner.transition(*event(seq=3))
    assert compiles["count"] == ["gz2", "gz2"]


# The runner: one error path ---------------------------------------------------------


@pytest.mark.parametrize(
    ("reply", "reason"),
    [
        ({"ret": "ERROR: zlogin: zone web-b: no such zone", "retcode": 1}, "ERROR: zlogin: zone web-b: no such zone"),
        ({"ret": {"result": False}, "retcode": 0, "success": False}, "{'result': False}"),
        ({"ret": "'ucarp.transitions' is not available.", "retcode": 254}, "'ucarp.transitions' is not available."),
        (None, "gz2 did not answer"),
    ],
)
def test_call_raises_a_typed_error_from_the_structured_return(runner, reply, reason):
    runner.local.cmd = lambda tgt, fun, *a, **k: {} if reply is None else {"gz2": dict(reply)}
    with pytest.raises(runner._CallError) as err:
        runner._call("gz2", "ucarp.transitions", "web-b", "web")
    assert str(err.value) == reason and (err.value.minion, err.value.fun) == ("gz2", "ucarp.transitions")


def test_a_return_that_merely_says_error_is_not_an_error(runner):
    runner.local.cmd = lambda tgt, fun, *a, **k: {"gz2": {"ret": "ERROR is what the command printed", "retcode": 0}}
    assert runner._call("gz2", "zlogin.run_stdout", "web-b", "cat /tmp/x") == "ERROR is what the command printed"


# The runner: history ----------------------------------------------------------------


def test_the_history_keeps_the_newest_entries_up_to_its_size(runner, monkeypatch):
    runner.__opts__["ucarp"] = {"history_size": 5}
    for seq in range(1, 9):
        runner.transition(*event(seq=seq, role="master" if seq % 2 else "backup"))
    entries = runner._entries()
    assert len(entries) == 5
    assert [e["at"] for e in entries] == sorted(e["at"] for e in entries)
    assert entries[-1]["kind"] == "reaction" and entries[-2]["record"]["seq"] == 8
    assert sorted(os.listdir(os.path.join(runner.__opts__["cachedir"], "ucarp", "history")))[:-1] == [
        f"{n:012d}.p" for n in range(12, 17)
    ]  # the oldest files are gone, not only hidden


def test_history_filters_and_lists_as_a_table_or_as_entries(runner, monkeypatch):
    runner.transition(*event(seq=1))
    runner.transition(*event(seq=2, vhid=7))  # rejected: an alert
    runner.__opts__["output"] = "json"
    entries = runner.history()
    assert [e["kind"] for e in entries] == ["transition", "reaction", "alert"]
    assert runner.history(limit=1) == entries[-1:]
    assert runner.history("db") == []
    assert runner.history(since=entries[1]["at"]) == entries[2:]
    assert runner.history(since="1h") == entries  # the fixture's clock: every entry is within the hour
    runner.__opts__["output"] = None
    table = runner.history().splitlines()
    assert table[0].split() == ["time", "(UTC)", "cluster", "kind", "what"]
    assert "web-b on gz2 became master (record 1)" in table[1]
    assert "web-b on gz2 holds the VIP; actions: 2 ok in " in table[2]
    assert "rejected: the VIP or VHID does not match pillar" in table[3]


@pytest.mark.parametrize(
    ("args", "why"),
    [({"since": "yesterday"}, "since='yesterday'"), ({"limit": -1}, "limit=-1"), ({"name": "../x"}, "'../x'")],
)
def test_history_refuses_bad_arguments(runner, args, why):
    found = runner.history(**args)
    assert found["result"] is False and why in found["comment"] and found["retcode"] == 1
    assert runner.__context__["retcode"] == 1


def test_history_says_what_a_switchover_and_a_rollout_did(runner):
    runner._fire("ucarp/web/switchover/complete", {"from": "web-a", "to": "web-b", "timings": {}})
    runner._fire("ucarp/web/rollout/failed", {"master": "web-a", "reason": "web-b did not answer"})
    runner.__opts__["output"] = None
    table = runner.history().splitlines()
    assert table[1].endswith("switchover  switchover/complete: web-a -> web-b")
    assert table[2].endswith("rollout     rollout/failed: web-a kept the VIP (web-b did not answer)")
