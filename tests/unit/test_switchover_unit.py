"""Unit tests of the runner's planned switchover and fleet status (_runners/ucarp.py), with a fake fleet."""

import logging

import pytest
import salt.config
from support import load_salt_module

UTIL = load_salt_module("_utils", "ucarp_model")
UTILS = {f"ucarp_model.{name}": getattr(UTIL, name) for name in dir(UTIL) if callable(getattr(UTIL, name))}
VIP = "192.0.2.100"
HOSTS = {"web-a": ("gz1", "192.0.2.11"), "web-b": ("gz2", "192.0.2.12"), "web-c": ("gz3", "192.0.2.13")}
HEALTHY = {"seq": 1, "ts": 1, "state": "healthy", "action": "eligible", "detail": None}
REFRESH = {"refresh": True}
KEEP = {"refresh": False}  # the override goes, the running ucarp stays


def pillar(preempt=False, health=False, **advskew):
    """Three nodes; web-a is the master, web-c (advskew 10) the preferred backup, web-b (20) the other."""
    skews = {"web-a": 1, "web-b": 20, "web-c": 10} | {k.replace("_", "-"): v for k, v in advskew.items()}
    nodes = {alias: {"host": host, "ip": ip, "advskew": skews[alias]} for alias, (host, ip) in HOSTS.items()}
    cluster = {"vip": VIP, "vhid": 101, "password": "s3cret", "preempt": preempt, "nodes": nodes}
    if health:
        cluster["health"] = {"checks": [{"tcp": 80}]}
    return {"ucarp": {"clusters": {"web": cluster}}}


class Clock:
    """The runner's ``time``: time passes only when it sleeps (in whole milliseconds, no float drift)."""

    def __init__(self):
        self.ms = 1_000_000

    def time(self):
        return self.ms / 1000

    def sleep(self, seconds):
        self.ms += round(seconds * 1000)


