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


def in_run(module):
    """Open a run's store for ``module``, as a state run does (``_utils/run_cache.py``)."""
    module.__utils__["run_cache.begin"](module.__context__, "run-1")


def test_list_costs_one_process_and_is_cached_for_a_run(vmadm, run):
    in_run(vmadm)
    listed = vmadm.list_()
    # As Salt's own smartos_vmadm gave it: keyed by the first field, values as vmadm list -p prints them.
    assert listed == {
        UUID_A: {"type": "OS", "ram": "512", "state": "running", "alias": "zoneA"},
        UUID_B: {"type": "OS", "ram": "512", "state": "stopped", "alias": "zoneB"},
    }
    vmadm.list_(search="state=running")
    vmadm.lookup(search={"alias": "zoneB"})
    assert run.argvs() == [["vmadm", "lookup", "-j"]]
    assert run.calls[0][1]["python_shell"] is False
    # In a run, a VM's whole object and an alias come from that one lookup too.
    assert vmadm.get("zoneA") == VM_A
    assert vmadm.state("zoneB") == "stopped"
    assert run.argvs() == [["vmadm", "lookup", "-j"]]


def test_outside_a_run_nothing_is_cached(vmadm, run):
    """An ad hoc call (or the beacon, in the minion's long-lived process) asks
    vmadm every time: a zone created meanwhile is seen."""
    vmadm.list_()
    run.results[("vmadm", "lookup", "-j")] = ok(json.dumps([VM_A]))
    assert list(vmadm.list_()) == [UUID_A]
    assert run.argvs() == [["vmadm", "lookup", "-j"]] * 2
    assert vmadm.__context__ == {}


def test_a_write_drops_the_runs_cache(vmadm, run):
    in_run(vmadm)
    vmadm.list_()
    run.results[("vmadm", "start")] = ok(stderr=f"Successfully started VM {UUID_B}")
    vmadm.start(UUID_B)
    vmadm.list_()
    assert run.argvs().count(["vmadm", "lookup", "-j"]) == 2


def test_list_search_fields_and_unkeyed(vmadm):
    rows = vmadm.list_(search="nics.*.ip=192.0.2.11", fields="alias,nics.0.mac", keyed=False)
    assert rows == [{"alias": "zoneA", "nics.0.mac": "90:b8:d0:00:00:01"}]
    assert vmadm.list_(order="alias", keyed=False) == ["zoneA", "zoneB"]
    assert vmadm.list_(order="alias,autoboot,nics.0.ip", keyed=False) == [
        {"alias": "zoneA", "autoboot": "", "nics.0.ip": "192.0.2.11"},
        {"alias": "zoneB", "autoboot": "", "nics.0.ip": ""},
    ]
    with pytest.raises(SaltInvocationError, match="key=value"):
        vmadm.list_(search="running")
    with pytest.raises(SaltInvocationError, match="order or fields"):
        vmadm.list_(order="uuid", fields="alias")
    # A keyword that is no argument and no VM's property is a typo, not an empty search.
    with pytest.raises(SaltInvocationError, match=r"list got serach=\.\.\., which is neither one of its arguments"):
        vmadm.list_(order="hostname", serach="state=running")
    with pytest.raises(SaltInvocationError, match="lookup got ordr="):
        vmadm.lookup(ordr="uuid")
    assert vmadm.list_(state="provisioning") == {}  # a property, no VM matches: a real empty answer


def test_list_takes_the_call_shapes_of_salts_smartos_states(vmadm, run):
    """salt/states/smartos.py (3006/3007): ``name in vmadm.list(order="hostname", search="state=running")``."""
    run.results[("vmadm", "lookup", "-j")] = ok(
        json.dumps([dict(VM_A, hostname="a.example.com"), dict(VM_B, hostname="b.example.com", autoboot=True)])
    )
    assert vmadm.list_(order="hostname") == {"a.example.com": {}, "b.example.com": {}}
    assert list(vmadm.list_(order="hostname", search="state=running")) == ["a.example.com"]
    assert list(vmadm.list_(order="hostname", search="state=stopped")) == ["b.example.com"]
    assert vmadm.list_(order="alias,autoboot", search="alias=~^zone") == {
        "zoneA": {"autoboot": ""},
        "zoneB": {"autoboot": "true"},
    }
    assert list(vmadm.list_(order="alias", sort="-alias")) == ["zoneB", "zoneA"]
    with pytest.raises(SaltInvocationError, match="not a regular expression"):
        vmadm.list_(search="alias=~(")


