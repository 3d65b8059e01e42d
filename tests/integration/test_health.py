"""Health checks of a cluster's nodes, run by each zone's ucarp agent.

One cluster, ``web``, with a node on each simulated hypervisor and the test
bed's web service (bound to every address: a hot standby) in both zones.
The nodes check that the service is online and accepts connections on
their own address.  The tests run in order on one cluster and follow its
VIP: a node whose app stops gives the VIP up to its healthy peer and does
not take it back when it recovers (no preemption); with every node sick the
master keeps the VIP; a recovered backup takes it from a sick master; a
command check; removing the checks leaves plain UCARP.

Which zone is master is UCARP's choice: every test finds it with
``holders()`` and waits, bounded, for what must follow.  A health file's
records are ``<seq> <epoch> healthy|sick <cluster> <action> [detail]``; a
test waits for a record newer than the ones it has already seen.
"""

import copy
import re
import time

import pytest
from support import load_salt_module, wait_for

from smartos_sim import vipapp

pytestmark = pytest.mark.root

MODEL = load_salt_module("_utils", "ucarp_model")
APP = vipapp.FMRI
VIP = "192.0.2.100"
CHECKS_FILE = "/opt/local/etc/ucarp/web.checks"
HEALTH_FILE = "/var/db/ucarp/web.health"
NODES = {"web-a": {"host": "gz1", "ip": "192.0.2.11"}, "web-b": {"host": "gz2", "ip": "192.0.2.12"}}
HEALTH = {
    "interval": 1,
    "timeout": 2,
    "fall": 2,
    "rise": 2,
    "port": 9201,
    "checks": [{"service": APP}, {"tcp": 8080}],
}
CLUSTER = {"vip": VIP, "vhid": 101, "password": "web-Health-1", "nodes": NODES, "health": HEALTH}
SICK_FLAG = "/var/tmp/sick"

# Bounds, in seconds: a failover takes fall * interval (2 s) to notice and
# advbase * deadratio (3 s) for the peer to take over; the bounds are wide.
SETTLE = 60
STAY = 6  # how long a VIP that must not move is watched
SETTLED = 3  # after restarts: one holder, the same, for longer than an advert
ALL_SICK_STAY = 10


def other(alias):
    (peer,) = [a for a in NODES if a != alias]
    return peer


class Nodes:
    """The two nodes of ``web``: their zones, VIP, health records, app."""

    def __init__(self, minions):
        self.minions = minions
        self.uuids = {}

    def gz(self, alias):
        return self.minions[NODES[alias]["host"]].gz

    def uuid(self, alias):
        if alias not in self.uuids:
            gz = self.gz(alias)
            self.uuids[alias] = gz.run("vmadm", "lookup", "-1", f"alias={alias}", check=True).stdout.strip()
        return self.uuids[alias]

    def zlogin(self, alias, command):
        return self.gz(alias).zlogin(self.uuid(alias), command)

    def holders(self):
        return [a for a in NODES if f"inet {VIP} " in self.zlogin(a, "/usr/sbin/ifconfig -a").stdout]

    def master(self, settle=0):
        """The only holder of the VIP, once there is exactly one (the same
        one for ``settle`` seconds: after restarts, two nodes that both
        became master need an advert to sort it out)."""
        held = {}

        def one():
            found = self.holders()
            if len(found) != 1:
                held.clear()
                return None
            if held.get("alias") != found[0]:
                held.update(alias=found[0], since=time.monotonic())
            return found[0] if time.monotonic() - held["since"] >= settle else None

        return self.wait(one, f"one holder of the VIP for {settle} s")

    def records(self, alias):
        return MODEL.parse_health(self.zlogin(alias, f"cat {HEALTH_FILE} 2>/dev/null").stdout, "web")

    def last(self, alias):
        records = self.records(alias)
        return records[-1] if records else None

    def seq(self, alias):
        last = self.last(alias)
        return last["seq"] if last else 0

    def wait_record(self, alias, state, action, after=0, timeout=SETTLE):
        """Wait until the node's last record, newer than seq ``after``, is ``state action``."""

        def reached():
            last = self.last(alias)
            ok = last and last["seq"] > after and (last["state"], last["action"]) == (state, action)
            return last if ok else None

        return self.wait(reached, f"{alias}: last health record '{state} {action}' after {after}", timeout)

    def ucarp_pid(self, alias):
        out = self.zlogin(alias, "svcs -Hp svc:/network/ucarp:web").stdout
        found = re.search(r"\s(\d+) ucarp$", out, re.M)
        return found.group(1) if found else None

    def app(self, alias, on):
        proc = self.zlogin(alias, f"svcadm {'enable' if on else 'disable'} {APP}")
        assert proc.returncode == 0, proc.stderr
        want = "online" if on else "disabled"
        self.wait(
            lambda: self.zlogin(alias, f"svcs -H -o state {APP}").stdout.strip() == want, f"{APP} {want} in {alias}"
        )

    def turn_app(self, alias, on, action):
        """Start or stop the app in a zone; the agent's record of it (``action``)."""
        before = self.seq(alias)
        self.app(alias, on)
        return self.wait_record(alias, "healthy" if on else "sick", action, after=before)

    def recover(self, alias):
        """Start the app again in a sick zone: healthy, eligible, its ucarp running."""
        self.turn_app(alias, True, "eligible")
        self.wait(lambda: self.ucarp_pid(alias), f"ucarp running again in {alias}")

    def wait(self, predicate, what, timeout=SETTLE, interval=0.1):
        """``wait_for``, with what the zones say when it times out."""
        try:
            return wait_for(predicate, timeout, interval=interval, what=what)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{self.diagnosis()}") from None

    def diagnosis(self):
        """What the zones say about the cluster, for a failure message."""
        files = (HEALTH_FILE, "/var/db/ucarp/web.transitions", "/var/svc/log/network-ucarp:web.log")
        out = []
        for alias in NODES:
            for path in files:
                out.append(f"--- {alias}:{path}\n" + self.zlogin(alias, f"tail -n 25 {path} 2>&1").stdout)
        return "\n".join(out)

    def stays(self, alias, seconds):
        """Sample the holders for ``seconds``: always exactly ``alias`` (None: nobody)."""
        seen = []
        want = [alias] if alias else []
        end = time.monotonic() + seconds
        for _ in range(int(seconds / 0.2) + 1):
            found = self.holders()
            seen.append(found)
            if found != want:
                raise AssertionError(f"holders {found}, not {want} (sample {len(seen)})\n{self.diagnosis()}")
            if time.monotonic() >= end:
                break
            time.sleep(0.2)
        return seen


