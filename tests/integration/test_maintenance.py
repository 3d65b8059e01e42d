"""Planned maintenance hands the VIP over first: no Salt involved.

One cluster, ``web``, a node on each simulated hypervisor, the test bed's
web service running in both zones (a hot standby, bound to every address,
checked by the nodes' health checks, so the instance starts after it and
stops before it). Each test stops or restarts the master the way an
operator does maintenance (``svcadm disable`` / ``restart`` of its instance,
a clean ``vmadm stop`` / ``vmadm reboot`` of its zone, a reboot of its
hypervisor) or makes it sick, and checks that the master handed over: its
agent heard the new master's first advert (authenticated with the
password) before it dropped the VIP, the old master answered the client
until the new one did, and only then the old one went. The gap a client
sees is measured by ``bench/maintenance.py``, not asserted here; each test
records the probes it missed.
"""

import threading
import time

import pytest
from support import wait_for

from smartos_sim import vipapp

pytestmark = pytest.mark.root

APP = vipapp.FMRI
VIP = "192.0.2.100"
FMRI = "svc:/network/ucarp:web"
NODES = {"web-a": {"host": "gz1", "ip": "192.0.2.11"}, "web-b": {"host": "gz2", "ip": "192.0.2.12"}}
HEALTH = {"interval": 1, "timeout": 2, "fall": 2, "rise": 2, "checks": [{"service": APP}, {"tcp": 8080}]}
CLUSTER = {"vip": VIP, "vhid": 101, "password": "web-Maint-1", "nodes": NODES, "health": HEALTH}
LOG = "/var/svc/log/network-ucarp:web.log"
HANDED = f"a backup took {VIP} over"
SETTLE = 60


def other(alias):
    (peer,) = [a for a in NODES if a != alias]
    return peer


class Cluster:
    """The two nodes: zones, holders, logs, and a client probing the VIP."""

    def __init__(self, bed, minions, client):
        self.bed, self.minions, self.client = bed, minions, client
        self.uuids = {}

    def gz(self, alias):
        return self.minions[NODES[alias]["host"]].gz

    def uuid(self, alias):
        if alias not in self.uuids:
            self.uuids[alias] = self.gz(alias).run("vmadm", "lookup", "-1", f"alias={alias}", check=True).stdout.strip()
        return self.uuids[alias]

    def zlogin(self, alias, command):
        return self.gz(alias).zlogin(self.uuid(alias), command)

    def running(self, alias):
        return self.gz(alias).get(self.uuid(alias))["state"] == "running"

    def holders(self):
        return [
            a for a in NODES if self.running(a) and f"inet {VIP} " in self.zlogin(a, "/usr/sbin/ifconfig -a").stdout
        ]

    def settled(self):
        """The one holder, every instance online and both nodes healthy (a
        backup must be able to take over before the next test starts)."""

        def ready():
            found = self.holders()
            states = [self.zlogin(a, f"svcs -H -o state {FMRI}").stdout.strip() for a in NODES]
            healthy = all(self.zlogin(a, "tail -n 1 /var/db/ucarp/web.health").stdout.split()[2:3] == ["healthy"]
                          for a in NODES)  # fmt: skip
            return found[0] if len(found) == 1 and states == ["online", "online"] and healthy else None

        return wait_for(ready, SETTLE, what="one master, both instances online and healthy")

    def log_lines(self, alias):
        return self.zlogin(alias, f"cat {LOG}").stdout.count(HANDED)

    def answers(self, seconds_after, until):
        """Probe the VIP (one HTTP request at a time) until ``until()`` holds,
        then ``seconds_after`` more; the answers in order (None: no answer)."""
        seen = []
        deadline = time.monotonic() + SETTLE
        done_at = None
        while time.monotonic() < deadline:
            seen.append(vipapp.answer(self.bed, self.client, VIP, timeout=1))
            if done_at is None and until():
                done_at = time.monotonic()
            if done_at is not None and time.monotonic() - done_at >= seconds_after:
                return seen
        raise AssertionError(f"timed out probing the VIP: {seen[-20:]}")


def handed_over(cluster, master, action, record_property, name):
    """Do ``action`` (the maintenance) while a client probes the VIP; the new
    master took it over from ``master``, who answered until then."""
    new = other(master)
    before = cluster.log_lines(master)
    probes = []

    def acted():
        return cluster.holders() == [new] and cluster.log_lines(master) > before

    worker = threading.Thread(target=action)
    worker.start()
    try:
        probes = cluster.answers(1.0, acted)
    except AssertionError as e:
        logs = {a: cluster.zlogin(a, f"tail -n 15 {LOG}").stdout for a in NODES}
        raise AssertionError(f"{e}; holders {cluster.holders()}; logs {logs}") from None
    finally:
        worker.join(timeout=180)
    assert not worker.is_alive()
    answered = [p for p in probes if p is not None]
    assert answered and answered[-1] == new
    # The old master answered until the new one did, and never again after.
    first_new = answered.index(new)
    assert set(answered[:first_new]) <= {master} and set(answered[first_new:]) == {new}, probes
    record_property(f"{name}_probes_missed", probes.count(None))
    record_property(f"{name}_probes", len(probes))
    return new


