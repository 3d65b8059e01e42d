"""Unit tests of the beacon (_beacons/ucarp.py) and the runner (_runners/ucarp.py)."""

import json
import logging
import os

import pytest
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
                "path": "/var/db/ucarp/web.transitions",
            }
        ],
        "ucarp.parse_transitions": UTIL.parse_transitions,
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
    beacon.acked = {f"{ZONE_A}/web": 2}
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
    assert f"record 1 of {ZONE_A}/web (cluster web, zone web-a)" in warnings[0]
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
    assert beacon._WAITING[f"{ZONE_A}/web"]["tries"] == 0
    setup_beacon(beacon, tmp_path, text, sent)
    beacon.beacon([{"interval": 1}])
    assert sent == [("ucarp/web/master", 1)] * 2
    assert beacon._WAITING[f"{ZONE_A}/web"]["tries"] == 1


def test_every_record_names_its_cursor_for_the_acknowledgement(beacon, tmp_path):
    sent = []
    setup_health_beacon(beacon, tmp_path, sent)
    beacon.beacon([{"interval": 1}])
    assert {(tag.split("/")[2] == "health", data["ack"]) for tag, data in sent} == {
        (False, f"{ZONE_A}/web"),
        (True, f"{ZONE_A}/web/health"),
    }


def test_beacon_survives_a_bad_pillar(beacon):
    def broken():
        raise RuntimeError("ucarp: the pillar has 1 problem(s)")

    beacon.__salt__ = {"ucarp.watch_list": broken}
    assert beacon.beacon([{"interval": 1}]) == []
    assert beacon.validate([{"interval": 1}])[0] is True
    assert beacon.validate({"interval": 1})[0] is False


# The runner ---------------------------------------------------------------------


ROUNDS = ("ucarp.holders", "ucarp.run_actions")  # sent to every hypervisor of the cluster at once


class FakeLocal:
    def __init__(self, holders):
        self.holders = holders
        self.calls = []

    def cmd(self, tgt, fun, arg=(), kwarg=None, timeout=None, full_return=False, tgt_type="glob"):
        """LocalClient.cmd with full returns, over a list of hypervisors."""
        self.calls.append((tgt[0] if len(tgt) == 1 and fun not in ROUNDS else tgt, fun, list(arg), kwarg))
        if fun == "ucarp.holders":
            nodes = PILLAR["ucarp"]["clusters"]["web"]["nodes"]
            return {h: {"ret": {z: z in self.holders for z, n in nodes.items() if n["host"] == h}} for h in tgt}
        if fun == "ucarp.run_actions":  # what the minion function returns for its own entries
            return {
                h: {"ret": [dict(a, zone=w["zone"], role=w["role"], ok=True, detail=True)
                            for w in kwarg["work"] if w["host"] == h for a in w["actions"]], "retcode": 0}
                for h in tgt
            }  # fmt: skip
        if fun == "vmadm.state":
            ret = "running"
        elif fun == "ucarp.transitions":
            ret = [{"seq": 2, "ts": 20, "role": "backup", "vhid": 101, "interface": "net0"}]
        else:
            ret = True
        return {host: {"ret": ret, "retcode": 0} for host in tgt}

    def cmd_async(self, tgt, fun, arg=(), tgt_type="glob"):
        self.calls.append((tgt, fun, list(arg), tgt_type))
        return "20261126000000000000"


@pytest.fixture
def runner(tmp_path, monkeypatch):
    module = load_salt_module(
        "_runners", "ucarp", opts={"cachedir": str(tmp_path), "sock_dir": str(tmp_path), "conf_file": ""}
    )
    module.__utils__ = UTILS
    module.__salt__ = {"pillar.show_pillar": lambda minion: PILLAR}
    module.log = logging.getLogger("ucarp-runner-unit")  # quiet: not through Salt's log handlers
    module.log.propagate = False
    module.fired = []
    module._fire = lambda tag, data: module.fired.append((tag, data))
    module.local = FakeLocal(holders={"web-b"})
    module._local = lambda: module.local
    clock = {"now": 1000.0}
    monkeypatch.setattr(module.time, "time", lambda: clock.__setitem__("now", clock["now"] + 1) or clock["now"])
    monkeypatch.setattr(module.time, "sleep", lambda s: None)
    return module


def event(sender="gz2", zone="web-b", role="master", seq=1, **changes):
    payload = {"cluster": "web", "zone": zone, "zone_uuid": ZONE_B, "role": role, "seq": seq, "ts": 1000,
               "vip": "192.0.2.100", "vhid": 101, "gz": sender}  # fmt: skip
    payload.update(changes)
    return f"ucarp/web/{role}", {"id": sender, "tag": f"ucarp/web/{role}", "data": payload}


