"""Unit tests of _states/smartos_vm.py with a fake vmadm execution module."""

import copy
from unittest.mock import MagicMock

import pytest
from salt.exceptions import CommandExecutionError, SaltInvocationError
from support import IMAGE, load_salt_module

UUID = "5c1b5a8e-0c55-4b2c-8b3a-2d7d0e6d0f7e"
NEW_UUID = "7d2c6b9f-1d66-4c3d-9c4b-3e8e1f7e1a8f"
MAC0 = "90:b8:d0:00:00:01"


def vm_a(**extra):
    vm = {
        "uuid": UUID,
        "alias": "zoneA",
        "brand": "joyent",
        "image_uuid": IMAGE,
        "zonepath": f"/zones/{UUID}",
        "state": "running",
        "max_physical_memory": 512,
        "autoboot": True,
        "customer_metadata": {"role": "web"},
        "nics": [
            {
                "interface": "net0",
                "mac": MAC0,
                "nic_tag": "admin",
                "ip": "192.0.2.11",
                "netmask": "255.255.255.0",
                "primary": True,
                "allowed_ips": ["192.0.2.101", "192.0.2.100"],
            }
        ],
    }
    vm.update(extra)
    return vm


def config(**extra):
    cfg = {
        "brand": "joyent",
        "image_uuid": IMAGE,
        "max_physical_memory": 512,
        "nics": [{"nic_tag": "admin", "ip": "192.0.2.11", "netmask": "255.255.255.0", "primary": True}],
    }
    cfg.update(extra)
    return cfg


class FakeVmadm:
    def __init__(self, vm=None):
        self.vm = vm
        self.create = MagicMock(side_effect=self._create)
        self.update = MagicMock(return_value=True)
        self.start = MagicMock(return_value=True)
        self.stop = MagicMock(return_value=True)
        self.delete = MagicMock(return_value=True)

    def _create(self, cfg):
        self.vm = dict(copy.deepcopy(cfg), uuid=NEW_UUID, state="running")
        return NEW_UUID

    def exists(self, name):
        return self.vm is not None and name in (self.vm["alias"], self.vm["uuid"])

    def get(self, name):
        if not self.exists(name):
            raise CommandExecutionError(f"vmadm: no VM has the alias '{name}'")
        return copy.deepcopy(self.vm)

    def salt(self):
        return {
            "vmadm.exists": self.exists,
            "vmadm.get": self.get,
            "vmadm.state": lambda name: self.get(name)["state"],
            "vmadm.uuid": lambda name: self.get(name)["uuid"],
            "vmadm.lookup": lambda **kw: [],
            "vmadm.create": self.create,
            "vmadm.update": self.update,
            "vmadm.start": self.start,
            "vmadm.stop": self.stop,
            "vmadm.delete": self.delete,
        }


@pytest.fixture
def vmadm():
    return FakeVmadm(vm_a())


@pytest.fixture(params=[False, True], ids=["run", "test"])
def test_mode(request):
    return request.param


def load(vmadm, test=False):
    return load_salt_module("_states", "smartos_vm", salt=vmadm.salt(), opts={"test": test})


def test_virtual_needs_vmadm(vmadm):
    assert load(vmadm).__virtual__() == "smartos_vm"
    bare = load_salt_module("_states", "smartos_vm", salt={"zlogin.run": None})
    assert bare.__virtual__() == (False, "smartos_vm: needs the vmadm execution module (SmartOS global zone)")


# present: create ----------------------------------------------------------------


def test_missing_vm_is_created(test_mode):
    vmadm = FakeVmadm()
    ret = load(vmadm, test=test_mode).present("zoneA", config())
    if test_mode:
        assert ret["result"] is None
        assert ret["changes"] == {"uuid": {"old": None, "new": "(assigned by vmadm)"}}
        assert ret["comment"] == "VM zoneA would be created"
        vmadm.create.assert_not_called()
    else:
        assert ret["result"] is True
        assert ret["changes"] == {"uuid": {"old": None, "new": NEW_UUID}}
        vmadm.create.assert_called_once_with(dict(config(), alias="zoneA"))
        vmadm.start.assert_not_called()  # vmadm create booted it


def test_created_vm_not_booted_is_started():
    vmadm = FakeVmadm()
    vmadm.create.side_effect = lambda cfg: (setattr(vmadm, "vm", dict(cfg, uuid=NEW_UUID, state="stopped")), NEW_UUID)[
        1
    ]
    ret = load(vmadm).present("zoneA", config(autoboot=False))
    assert ret["changes"] == {"uuid": {"old": None, "new": NEW_UUID}, "state": {"old": "stopped", "new": "running"}}
    vmadm.start.assert_called_once_with(NEW_UUID)