@pytest.fixture(scope="module")
def client(bed):
    return bed.host("client", "192.0.2.200/24")


@pytest.fixture(scope="module")
def cluster(bed, minions, set_pillar, client):
    set_pillar({"web": CLUSTER})
    nodes = Cluster(bed, minions, client)
    for minion in minions.values():
        minion.apply("ucarp.zones")
    for alias in NODES:
        vipapp.install(nodes.gz(alias), nodes.uuid(alias), VIP, bind="0.0.0.0")
        assert nodes.zlogin(alias, f"svcadm enable -s {APP}").returncode == 0
    for minion in minions.values():
        minion.apply("ucarp")
    nodes.settled()
    return nodes


def test_the_instance_stops_after_nothing_it_fronts(cluster):
    """The manifest makes the instance depend (optional_all) on the service it fronts."""
    master = cluster.settled()
    fronts = cluster.zlogin(master, f"svcprop -p fronts/entities {FMRI}").stdout.split()
    assert fronts == [APP]
    assert cluster.zlogin(master, f"svcprop -p fronts/grouping {FMRI}").stdout.strip() == "optional_all"


def test_svcadm_disable_of_the_master_hands_over(cluster, record_property):
    master = cluster.settled()
    new = handed_over(cluster, master, lambda: cluster.zlogin(master, f"svcadm disable -s {FMRI}"), record_property,
                      "disable")  # fmt: skip
    assert cluster.zlogin(master, f"svcs -H -o state {FMRI}").stdout.strip() == "disabled"
    assert cluster.zlogin(master, f"svcadm enable -s {FMRI}").returncode == 0
    assert cluster.settled() == new  # back as a backup: the VIP stays


def test_svcadm_restart_of_the_master_hands_over(cluster, record_property):
    master = cluster.settled()
    new = handed_over(cluster, master, lambda: cluster.zlogin(master, f"svcadm restart {FMRI}"), record_property,
                      "restart")  # fmt: skip
    assert cluster.settled() == new


def test_a_clean_stop_of_the_master_zone_hands_over(cluster, record_property):
    master = cluster.settled()
    gz, uuid = cluster.gz(master), cluster.uuid(master)
    new = handed_over(cluster, master, lambda: gz.run("vmadm", "stop", uuid, check=True), record_property, "stop")
    assert not cluster.running(master)
    gz.run("vmadm", "start", uuid, check=True)
    assert cluster.settled() == new


def test_a_reboot_of_the_master_zone_hands_over(cluster, record_property):
    master = cluster.settled()
    gz, uuid = cluster.gz(master), cluster.uuid(master)
    new = handed_over(cluster, master, lambda: gz.run("vmadm", "reboot", uuid, check=True), record_property, "reboot")
    assert cluster.settled() == new


def test_a_reboot_of_the_masters_hypervisor_hands_over(cluster, record_property):
    master = cluster.settled()
    gz = cluster.gz(master)
    new = handed_over(cluster, master, gz.reboot, record_property, "hypervisor_reboot")
    assert cluster.running(master)  # autoboot: back, as a backup
    assert cluster.settled() == new


def test_a_sick_master_hands_over(cluster, record_property):
    master = cluster.settled()

    def sicken():
        assert cluster.zlogin(master, f"svcadm disable -s {APP}").returncode == 0

    try:
        handed_over(cluster, master, sicken, record_property, "sick")
        assert "stepped-down" in cluster.zlogin(master, "tail -n 1 /var/db/ucarp/web.health").stdout
    finally:
        assert cluster.zlogin(master, f"svcadm enable -s {APP}").returncode == 0
    cluster.settled()


