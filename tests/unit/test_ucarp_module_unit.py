"""Unit tests of the health and switchover functions of _modules/ucarp.py, with a fake zlogin."""

import json
import time

import pytest
from salt.exceptions import CommandExecutionError
from support import formula_utils, load_salt_module

UTIL = load_salt_module("_utils", "ucarp_model")
UTILS = {f"ucarp_model.{name}": getattr(UTIL, name) for name in dir(UTIL) if callable(getattr(UTIL, name))}
CLUSTERS = {
    "web": {  # with health checks
        "vip": "192.0.2.100",
        "vhid": 101,
        "password": "s3cret",
        "deadratio": 4,
        "nodes": {"web-a": {"host": "gz1", "ip": "192.0.2.11"}, "web-b": {"host": "gz2", "ip": "192.0.2.12"}},
        "health": {"checks": [{"tcp": 80}]},
    },
    "db": {  # without
        "vip": "192.0.2.110",
        "vhid": 102,
        "password": "s3cret",
        "nodes": {"db-a": {"host": "gz1", "ip": "192.0.2.21"}, "db-b": {"host": "gz2", "ip": "192.0.2.22"}},
    },
}
HEALTH = (
    "1 100 sick web ineligible tcp 192.0.2.11:80 refused\n"
    "3 130 healthy web eligible\n"
    "2 120 healthy web eligible\n"
    "4 140 sick db stepped-down\n"  # another cluster
    "garbage\n"
)


class Files(dict):
    """(zone, path) -> text; a record file (under /var/db/ucarp) is also on
    disk under the zone's root, where the module reads it as the beacon does."""

    def __init__(self, roots):
        super().__init__()
        self.roots = roots

    def __setitem__(self, key, text):
        super().__setitem__(key, text)
        zone, path = key
        if path.startswith("/var/db/ucarp/"):
            where = self.roots / zone / "root" / path.lstrip("/")
            where.parent.mkdir(parents=True, exist_ok=True)
            where.write_text(text)


class Zones:
    """The ``zlogin`` functions the module uses, over an in-memory file system per zone."""

    def __init__(self, roots):
        self.roots = roots
        self.files = Files(roots)  # (zone, path) -> text
        self.calls = []

    def vm(self, zone):
        """What ``vmadm.get`` says of a zone: running, its zonepath under the test's roots."""
        return {"alias": zone, "state": "running", "zonepath": str(self.roots / zone)}

    def run(self, zone, cmd, **kwargs):
        self.calls.append(("run", zone, cmd))
        if cmd[0] == "cat" and (zone, cmd[1]) in self.files:
            return {"stdout": self.files[zone, cmd[1]], "stderr": "", "retcode": 0}
        if cmd[0] == "cat":
            return {"stdout": "", "stderr": f"cat: {cmd[1]}: No such file or directory", "retcode": 1}
        if cmd == ["/usr/sbin/ifconfig", "-a"]:
            return {"stdout": "net0:101: flags=1000843 mtu 1500 index 2\n\tinet 192.0.2.100 netmask ffffff00\n",
                    "stderr": "", "retcode": 0}  # fmt: skip
        raise AssertionError(f"unexpected command in {zone}: {cmd}")

    def run_each(self, commands):
        self.calls.append(("run_each", sorted(commands)))
        return {zone: self.run(zone, cmd) for zone, cmd in commands.items()}

    def file_stat(self, zone, path):
        self.calls.append(("file_stat", zone, path))
        return {"type": "file", "mode": "0644", "uid": 0} if (zone, path) in self.files else None

    def file_read(self, zone, path, missing_ok=False):
        self.calls.append(("file_read", zone, path))
        if missing_ok and (zone, path) not in self.files:
            return None
        return self.files[zone, path]

    def file_remove(self, zone, path):
        self.calls.append(("file_remove", zone, path))
        del self.files[zone, path]

    def file_write(self, zone, path, content, mode="0644", user="root", group="root", makedirs=False):
        self.calls.append(("file_write", zone, path, content, mode, makedirs))
        self.files[zone, path] = content

    def svc_refresh(self, zone, fmri):
        self.calls.append(("svc_refresh", zone, fmri))

    def svc_state(self, zone, fmri):
        return "online"


@pytest.fixture
def zones(tmp_path):
    return Zones(tmp_path / "zones")