def test_list_sorts_as_vmadm_does(vmadm, run):
    big = dict(VM_B, max_physical_memory=4096)
    small = dict(VM_A, max_physical_memory=256)
    run.results[("vmadm", "lookup", "-j")] = ok(json.dumps([big, small]))
    assert list(vmadm.list_(order="alias")) == ["zoneA", "zoneB"]  # default: ram, then uuid
    assert list(vmadm.list_(order="alias", sort="-ram")) == ["zoneB", "zoneA"]


def test_writes_drop_the_cache(vmadm, run):
    run.results[("vmadm", "start")] = ok(stderr=f"Successfully started VM {UUID_B}")
    vmadm.list_()
    vmadm.start(UUID_B)
    vmadm.list_()
    assert run.argvs().count(["vmadm", "lookup", "-j"]) == 2


def resolves(run, term, *uuids):
    """``vmadm lookup -j -o uuid <term>`` answers with these VMs."""
    run.results[("vmadm", "lookup", "-j", "-o", "uuid", term)] = ok(json.dumps([{"uuid": u} for u in uuids]))


def test_alias_resolved_with_one_lookup_each_call(vmadm, run):
    resolves(run, "alias=zoneA", UUID_A)
    run.results[("vmadm", "get", UUID_A)] = ok(json.dumps(VM_A))
    assert vmadm.get("zoneA") == VM_A
    assert vmadm.get("zoneA") == VM_A
    assert run.argvs().count(["vmadm", "lookup", "-j", "-o", "uuid", "alias=zoneA"]) == 2  # no run: asked each time


def test_key_names_what_the_vm_argument_is(vmadm, run):
    """Salt's own module and its smartos states call ``get(name, key="hostname")``, ``stop(vm=..., key=...)``."""
    resolves(run, "hostname=a.example.com", UUID_A)
    resolves(run, "alias=zoneB", UUID_B)
    run.results[("vmadm", "get", UUID_A)] = ok(json.dumps(VM_A))
    run.results[("vmadm", "stop")] = ok(stderr=f"Successfully completed stop for VM {UUID_B}")
    assert vmadm.get("a.example.com", key="hostname") == VM_A
    assert vmadm.stop(vm="zoneB", key="alias") is True
    assert run.argvs()[-1] == ["vmadm", "stop", UUID_B]
    assert vmadm.uuid(UUID_A, key="uuid") == UUID_A
    with pytest.raises(SaltInvocationError, match="key=uuid, but 'zoneA' is not a VM UUID"):
        vmadm.get("zoneA", key="uuid")
    with pytest.raises(SaltInvocationError, match="key must be one of uuid, alias, hostname, not 'name'"):
        vmadm.start("zoneA", key="name")


def test_uuid_is_taken_as_it_is(vmadm, run):
    assert vmadm.uuid(UUID_A.upper()) == UUID_A
    assert run.calls == []


def test_unknown_and_ambiguous_aliases(vmadm, run):
    resolves(run, "alias=ghost")
    resolves(run, "alias=twin", UUID_A, UUID_B)
    with pytest.raises(vmadm.LookupCountError, match="no VM has the alias 'ghost'") as info:
        vmadm.get("ghost")
    assert info.value.count == 0
    with pytest.raises(CommandExecutionError, match="the alias 'twin' names 2 VMs; give the UUID instead"):
        vmadm.start("twin")
    resolves(run, "hostname=ghost.example.com")
    with pytest.raises(CommandExecutionError, match="no VM has the hostname 'ghost.example.com'"):
        vmadm.get("ghost.example.com", key="hostname")


def test_lookup_one_returns_the_uuid_and_order_picks_properties(vmadm, run):
    assert vmadm.lookup("alias=zoneB", one=True) == UUID_B
    assert vmadm.lookup(search="state=running", order="uuid,alias") == [{"uuid": UUID_A, "alias": "zoneA"}]
    with pytest.raises(vmadm.LookupCountError, match="Requested unique lookup but found 2 results"):
        vmadm.lookup("brand=joyent", one=True)


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
    for bad in ("{not json", "[1]", {}):
        with pytest.raises(SaltInvocationError):
            vmadm.create(bad)
    with pytest.raises(SaltInvocationError, match="needs a config, properties or from_file"):
        vmadm.create()
    with pytest.raises(SaltInvocationError, match="not valid JSON .*from_file="):
        vmadm.create("/opt/vm/zoneA.json")