class Fleet:
    """``LocalClient`` over three hypervisors, each hosting one node of cluster ``web``.

    A ``preempt`` override makes its zone take the VIP at the master's next
    advert (1 s later); a ``keep-vip`` restart records ``back`` (``master``:
    master again) 2 s later.  ``fail`` (zone, mode) makes that override fail.
    """

    def __init__(self, clock, master="web-a"):
        self.clock = clock
        self.nodes = {zone: {"gz": gz, "zone_state": "running", "service": "online", "health": None}
                      for zone, (gz, _ip) in HOSTS.items()}  # fmt: skip
        self.holding = {master}
        self.last = {zone: {"seq": 1, "ts": 1, "role": "master" if zone == master else "backup"} for zone in HOSTS}
        self.silent = set()
        self.takes = True
        self.back = "master"
        self.fail = None
        self.due = []  # (ms, what, zone)
        self.overrides = []  # (zone, mode, kwarg)
        self.seen = []  # (seconds since the first override, holders) at each override
        self.calls = []
        self.written = None  # the hypervisors a rollout wrote files on
        self.refuse_write = {}  # gz -> the comment of its failed state
        self.disabled = []  # zones whose instance a stopped rollout disabled

    def apply_result(self, gz):
        """state.apply ucarp.config on one hypervisor: its states' results."""
        if gz in self.refuse_write:
            return {"ucarp.identity_kept|-x": {"__id__": "ucarp-identity-kept-web-x", "result": False,
                                                "comment": self.refuse_write[gz]}}  # fmt: skip
        return {"zone_file.managed|-x": {"__id__": "ucarp-config-file-managed-web-x", "result": True, "comment": ""}}

    def record(self, zone, role):
        self.last[zone] = {"seq": self.last[zone]["seq"] + 1, "ts": self.clock.ms // 1000, "role": role}

    def settle(self):
        for item in [d for d in self.due if d[0] <= self.clock.ms]:
            self.due.remove(item)
            _ms, what, zone = item
            if what == "take":
                for old in sorted(self.holding):
                    self.record(old, "backup")
                self.holding = {zone}
                self.record(zone, "master")
            else:
                self.record(zone, what)

    def status(self):
        """LocalClient.cmd('*', 'ucarp.status', full_return=True)."""
        replies = {"gz9": {"ret": "'ucarp.status' is not available.", "retcode": 254}}  # without the formula
        for zone, node in sorted(self.nodes.items()):
            if node["gz"] in self.silent:
                replies[node["gz"]] = {"out": "no_return", "ret": "Minion did not return. [No response]", "retcode": 1}
                continue
            entry = {k: v for k, v in node.items() if k != "gz"}
            entry.update(cluster="web", zone=zone, vip=VIP, vhid=101, holds_vip=zone in self.holding)
            entry["last_transition"] = self.last[zone]
            replies.setdefault(node["gz"], {"ret": [], "retcode": 0})["ret"].append(entry)
        return replies

    def cmd(self, tgt, fun, arg=(), kwarg=None, timeout=None, full_return=False, tgt_type="glob"):
        self.settle()
        self.calls.append((fun, list(arg), kwarg))
        if fun == "ucarp.status":
            assert (tgt, tgt_type, full_return, arg, kwarg) == ("*", "glob", True, (), None)
            return self.status()
        assert tgt_type == "list" and full_return
        answering = [gz for gz in tgt if gz not in self.silent]
        if fun == "state.apply":
            assert arg == ["ucarp.config"] and kwarg == {"pillar": {"ucarp_rollout": "web"}}
            self.written = sorted(tgt)
            return {gz: {"ret": self.apply_result(gz), "retcode": 0} for gz in answering}
        if fun == "zlogin.svc_disable":
            (gz,) = tgt
            self.disabled.append(arg[0])
            return {gz: {"ret": True, "retcode": 0}}
        if fun == "ucarp.holders":
            assert arg == ["web"]
            return {gz: {"ret": {z: z in self.holding for z, n in self.nodes.items() if n["gz"] == gz}, "retcode": 0}
                    for gz in answering}  # fmt: skip
        (gz,) = tgt
        if fun == "ucarp.last_transition":
            zone, cluster = arg
            assert (self.nodes[zone]["gz"], cluster) == (gz, "web")
            return {gz: {"ret": self.last[zone], "retcode": 0}}
        assert fun == "ucarp.override", fun
        cluster, zone, mode = arg
        assert (self.nodes[zone]["gz"], cluster) == (gz, "web")
        if not self.overrides:
            self.started = self.clock.ms
        self.overrides.append((zone, mode, kwarg))
        self.seen.append(((self.clock.ms - self.started) / 1000, sorted(self.holding)))
        if (zone, mode) == self.fail:
            return {gz: {"ret": f"ERROR: zlogin: zone {zone}: svcadm refresh failed", "retcode": 1}}
        if mode == "preempt" and self.takes:
            self.due.append((self.clock.ms + 1000, "take", zone))
        if mode == "keep-vip" and self.back:
            self.due.append((self.clock.ms + 2000, self.back, zone))
        return {gz: {"ret": {"zone": zone, "cluster": cluster, "override": mode}, "retcode": 0}}


@pytest.fixture
def runner(tmp_path, monkeypatch):
    module = load_salt_module(
        "_runners",
        "ucarp",
        opts=dict(salt.config.DEFAULT_MASTER_OPTS, cachedir=str(tmp_path), sock_dir=str(tmp_path), conf_file=""),
    )
    module.__utils__ = UTILS
    module.pillar = pillar()
    module.__salt__ = {"pillar.show_pillar": lambda minion: module.pillar}
    module.log = logging.getLogger("ucarp-switchover-unit")  # quiet: not through Salt's log handlers
    module.log.propagate = False
    module.fired = []
    module._fire = lambda tag, data: module.fired.append((tag, data))
    clock = Clock()
    monkeypatch.setattr(module, "time", clock)  # the runner's own clock only
    module.fleet = Fleet(clock)
    module._local = lambda: module.fleet
    return module


# Refusals: nothing changed -------------------------------------------------------


def stopped(runner, zone, state="stopped"):
    runner.fleet.nodes[zone].update(zone_state=state, service=None)


def sick(runner, zone, detail):
    runner.pillar = pillar(health=True)
    for node in runner.fleet.nodes.values():
        node["health"] = dict(HEALTHY)
    runner.fleet.nodes[zone]["health"] = None if detail is None else dict(HEALTHY, state="sick", detail=detail)


@pytest.mark.parametrize(
    ("to", "setup", "reason"),
    [
        ("web-z", None, "web-z is not a member of cluster web (members: web-a, web-b, web-c)"),
        ("web-b", lambda r: stopped(r, "web-b"), "cannot switch to web-b: zone web-b is stopped"),
        (
            "web-b",
            lambda r: r.fleet.nodes["web-b"].update(service="maintenance"),
            "cannot switch to web-b: svc:/network/ucarp:web in zone web-b is maintenance",
        ),
        (
            "web-b",
            lambda r: sick(r, "web-b", "tcp 192.0.2.12 80 refused"),
            "cannot switch to web-b: web-b is unhealthy (tcp 192.0.2.12 80 refused)",
        ),
        (
            "web-b",
            lambda r: sick(r, "web-b", None),
            "cannot switch to web-b: web-b is unhealthy (no health record yet)",
        ),
        (
            "web-b",
            lambda r: r.fleet.silent.add("gz2"),
            "cannot switch to web-b: the hypervisor of web-b (gz2) did not answer",
        ),
        (
            None,
            lambda r: (stopped(r, "web-c"), r.fleet.nodes["web-b"].update(service="offline")),
            "no running, healthy backup to switch to in cluster web",
        ),
        (
            None,
            lambda r: (sick(r, "web-c", "x"), sick(r, "web-b", "y"), r.fleet.nodes["web-c"].update(health=None)),
            "no running, healthy backup to switch to in cluster web",
        ),
        (
            "web-b",
            lambda r: setattr(r, "pillar", pillar(web_a=0)),
            "the master web-a runs with advskew 0, so no node can preempt it; give it advskew 1 or more"
            " (the formula's default) and apply the formula",
        ),
        (
            "web-b",
            lambda r: setattr(r, "pillar", pillar(preempt=True)),
            "cluster web has preempt: true and web-a, web-c (lower advskew) would take the VIP back from web-b at once",
        ),
        (
            None,
            lambda r: setattr(r, "pillar", pillar(preempt=True)),
            "cluster web has preempt: true and web-a (lower advskew) would take the VIP back from web-c at once",
        ),
    ],
)
def test_a_refused_switchover_changes_nothing(runner, to, setup, reason):
    if setup:
        setup(runner)
    result = runner.switchover("web", to=to)
    assert result == {"cluster": "web", "to": to, "from": "web-a", "result": False, "comment": f"refused: {reason}",
                      "retcode": 1}  # fmt: skip
    assert runner.__context__["retcode"] == 1
    assert runner.fleet.overrides == []
    assert [c[0] for c in runner.fleet.calls] == ["ucarp.status"]  # looked, touched nothing
    assert runner.fired == []


@pytest.mark.parametrize(
    ("cluster", "setup", "reason"),
    [
        ("web; reboot", None, "'web; reboot' is not a cluster name"),
        ("db", None, "no hypervisor reports cluster db"),
        ("web", lambda r: setattr(r, "pillar", {}), "cluster web is not in the pillar of gz1"),
        (
            "web",
            lambda r: r.fleet.holding.clear(),
            "cluster web needs exactly one master to switch over (holders: none)",
        ),
        (
            "web",
            lambda r: r.fleet.holding.add("web-c"),
            "cluster web needs exactly one master to switch over (holders: ['web-a', 'web-c'])",
        ),
    ],
)
def test_a_switchover_without_one_known_master_is_refused(runner, cluster, setup, reason):
    if setup:
        setup(runner)
    result = runner.switchover(cluster, to="web-b")
    assert result["result"] is False and result["retcode"] == 1
    assert result["comment"] == f"refused: {reason}"
    assert runner.__context__["retcode"] == 1
    assert runner.fleet.overrides == [] and runner.fired == []


def test_switching_to_the_master_is_nothing_to_do(runner):
    result = runner.switchover("web", to="web-a")
    assert result == {"cluster": "web", "to": "web-a", "from": "web-a", "result": True,
                      "comment": f"web-a already holds {VIP}: nothing to do"}  # fmt: skip
    assert runner.fleet.overrides == [] and runner.fired == []
    assert "retcode" not in runner.__context__


# The hand-over ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("setup", "target"),
    [
        (None, "web-c"),  # advskew 10 before web-b's 20
        (lambda r: stopped(r, "web-c"), "web-b"),  # the preferred one is not fit
        (lambda r: setattr(r, "pillar", pillar(web_b=10)), "web-b"),  # a tie: by name
        (lambda r: sick(r, "web-c", "tcp 192.0.2.13 80 refused"), "web-b"),
    ],
)
def test_the_default_target_is_the_fit_backup_with_the_lowest_advskew(runner, setup, target):
    if setup:
        setup(runner)
    result = runner.switchover("web")
    assert result["result"] is True, result
    assert result["to"] == target
    assert runner.fleet.overrides[0] == (target, "preempt", REFRESH)
    assert runner.fleet.holding == {target}