@pytest.fixture
def ucarp(zones):
    config = {"ucarp:clusters": CLUSTERS, "ucarp:defaults": {}}
    salt = {"config.get": lambda key, default=None: config.get(key, default), "vmadm.state": lambda zone: "running",
            "vmadm.get": zones.vm}  # fmt: skip
    salt.update({f"zlogin.{name}": getattr(zones, name) for name in dir(zones) if not name.startswith("_")})
    module = load_salt_module("_modules", "ucarp", salt=salt, opts={"id": "gz1", "test": False})
    module.__utils__ = formula_utils()
    return module


OVERRIDE = "/var/db/ucarp/web.override"


@pytest.mark.parametrize(
    ("mode", "content"),
    [("preempt", "--preempt\n--advskew=0\n"), ("slow", "--deadratio=14\n"), ("keep-vip", "keep-vip\n--neutral\n")],
)
def test_override_writes_the_file_and_refreshes(ucarp, zones, mode, content):
    before = int(time.time())
    assert ucarp.override("web", "web-a", mode) == {"zone": "web-a", "cluster": "web", "override": mode,
                                                    "refreshed": True}  # fmt: skip
    written = zones.files["web-a", OVERRIDE]
    assert written.startswith(content)
    expires = int(written[len(content) :].removeprefix("expires ").strip())
    assert before + 300 <= expires <= int(time.time()) + 300
    assert zones.calls == [
        ("file_write", "web-a", OVERRIDE, written, "0644", True),
        ("svc_refresh", "web-a", "svc:/network/ucarp:web"),
    ]


def test_override_without_refresh_only_writes(ucarp, zones):
    assert ucarp.override("web", "web-b", "keep-vip", refresh=False, ttl=60)["refreshed"] is False
    written = zones.files["web-b", OVERRIDE]
    assert zones.calls == [("file_write", "web-b", OVERRIDE, written, "0644", True)]
    assert written.startswith("keep-vip\n--neutral\nexpires ")


def test_status_shows_the_override_the_agent_would_use_or_ignores(ucarp, zones):
    zones.files["web-a", OVERRIDE] = "--deadratio=14\nexpires 1000\n"  # long past
    found = {entry["zone"]: entry for entry in ucarp.status()}
    assert found["web-a"]["override"] == {
        "mode": "slow", "expires": 1000, "ignored": "expired: left by an interrupted switchover or rollout"
    }  # fmt: skip
    assert found["db-a"]["override"] is None
    ucarp.override("web", "web-a", "slow", refresh=False)
    assert {e["zone"]: e for e in ucarp.status()}["web-a"]["override"]["ignored"] is None


@pytest.mark.parametrize("refresh", [True, False])
def test_no_override_removes_the_file(ucarp, zones, refresh):
    zones.files["web-a", OVERRIDE] = "--preempt\n--advskew=0\n"
    assert ucarp.override("web", "web-a", None, refresh=refresh)["override"] is None
    assert ("web-a", OVERRIDE) not in zones.files
    expected = [("file_stat", "web-a", OVERRIDE), ("file_remove", "web-a", OVERRIDE)]
    assert zones.calls == expected + ([("svc_refresh", "web-a", "svc:/network/ucarp:web")] if refresh else [])


def test_no_override_removes_nothing_that_is_not_there(ucarp, zones):
    ucarp.override("web", "web-a")
    assert zones.calls == [("file_stat", "web-a", OVERRIDE), ("svc_refresh", "web-a", "svc:/network/ucarp:web")]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("web", "db-a", "preempt"), "ucarp: db-a is not a node of cluster web"),
        (("web", "web-z", None), "ucarp: web-z is not a node of cluster web"),
        (("web", "web-a", "fast"), "ucarp: unknown override 'fast' (known: preempt, slow, keep-vip)"),
        (("mail", "web-a", "preempt"), "ucarp: no cluster 'mail' in pillar"),
    ],
)
def test_override_refuses_a_stranger_or_an_unknown_mode(ucarp, zones, args, message):
    with pytest.raises(CommandExecutionError) as info:
        ucarp.override(*args)
    assert str(info.value) == message
    assert zones.calls == []  # nothing written, removed or refreshed


def test_health_is_none_without_health_checks(ucarp, zones):
    zones.files["db-a", "/var/db/ucarp/db.health"] = HEALTH
    assert ucarp.health("db-a", "db") is None
    assert zones.calls == []  # not even read


