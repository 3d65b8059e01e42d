"""Salt's own ``smartos`` states (3006/3007) through the formula's modules.

Where Salt still ships ``states/smartos.py`` it loads when ``vmadm.create``
and ``imgadm.list`` exist: on the test bed (as on a SmartOS hypervisor where
the formula is synced) those are the formula's ``vmadm`` and ``imgadm``
modules. An operator's existing ``smartos.vm_present`` / ``vm_running`` /
``vm_stopped`` / ``vm_absent`` states keep working with them: created, then
updated in place, stopped, started and deleted, as the states report it.
Salt 3008 has no ``smartos`` state at all (``smartos_vm.*`` replaces it, see
the README).
"""

import textwrap

import pytest
import salt.version
from support import IMAGE

pytestmark = [
    pytest.mark.root,
    pytest.mark.usefixtures("recipe_image"),
    pytest.mark.skipif(
        salt.version.__version_info__ >= (3008,), reason="Salt 3008 removed the smartos state with every SmartOS module"
    ),
]

HOSTNAME = "func-sm-host"  # vmadm: letters, digits and -, at most 63


def apply_sls(salt_call, tmp_path, body):
    """``state.template`` of an SLS, as an operator's state file would be rendered
    (the smartos state needs the ordered mappings of Salt's YAML renderer)."""
    sls = tmp_path / "smartos.sls"
    sls.write_text(textwrap.dedent(body))
    results = salt_call("state.template", str(sls))
    assert isinstance(results, dict), results
    failed = {k: v["comment"] for k, v in results.items() if v["result"] is False}
    assert not failed, failed
    (result,) = results.values()
    return result


def present(memory):
    return f"""\
        {HOSTNAME}:
          smartos.vm_present:
            - vmconfig:
                alias: func-sm
                brand: joyent
                image_uuid: {IMAGE}
                max_physical_memory: {memory}
                nics:
                  "90:b8:d0:5a:17:01":
                    nic_tag: admin
                    ip: 192.0.2.86
                    netmask: 255.255.255.0
        """


def power(state):
    return f"""\
        {HOSTNAME}:
          smartos.{state}
        """


def test_the_smartos_state_loads_on_the_formulas_modules(salt_call):
    functions = salt_call("sys.list_state_functions", "smartos")
    assert {"smartos.vm_present", "smartos.vm_running", "smartos.vm_stopped", "smartos.vm_absent"} <= set(functions)


def test_vm_present_running_stopped_absent(salt_call, tmp_path):
    created = apply_sls(salt_call, tmp_path, present(512))
    assert created["comment"] == f"vm {HOSTNAME} created"
    vm = salt_call("vmadm.get", HOSTNAME, key="hostname")
    assert (vm["alias"], vm["max_physical_memory"], vm["state"]) == ("func-sm", 512, "running")
    assert vm["nics"][0]["mac"] == "90:b8:d0:5a:17:01"

    updated = apply_sls(salt_call, tmp_path, present(1024))
    assert updated["comment"] == f"vm {HOSTNAME} updated"
    assert updated["changes"] == {HOSTNAME: {"max_physical_memory": 1024}}
    assert salt_call("vmadm.get", "func-sm")["max_physical_memory"] == 1024
    assert apply_sls(salt_call, tmp_path, present(1024))["comment"] == f"vm {HOSTNAME} is up to date"

    stopped = apply_sls(salt_call, tmp_path, power("vm_stopped"))
    assert (stopped["comment"], stopped["changes"]) == (f"vm {HOSTNAME} stopped", {HOSTNAME: "stopped"})
    assert salt_call("vmadm.state", "func-sm") == "stopped"
    assert apply_sls(salt_call, tmp_path, power("vm_stopped"))["comment"] == f"vm {HOSTNAME} already stopped"

    running = apply_sls(salt_call, tmp_path, power("vm_running"))
    assert (running["comment"], running["changes"]) == (f"vm {HOSTNAME} started", {HOSTNAME: "running"})
    assert salt_call("vmadm.state", "func-sm") == "running"
    assert apply_sls(salt_call, tmp_path, power("vm_running"))["comment"] == f"vm {HOSTNAME} already running"

    absent = apply_sls(salt_call, tmp_path, power("vm_absent"))
    assert (absent["comment"], absent["changes"]) == (f"vm {HOSTNAME} deleted", {HOSTNAME: None})
    assert salt_call("vmadm.exists", "func-sm") is False
    assert apply_sls(salt_call, tmp_path, power("vm_absent"))["comment"] == f"vm {HOSTNAME} is absent"
