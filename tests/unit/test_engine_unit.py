"""Unit tests of the engine (_engines/ucarp.py) and what the beacon shares with it."""

import fcntl
import json
import logging
import os

import pytest
from support import load_salt_module

UTIL = load_salt_module("_utils", "ucarp_model")
UTILS = {f"ucarp_model.{name}": getattr(UTIL, name) for name in dir(UTIL) if callable(getattr(UTIL, name))}
ZONE_A = "5c1b5a8e-0c55-4b2c-8b3a-2d7d0e6d0f7e"
RECORDS = "/var/db/ucarp/web.transitions"
NODE = {"zone": "web-a", "cluster": "web", "vip": "192.0.2.100", "vhid": 101, "records": {"transition": RECORDS}}


def quiet(module, name):
    module.log = logging.getLogger(name)  # not through Salt's log handlers
    module.log.propagate = False


@pytest.fixture
def root(tmp_path):
    path = tmp_path / "zones" / ZONE_A / "root"
    (path / "var" / "db" / "ucarp").mkdir(parents=True)
    return path


def write_records(root, *lines):
    (root / RECORDS.lstrip("/")).write_text("".join(f"{line}\n" for line in lines))


@pytest.fixture
def beacon(tmp_path, root):
    module = load_salt_module("_beacons", "ucarp", opts={"id": "gz1", "cachedir": str(tmp_path / "cache")})
    module.__utils__ = dict(module.__utils__, **UTILS)
    quiet(module, "ucarp-beacon-unit")
    module._ZONES.update(at=0.0, by_alias={})
    module._WAITING.clear()
    module._WATCH.clear()
    module.__salt__ = {
        "ucarp.watch_list": lambda: [dict(NODE)],
        "ucarp.acks": dict,
        "vmadm.list": lambda **kw: [{"uuid": ZONE_A, "alias": "web-a", "zonepath": str(root.parent)}],
    }
    module.sent = []

    def send(tag, data):
        module.sent.append((tag, data["seq"], data["via"]))
        return True

    module._send = send
    return module


@pytest.fixture
def engine():
    module = load_salt_module("_engines", "ucarp")
    quiet(module, "ucarp-engine-unit")
    return module


def watcher(engine, beacon):
    """The engine's watcher with the beacon's own functions, as its loader gives them."""
    return engine.Watcher(lambda now: (beacon.watch_path(), beacon.deliver))


# What the beacon leaves for the engine ----------------------------------------------


def test_the_beacon_writes_what_it_watches_for_the_engine_readable_by_root_only(beacon, root):
    write_records(root, "1 10 backup web 192.0.2.100 101 net0")
    beacon.beacon([{"interval": 1}])
    with open(beacon.watch_path(), encoding="utf-8") as fh:
        nodes = json.load(fh)["nodes"]
    assert nodes == [dict(NODE, uuid=ZONE_A, root=str(root))]
    assert oct(os.stat(beacon.watch_path()).st_mode & 0o777) == "0o600"
    before = os.stat(beacon.watch_path()).st_mtime_ns, os.stat(beacon.watch_path()).st_ino
    beacon.beacon([{"interval": 1}])
    after = os.stat(beacon.watch_path()).st_mtime_ns, os.stat(beacon.watch_path()).st_ino
    assert after == before  # not rewritten when nothing changed


def test_deliver_sends_only_what_is_new_and_says_it_came_from_the_engine(beacon, root):
    write_records(root, "1 10 backup web 192.0.2.100 101 net0")
    beacon.beacon([{"interval": 1}])
    write_records(root, "1 10 backup web 192.0.2.100 101 net0", "2 20 master web 192.0.2.100 101 net0")
    node = dict(NODE, uuid=ZONE_A, root=str(root))
    assert beacon.deliver([node]) is True
    assert beacon.deliver([node]) is True  # nothing new: nothing sent
    assert beacon.sent == [("ucarp/web/backup", 1, "beacon"), ("ucarp/web/master", 2, "engine")]
    beacon.beacon([{"interval": 1}])
    assert len(beacon.sent) == 2  # the beacon does not send it again


def test_while_one_delivers_the_other_sends_nothing(beacon, root):
    write_records(root, "1 10 backup web 192.0.2.100 101 net0")
    node = dict(NODE, uuid=ZONE_A, root=str(root))
    os.makedirs(os.path.dirname(beacon.watch_path()), exist_ok=True)
    fd = os.open(os.path.join(os.path.dirname(beacon.watch_path()), "beacon-cursors.lock"), os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)  # as another process delivering would hold it
    try:
        assert beacon.beacon([{"interval": 1}]) == []
        assert beacon.deliver([node]) is None
        assert beacon.sent == []
    finally:
        os.close(fd)
    assert beacon.deliver([node]) is True
    assert beacon.sent == [("ucarp/web/backup", 1, "engine")]


def test_deliver_says_when_the_master_did_not_take_a_record(beacon, root):
    write_records(root, "1 10 backup web 192.0.2.100 101 net0", "2 20 master web 192.0.2.100 101 net0")
    beacon._send = lambda tag, data: False
    assert beacon.deliver([dict(NODE, uuid=ZONE_A, root=str(root))]) is False
    assert not os.path.exists(beacon._cursor_path())  # nothing taken: the cursor did not move