def test_health_is_the_last_record(ucarp, zones):
    assert ucarp.health("web-a", "web") is None  # nothing recorded yet
    zones.files["web-a", "/var/db/ucarp/web.health"] = HEALTH
    assert ucarp.health("web-a", "web") == {"epoch": "", "seq": 3, "ts": 130, "state": "healthy",
                                            "action": "eligible", "detail": None}  # fmt: skip


@pytest.mark.parametrize(("since", "seqs"), [(0, [1, 2, 3]), (1, [2, 3]), ("2", [3]), (3, [])])
def test_health_records_after_since(ucarp, zones, since, seqs):
    zones.files["web-a", "/var/db/ucarp/web.health"] = HEALTH
    records = ucarp.health_records("web-a", "web", since=since)
    assert [r["seq"] for r in records] == seqs
    assert zones.calls == []  # read under the zone's root, as the beacon reads it: no zlogin
    if since == 0:
        assert records[0] == {"epoch": "", "seq": 1, "ts": 100, "state": "sick", "action": "ineligible",
                              "detail": "tcp 192.0.2.11:80 refused"}  # fmt: skip


def test_health_records_of_a_zone_without_a_file_are_none(ucarp):
    assert ucarp.health_records("web-b", "web") == []
    with pytest.raises(CommandExecutionError):
        ucarp.health_records("web-a", "mail")


def test_health_records_are_empty_without_health_checks(ucarp, zones):
    zones.files["db-a", "/var/db/ucarp/db.health"] = "1 100 sick db stepped-down\n"
    assert ucarp.health_records("db-a", "db") == []


def test_status_includes_the_health_of_nodes_with_checks(ucarp, zones):
    zones.files["web-a", "/var/db/ucarp/web.health"] = HEALTH
    zones.files["db-a", "/var/db/ucarp/db.health"] = "1 100 sick db stepped-down\n"
    found = {entry["cluster"]: entry for entry in ucarp.status()}
    assert found["web"]["health"]["seq"] == 3 and found["web"]["health"]["state"] == "healthy"
    assert found["db"]["health"] is None
    assert ("file_read", "db-a", "/var/db/ucarp/db.health") not in zones.calls


# The beacon's acknowledgements ----------------------------------------------------


@pytest.fixture
def acking(ucarp, tmp_path):
    ucarp.__opts__["cachedir"] = str(tmp_path / "cache")
    return ucarp


KEY = "2d1b2f5e-0c6a-4a3e-9c1d-6f7e8a9b0c1d/web/transition"
E1, E2 = "1111111111111111", "2222222222222222"


def test_ack_keeps_the_newest_record_per_key(acking):
    assert acking.acks() == {}
    assert acking.ack(KEY, 3) == {"epoch": "", "seq": 3, "passed": []}
    assert acking.ack(KEY, "2")["seq"] == 3  # a late acknowledgement of an earlier record
    assert acking.ack(KEY, 1, epoch=E1) == {"epoch": E1, "seq": 1, "passed": [""]}  # a new epoch
    assert acking.ack(KEY, 9, epoch="") == {"epoch": E1, "seq": 1, "passed": [""]}  # one the records left
    health = KEY.replace("/transition", "/health")
    acking.ack(health, 1, epoch=E2)
    assert acking.acks() == {KEY: {"epoch": E1, "seq": 1, "passed": [""]},
                             health: {"epoch": E2, "seq": 1, "passed": []}}  # fmt: skip


@pytest.mark.parametrize(("key", "seq", "epoch"), [("../../etc/passwd", 1, ""), (KEY, -1, ""), (KEY, 1, "zz")])
def test_ack_refuses_a_bad_key_number_or_epoch(acking, key, seq, epoch):
    with pytest.raises(CommandExecutionError):
        acking.ack(key, seq, epoch=epoch)
    assert acking.acks() == {}


def test_acks_are_readable_by_root_only(acking, tmp_path):
    acking.ack(KEY, 1)
    cache = tmp_path / "cache" / "ucarp"
    assert oct(cache.stat().st_mode & 0o777) == "0o700"
    assert oct((cache / "beacon-acks.json").stat().st_mode & 0o777) == "0o600"


@pytest.mark.parametrize("text", ["not json", "[1, 2]", '{"uuid-a/web": "x"}', json.dumps({KEY: "x"})])
def test_a_damaged_acks_file_reads_as_nothing_acknowledged(acking, tmp_path, text):
    (tmp_path / "cache" / "ucarp").mkdir(parents=True)
    (tmp_path / "cache" / "ucarp" / "beacon-acks.json").write_text(text)
    assert acking.acks() == {}
    assert acking.ack(KEY, 2)["seq"] == 2