def publishes(runner):
    return [c[1] for c in runner.local.calls]


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


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"sender": "gz1"}, "zone web-b of cluster web is hosted by gz2, not gz1"),
        ({"zone": "web-z"}, "zone 'web-z' is not a node of cluster web in pillar"),
        ({"vip": "192.0.2.99"}, "the VIP or VHID does not match pillar"),
        ({"seq": "1; reboot"}, "malformed sequence number or time"),
        ({"zone_uuid": "../../etc"}, "malformed zone UUID"),
        ({"cluster": "web; rm -rf /"}, "malformed cluster or role"),
    ],
)
def test_events_not_matching_pillar_are_rejected(runner, changes, reason):
    sender = changes.pop("sender", "gz2")
    tag, data = event(sender=sender, **changes)
    assert runner.transition(tag, data) == {"rejected": reason}
    assert runner.local.calls == []
    ((alert, fired),) = runner.fired
    assert alert in ("ucarp/web/alert/rejected", "ucarp/unknown/alert/rejected")
    assert fired["reason"] == reason and fired["sender"] == sender


def test_a_tag_that_does_not_match_the_data_is_rejected(runner):
    _tag, data = event()
    assert runner.transition("ucarp/db/master", data) == {
        "rejected": "the tag 'ucarp/db/master' does not match the data"
    }


def test_repeats_are_ignored_and_gaps_filled_in_one_convergence(runner):
    runner.transition(*event(seq=1))
    assert runner.transition(*event(seq=1)) == {"duplicate": 1}
    runner.fired.clear()
    runner.local.calls.clear()
    results = runner.transition(*event(seq=3))
    gap = [c for c in runner.local.calls if c[1] == "ucarp.transitions"]
    assert gap == [("gz2", "ucarp.transitions", ["web-b", "web"], {"since": 1})]
    assert [r.get("complete", {}).get("zone") for r in results] == ["web-b"]  # the gap and the event: converged once
    ((_tag, fired),) = runner.fired
    assert fired["transition"]["seq"] == 3
    assert [t["seq"] for t in fired["transitions"]] == [2, 3]
    assert publishes(runner) == ["ucarp.transitions", "ucarp.holders", "ucarp.run_actions"]
    state = saved(runner)
    assert state["cursors"] == {f"gz2/web-b/{ZONE_B}": 3}
    assert state["last"]["seq"] == 3 and state["pending"] == []
    assert runner.transition(*event(seq=2)) == {"duplicate": 2}


def acks(runner):
    return [c for c in runner.local.calls if c[1] == "ucarp.ack"]


def test_handled_repeated_and_rejected_records_are_acknowledged_to_their_sender(runner):
    key = f"{ZONE_B}/web"
    runner.transition(*event(seq=1, ack=key))
    runner.transition(*event(seq=1, ack=key))  # a repeat: the first acknowledgement was lost
    runner.transition(*event(seq=2, ack=key, vhid=7))  # rejected: sending it again would not help
    assert acks(runner) == [(["gz2"], "ucarp.ack", [key, n], "list") for n in (1, 1, 2)]
    assert runner.fired[-1][0] == "ucarp/web/alert/rejected"


def test_a_health_record_is_acknowledged_with_its_own_cursor(runner):
    runner.health(*health_event(ack=f"{ZONE_B}/web/health"))
    assert acks(runner) == [(["gz2"], "ucarp.ack", [f"{ZONE_B}/web/health", 1], "list")]


def test_a_record_whose_handling_failed_is_not_acknowledged(runner):
    def broken(*args):
        raise RuntimeError("the cache is full")

    runner._save = broken
    with pytest.raises(RuntimeError):
        runner.transition(*event(seq=1, ack=f"{ZONE_B}/web"))
    assert acks(runner) == []  # so the beacon sends it again


@pytest.mark.parametrize("ack", [None, "../../etc/passwd", f"{ZONE_B}/web/other", 12])
def test_only_a_well_formed_cursor_is_acknowledged(runner, ack):
    runner.transition(*event(seq=1, ack=ack))
    assert acks(runner) == []


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


