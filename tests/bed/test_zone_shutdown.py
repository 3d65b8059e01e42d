"""Zones stop as SmartOS stops them (vmadm.8, smartos-live VM.js).

``vmadm stop`` is a clean shutdown: ``shutdown -y -g 0 -i 5`` in the zone, so
SMF stops every service and runs its stop method; a zone still up after 60 s
is halted. ``vmadm stop -F`` is the halt, as a crash: no stop method runs.
``vmadm reboot`` is clean the same way, ``reboot -F`` is not. Both stops set
``autoboot`` to false and ``start`` sets it to true, so a reboot of the
hypervisor, which shuts every running zone down cleanly at once, boots
again only the zones that were running.
"""

import os
import subprocess

import pytest
from support import recipe_gz, recipe_zone, wait_for

pytestmark = pytest.mark.root

# A service whose stop method leaves a mark, and one that hangs when told to
# stop (no timeout of its own: only vmadm's 60 s timer ends it).
MANIFEST = """<?xml version="1.0"?>
<!DOCTYPE service_bundle SYSTEM "/usr/share/lib/xml/dtd/service_bundle.dtd.1">
<service_bundle type="manifest" name="{name}">
  <service name="site/{name}" type="service" version="1">
    <create_default_instance enabled="true"/>
    <single_instance/>
    <dependency name="network" grouping="require_all" restart_on="error" type="service">
      <service_fmri value="svc:/milestone/network:default"/>
    </dependency>
    <exec_method type="method" name="start" exec="/opt/local/lib/{name} start" timeout_seconds="30"/>
    <exec_method type="method" name="stop" exec="/opt/local/lib/{name} stop" timeout_seconds="{stop_timeout}"/>
    <stability value="Unstable"/>
  </service>
</service_bundle>
"""
MARKER = """#!/bin/sh
case "$1" in
start) sleep 1000 </dev/null >/dev/null 2>&1 & ;;
stop) date +%s >> /var/tmp/marker.stopped; pkill -x -f 'sleep 1000' ;;
esac
exit 0
"""
HANG = """#!/bin/sh
case "$1" in
start) sleep 1001 </dev/null >/dev/null 2>&1 & ;;
stop) echo hanging > /var/tmp/hang.stopping; exec sleep 600 ;;
esac
exit 0
"""


def install(gz, uuid, name, script, stop_timeout=30):
    body = MANIFEST.format(name=name, stop_timeout=stop_timeout)
    setup = f"mkdir -p /opt/local/lib && cat > /opt/local/lib/{name} && chmod 755 /opt/local/lib/{name}"
    assert gz.zlogin(uuid, setup, stdin=script).returncode == 0
    assert gz.zlogin(uuid, f"cat > /var/tmp/{name}.xml", stdin=body).returncode == 0
    proc = gz.zlogin(uuid, f"svccfg import /var/tmp/{name}.xml")
    assert proc.returncode == 0, proc.stderr
    wait_for(lambda: state(gz, uuid, f"svc:/site/{name}:default") == "online", timeout=30, what=f"{name} online")


def state(gz, uuid, fmri):
    return gz.zlogin(uuid, f"svcs -H -o state {fmri}").stdout.strip()


def alive(pid):
    """A live process (a zombie waiting for its reaper is not)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def stops(gz, uuid):
    """How many times the marker service's stop method ran (its file is in the zone's /var)."""
    path = os.path.join(gz.root, "zones", uuid, "root", "var", "tmp", "marker.stopped")
    return len(open(path).read().split()) if os.path.exists(path) else 0


@pytest.fixture(scope="module")
def gz(bed):
    return recipe_gz(bed, "gz-shutdown")


@pytest.fixture(scope="module")
def marked(gz):
    uuid = gz.create(recipe_zone("marked", "192.0.2.111"))
    install(gz, uuid, "marker", MARKER)
    return uuid


def test_services_start_with_no_signal_blocked(gz, marked):
    """What SMF starts must die of the SIGTERM a ``:kill`` stop sends: the
    zone's init blocks signals for itself only."""
    pid = gz.zlogin(marked, "pgrep -x -f 'sleep 1000'").stdout.split()[0]
    blocked = gz.zlogin(marked, f"sed -n 's/^SigBlk:[[:space:]]*//p' /proc/{pid}/status").stdout.strip()
    assert int(blocked, 16) == 0