def test_acks_from_before_epochs_are_taken_over(acking, tmp_path):
    (tmp_path / "cache" / "ucarp").mkdir(parents=True)
    old = KEY.removesuffix("/transition")
    (tmp_path / "cache" / "ucarp" / "beacon-acks.json").write_text(json.dumps({old: 4, f"{old}/health": 2}))
    assert acking.acks() == {KEY: {"epoch": "", "seq": 4, "passed": []},
                             f"{old}/health": {"epoch": "", "seq": 2, "passed": []}}  # fmt: skip


E3 = "3333333333333333"


def test_records_come_after_the_cursor_in_their_epochs(ucarp, zones):
    path = "/var/db/ucarp/web.transitions"
    zones.files["web-a", path] = "".join(
        f"{seq}@{epoch} {seq} {role} web 192.0.2.100 101 net0\n"
        for seq, epoch, role in [(1, E1, "backup"), (2, E1, "master"), (3, E2, "backup"), (4, E2, "master")]
    )
    ucarp.__salt__["vmadm.uuid"] = lambda zone: "2d1b2f5e-0c6a-4a3e-9c1d-6f7e8a9b0c1d"
    found = ucarp.records("web-a", "web", after={"epoch": E1, "seq": 2})
    assert found["uuid"] == "2d1b2f5e-0c6a-4a3e-9c1d-6f7e8a9b0c1d"
    assert [(r["epoch"], r["seq"]) for r in found["records"]] == [(E2, 3), (E2, 4)]
    assert [r["seq"] for r in ucarp.records("web-a", "web", after=3)["records"]] == [4]  # in the last epoch
    assert [r["seq"] for r in ucarp.records("web-a", "web", limit=1)["records"]] == [4]
    assert ucarp.last_transition("web-a", "web")["role"] == "master"
    with pytest.raises(CommandExecutionError, match="kind must be one of transition, health"):
        ucarp.records("web-a", "web", kind="other")
    with pytest.raises(CommandExecutionError, match="after must be"):
        ucarp.records("web-a", "web", after={"epoch": "x"})


def test_validate_and_plan_exit_1_on_a_bad_pillar(ucarp):
    """A pipeline gates on the exit status: problems listed set retcode 1."""
    bad = dict(CLUSTERS, web=dict(CLUSTERS["web"], vhid=300))
    ucarp.__salt__["config.get"] = lambda key, default=None: {"ucarp:clusters": bad}.get(key, default)
    assert ucarp.validate() == ["ucarp:clusters:web:vhid: must be an integer from 1 to 255 (got 300)"]
    assert ucarp.__context__["retcode"] == 1
    ucarp.__context__.clear()
    with pytest.raises(CommandExecutionError, match="web:vhid"):
        ucarp.plan()
    assert ucarp.__context__["retcode"] == 1


def test_validate_and_plan_leave_the_exit_status_alone_on_a_good_pillar(ucarp):
    assert ucarp.validate() == []
    assert ucarp.plan()["nodes"]
    assert "retcode" not in ucarp.__context__


def test_records_of_a_stopped_zone_are_read_under_its_root(ucarp, zones):
    zones.files["web-a", "/var/db/ucarp/web.transitions"] = "1@1111111111111111 5 backup web 192.0.2.100 101 net0\n"
    ucarp.__salt__["vmadm.get"] = lambda zone: dict(zones.vm(zone), state="installed")
    assert ucarp.last_transition("web-a", "web")["role"] == "backup"
    assert zones.calls == []  # no zlogin: the zone does not run


def test_a_record_file_the_zone_made_a_link_is_not_followed(ucarp, zones, tmp_path):
    secret = tmp_path / "host-file"
    secret.write_text("9 9 master web 192.0.2.100 101 net0\n")
    where = zones.roots / "web-a" / "root" / "var" / "db" / "ucarp"
    where.mkdir(parents=True)
    (where / "web.transitions").symlink_to(secret)
    dict.__setitem__(zones.files, ("web-a", "/var/db/ucarp/web.transitions"), "")  # what the zone shows
    assert ucarp.last_transition("web-a", "web") is None  # what zlogin shows inside the zone: nothing
    assert ("file_read", "web-a", "/var/db/ucarp/web.transitions") in zones.calls
    ucarp.__salt__["vmadm.get"] = lambda zone: dict(zones.vm(zone), state="installed")
    assert ucarp.last_transition("web-a", "web") is None  # not running: not read at all