def test_a_switchover_hands_over_in_order_and_completes(runner):
    result = runner.switchover("web", to="web-b")
    assert runner.fleet.overrides == [
        ("web-b", "preempt", REFRESH),
        ("web-a", "slow", REFRESH),
        ("web-c", "slow", REFRESH),
        ("web-b", "keep-vip", REFRESH),
        ("web-a", None, REFRESH),
        ("web-c", None, REFRESH),
        ("web-b", None, {"refresh": False}),  # its ucarp already runs with its own options
    ]
    # The others slow down only once web-b alone holds the VIP (1 s: the master's next advert), and
    # go back to normal only once web-b is master again after its keep-vip restart (2 s later).
    assert runner.fleet.seen == [
        (0.0, ["web-a"]),
        (1.0, ["web-b"]),
        (1.0, ["web-b"]),
        (1.0, ["web-b"]),
        (3.0, ["web-b"]),
        (3.0, ["web-b"]),
        (3.0, ["web-b"]),
    ]
    timings = {"handover_s": 1.0, "total_s": 3.0}
    assert result == {"cluster": "web", "to": "web-b", "from": "web-a", "result": True,
                      "comment": f"web-b holds {VIP}; web-a is a backup", "timings": timings}  # fmt: skip
    assert runner.fired == [
        (
            "ucarp/web/switchover/complete",
            {"cluster": "web", "to": "web-b", "from": "web-a", "vip": VIP, "timings": timings},
        )  # fmt: skip
    ]
    assert "retcode" not in runner.__context__