def test_stop_runs_stop_methods_and_stop_F_does_not(gz, marked):
    proc = gz.run("vmadm", "stop", marked)
    assert (proc.returncode, proc.stderr.strip()) == (0, f"Successfully completed stop for VM {marked}")
    vm = gz.get(marked)
    assert (vm["state"], vm["autoboot"]) == ("stopped", False)
    assert stops(gz, marked) == 1

    proc = gz.run("vmadm", "start", marked)
    assert proc.returncode == 0 and gz.get(marked)["autoboot"] is True
    wait_for(lambda: state(gz, marked, "svc:/site/marker:default") == "online", timeout=30, what="marker back online")
    proc = gz.run("vmadm", "stop", "-F", marked)
    assert (proc.returncode, proc.stderr.strip()) == (0, f"Successfully completed stop for VM {marked}")
    assert gz.get(marked)["autoboot"] is False
    assert stops(gz, marked) == 1  # halted: the stop method never ran
    assert gz.run("vmadm", "start", marked).returncode == 0


def test_reboot_is_clean_and_reboot_F_is_not(gz, marked):
    wait_for(lambda: state(gz, marked, "svc:/site/marker:default") == "online", timeout=30, what="marker online")
    before = stops(gz, marked)
    booted = gz.get(marked)["boot_timestamp"]
    proc = gz.run("vmadm", "reboot", marked)
    assert (proc.returncode, proc.stderr.strip()) == (0, f"Successfully completed reboot for VM {marked}")
    assert stops(gz, marked) == before + 1
    vm = gz.get(marked)
    assert (vm["state"], vm["autoboot"]) == ("running", True)
    assert vm["boot_timestamp"] != booted
    wait_for(lambda: state(gz, marked, "svc:/site/marker:default") == "online", timeout=30, what="marker online again")
    assert gz.run("vmadm", "reboot", "-F", marked).returncode == 0
    assert stops(gz, marked) == before + 1
    assert gz.get(marked)["state"] == "running"


def test_a_timeout_is_refused_for_an_os_zone(gz, marked):
    proc = gz.run("vmadm", "stop", marked, "-t", "5")
    assert (proc.returncode, proc.stderr.strip()) == (
        1,
        "Timeout option is only supported for bhyve, KVM and docker containers.",
    )
    assert gz.get(marked)["state"] == "running"


def test_a_hung_stop_method_is_cut_off_by_the_60_s_timer(gz):
    uuid = gz.create(recipe_zone("hung", "192.0.2.112"))
    install(gz, uuid, "hang", HANG, stop_timeout=0)  # 0: SMF itself waits for ever
    init = gz.get(uuid)["pid"]
    proc = subprocess.Popen(
        ["vmadm", "stop", uuid], env=gz.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        wait_for(lambda: gz.get(uuid)["state"] == "stopping", timeout=30, what="the zone shown as stopping")
        hung = os.path.join(gz.root, "zones", uuid, "root", "var", "tmp", "hang.stopping")
        wait_for(lambda: os.path.exists(hung), timeout=30, what="the hung stop method running")
        _out, err = proc.communicate(timeout=120)  # the 60 s timer, then the halt
    finally:
        if proc.poll() is None:
            proc.kill()
    assert (proc.returncode, err.strip()) == (0, f"Successfully completed stop for VM {uuid}")
    assert gz.get(uuid)["state"] == "stopped"
    assert not alive(init)
    gz.run("vmadm", "delete", uuid, check=True)


class Daemon:
    """Stands for the hypervisor's salt-minion: what a reboot did to it."""

    def __init__(self):
        self.calls = []

    def terminate(self):
        self.calls.append("terminate")

    def start(self):
        self.calls.append("start")


def test_a_hypervisor_reboot_shuts_zones_down_cleanly_and_boots_the_autoboot_ones(gz, marked):
    wait_for(lambda: state(gz, marked, "svc:/site/marker:default") == "online", timeout=30, what="marker online")
    other = gz.create(recipe_zone("other", "192.0.2.113"))
    install(gz, other, "marker", MARKER)
    parked = gz.create(recipe_zone("parked", "192.0.2.114"))
    assert gz.run("vmadm", "stop", parked).returncode == 0  # stopped on purpose: autoboot false
    before = {uuid: (stops(gz, uuid), gz.get(uuid)["boot_timestamp"]) for uuid in (marked, other)}
    minion = Daemon()

    report = gz.reboot(daemons=[minion])

    assert minion.calls == ["terminate", "start"]
    assert sorted(line for line in report if "shut down" in line) == sorted(f"{u}: shut down" for u in (marked, other))
    for uuid, (stopped, booted) in before.items():
        vm = gz.get(uuid)
        assert (vm["state"], vm["autoboot"]) == ("running", True)
        assert vm["boot_timestamp"] != booted
        assert stops(gz, uuid) == stopped + 1  # its services were stopped cleanly
        wait_for(lambda u=uuid: state(gz, u, "svc:/site/marker:default") == "online", timeout=30, what="marker online")
    assert gz.get(parked)["state"] == "stopped"
    for uuid in (other, parked):
        gz.run("vmadm", "delete", uuid, check=True)