def test_create_error():
    vmadm = FakeVmadm()
    vmadm.create.side_effect = CommandExecutionError("vmadm create: Invalid value(s) for: max_physical_memory")
    ret = load(vmadm).present("zoneA", config(max_physical_memory="lots"))
    assert ret == {
        "name": "zoneA",
        "result": False,
        "changes": {},
        "comment": "vmadm create: Invalid value(s) for: max_physical_memory",
    }


def test_ambiguous_alias_is_not_created_again():
    vmadm = FakeVmadm()
    salt = vmadm.salt()
    salt["vmadm.lookup"] = lambda **kw: [vm_a(), vm_a(uuid=NEW_UUID)]
    mod = load_salt_module("_states", "smartos_vm", salt=salt, opts={"test": False})
    ret = mod.present("zoneA", config())
    assert ret["result"] is False
    assert "names 2 VMs" in ret["comment"]
    vmadm.create.assert_not_called()


# present: existing VM -------------------------------------------------------------


def test_in_desired_state(vmadm, test_mode):
    cfg = config(max_physical_memory="512", autoboot="true", customer_metadata={"role": "web"})
    cfg["nics"][0]["allowed_ips"] = ["192.0.2.100", "192.0.2.101"]  # another order: the same
    ret = load(vmadm, test=test_mode).present("zoneA", cfg)
    assert ret == {"name": "zoneA", "result": True, "changes": {}, "comment": "VM zoneA is in the desired state"}
    vmadm.update.assert_not_called()
    vmadm.start.assert_not_called()


def test_nic_and_plain_changes_in_one_update(vmadm, test_mode):
    vmadm.vm["nics"][0].pop("allowed_ips")
    cfg = config(max_physical_memory=1024, tags={"cluster": "web"})
    cfg["nics"][0].update(allowed_ips=["192.0.2.100"], allow_mac_spoofing=True)
    ret = load(vmadm, test=test_mode).present("zoneA", cfg)
    assert ret["changes"] == {
        "max_physical_memory": {"old": 512, "new": 1024},
        "tags.cluster": {"old": None, "new": "web"},
        "nics.net0.allowed_ips": {"old": [], "new": ["192.0.2.100"]},
        "nics.net0.allow_mac_spoofing": {"old": False, "new": True},
    }
    if test_mode:
        assert ret["result"] is None
        assert ret["comment"] == "VM zoneA would be updated"
        vmadm.update.assert_not_called()
    else:
        assert ret["result"] is True
        vmadm.update.assert_called_once_with(
            "zoneA",
            {
                "max_physical_memory": 1024,
                "set_tags": {"cluster": "web"},
                "update_nics": [{"mac": MAC0, "allowed_ips": ["192.0.2.100"], "allow_mac_spoofing": True}],
            },
        )


def test_allowed_ips_change_is_order_insensitive_but_content_sensitive(vmadm):
    cfg = config()
    cfg["nics"][0]["allowed_ips"] = ["192.0.2.100", "192.0.2.102"]
    ret = load(vmadm).present("zoneA", cfg)
    assert ret["changes"] == {
        "nics.net0.allowed_ips": {"old": ["192.0.2.101", "192.0.2.100"], "new": ["192.0.2.100", "192.0.2.102"]}
    }
    payload = vmadm.update.call_args.args[1]
    assert payload == {"update_nics": [{"mac": MAC0, "allowed_ips": ["192.0.2.100", "192.0.2.102"]}]}


def test_nic_matched_by_interface_and_new_nic_added(vmadm):
    vmadm.vm["nics"].append({"interface": "net1", "mac": "90:b8:d0:00:00:02", "nic_tag": "external", "vlan_id": 10})
    cfg = config(
        nics=[
            {"interface": "net1", "nic_tag": "external", "vlan_id": "20"},
            {"interface": "net2", "nic_tag": "admin", "ip": "192.0.2.21", "netmask": "255.255.255.0"},
        ]
    )
    ret = load(vmadm).present("zoneA", cfg)
    assert ret["result"] is True
    assert vmadm.update.call_args.args[1] == {
        "update_nics": [{"mac": "90:b8:d0:00:00:02", "vlan_id": "20"}],
        "add_nics": [{"interface": "net2", "nic_tag": "admin", "ip": "192.0.2.21", "netmask": "255.255.255.0"}],
    }
    assert ret["changes"]["nics.net1.vlan_id"] == {"old": 10, "new": "20"}
    assert ret["changes"]["nics.net2"]["old"] is None


@pytest.mark.parametrize(
    ("key", "value"),
    [("image_uuid", "11111111-2222-3333-4444-555555555555"), ("brand", "joyent-minimal"), ("zonepath", "/zones/x")],
)
def test_immutable_difference_is_refused(vmadm, test_mode, key, value):
    ret = load(vmadm, test=test_mode).present("zoneA", config(**{key: value}))
    assert ret["result"] is False
    assert f"{key} differs" in ret["comment"]
    assert "vmadm cannot change it in place; delete and recreate the VM" in ret["comment"]
    vmadm.update.assert_not_called()


