"""Unit tests of ucarp.identity_kept (_states/ucarp.py): a running cluster's
password, VIP and VHID do not change one node at a time."""

import hashlib

import pytest
from support import load_salt_module

FMRI = "svc:/network/ucarp:web"
CONF = "/opt/local/etc/ucarp/web.conf"
PASS = "/opt/local/etc/ucarp/web.pass"
KEY = "ucarp:clusters:web:password"
RUNNING = "--interface=net0\n--srcip=192.0.2.11\n--vhid=101\n--addr=192.0.2.100\n--advbase=1\n"


def digest(text):
    return hashlib.sha256(text.encode()).hexdigest()


UUID = "7b0b4b2c-43a0-4c1f-9d43-0c8b6a1e2f11"


class Zone:
    def __init__(self, state="online", password="old-Secret", conf=RUNNING, zone_state="running"):
        self.state, self.files = state, {CONF: conf, PASS: password}
        self.zone_state = zone_state
        self.rollout = None

    def lookup(self, alias, state, order):
        assert (alias, order) == ("web-a", "uuid")
        return [{"uuid": UUID}] if self.zone_state == state else []

    def salt(self):
        return {
            "vmadm.lookup": self.lookup,
            "zlogin.run": None,
            "zlogin.svc_state": lambda zone, fmri: self.state,
            "zlogin.file_hash": lambda zone, path: digest(self.files[path]) if path in self.files else None,
            "zlogin.file_read": lambda zone, path: self.files[path],
            "config.get": lambda key, default=None: self.rollout if key == "ucarp_rollout" else default,
            "ucarp.plan": None,
        }


def kept(zone, password="old-Secret", conf=RUNNING, test=False):
    module = load_salt_module("_states", "ucarp", salt=zone.salt(), opts={"test": test})
    module.__pillar__ = {"ucarp": {"clusters": {"web": {"password": password}}}}
    return module.identity_kept("web", "web-a", CONF, conf, PASS, KEY, FMRI)


@pytest.mark.parametrize("test", [False, True], ids=["run", "test"])
def test_nothing_shared_changes(test):
    ret = kept(Zone(), conf=RUNNING.replace("--advbase=1", "--advbase=2"), test=test)
    assert ret["result"] is True and ret["changes"] == {}
    assert ret["comment"] == "Cluster web keeps its password, VIP and VHID in zone web-a"


@pytest.mark.parametrize("test", [False, True], ids=["run", "test"])
def test_a_new_password_on_a_running_node_is_refused_with_the_way_to_do_it(test):
    ret = kept(Zone(), password="new-Secret", test=test)
    assert ret["result"] is False
    assert "Cluster web runs in zone web-a and its password would change here alone" in ret["comment"]
    assert "salt-run ucarp.rollout web (nothing was written for this node)" in ret["comment"]
    assert "Secret" not in ret["comment"]


def test_a_new_vip_or_vhid_is_a_new_cluster():
    conf = RUNNING.replace("--addr=192.0.2.100", "--addr=192.0.2.101").replace("--vhid=101", "--vhid=102")
    zone = Zone()
    zone.rollout = "web"  # not even a rollout may do it
    ret = kept(zone, conf=conf)
    assert ret["result"] is False
    assert "its VIP and VHID would change here alone" in ret["comment"]
    assert "A new VIP or VHID is a new cluster" in ret["comment"]


def test_a_rollout_of_this_cluster_may_change_the_password():
    zone = Zone()
    zone.rollout = "web"
    assert kept(zone, password="new-Secret")["result"] is True
    zone.rollout = "db"  # another cluster's rollout does not open this one
    assert kept(zone, password="new-Secret")["result"] is False


@pytest.mark.parametrize("state", [None, "disabled", "offline", "maintenance"])
def test_a_node_that_does_not_run_has_nothing_to_protect(state):
    ret = kept(Zone(state=state), password="new-Secret")
    assert ret["result"] is True
    assert ret["comment"] == f"{FMRI} does not run in zone web-a: nothing to protect"


@pytest.mark.parametrize("zone_state", [None, "stopped"], ids=["no-zone", "stopped"])
def test_a_zone_that_does_not_run_has_nothing_to_protect(zone_state):
    """The guard runs before the zone exists or is started (it comes first)."""
    ret = kept(Zone(zone_state=zone_state), password="new-Secret")
    assert ret["result"] is True
    assert ret["comment"] == f"{FMRI} does not run in zone web-a: nothing to protect"