def test_a_hypervisor_that_never_answers_is_named_in_the_alert(runner):
    answer = runner.local.cmd

    def gz2_silent(tgt, fun, *args, **kwargs):
        reply = answer(tgt, fun, *args, **kwargs)
        if "gz2" in reply:
            reply["gz2"] = dict(NO_RESPONSE)
        return reply

    runner.local.cmd = gz2_silent
    (result,) = runner.transition(*event())
    assert result == {"alert": "no-master", "holders": [], "silent": ["gz2"]}
    tag, data = runner.fired[-1]
    assert tag == "ucarp/web/alert/no-master" and data["silent"] == ["gz2"]


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
    node = {"zone": "web-a", "cluster": "web", "vip": "192.0.2.100", "vhid": 101,
            "path": "/var/db/ucarp/web.transitions", "health_path": health_path}  # fmt: skip
    beacon.__salt__ = {
        "ucarp.watch_list": lambda: [dict(node)],
        "ucarp.parse_transitions": UTIL.parse_transitions,
        "ucarp.parse_health": UTIL.parse_health,
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
        "seq": 1,
        "ts": 100,
        "ack": f"{ZONE_A}/web/health",
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
        assert json.load(fh) == {f"{ZONE_A}/web": 2, f"{ZONE_A}/web/health": 2}


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

    def no_health(text, cluster):
        raise AssertionError("parse_health called for a node without health checks")

    beacon.__salt__["ucarp.parse_health"] = no_health
    beacon.beacon([{"interval": 1}])
    assert paths == ["/var/db/ucarp/web.transitions"]
    assert tags(sent) == [("ucarp/web/backup", 1), ("ucarp/web/master", 2)]  # transitions as before


# The runner: health events ------------------------------------------------------


def health_event(sender="gz2", zone="web-b", state="sick", action="stepped-down", seq=1, detail="tcp 192.0.2.12:80",
                 **changes):  # fmt: skip
    payload = {"cluster": "web", "zone": zone, "zone_uuid": ZONE_B if zone == "web-b" else ZONE_A, "state": state,
               "action": action, "detail": detail, "seq": seq, "ts": 2000 + seq, "vip": "192.0.2.100", "vhid": 101,
               "gz": sender}  # fmt: skip
    payload.update(changes)
    tag = f"ucarp/web/health/{payload['state']}"
    return tag, {"id": sender, "tag": tag, "data": payload}


def saved(runner):
    with open(os.path.join(runner.__opts__["cachedir"], "ucarp", "web.json"), encoding="utf-8") as fh:
        return json.load(fh)


@pytest.mark.parametrize(
    ("state", "action"), [("sick", "stepped-down"), ("sick", "ineligible"), ("healthy", "eligible")]
)
def test_a_health_record_is_recorded(runner, state, action):
    (result,) = runner.health(*health_event(state=state, action=action))
    node = {"gz": "gz2", "state": state, "action": action, "detail": "tcp 192.0.2.12:80", "seq": 1, "ts": 2001}
    assert result == {"health": dict(node, zone="web-b")}
    state_saved = saved(runner)
    assert state_saved["health"] == {"web-b": node}
    assert state_saved["cursors"] == {f"gz2/web-b/{ZONE_B}/health": 1}
    assert state_saved["alert"] is None
    assert runner.fired == [] and runner.local.calls == []  # nothing to do in the fleet


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
        ({"state": "dying"}, "malformed cluster or health state"),
        ({"action": "reboot"}, "malformed cluster or health state"),
        ({"vhid": 102}, "the VIP or VHID does not match pillar"),
    ],
)
def test_health_events_not_matching_pillar_are_rejected(runner, changes, reason):
    sender = changes.pop("sender", "gz2")
    assert runner.health(*health_event(sender=sender, **{"action": "kept-vip", **changes})) == {"rejected": reason}
    ((alert, fired),) = runner.fired
    assert alert == "ucarp/web/alert/rejected"
    assert fired["reason"] == reason and fired["sender"] == sender
    assert not os.path.exists(os.path.join(runner.__opts__["cachedir"], "ucarp", "web.json"))  # nothing recorded


def test_a_health_tag_that_does_not_match_the_data_is_rejected(runner):
    _tag, data = health_event(state="sick")
    assert runner.health("ucarp/web/health/healthy", data) == {
        "rejected": "the tag 'ucarp/web/health/healthy' does not match the data"
    }
    # a transition is not a health record
    assert runner.health(*event()) == {"rejected": "malformed cluster or health state"}


def test_health_repeats_are_ignored_with_a_cursor_of_their_own(runner):
    runner.transition(*event(seq=5))
    runner.local.calls.clear()
    runner.fired.clear()
    (result,) = runner.health(*health_event(seq=1))  # not a repeat of transition 1..5
    assert result["health"]["seq"] == 1
    assert runner.health(*health_event(seq=1)) == {"duplicate": 1}
    runner.health(*health_event(seq=2, state="healthy", action="eligible"))
    assert runner.health(*health_event(seq=1, action="kept-vip")) == {"duplicate": 1}
    assert runner.fired == [] and runner.local.calls == []
    assert saved(runner)["health"]["web-b"]["state"] == "healthy"