def test_a_switchover_allowed_with_preempt_when_no_node_would_take_the_vip_back(runner):
    runner.pillar = pillar(preempt=True, web_c=0)
    result = runner.switchover("web", to="web-c")
    assert result["result"] is True
    assert runner.fleet.holding == {"web-c"}


def failed(runner, reason, to="web-b"):
    comment = f"failed: {reason}; every node not holding the VIP was restarted with its own options"
    return {"cluster": "web", "to": to, "from": "web-a", "result": False, "comment": comment, "retcode": 1}


def test_a_target_that_never_takes_the_vip_fails_and_is_undone(runner):
    runner.fleet.takes = False
    result = runner.switchover("web", to="web-b")
    reason = "web-b did not take the VIP from web-a"
    assert result == failed(runner, reason)
    assert runner.__context__["retcode"] == 1
    assert runner.fleet.overrides == [
        ("web-b", "preempt", REFRESH),
        ("web-a", None, KEEP),  # undone: the holder only forgets its override, the others restart
        ("web-b", None, REFRESH),
        ("web-c", None, REFRESH),
    ]
    assert runner.fleet.holding == {"web-a"}
    assert runner.fired == [
        ("ucarp/web/switchover/failed", {"cluster": "web", "to": "web-b", "from": "web-a", "reason": reason})
    ]