def test_with_no_healthy_backup_the_stop_goes_on_at_once(cluster):
    master = cluster.settled()
    backup = other(master)
    assert cluster.zlogin(backup, f"svcadm disable -s {APP}").returncode == 0
    try:
        wait_for(lambda: "sick" in cluster.zlogin(backup, "tail -n 1 /var/db/ucarp/web.health").stdout, SETTLE,
                 what=f"{backup} sick")  # fmt: skip
        before = cluster.log_lines(master)
        assert cluster.zlogin(master, f"svcadm disable -s {FMRI}").returncode == 0
        assert cluster.holders() == []  # nobody could take it: the master dropped it on its way out
        assert cluster.log_lines(master) == before  # no hand-over was attempted
    finally:
        assert cluster.zlogin(backup, f"svcadm enable -s {APP}").returncode == 0
        assert cluster.zlogin(master, f"svcadm enable -s {FMRI}").returncode == 0
    cluster.settled()


def ucarp_args(cluster, alias):
    """The command lines of the cluster's ucarp processes in a zone."""
    out = cluster.zlogin(alias, "ps -eo args").stdout
    return [line for line in out.splitlines() if line.startswith("/opt/local/sbin/ucarp ") and "--vhid=101" in line]


def status_of(cluster, alias):
    minion = cluster.minions[NODES[alias]["host"]]
    return next(e for e in minion.call("ucarp.status") if e["zone"] == alias)


OVERRIDE = "/var/db/ucarp/web.override"


@pytest.mark.parametrize(
    ("plant", "why"),
    [
        (f"echo '--deadratio=255' > /tmp/o; echo 'expires 4000000000' >> /tmp/o; ln -s /tmp/o {OVERRIDE}",
         "not a regular file"),
        (f"printf '%s\\n' --deadratio=255 'expires 4000000000' > {OVERRIDE}; chmod 0666 {OVERRIDE}",
         "writable by others"),
        (f"echo --deadratio=255 > {OVERRIDE}", "no expiry"),
    ],
    ids=["symlink", "world-writable", "no-expiry"],
)  # fmt: skip
def test_a_planted_override_changes_nothing_and_is_reported(cluster, plant, why):
    """Something in the zone that looks like a planned step's override but
    that the agent cannot trust: a refresh leaves ucarp as it is, the agent
    says why, and ``ucarp.status`` shows it ignored."""
    master = cluster.settled()
    backup = other(master)
    (before,) = ucarp_args(cluster, backup)
    try:
        assert cluster.zlogin(backup, plant).returncode == 0
        assert cluster.zlogin(backup, f"svcadm refresh {FMRI}").returncode == 0
        wait_for(lambda: f"ignoring {OVERRIDE}: {why}" in cluster.zlogin(backup, f"cat {LOG}").stdout, SETTLE,
                 what=f"{backup}'s agent ignoring the override")  # fmt: skip
        assert ucarp_args(cluster, backup) == [before]
        assert status_of(cluster, backup)["override"]["ignored"]
        assert cluster.holders() == [master]
    finally:
        cluster.zlogin(backup, f"rm -f {OVERRIDE} /tmp/o")
    assert status_of(cluster, backup)["override"] is None


def test_an_override_left_by_an_interrupted_step_expires(cluster):
    """A backup left slow by a switchover or rollout that did not finish
    (its runner died) runs on its own options again once the override
    expires: a later failover is not slowed for long."""
    master = cluster.settled()
    backup = other(master)
    minion = cluster.minions[NODES[backup]["host"]]
    minion.call("ucarp.override", "web", backup, "slow", "ttl=4")
    wait_for(lambda: any("--deadratio=11" in a for a in ucarp_args(cluster, backup)), SETTLE,
             what=f"{backup} slow")  # fmt: skip
    wait_for(lambda: (a := ucarp_args(cluster, backup)) and not any("--deadratio=11" in x for x in a), SETTLE,
             what=f"{backup} on its own options again")  # fmt: skip
    assert "no longer good" in cluster.zlogin(backup, f"cat {LOG}").stdout
    assert "expired" in status_of(cluster, backup)["override"]["ignored"]
    assert cluster.holders() == [master]
    cluster.zlogin(backup, f"rm -f {OVERRIDE}")


def test_new_options_on_a_refresh_hand_the_master_over(cluster, minions, set_pillar, record_property):
    """A highstate that changes a timing on every node at once: each agent
    restarts ucarp on it, the master handing over first (no gap)."""
    master = cluster.settled()
    changed = dict(CLUSTER, advskew=2)
    set_pillar({"web": changed})
    try:

        def apply():
            for minion in minions.values():
                minion.apply("ucarp")

        handed_over(cluster, master, apply, record_property, "refresh")
        for alias in NODES:
            wait_for(lambda a=alias: any("--advskew=2" in x for x in ucarp_args(cluster, a)), SETTLE,
                     what=f"{alias} on the new options")  # fmt: skip
        cluster.settled()
    finally:
        set_pillar({"web": CLUSTER})
        for minion in minions.values():
            minion.apply("ucarp")
        cluster.settled()