def test_stopped_vm_is_started(vmadm, test_mode):
    vmadm.vm["state"] = "stopped"
    ret = load(vmadm, test=test_mode).present("zoneA", config())
    assert ret["changes"] == {"state": {"old": "stopped", "new": "running"}}
    assert ret["result"] is (None if test_mode else True)
    assert vmadm.start.called is not test_mode
    vmadm.update.assert_not_called()


def test_running_false_leaves_state(vmadm):
    vmadm.vm["state"] = "stopped"
    ret = load(vmadm).present("zoneA", config(), running=False)
    assert ret["result"] is True and ret["changes"] == {}
    vmadm.start.assert_not_called()


def test_update_error(vmadm):
    vmadm.update.side_effect = CommandExecutionError("vmadm update: Invalid value(s) for: update_nics.0.allowed_ips")
    ret = load(vmadm).present("zoneA", config(max_physical_memory=1024))
    assert ret["result"] is False
    assert ret["comment"] == "vmadm update: Invalid value(s) for: update_nics.0.allowed_ips"
    assert ret["changes"] == {}


def test_start_error_keeps_update_changes(vmadm):
    vmadm.vm["state"] = "stopped"
    vmadm.start.side_effect = CommandExecutionError("vmadm start: zone could not boot")
    ret = load(vmadm).present("zoneA", config(max_physical_memory=1024))
    assert ret["result"] is False
    assert ret["changes"] == {"max_physical_memory": {"old": 512, "new": 1024}}


@pytest.mark.parametrize(
    ("cfg", "message"),
    [
        ("brand: joyent", "config must be a dict"),
        (["brand", "joyent"], "config must be a dict"),
        (config(alias="zoneB"), "config alias 'zoneB' differs from the state's name 'zoneA'"),
        (config(nics={"net0": {}}), "nics must be a list of NIC dicts"),
    ],
)
def test_bad_config(vmadm, cfg, message):
    ret = load(vmadm).present("zoneA", cfg)
    assert ret["result"] is False
    assert message in ret["comment"]
    vmadm.update.assert_not_called()
    vmadm.create.assert_not_called()


def test_alias_in_config_equal_to_name_is_fine(vmadm):
    assert load(vmadm).present("zoneA", config(alias="zoneA"))["result"] is True


def test_get_error(vmadm):
    salt = vmadm.salt()
    salt["vmadm.get"] = MagicMock(side_effect=SaltInvocationError("vmadm: 'a b' is neither a VM UUID nor an alias"))
    mod = load_salt_module("_states", "smartos_vm", salt=salt, opts={"test": False})
    ret = mod.present("zoneA", config())
    assert ret["result"] is False
    assert "neither a VM UUID nor an alias" in ret["comment"]


# absent, running, stopped ---------------------------------------------------------------


def test_absent(vmadm, test_mode):
    ret = load(vmadm, test=test_mode).absent("zoneA")
    assert ret["changes"] == {"uuid": {"old": UUID, "new": None}}
    assert ret["result"] is (None if test_mode else True)
    assert vmadm.delete.called is not test_mode


def test_absent_already():
    vmadm = FakeVmadm()
    ret = load(vmadm).absent("zoneA")
    assert ret["result"] is True and ret["changes"] == {}
    vmadm.delete.assert_not_called()


def test_absent_error(vmadm):
    vmadm.delete.side_effect = CommandExecutionError("vmadm delete: indestructible_zoneroot is set")
    ret = load(vmadm).absent("zoneA")
    assert ret == {
        "name": "zoneA",
        "result": False,
        "changes": {},
        "comment": "vmadm delete: indestructible_zoneroot is set",
    }


def test_stopped_and_running(vmadm, test_mode):
    mod = load(vmadm, test=test_mode)
    ret = mod.stopped("zoneA")
    assert ret["changes"] == {"state": {"old": "running", "new": "stopped"}}
    assert ret["result"] is (None if test_mode else True)
    assert vmadm.stop.called is not test_mode
    assert mod.running("zoneA") == {"name": "zoneA", "result": True, "changes": {}, "comment": "VM zoneA is running"}


def test_running_starts(vmadm):
    vmadm.vm["state"] = "stopped"
    ret = load(vmadm).running(UUID)
    assert ret["changes"] == {"state": {"old": "stopped", "new": "running"}}
    vmadm.start.assert_called_once_with(UUID)


@pytest.mark.parametrize("func", ["running", "stopped"])
def test_power_on_missing_vm(func):
    vmadm = FakeVmadm()
    ret = getattr(load(vmadm), func)("zoneA")
    assert ret["result"] is False
    assert ret["comment"] == "VM zoneA does not exist"