@pytest.fixture(scope="module")
def client(bed):
    return bed.host("client", "192.0.2.200/24")


@pytest.fixture(scope="module")
def nodes(minions):
    return Nodes(minions)


@pytest.fixture(scope="module")
def applied(minions, set_pillar, nodes, client):
    """Zones first, then the web service in each, then UCARP with health checks."""
    set_pillar({"web": CLUSTER})
    for minion in minions.values():
        minion.apply("ucarp.zones")
    for alias in NODES:
        vipapp.install(nodes.gz(alias), nodes.uuid(alias), VIP, bind="0.0.0.0")
        nodes.app(alias, True)
    for minion in minions.values():
        minion.apply("ucarp")
    return nodes


def answer(bed, client):
    return vipapp.answer(bed, client, VIP)


def wait_answer(bed, client, nodes, alias):
    nodes.wait(lambda: answer(bed, client) == alias, f"{alias} answering on the VIP", interval=0.5)


def test_healthy_nodes_one_master(bed, client, applied):
    nodes = applied
    for alias in NODES:
        assert nodes.zlogin(alias, f"grep -c '^check ' {CHECKS_FILE}").stdout.strip() == "2"
        nodes.wait_record(alias, "healthy", "eligible")
        nodes.wait(lambda a=alias: nodes.ucarp_pid(a), f"ucarp running in {alias}")
    master = nodes.master(settle=SETTLED)
    wait_answer(bed, client, nodes, master)
    for alias in NODES:
        assert nodes.last(alias)["state"] == "healthy" and nodes.last(alias)["action"] == "eligible"


def test_sick_master_steps_down(bed, client, applied):
    nodes = applied
    master = nodes.master()
    backup = other(master)
    record = nodes.turn_app(master, False, "stepped-down")
    assert APP in record["detail"], record
    nodes.wait(lambda: nodes.holders() == [backup], f"the VIP on {backup}")
    wait_answer(bed, client, nodes, backup)
    assert nodes.ucarp_pid(master) is None
    assert (nodes.last(backup)["state"], nodes.last(backup)["action"]) == ("healthy", "eligible")


def test_recovered_node_rejoins_as_backup(applied):
    nodes = applied
    master = nodes.master()
    recovered = other(master)
    assert nodes.last(recovered)["action"] == "stepped-down"
    nodes.recover(recovered)
    nodes.stays(master, STAY)  # no preemption: the VIP stays where it is
    assert nodes.ucarp_pid(recovered)


def test_all_sick_master_keeps_the_vip(applied):
    nodes = applied
    master = nodes.master()
    backup = other(master)
    # The backup first: were the master sick while its peer is still
    # healthy, it would rightly give the VIP up.
    nodes.turn_app(backup, False, "ineligible")
    nodes.wait(lambda: nodes.ucarp_pid(backup) is None, f"ucarp stopped in {backup}")
    record = nodes.turn_app(master, False, "kept-vip")
    assert APP in record["detail"], record
    nodes.stays(master, ALL_SICK_STAY)
    assert (nodes.last(master)["state"], nodes.last(master)["action"]) == ("sick", "kept-vip")
    assert (nodes.last(backup)["state"], nodes.last(backup)["action"]) == ("sick", "ineligible")
    assert nodes.ucarp_pid(master)


