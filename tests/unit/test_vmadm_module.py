"""Unit tests of _modules/vmadm.py with canned vmadm results."""

import json

import pytest
from salt.exceptions import CommandExecutionError, SaltInvocationError
from support import FakeRun, load_salt_module

UUID_A = "5c1b5a8e-0c55-4b2c-8b3a-2d7d0e6d0f7e"
UUID_B = "7d2c6b9f-1d66-4c3d-9c4b-3e8e1f7e1a8f"
VM_A = {
    "uuid": UUID_A,
    "alias": "zoneA",
    "brand": "joyent",
    "state": "running",
    "max_physical_memory": 512,
    "type": "OS",
    "nics": [{"interface": "net0", "mac": "90:b8:d0:00:00:01", "ip": "192.0.2.11"}],
}
VM_B = dict(VM_A, uuid=UUID_B, alias="zoneB", state="stopped", nics=[{"interface": "net0", "mac": "90:b8:d0:00:00:02"}])


def ok(stdout="", stderr=""):
    return {"stdout": stdout, "stderr": stderr, "retcode": 0}


def fail(stderr, retcode=1):
    return {"stdout": "", "stderr": stderr, "retcode": retcode}


@pytest.fixture
def run():
    return FakeRun({("vmadm", "lookup", "-j"): ok(json.dumps([VM_A, VM_B]))})


@pytest.fixture
def vmadm(run):
    return load_salt_module("_modules", "vmadm", salt={"cmd.run_all": run})


def test_virtual_says_why_it_refuses(vmadm, monkeypatch):
    monkeypatch.setattr(vmadm.salt.utils.path, "which", lambda name: None)
    assert vmadm.__virtual__() == (False, "vmadm: the vmadm command was not found (it exists in a SmartOS global zone)")
    monkeypatch.setattr(vmadm.salt.utils.path, "which", lambda name: "/usr/sbin/vmadm")
    assert vmadm.__virtual__() == "vmadm"


def test_list_costs_one_process_and_is_cached(vmadm, run):
    listed = vmadm.list_()
    assert listed == {
        UUID_A: {"uuid": UUID_A, "type": "OS", "ram": 512, "state": "running", "alias": "zoneA"},
        UUID_B: {"uuid": UUID_B, "type": "OS", "ram": 512, "state": "stopped", "alias": "zoneB"},
    }
    vmadm.list_(search="state=running")
    vmadm.lookup(search={"alias": "zoneB"})
    assert run.argvs() == [["vmadm", "lookup", "-j"]]
    assert run.calls[0][1]["python_shell"] is False


def test_list_search_fields_and_unkeyed(vmadm):
    rows = vmadm.list_(search="nics.*.ip=192.0.2.11", fields="alias,nics.0.mac", keyed=False)
    assert rows == [{"alias": "zoneA", "nics.0.mac": "90:b8:d0:00:00:01"}]
    with pytest.raises(SaltInvocationError, match="key=value"):
        vmadm.list_(search="running")


def test_writes_drop_the_cache(vmadm, run):
    run.results[("vmadm", "start")] = ok(stderr=f"Successfully started VM {UUID_B}")
    vmadm.list_()
    vmadm.start(UUID_B)
    vmadm.list_()
    assert run.argvs().count(["vmadm", "lookup", "-j"]) == 2


def test_alias_resolved_with_one_unique_lookup(vmadm, run):
    run.results[("vmadm", "lookup", "-1", "alias=zoneA")] = ok(UUID_A + "\n")
    run.results[("vmadm", "get", UUID_A)] = ok(json.dumps(VM_A))
    assert vmadm.get("zoneA") == VM_A
    assert vmadm.get("zoneA") == VM_A
    assert run.argvs().count(["vmadm", "lookup", "-1", "alias=zoneA"]) == 1


def test_uuid_is_taken_as_it_is(vmadm, run):
    assert vmadm.uuid(UUID_A.upper()) == UUID_A
    assert run.calls == []


def test_unknown_and_ambiguous_aliases(vmadm, run):
    run.results[("vmadm", "lookup", "-1", "alias=ghost")] = fail("Requested unique lookup but found 0 results.")
    run.results[("vmadm", "lookup", "-1", "alias=twin")] = fail("Requested unique lookup but found 2 results.")
    with pytest.raises(CommandExecutionError, match="no VM has the alias 'ghost'"):
        vmadm.get("ghost")
    with pytest.raises(CommandExecutionError, match="the alias 'twin' names 2 VMs; give the UUID instead"):
        vmadm.start("twin")


@pytest.mark.parametrize(
    "hostile",
    ["$(reboot)", "zoneA; rm -rf /", "../../etc/passwd", "zone\0A", "-F", "~.*", "alias=x", "", None, 42],
)
def test_hostile_names_run_nothing(vmadm, run, hostile):
    for call in (vmadm.get, vmadm.start, vmadm.stop, vmadm.delete, vmadm.uuid):
        with pytest.raises(SaltInvocationError, match="vmadm: "):
            call(hostile)
    assert run.calls == []