def test_a_process_forked_before_the_minion_connected_resolves_the_master_once(beacon, monkeypatch):
    calls = []

    def resolve(opts, fallback=True):
        calls.append((opts["master"], fallback))
        return {"master_ip": "192.0.2.1", "master_uri": "tcp://192.0.2.1:4506"}

    monkeypatch.setattr(beacon.salt.minion, "resolve_dns", resolve)
    beacon.__opts__ = dict(beacon.__opts__, master=["m1", "m2"], master_port=4506)
    beacon._MASTER.clear()
    assert beacon._channel_opts()["master_uri"] == "tcp://192.0.2.1:4506"
    assert beacon._channel_opts()["id"] == "gz1"
    assert calls == [("m1", False)]
    beacon.__opts__["master_uri"] = "tcp://192.0.2.2:4506"  # the minion's own, once connected
    assert beacon._channel_opts() is beacon.__opts__


# The engine ------------------------------------------------------------------------


def test_the_engine_delivers_a_record_as_soon_as_its_file_changes(engine, beacon, root):
    write_records(root, "1 10 backup web 192.0.2.100 101 net0")
    beacon.beacon([{"interval": 1}])  # sends record 1, writes the list
    watch = watcher(engine, beacon)
    assert [n["zone"] for n, _ in watch.look(1.0)] == ["web-a"]  # the first look reads every file once
    assert watch.look(1.1) == []  # nothing changed: nothing read
    write_records(root, "1 10 backup web 192.0.2.100 101 net0", "2 20 master web 192.0.2.100 101 net0")
    assert [n["zone"] for n, _ in watch.look(1.2)] == ["web-a"]
    assert watch.look(1.3) == []
    assert beacon.sent == [("ucarp/web/backup", 1, "beacon"), ("ucarp/web/master", 2, "engine")]


def test_the_engine_waits_before_trying_again_when_the_master_did_not_take_a_record(engine, beacon, root):
    beacon.beacon([{"interval": 1}])
    write_records(root, "1 10 backup web 192.0.2.100 101 net0")
    taken = []
    beacon._send = lambda tag, data: bool(taken)
    watch = watcher(engine, beacon)
    assert watch.look(10.0)  # not taken
    assert watch.retry_at == 10.0 + engine.RETRY_WAIT
    assert watch.look(10.5) == []  # too soon to try again
    taken.append(True)
    assert watch.look(11.0)  # taken now
    assert watch.look(11.1) == []


def test_the_engine_leaves_the_turn_to_the_beacon_delivering_and_looks_again(engine, beacon, root):
    beacon.beacon([{"interval": 1}])
    write_records(root, "1 10 backup web 192.0.2.100 101 net0")
    watch = watcher(engine, beacon)
    lock = os.open(os.path.join(os.path.dirname(beacon.watch_path()), "beacon-cursors.lock"), os.O_RDWR)
    fcntl.flock(lock, fcntl.LOCK_EX)
    try:
        assert watch.look(1.0)  # changed, but the beacon is delivering
    finally:
        os.close(lock)
    assert watch.retry_at == 0.0  # no wait: the next look tries again
    assert watch.look(1.1)
    assert beacon.sent == [("ucarp/web/backup", 1, "engine")]


def test_the_engine_waits_for_the_beacon_to_be_synced(engine):
    watch = engine.Watcher(lambda now: None)
    assert watch.look(3.0) == []
    assert watch.retry_at == 3.0 + engine.LOADER_WAIT


def test_the_engine_follows_the_beacons_list_and_ignores_a_malformed_one(engine, beacon, root):
    watch = watcher(engine, beacon)
    assert watch.look(1.0) == []  # no list yet
    os.makedirs(os.path.dirname(beacon.watch_path()), exist_ok=True)
    with open(beacon.watch_path(), "w", encoding="utf-8") as fh:
        fh.write("{not json")
    assert watch.look(1.1) == []
    with open(beacon.watch_path(), "w", encoding="utf-8") as fh:
        bad = [{"zone": 1}, dict(NODE, uuid=ZONE_A, root=str(root), vhid="101")]
        json.dump({"nodes": [*bad, dict(NODE, uuid=ZONE_A, root=str(root))]}, fh)
    write_records(root, "1 10 backup web 192.0.2.100 101 net0")
    assert [n["zone"] for n, _ in watch.look(1.2)] == ["web-a"]  # the well-formed entry only
    assert beacon.sent == [("ucarp/web/backup", 1, "engine")]


def test_a_planted_link_changes_nothing_the_engine_sends(engine, beacon, root, tmp_path):
    beacon.beacon([{"interval": 1}])
    secret = tmp_path / "gz-file"
    secret.write_text("1 10 master web 192.0.2.100 101 net0\n")
    (root / RECORDS.lstrip("/")).symlink_to(secret)
    watch = watcher(engine, beacon)
    assert watch.look(1.0)  # it changed: the beacon's reader looks, and refuses the link
    assert beacon.sent == []


@pytest.mark.parametrize(
    ("value", "problem"),
    [("fast", "a number of seconds"), (0, "between 0.02 and 5.0"), (60, "between 0.02 and 5.0")],
)
def test_a_bad_interval_is_refused_with_the_reason(engine, value, problem):
    with pytest.raises(ValueError, match=f"interval must be {problem}"):
        engine._interval(value)
    assert engine._interval("0.25") == 0.25
