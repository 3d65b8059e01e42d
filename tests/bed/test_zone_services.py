"""SMF inside a real zone: what the formula relies on across zone reboots."""

import re

import pytest
from support import recipe_gz, recipe_zone, wait_for

pytestmark = pytest.mark.root

MANIFEST = """<?xml version="1.0"?>
<!DOCTYPE service_bundle SYSTEM "/usr/share/lib/xml/dtd/service_bundle.dtd.1">
<service_bundle type="manifest" name="sleeper">
  <service name="site/sleeper" type="service" version="1">
    <dependency name="network" grouping="require_all" restart_on="error" type="service">
      <service_fmri value="svc:/milestone/network:default"/>
    </dependency>
    <exec_method type="method" name="start" exec="/opt/local/lib/sleeper %i" timeout_seconds="60"/>
    <exec_method type="method" name="stop" exec=":kill" timeout_seconds="60"/>
    <instance name="one" enabled="false"/>
    <instance name="two" enabled="false"/>
    <stability value="Unstable"/>
  </service>
</service_bundle>
"""
METHOD = """#!/bin/sh
sleep 1000 </dev/null >/dev/null 2>&1 &
echo "$1" > "/var/tmp/sleeper-$1.started"
"""


@pytest.fixture(scope="module")
def zone(bed):
    gz = recipe_gz(bed, "gz-smf")
    uuid = gz.create(recipe_zone("services", "192.0.2.71"))
    install = "mkdir -p /opt/local/lib && cat > /opt/local/lib/sleeper && chmod 755 /opt/local/lib/sleeper"
    assert gz.zlogin(uuid, install, stdin=METHOD).returncode == 0
    assert gz.zlogin(uuid, "cat > /var/tmp/sleeper.xml", stdin=MANIFEST).returncode == 0
    proc = gz.zlogin(uuid, "svccfg import /var/tmp/sleeper.xml")
    assert proc.returncode == 0, proc.stderr
    return gz, uuid


def state(gz, uuid, fmri):
    return gz.zlogin(uuid, f"svcs -H -o state {fmri}").stdout.strip()


def test_imported_instances_are_disabled(zone):
    gz, uuid = zone
    out = gz.zlogin(uuid, "svcs -H -o state,fmri sleeper").stdout.split()
    assert out == ["disabled", "svc:/site/sleeper:one", "disabled", "svc:/site/sleeper:two"]


def test_enable_runs_the_method_with_the_instance_token(zone):
    gz, uuid = zone
    proc = gz.zlogin(uuid, "svcadm enable -s sleeper:one")
    assert proc.returncode == 0, proc.stderr
    assert state(gz, uuid, "sleeper:one") == "online"
    assert gz.zlogin(uuid, "cat /var/tmp/sleeper-one.started").stdout == "one\n"


def test_persistent_enable_survives_a_zone_reboot_and_temporary_does_not(zone):
    gz, uuid = zone
    assert gz.zlogin(uuid, "svcadm enable -s sleeper:one").returncode == 0
    assert gz.zlogin(uuid, "svcadm enable -st sleeper:two").returncode == 0
    gz.run("vmadm", "stop", uuid, check=True)
    gz.run("vmadm", "start", uuid, check=True)
    wait_for(lambda: state(gz, uuid, "sleeper:one") == "online", what="sleeper:one back online after boot")
    assert state(gz, uuid, "sleeper:two") == "disabled"


def sleeper_pid(gz, uuid):
    """The PID of the sleeper:one contract's sleep process (from ``svcs -p``)."""
    found = re.search(r"\s(\d+) sleep$", gz.zlogin(uuid, "svcs -Hp sleeper:one").stdout, re.M)
    return found.group(1) if found else None


def test_a_killed_daemon_is_restarted(zone):
    gz, uuid = zone
    assert gz.zlogin(uuid, "svcadm enable -s sleeper:one").returncode == 0
    pid = sleeper_pid(gz, uuid)
    assert pid
    assert gz.zlogin(uuid, f"kill -9 {pid}").returncode == 0

    def restarted():
        new = sleeper_pid(gz, uuid)
        return new not in (None, pid) and state(gz, uuid, "sleeper:one") == "online"

    wait_for(restarted, what="a new sleep process under sleeper:one")