def test_a_health_gap_is_filled_from_the_zone_in_order(runner):
    records = [  # what ucarp.health_records finds in the zone, the seq-4 event's own record included
        {"seq": 1, "ts": 2001, "state": "sick", "action": "stepped-down", "detail": "a"},
        {"seq": 2, "ts": 2002, "state": "healthy", "action": "eligible", "detail": None},
        {"seq": 3, "ts": 2003, "state": "sick", "action": "kept-vip", "detail": "b"},
        {"seq": 4, "ts": 2004, "state": "sick", "action": "kept-vip", "detail": "c"},
    ]
    answer = runner.local.cmd

    def with_records(tgt, fun, arg=(), kwarg=None, **kwargs):
        if fun == "ucarp.health_records":
            runner.local.calls.append((tgt[0], fun, list(arg), kwarg))
            return {host: {"ret": records, "retcode": 0} for host in tgt}
        return answer(tgt, fun, arg, kwarg, **kwargs)

    runner.local.cmd = with_records
    runner.health(*health_event(seq=1, detail="a"))
    results = runner.health(*health_event(seq=4, state="healthy", action="eligible", detail="c2"))
    assert runner.local.calls == [("gz2", "ucarp.health_records", ["web-b", "web"], {"since": 1})]
    assert [r.get("health", {}).get("seq") for r in results] == [2, None, 4]
    assert results[1] == {"alert": "all-unhealthy", "holder": {"zone": "web-b", "gz": "gz2"}}
    assert [(tag, fired["detail"]) for tag, fired in runner.fired] == [("ucarp/web/alert/all-unhealthy", "b")]
    state = saved(runner)
    assert state["health"]["web-b"] == {"gz": "gz2", "state": "healthy", "action": "eligible", "detail": "c2",
                                        "seq": 4, "ts": 2004}  # fmt: skip
    assert state["alert"] is None  # the event's own record (healthy) cleared it
    assert state["cursors"][f"gz2/web-b/{ZONE_B}/health"] == 4


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
    assert state["cursors"] == {f"gz2/web-b/{ZONE_B}": 1, f"gz1/web-a/{ZONE_A}": 1}
    assert state["last"]["zone"] == "web-a"
    assert [(p["zone"], p["seq"]) for p in state["pending"]] == [("web-b", 1), ("web-a", 1)]
    # The queued convergence (here: the next event's) covers all three, once.
    (result,) = runner.transition(*event(seq=2, ack=f"{ZONE_B}/web"))
    assert result["complete"] == {"zone": "web-b", "gz": "gz2"}
    ((tag, fired),) = runner.fired
    assert [(t["zone"], t["seq"]) for t in fired["transitions"]] == [("web-b", 1), ("web-a", 1), ("web-b", 2)]
    assert fired["transition"]["seq"] == 2
    assert publishes(runner) == ["ucarp.holders", "ucarp.run_actions", "ucarp.ack", "ucarp.ack"]
    assert acks(runner) == [(["gz1"], "ucarp.ack", [f"{ZONE_A}/web", 1], "list"),
                            (["gz2"], "ucarp.ack", [f"{ZONE_B}/web", 2], "list")]  # fmt: skip
    assert saved(runner)["pending"] == []


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
    assert len(rounds) == 2  # two convergences for five transitions
    assert [[t["seq"] for t in fired["transitions"]] for _tag, fired in runner.fired] == [[1], [2, 3, 4, 5]]
    assert saved(runner)["cursors"] == {f"gz2/web-b/{ZONE_B}": 5}


def test_a_convergence_cut_short_runs_again_with_the_repeat_of_its_record(runner):
    def broken(cluster, batch):
        raise RuntimeError("the master is stopping")

    real = runner._converge_once
    runner._converge_once = broken
    with pytest.raises(RuntimeError):
        runner.transition(*event(seq=1, ack=f"{ZONE_B}/web"))
    assert acks(runner) == []  # so the beacon sends it again
    assert [p["seq"] for p in saved(runner)["pending"]] == [1]
    runner._converge_once = real
    assert runner.transition(*event(seq=1, ack=f"{ZONE_B}/web")) == {"duplicate": 1}
    assert [tag for tag, _ in runner.fired] == ["ucarp/web/failover/complete"]  # converged this time
    assert saved(runner)["pending"] == []
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
    assert "s3cret" not in "".join(p.read_text() for p in (compiles["roots"].parent / "ucarp" / "models").iterdir())


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
    assert runner.transition(tag, data) == {"rejected": "zone 'web-b' is not a node of cluster db in pillar"}
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