@pytest.mark.parametrize("back", [None, "backup"])
def test_a_target_not_master_again_after_its_restart_fails_and_is_undone(runner, back):
    runner.fleet.back = back  # no new transition, or a newer one that is not master
    result = runner.switchover("web", to="web-b")
    reason = "web-b restarted with its own options but did not become master again"
    assert result == failed(runner, reason)
    assert runner.fleet.overrides[-4:] == [
        ("web-b", "keep-vip", REFRESH),
        ("web-a", None, REFRESH),  # web-b holds the VIP: the others are restored
        ("web-b", None, KEEP),
        ("web-c", None, REFRESH),
    ]
    assert runner.fired == [
        ("ucarp/web/switchover/failed", {"cluster": "web", "to": "web-b", "from": "web-a", "reason": reason})
    ]


def test_an_override_that_fails_stops_the_switchover_and_is_undone(runner):
    runner.fleet.fail = ("web-c", "slow")
    result = runner.switchover("web", to="web-b")
    reason = "slow restart of web-c: ERROR: zlogin: zone web-c: svcadm refresh failed"
    assert result == failed(runner, reason)
    assert runner.fleet.overrides == [
        ("web-b", "preempt", REFRESH),
        ("web-a", "slow", REFRESH),
        ("web-c", "slow", REFRESH),
        ("web-a", None, REFRESH),
        ("web-b", None, KEEP),
        ("web-c", None, REFRESH),
    ]
    assert runner.fired[0][0] == "ucarp/web/switchover/failed"


# Fleet status -------------------------------------------------------------------


def test_status_shows_each_nodes_health_and_a_master_that_kept_the_vip(runner):
    runner.pillar = pillar(health=True)
    for node in runner.fleet.nodes.values():
        node["health"] = dict(HEALTHY)
    kept = dict(HEALTHY, seq=4, state="sick", action="kept-vip", detail="tcp 192.0.2.11 80 refused")
    runner.fleet.nodes["web-a"]["health"] = kept
    stopped(runner, "web-c")
    runner.fleet.nodes["web-c"]["health"] = None
    info = runner.status()
    master = {"zone": "web-a", "zone_state": "running", "service": "online", "health": kept, "gz": "gz1"}
    assert info == {
        "web": {
            "vip": VIP,
            "vhid": 101,
            "master": master,
            "backups": [
                {"zone": "web-b", "zone_state": "running", "service": "online", "health": HEALTHY, "gz": "gz2"},
                {"zone": "web-c", "zone_state": "stopped", "service": None, "health": None, "gz": "gz3"},
            ],
            "last_transition": None,
            "alert": {"kind": "all-unhealthy", "holders": [master]},
        }
    }


def test_status_shows_no_alert_for_a_healthy_master(runner):
    runner.fleet.nodes["web-a"]["health"] = dict(HEALTHY)
    info = runner.status()["web"]
    assert info["master"]["zone"] == "web-a" and info["alert"] is None
    runner.fleet.holding.add("web-b")
    assert runner.status()["web"]["alert"]["kind"] == "split-brain"


def test_status_names_a_silent_hypervisor_and_does_not_guess_the_master(runner):
    runner.fleet.silent = {"gz1"}  # web-a, the master, is there
    info = runner.status()["web"]
    assert info["master"] is None
    assert [b["zone"] for b in info["backups"]] == ["web-b", "web-c"]
    assert info["silent"] == ["gz1"]
    assert info["alert"] == {"kind": "unknown", "holders": [], "silent": ["gz1"]}


def test_status_with_a_silent_backup_still_shows_the_master(runner):
    runner.fleet.silent = {"gz2"}
    info = runner.status()["web"]
    assert info["master"]["zone"] == "web-a" and info["alert"] is None
    assert info["silent"] == ["gz2"]
    assert [b["zone"] for b in info["backups"]] == ["web-c"]