def test_get_unknown_uuid_carries_vmadms_message(vmadm, run):
    run.results[("vmadm", "get")] = fail(f"zoneadm: {UUID_B}: No such zone configured")
    with pytest.raises(CommandExecutionError) as info:
        vmadm.get(UUID_B)
    assert str(info.value) == f"vmadm get: zoneadm: {UUID_B}: No such zone configured"


def test_create_passes_json_on_stdin_and_returns_the_uuid(vmadm, run):
    run.results[("vmadm", "create")] = ok(stderr=f"Successfully created VM {UUID_A}\n")
    config = {"brand": "joyent", "alias": "zoneA", "customer_metadata": {"secret": "s3cret"}}
    assert vmadm.create(config) == UUID_A
    argv, kwargs = run.calls[-1]
    assert argv == ["vmadm", "create"]
    assert json.loads(kwargs["stdin"]) == config
    assert "s3cret" not in " ".join(argv)
    assert kwargs["output_loglevel"] == "quiet"


def test_create_accepts_json_text_and_rejects_nonsense(vmadm, run):
    run.results[("vmadm", "create")] = ok(stderr=f"Successfully created VM {UUID_A}\n")
    assert vmadm.create('{"brand": "joyent"}') == UUID_A
    for bad in ("{not json", "[1]", {}, None):
        with pytest.raises(SaltInvocationError):
            vmadm.create(bad)


def test_create_failure_is_vmadms_message(vmadm, run):
    run.results[("vmadm", "create")] = fail("Invalid value(s) for: max_physical_memory,nics.0.ip")
    with pytest.raises(CommandExecutionError, match=r"^vmadm create: Invalid value\(s\) for: max_physical_memory"):
        vmadm.create({"brand": "joyent"})


def test_update_merges_properties_and_kwargs(vmadm, run):
    run.results[("vmadm", "update")] = ok(stderr=f"Successfully updated VM {UUID_A}")
    assert vmadm.update(UUID_A, {"alias": "a"}, max_physical_memory=1024, __pub_fun="vmadm.update")
    argv, kwargs = run.calls[-1]
    assert argv == ["vmadm", "update", UUID_A]
    assert json.loads(kwargs["stdin"]) == {"alias": "a", "max_physical_memory": 1024}
    with pytest.raises(SaltInvocationError, match="at least one property"):
        vmadm.update(UUID_A)


def test_update_nic_keys_the_change_by_mac(vmadm, run):
    run.results[("vmadm", "get", UUID_A)] = ok(json.dumps(VM_A))
    run.results[("vmadm", "update")] = ok(stderr=f"Successfully updated VM {UUID_A}")
    vmadm.update_nic(UUID_A, "net0", allowed_ips=["192.0.2.100"])
    payload = json.loads(run.calls[-1][1]["stdin"])
    assert payload == {"update_nics": [{"mac": "90:b8:d0:00:00:01", "allowed_ips": ["192.0.2.100"]}]}
    with pytest.raises(CommandExecutionError, match="has no NIC net3"):
        vmadm.update_nic(UUID_A, "net3", allowed_ips=[])


def test_start_and_stop_no_ops_are_not_errors(vmadm, run):
    run.results[("vmadm", "start")] = ok(stderr=f"VM {UUID_A} is already 'running'")
    run.results[("vmadm", "stop")] = ok(stderr=f"VM {UUID_B} is already not 'running' (currently: stopped)")
    assert vmadm.start(UUID_A) is True
    assert vmadm.stop(UUID_B, force=True) is True
    assert run.argvs()[-1] == ["vmadm", "stop", UUID_B, "-F"]


def test_exists(vmadm, run):
    run.results[("vmadm", "lookup", "-1", "alias=ghost")] = fail("Requested unique lookup but found 0 results.")
    assert vmadm.exists(UUID_A) is True
    assert vmadm.exists("11111111-2222-3333-4444-555555555555") is False
    assert vmadm.exists("ghost") is False


def test_validate_returns_vmadms_lists(vmadm, run):
    problems = {"bad_values": ["max_swap"], "bad_properties": [], "missing_properties": []}
    run.results[("vmadm", "validate")] = fail(json.dumps(problems, indent=2))
    assert vmadm.validate({"brand": "joyent", "max_swap": "x"}) == dict(problems, valid=False)
    run.results[("vmadm", "validate")] = ok(stderr="VALID 'create' payload for joyent brand VMs.")
    assert vmadm.validate({"brand": "joyent"}) == {"valid": True}
    assert run.argvs()[-1] == ["vmadm", "validate", "create"]
    with pytest.raises(SaltInvocationError):
        vmadm.validate({"brand": "joyent"}, action="destroy")
