"""The vmadm execution module through ``salt-call --local`` on the test bed."""

import os

import pytest
from support import recipe_zone

pytestmark = [pytest.mark.root, pytest.mark.usefixtures("recipe_image")]


def test_recipe_zone_lifecycle(salt_call):
    uuid = salt_call("vmadm.create", recipe_zone("func-a", "192.0.2.81"))
    assert len(uuid) == 36
    assert salt_call("vmadm.uuid", "func-a") == uuid
    vm = salt_call("vmadm.get", "func-a")
    assert (vm["uuid"], vm["state"], vm["nics"][0]["ip"]) == (uuid, "running", "192.0.2.81")
    listed = salt_call("vmadm.list", order="uuid,alias,state,max_physical_memory")
    assert listed[uuid] == {"alias": "func-a", "state": "running", "max_physical_memory": "512"}
    assert salt_call("vmadm.list", order="alias", search="state=running", keyed=False).count("func-a") == 1
    assert [v["uuid"] for v in salt_call("vmadm.lookup", "alias=func-a")] == [uuid]
    assert salt_call("vmadm.lookup", "alias=func-a", one=True) == uuid
    assert salt_call("vmadm.get", "func-a", key="hostname")["uuid"] == uuid  # the recipe's hostname is its alias
    assert salt_call("vmadm.exists", "func-a") is True

    assert salt_call("vmadm.update_nic", "func-a", "net0", allowed_ips=["192.0.2.100"], allow_mac_spoofing=True)
    nic = salt_call("vmadm.get", uuid)["nics"][0]
    assert (nic["allowed_ips"], nic["allow_mac_spoofing"]) == (["192.0.2.100"], True)
    assert salt_call("vmadm.update", "func-a", max_physical_memory=1024)
    assert salt_call("vmadm.get", uuid)["max_physical_memory"] == 1024

    assert salt_call("vmadm.stop", "func-a") is True
    assert salt_call("vmadm.state", "func-a") == "stopped"
    assert salt_call("vmadm.stop", "func-a") is True  # already stopped: not an error
    assert salt_call("vmadm.start", "func-a") is True
    assert salt_call("vmadm.start", "func-a") is True  # already running: not an error
    assert salt_call("vmadm.reboot", uuid) is True
    assert salt_call("vmadm.state", uuid) == "running"

    assert salt_call("vmadm.delete", "func-a") is True
    assert salt_call("vmadm.exists", "func-a") is False


def test_errors_carry_vmadms_message(salt_call):
    assert "no VM has the alias 'ghost'" in salt_call.error("vmadm.get", "ghost")
    unknown = "11111111-2222-3333-4444-555555555555"
    assert f"zoneadm: {unknown}: No such zone configured" in salt_call.error("vmadm.get", unknown)
    bad = recipe_zone("func-bad", "192.0.2.82", max_physical_memory="lots")
    assert "Invalid value(s) for: max_physical_memory" in salt_call.error("vmadm.create", bad)
    assert salt_call("vmadm.exists", "func-bad") is False  # nothing half-created


def test_ambiguous_alias(salt_call):
    first = salt_call("vmadm.create", recipe_zone("func-twin", "192.0.2.83", autoboot=False))
    second = salt_call("vmadm.create", recipe_zone("func-twin", "192.0.2.84", autoboot=False))
    assert "the alias 'func-twin' names 2 VMs; give the UUID instead" in salt_call.error("vmadm.start", "func-twin")
    for uuid in (first, second):
        assert salt_call("vmadm.delete", uuid) is True


def test_hostile_names_run_nothing(salt_call, tmp_path):
    marker = tmp_path / "pwned"
    for name in (f"$(touch {marker})", f"x;touch {marker}", "../../etc/passwd"):
        assert "is neither a VM UUID nor an alias" in salt_call.error("vmadm.start", name)
    assert not os.path.exists(marker)


def test_validate(salt_call):
    assert salt_call("vmadm.validate", recipe_zone("func-v", "192.0.2.85")) == {"valid": True}
    result = salt_call("vmadm.validate", recipe_zone("func-v", "192.0.2.85", max_swap="x"))
    assert result["valid"] is False and result["bad_values"] == ["max_swap"]


def test_docs_are_a_manual(salt_call):
    docs = salt_call("sys.doc", "vmadm")
    public = [name for name in docs if not name.startswith("vmadm._")]
    assert {"vmadm.list", "vmadm.get", "vmadm.create", "vmadm.update", "vmadm.update_nic"} <= set(public)
    for name in public:
        assert "CLI Example:" in docs[name], name
