"""Unit tests of ``ucarp.run_actions`` (_modules/ucarp.py): a reaction's actions
round, run by each hypervisor for its own zones, with fake vmadm and zlogin."""

import pytest
from salt.exceptions import CommandExecutionError
from support import load_salt_module

APP = "svc:/site/app:default"
CLUSTERS = {
    "web": {
        "vip": "192.0.2.100",
        "vhid": 101,
        "password": "s3cret",
        "nodes": {
            "web-a": {"host": "gz1", "ip": "192.0.2.11"},
            "web-b": {"host": "gz2", "ip": "192.0.2.12"},
            "web-c": {"host": "gz1", "ip": "192.0.2.13"},
        },
    },
}


class Fleet:
    """What ``run_actions`` calls on gz1: vmadm.state and the zlogin actions, recorded."""

    def __init__(self):
        self.states = {"web-a": "running", "web-c": "running"}
        self.calls = []
        self.fail = {}  # (function, zone) -> the error it raises
        self.exit = {}  # zone -> a run action's exit status

    def state(self, zone):
        self.calls.append(("vmadm.state", zone))
        if zone not in self.states:
            raise CommandExecutionError(f"vmadm: no VM with alias {zone}")
        return self.states[zone]

    def action(self, fun):
        def call(zone, arg, **kwargs):
            self.calls.append((fun, zone, arg, kwargs))
            if (fun, zone) in self.fail:
                raise CommandExecutionError(self.fail[fun, zone])
            if fun == "zlogin.run":
                code = self.exit.get(zone, 0)
                return {"retcode": code, "stdout": "", "stderr": "boom\n" if code else ""}
            return True

        return call


@pytest.fixture
def fleet():
    return Fleet()


@pytest.fixture
def ucarp(fleet):
    config = {"ucarp:clusters": CLUSTERS, "ucarp:defaults": {}}
    salt = {"config.get": lambda key, default=None: config.get(key, default), "vmadm.state": fleet.state}
    for fun in ("zlogin.svc_enable", "zlogin.svc_disable", "zlogin.svc_restart", "zlogin.run"):
        salt[fun] = fleet.action(fun)
    return load_salt_module("_modules", "ucarp", salt=salt, opts={"id": "gz1", "test": False})


def entry(zone, host="gz1", role="master", *actions):
    return {"zone": zone, "host": host, "role": role,
            "actions": [{"action": kind, "arg": arg} for kind, arg in actions]}  # fmt: skip


def test_each_hypervisor_runs_its_own_entries_in_order(ucarp, fleet):
    work = [
        entry("web-b", "gz2", "master", ("svc_enable", APP)),  # gz2's: not run here
        entry("web-a", "gz1", "backup", ("svc_disable", APP), ("run", "rm -f /var/tmp/ready")),
        entry("web-c", "gz1", "backup", ("svc_restart", APP)),
    ]
    out = ucarp.run_actions("web", work)
    assert [(r["zone"], r["role"], r["action"], r["ok"]) for r in out] == [
        ("web-a", "backup", "svc_disable", True),
        ("web-a", "backup", "run", True),
        ("web-c", "backup", "svc_restart", True),
    ]
    assert out[1]["detail"] == {"retcode": 0, "stdout": "", "stderr": ""}
    assert fleet.calls == [
        ("vmadm.state", "web-a"),
        ("zlogin.svc_disable", "web-a", APP, {}),
        ("zlogin.run", "web-a", "rm -f /var/tmp/ready", {}),
        ("vmadm.state", "web-c"),
        ("zlogin.svc_restart", "web-c", APP, {}),
    ]


def test_svc_enable_clears_maintenance_first(ucarp, fleet):
    ucarp.run_actions("web", [entry("web-a", "gz1", "master", ("svc_enable", APP))])
    assert fleet.calls[-1] == ("zlogin.svc_enable", "web-a", APP, {"clear": True})


def test_a_zone_not_running_is_skipped_with_its_state(ucarp, fleet):
    fleet.states["web-a"] = "stopped"
    del fleet.states["web-c"]
    out = ucarp.run_actions("web", [entry("web-a", "gz1", "backup", ("svc_disable", APP)),
                                    entry("web-c", "gz1", "backup", ("svc_disable", APP))])  # fmt: skip
    assert [(r["zone"], r["ok"], r["detail"]) for r in out] == [
        ("web-a", None, "zone is stopped"),
        ("web-c", None, "zone is unknown: vmadm: no VM with alias web-c"),
    ]
    assert [c[0] for c in fleet.calls] == ["vmadm.state", "vmadm.state"]  # no action in either


def test_a_failed_action_is_reported_and_the_next_ones_run(ucarp, fleet):
    fleet.fail["zlogin.svc_enable", "web-a"] = "zlogin: zone web-a: svcadm enable failed"
    fleet.exit["web-a"] = 3
    out = ucarp.run_actions("web", [entry("web-a", "gz1", "master", ("svc_enable", APP), ("run", "false"),
                                          ("svc_restart", APP))])  # fmt: skip
    assert [(r["action"], r["ok"], r["detail"]) for r in out] == [
        ("svc_enable", False, "zlogin: zone web-a: svcadm enable failed"),
        ("run", False, "exit 3: boom"),
        ("svc_restart", True, True),
    ]


@pytest.mark.parametrize(
    ("work", "message"),
    [
        ("web-a", "ucarp.run_actions: work must be a list of entries"),
        (["web-a"], "ucarp.run_actions: work[0] must be a mapping with zone, host, role and actions"),
        ([entry("web-b")], "ucarp.run_actions: work[0].zone: 'web-b' is not a node of cluster web on this hypervisor"),
        ([entry("db-a")], "ucarp.run_actions: work[0].zone: 'db-a' is not a node of cluster web on this hypervisor"),
        ([entry("web-a", "gz1", "leader")], "ucarp.run_actions: work[0].role: 'leader' is neither master nor backup"),
        ([dict(entry("web-a"), actions="svc_enable")], "ucarp.run_actions: work[0].actions must be a list"),
        ([entry("web-a", "gz1", "master", ("reboot", "now"))],
         "ucarp.run_actions: work[0].actions[0].action: unknown action 'reboot'"),
        ([entry("web-a", "gz1", "master", ("svc_enable", APP), ("run", " "))],
         "ucarp.run_actions: work[0].actions[1].arg: must be a non-empty string"),
    ],
)  # fmt: skip
def test_bad_work_is_refused_before_anything_runs(ucarp, fleet, work, message):
    good = [entry("web-c", "gz1", "backup", ("svc_disable", APP))]  # first in the list: still not run
    with pytest.raises(CommandExecutionError) as err:
        ucarp.run_actions("web", good + work if isinstance(work, list) else work)
    expected = message.replace("work[0]", "work[1]") if isinstance(work, list) else message
    assert str(err.value) == expected
    assert fleet.calls == []


def test_an_unknown_cluster_is_refused(ucarp, fleet):
    with pytest.raises(CommandExecutionError, match="no cluster 'db' in pillar"):
        ucarp.run_actions("db", [entry("web-a")])
    assert fleet.calls == []