def test_status_shows_a_cluster_whose_every_hypervisor_is_silent(runner):
    runner.fleet.silent = {"gz1", "gz2", "gz3"}
    info = runner.status()["web"]
    assert (info["vip"], info["vhid"], info["master"], info["backups"]) == (VIP, 101, None, [])
    assert info["silent"] == ["gz1", "gz2", "gz3"]
    assert info["alert"]["kind"] == "unknown"


# Rolling configuration changes ----------------------------------------------------


def test_rollout_keeps_the_master_and_restarts_the_backups_around_it(runner):
    ret = runner.rollout("web")
    assert ret["result"] is True, ret
    assert ret["master"] == "web-a"
    assert runner.fleet.written == ["gz1", "gz2", "gz3"]  # every node's files first, nothing restarted
    assert runner.fleet.overrides == [
        ("web-b", "slow", REFRESH),  # the backups wait longer: they may not hear the master yet
        ("web-c", "slow", REFRESH),
        ("web-a", "keep-vip", REFRESH),  # the master restarts in place, keeping the VIP
        ("web-b", None, REFRESH),  # then the backups run their own options
        ("web-c", None, REFRESH),
        ("web-a", None, KEEP),
    ]
    assert {tuple(holders) for _at, holders in runner.fleet.seen} == {("web-a",)}  # never moved, never two
    assert [tag for tag, _ in runner.fired] == ["ucarp/web/rollout/complete"]
    assert set(ret["timings"]) == {"master_back_s", "total_s"}


@pytest.mark.parametrize(
    ("setup", "reason"),
    [
        (lambda r: stopped(r, "web-b"), "zone web-b is stopped, its instance None"),
        (
            lambda r: r.fleet.nodes["web-c"].update(service="maintenance"),
            "zone web-c is running, its instance maintenance",
        ),
        (lambda r: r.fleet.silent.add("gz3"), "the hypervisor of web-c (gz3) did not answer"),
        (
            lambda r: sick(r, "web-b", "tcp 192.0.2.12 80 refused"),
            "web-b is sick (tcp 192.0.2.12 80 refused): fix it first (new checks apply in place with a highstate)",
        ),
        (
            lambda r: sick(r, "web-c", None),
            "web-c is not known to be healthy (no health record yet): fix it first "
            "(new checks apply in place with a highstate)",
        ),
        (
            lambda r: r.fleet.holding.add("web-b"),
            "cluster web needs exactly one master to roll out (holders: ['web-a', 'web-b'])",
        ),
    ],
)
def test_rollout_refusals_change_nothing(runner, setup, reason):
    setup(runner)
    ret = runner.rollout("web")
    assert ret["result"] is False and ret["comment"] == f"refused: {reason}", ret
    assert runner.fleet.written is None and runner.fleet.overrides == []
    assert runner.__context__["retcode"] == 1


def test_rollout_stops_before_any_restart_when_a_node_refuses_its_files(runner):
    guard = "Cluster web runs in zone web-b and its VIP would change here alone: ..."
    runner.fleet.refuse_write["gz2"] = guard
    ret = runner.rollout("web")
    assert ret["result"] is False
    assert ret["comment"].startswith("refused: writing the new files failed, nothing was restarted: gz2: ")
    assert guard in ret["comment"]
    assert runner.fleet.overrides == []


def test_a_rollout_stopped_half_way_leaves_the_master_alone_with_the_vip(runner):
    runner.fleet.fail = ("web-c", "slow")
    ret = runner.rollout("web")
    assert ret["result"] is False, ret
    assert "web-b (already on the new settings) disabled" in ret["comment"]
    assert ret["comment"].endswith("web-a holds the VIP")
    assert runner.fleet.disabled == ["web-b"]  # it could not hear the master any more
    assert runner.fleet.holding == {"web-a"}
    assert [tag for tag, _ in runner.fired] == ["ucarp/web/rollout/failed"]


def test_a_master_that_is_not_master_again_stops_the_rollout(runner):
    runner.fleet.back = None
    ret = runner.rollout("web")
    assert ret["result"] is False
    assert "web-a restarted on the new settings but did not become master again" in ret["comment"]
    assert runner.fleet.disabled == ["web-b", "web-c"]