def test_create_takes_properties_or_a_file_as_salts_own_module(vmadm, run):
    run.results[("vmadm", "create")] = ok(stderr=f"Successfully created VM {UUID_A}\n")
    nics = [{"nic_tag": "admin", "ip": "192.0.2.11", "netmask": "255.255.255.0"}]
    assert vmadm.create(brand="joyent", hostname="a", nics=nics, __pub_fun="vmadm.create") == UUID_A
    assert json.loads(run.calls[-1][1]["stdin"]) == {"brand": "joyent", "hostname": "a", "nics": nics}
    assert vmadm.create(from_file="/opt/vm/a.json") == UUID_A
    assert run.calls[-1][0] == ["vmadm", "create", "-f", "/opt/vm/a.json"]
    assert run.calls[-1][1]["stdin"] is None
    with pytest.raises(SaltInvocationError, match="in from_file or as properties, not both"):
        vmadm.create(from_file="/opt/vm/a.json", brand="joyent")
    with pytest.raises(SaltInvocationError, match="from_file must be an absolute path"):
        vmadm.create(from_file="a.json")


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


def test_update_as_salts_smartos_state_calls_it(vmadm, run):
    resolves(run, "hostname=a.example.com", UUID_A)
    run.results[("vmadm", "update")] = ok(stderr=f"Successfully updated VM {UUID_A}")
    changes = {"max_physical_memory": 1024, "set_customer_metadata": {"role": "web"}}
    assert vmadm.update(vm="a.example.com", key="hostname", **changes) is True
    argv, kwargs = run.calls[-1]
    assert argv == ["vmadm", "update", UUID_A]
    assert json.loads(kwargs["stdin"]) == changes
    assert vmadm.update(UUID_A, from_file="/opt/vm/a-update.json") is True
    assert run.calls[-1][0] == ["vmadm", "update", UUID_A, "-f", "/opt/vm/a-update.json"]


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


def test_start_options_stop_timeout_and_info_type(vmadm, run):
    run.results[("vmadm", "start")] = ok(stderr=f"Successfully started VM {UUID_A}")
    run.results[("vmadm", "stop")] = ok(stderr=f"Successfully completed stop for VM {UUID_A}")
    run.results[("vmadm", "info")] = ok(json.dumps({"vnc": {"port": 5900}}))
    assert vmadm.start(UUID_A, "order=c,once=d cdrom=/iso/x.iso,ide") is True
    assert run.argvs()[-1] == ["vmadm", "start", UUID_A, "order=c,once=d", "cdrom=/iso/x.iso,ide"]
    assert vmadm.stop(UUID_A, timeout=30) is True
    assert run.argvs()[-1] == ["vmadm", "stop", UUID_A, "-t", "30"]
    assert vmadm.info(UUID_A, "vnc") == {"vnc": {"port": 5900}}
    assert run.argvs()[-1] == ["vmadm", "info", UUID_A, "vnc"]
    calls = len(run.calls)
    with pytest.raises(SaltInvocationError, match="start options are key=value words"):
        vmadm.start(UUID_A, "order=c;reboot")
    with pytest.raises(SaltInvocationError, match="whole number of seconds"):
        vmadm.stop(UUID_A, timeout="soon")
    assert len(run.calls) == calls


def test_exists(vmadm, run):
    resolves(run, "alias=ghost")
    resolves(run, "alias=twin", UUID_A, UUID_B)
    assert vmadm.exists(UUID_A) is True
    assert vmadm.exists("11111111-2222-3333-4444-555555555555") is False
    assert vmadm.exists("ghost") is False
    assert vmadm.exists("twin") is True


def test_validate_returns_vmadms_lists(vmadm, run):
    problems = {"bad_values": ["max_swap"], "bad_properties": [], "missing_properties": []}
    run.results[("vmadm", "validate")] = fail(json.dumps(problems, indent=2))
    assert vmadm.validate({"brand": "joyent", "max_swap": "x"}) == dict(problems, valid=False)
    run.results[("vmadm", "validate")] = ok(stderr="VALID 'create' payload for joyent brand VMs.")
    assert vmadm.validate({"brand": "joyent"}) == {"valid": True}
    assert run.argvs()[-1] == ["vmadm", "validate", "create"]
    with pytest.raises(SaltInvocationError):
        vmadm.validate({"brand": "joyent"}, action="destroy")
    run.results[("vmadm", "validate")] = fail("Invalid brand: zone")
    with pytest.raises(CommandExecutionError, match="^vmadm validate: Invalid brand: zone$"):
        vmadm.validate({"brand": "zone"})
