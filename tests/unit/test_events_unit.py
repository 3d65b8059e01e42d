"""Unit tests of the beacon (_beacons/ucarp.py) and the runner (_runners/ucarp.py)."""

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
    module.__utils__ = UTILS
    module.log = logging.getLogger("ucarp-beacon-unit")  # quiet: not through Salt's log handlers
    module.log.propagate = False
    module._ZONES.update(at=0.0, by_alias={})
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


def test_beacon_survives_a_bad_pillar(beacon):
    def broken():
        raise RuntimeError("ucarp: the pillar has 1 problem(s)")

    beacon.__salt__ = {"ucarp.watch_list": broken}
    assert beacon.beacon([{"interval": 1}]) == []
    assert beacon.validate([{"interval": 1}])[0] is True
    assert beacon.validate({"interval": 1})[0] is False


# The runner ---------------------------------------------------------------------


class FakeLocal:
    def __init__(self, holders):
        self.holders = holders
        self.calls = []

    def cmd(self, tgt, fun, arg=(), kwarg=None, timeout=None, full_return=False, tgt_type="glob"):
        """LocalClient.cmd with full returns, over a list of hypervisors."""
        self.calls.append((tgt[0] if len(tgt) == 1 and fun != "ucarp.holders" else tgt, fun, list(arg), kwarg))
        if fun == "ucarp.holders":
            nodes = PILLAR["ucarp"]["clusters"]["web"]["nodes"]
            return {h: {"ret": {z: z in self.holders for z, n in nodes.items() if n["host"] == h}} for h in tgt}
        if fun == "vmadm.state":
            ret = "running"
        elif fun == "ucarp.transitions":
            ret = [{"seq": 2, "ts": 20, "role": "backup", "vhid": 101, "interface": "net0"}]
        else:
            ret = True
        return {host: {"ret": ret, "retcode": 0} for host in tgt}


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


def test_a_failover_runs_the_actions_and_completes(runner):
    tag, data = event()
    (result,) = runner.transition(tag, data)
    assert result["complete"] == {"zone": "web-b", "gz": "gz2"}
    actions = [(c[0], c[1], c[2], c[3]) for c in runner.local.calls if c[1].startswith("zlogin.")]
    assert actions == [
        ("gz2", "zlogin.svc_enable", ["web-b", "svc:/site/app:default"], {"clear": True}),
        ("gz1", "zlogin.svc_disable", ["web-a", "svc:/site/app:default"], None),
    ]
    ((tag, fired),) = runner.fired
    assert tag == "ucarp/web/failover/complete"
    assert fired["master"] == {"zone": "web-b", "gz": "gz2"}
    assert fired["transition"]["seq"] == 1
    assert set(fired["timings"]) == {"transition", "received", "checked", "actions_done"}


def test_actions_follow_the_holder_not_the_event(runner):
    runner.local.holders = {"web-a"}  # web-b's master event arrives after web-a took the VIP back
    (result,) = runner.transition(*event())
    assert result["complete"] == {"zone": "web-a", "gz": "gz1"}
    actions = [(c[0], c[1], c[2][0]) for c in runner.local.calls if c[1].startswith("zlogin.")]
    assert actions == [("gz1", "zlogin.svc_enable", "web-a"), ("gz2", "zlogin.svc_disable", "web-b")]


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


def test_repeats_are_ignored_and_gaps_filled_in_order(runner):
    runner.transition(*event(seq=1))
    assert runner.transition(*event(seq=1)) == {"duplicate": 1}
    runner.fired.clear()
    results = runner.transition(*event(seq=3))
    gap = [c for c in runner.local.calls if c[1] == "ucarp.transitions"]
    assert gap == [("gz2", "ucarp.transitions", ["web-b", "web"], {"since": 1})]
    assert [r.get("complete", {}).get("zone") for r in results] == ["web-b", "web-b"]
    assert [f[1]["transition"]["seq"] for f in runner.fired] == [2, 3]
    assert runner.transition(*event(seq=2)) == {"duplicate": 2}


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


def test_a_hypervisor_that_missed_the_job_is_asked_again(runner):
    answer = runner.local.cmd
    dropped = []

    def first_job_lost(tgt, fun, *args, **kwargs):
        reply = answer(tgt, fun, *args, **kwargs)
        if fun == "ucarp.holders" and "gz2" in reply and not dropped:
            dropped.append(reply.pop("gz2"))  # gz2 has just reconnected to a restarted master
        return reply

    runner.local.cmd = first_job_lost
    (result,) = runner.transition(*event())
    assert dropped and result["complete"] == {"zone": "web-b", "gz": "gz2"}
