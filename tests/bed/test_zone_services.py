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


def test_svcs_z_lists_a_zones_instances_from_the_global_zone(zone):
    gz, uuid = zone
    assert gz.zlogin(uuid, "svcadm enable -s sleeper:one").returncode == 0
    proc = gz.run("svcs", "-z", uuid, "-H", "-o", "state,fmri", "sleeper")
    assert proc.returncode == 0, proc.stderr
    # Sorted as svcs sorts: by state (disabled before online), then time, then FMRI.
    assert proc.stdout.split() == ["disabled", "svc:/site/sleeper:two", "online", "svc:/site/sleeper:one"]


def test_svcs_big_z_lists_every_running_zone_with_a_zone_column(zone, bed):
    gz, uuid = zone
    other = gz.create(recipe_zone("services-other", "192.0.2.72"))
    try:
        proc = gz.run("svcs", "-Z", "-a", "-H", "-o", "zone,state,fmri")
        assert proc.returncode == 0, proc.stderr
        rows = [line.split() for line in proc.stdout.splitlines()]
        assert {r[0] for r in rows} == {uuid, other}
        assert [uuid, "disabled", "svc:/site/sleeper:two"] in rows
        assert any(r[0] == other and r[2] == "svc:/milestone/network:default" for r in rows)
        # A zone that is not running is not listed by -Z; -z says it cannot bind.
        gz.run("vmadm", "stop", other, check=True)
        listed = gz.run("svcs", "-Z", "-a", "-H", "-o", "zone,fmri").stdout.split()
        assert other not in listed and uuid in listed
        proc = gz.run("svcs", "-z", other, "-H")
        assert proc.returncode == 1
        assert proc.stderr.startswith(f"svcs: Could not bind to repository server for zone {other}")
    finally:
        gz.run("vmadm", "delete", other)


def test_svcs_z_refuses_an_unknown_zone_and_use_inside_a_zone(zone):
    gz, uuid = zone
    proc = gz.run("svcs", "-z", "00000000-0000-0000-0000-000000000000", "-H")
    assert (proc.returncode, proc.stderr) == (1, "svcs: invalid zone '00000000-0000-0000-0000-000000000000'\n")
    proc = gz.zlogin(uuid, "svcs -Z -H")
    assert proc.returncode == 1
    assert "may only be used from the global zone" in proc.stderr