def test_recovered_backup_takes_over_from_a_sick_master(bed, client, applied):
    nodes = applied
    master = nodes.master()
    backup = other(master)
    before = {alias: nodes.seq(alias) for alias in NODES}
    nodes.app(backup, True)
    nodes.wait_record(backup, "healthy", "eligible", after=before[backup])
    nodes.wait_record(master, "sick", "stepped-down", after=before[master])
    nodes.wait(lambda: nodes.holders() == [backup], f"the VIP on {backup}")
    wait_answer(bed, client, nodes, backup)
    # Both healthy again, for the next tests.
    nodes.recover(master)
    assert nodes.holders() == [backup]


def test_a_sick_backup_does_not_take_the_vip_from_a_dead_master(applied):
    nodes = applied
    master = nodes.master()
    backup = other(master)
    nodes.turn_app(backup, False, "ineligible")
    gz, uuid = nodes.gz(master), nodes.uuid(master)
    gz.run("vmadm", "stop", "-F", uuid, check=True)  # dies: no down hook runs
    try:
        # Well past advbase x deadratio (3 s): a healthy backup would hold the VIP by now.
        nodes.stays(None, 3 * STAY // 2)
    finally:
        gz.run("vmadm", "start", uuid, check=True)
    nodes.wait(lambda: nodes.holders() == [master], f"{master} back with the VIP")
    nodes.recover(backup)


def refreshed(nodes, alias):
    """How many refreshes the node's agent took without restarting ucarp."""
    log = nodes.zlogin(alias, "cat /var/svc/log/network-ucarp:web.log").stdout
    return log.count("refresh: options unchanged, ucarp left running")


def test_command_check(bed, client, minions, set_pillar, applied):
    nodes = applied
    new = copy.deepcopy(CLUSTER)
    new["health"]["checks"].append({"command": f"test ! -e {SICK_FLAG}"})
    set_pillar({"web": new})
    master = nodes.master(settle=SETTLED)
    pids = {alias: nodes.ucarp_pid(alias) for alias in NODES}
    refreshes = {alias: refreshed(nodes, alias) for alias in NODES}
    for minion in minions.values():
        minion.apply("ucarp")
    for alias in NODES:
        assert nodes.zlogin(alias, f"grep -x 'check command test ! -e {SICK_FLAG}' {CHECKS_FILE}").returncode == 0
        # Refreshed, not restarted: the agent reads its checks every round, ucarp runs on.
        nodes.wait(lambda a=alias: refreshed(nodes, a) > refreshes[a], f"{alias}'s agent refreshed")
    assert {alias: nodes.ucarp_pid(alias) for alias in NODES} == pids
    assert nodes.master(settle=SETTLED) == master
    backup = other(master)
    wait_answer(bed, client, nodes, master)

    before = nodes.seq(master)
    assert nodes.zlogin(master, f"touch {SICK_FLAG}").returncode == 0
    record = nodes.wait_record(master, "sick", "stepped-down", after=before)
    assert record["detail"] == "command check 1 exited 1", record
    nodes.wait(lambda: nodes.holders() == [backup], f"the VIP on {backup}")
    wait_answer(bed, client, nodes, backup)

    before = nodes.seq(master)
    assert nodes.zlogin(master, f"rm {SICK_FLAG}").returncode == 0
    nodes.wait_record(master, "healthy", "eligible", after=before)
    nodes.wait(lambda: nodes.ucarp_pid(master), f"ucarp running again in {master}")
    nodes.stays(backup, STAY)


def test_removing_health_leaves_plain_ucarp(minions, set_pillar, applied):
    nodes = applied
    plain = {k: v for k, v in CLUSTER.items() if k != "health"}
    set_pillar({"web": plain})
    for minion in minions.values():
        minion.apply("ucarp")
    counts = {}
    for alias in NODES:
        assert nodes.zlogin(alias, f"test -e {CHECKS_FILE}").returncode == 1, f"{CHECKS_FILE} left in {alias}"
        nodes.wait(lambda a=alias: nodes.ucarp_pid(a), f"ucarp running in {alias}")
        counts[alias] = len(nodes.records(alias))
    master = nodes.master(settle=SETTLED)
    # No checks any more: a stopped app no longer moves the VIP.
    nodes.app(master, False)
    nodes.stays(master, STAY)
    assert {alias: len(nodes.records(alias)) for alias in NODES} == counts
    assert nodes.ucarp_pid(other(master))
