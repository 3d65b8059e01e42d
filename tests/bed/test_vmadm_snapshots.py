"""Conformance of the simulated vmadm's snapshots with SmartOS (vmadm.8,
smartos-live VM.js: create_snapshot, rollback_snapshot, delete_snapshot).

A snapshot is of the zone's root tree; ``vmadm get`` lists them newest first
as ``{name, size, created_at}``. ``rollback-snapshot`` halts a VM that is
not stopped (no clean shutdown), puts the snapshot back, destroys every
newer snapshot and boots the VM, whether or not it was running before.
Each test checks the message, the stream it goes to and the exit status.
"""

import itertools
import json
import os
import re
import subprocess

import pytest
from support import UNKNOWN, recipe_gz, recipe_zone, wait_for

pytestmark = pytest.mark.root

ISO_SECOND = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.000Z$")  # ZFS's creation: to the second
COMMANDS = ("create-snapshot", "rollback-snapshot", "delete-snapshot")

# A service whose stop method leaves a mark outside the zone's root (the
# host's /dev/shm, which a zone of the bed shares): a rollback replaces the
# zone's /var, so a mark there would not tell a clean stop from a halt.
MANIFEST = """<?xml version="1.0"?>
<!DOCTYPE service_bundle SYSTEM "/usr/share/lib/xml/dtd/service_bundle.dtd.1">
<service_bundle type="manifest" name="marker">
  <service name="site/marker" type="service" version="1">
    <create_default_instance enabled="true"/>
    <single_instance/>
    <exec_method type="method" name="start" exec="/opt/local/lib/marker start" timeout_seconds="30"/>
    <exec_method type="method" name="stop" exec="/opt/local/lib/marker stop" timeout_seconds="30"/>
    <stability value="Unstable"/>
  </service>
</service_bundle>
"""
MARKER = """#!/bin/sh
case "$1" in
start) sleep 1000 </dev/null >/dev/null 2>&1 & ;;
stop) echo stopped >> {mark}; pkill -x -f 'sleep 1000' ;;
esac
exit 0
"""


@pytest.fixture(scope="module")
def gz(bed):
    return recipe_gz(bed, "gz-snapshots")


ADDRESSES = itertools.count(20)


@pytest.fixture
def zone(gz):
    """A running zone of its own for each test, deleted after it."""
    index = next(ADDRESSES)
    uuid = gz.create(recipe_zone(f"snap{index}", f"192.0.2.{index}"))
    yield uuid
    gz.run("vmadm", "delete", uuid)


def run(gz, *argv):
    proc = gz.run("vmadm", *argv)
    return proc.returncode, proc.stdout, proc.stderr.strip()


def zlogin(gz, uuid, command):
    proc = gz.zlogin(uuid, command)
    assert proc.returncode == 0, f"{command}: {proc.stderr}"
    return proc.stdout


def zone_file(gz, uuid, path):
    """A file of the zone seen from the global zone (its zonepath's root)."""
    return os.path.join(gz.get(uuid)["zonepath"], "root", path.lstrip("/"))


def snap_dir(gz, uuid, name):
    return os.path.join(gz.get(uuid)["zonepath"], ".zfs", "snapshot", f"vmsnap-{name}")


def names(gz, uuid):
    return [s["name"] for s in gz.get(uuid)["snapshots"]]


def running_again(gz, uuid, old_pid=None):
    """The VM runs, on a new init when ``old_pid`` is given (it was halted and booted)."""
    vm = wait_for(lambda: (v := gz.get(uuid))["state"] == "running" and v, timeout=60, what="running")
    assert vm["pid"] != old_pid
    return vm


def test_create_snapshot_then_get_and_lookup_show_it(gz, zone):
    assert gz.get(zone)["snapshots"] == []
    assert run(gz, "create-snapshot", zone, "first") == (0, "", f"Created snapshot first for VM {zone}")
    snaps = gz.get(zone)["snapshots"]
    assert [sorted(s) for s in snaps] == [["created_at", "name", "size"]]
    assert snaps[0]["name"] == "first"
    assert ISO_SECOND.match(snaps[0]["created_at"])
    assert isinstance(snaps[0]["size"], float) and snaps[0]["size"] > 0  # MiB
    assert os.path.isdir(os.path.join(snap_dir(gz, zone, "first"), "root", "etc"))
    found = json.loads(gz.run("vmadm", "lookup", "-j", f"uuid={zone}").stdout)
    assert found[0]["snapshots"] == snaps
    assert gz.run("vmadm", "lookup", "snapshots.*.name=first").stdout.split() == [zone]
    assert gz.get(zone)["state"] == "running"  # a snapshot leaves the VM as it is

    proc = run(gz, "create-snapshot", zone, "first")
    assert proc == (1, "", 'snapshot with name "first" already exists.')
    assert names(gz, zone) == ["first"]


def test_rollback_restores_the_files_and_boots_the_vm_again(gz, zone):
    zlogin(gz, zone, "echo before > /opt/local/etc/app.conf && chmod 640 /opt/local/etc/app.conf")
    zlogin(gz, zone, "chown 1234:5678 /opt/local/etc/app.conf && rm /etc/shells")  # a host's file: a whiteout
    assert run(gz, "create-snapshot", zone, "good")[0] == 0
    zlogin(gz, zone, "echo after > /opt/local/etc/app.conf && chmod 600 /opt/local/etc/app.conf")
    zlogin(gz, zone, "touch /var/tmp/new-file && echo '/bin/sh' > /etc/shells")
    old_pid = gz.get(zone)["pid"]

    assert run(gz, "rollback-snapshot", zone, "good") == (0, "", f"Rolled back snapshot good for VM {zone}")
    vm = running_again(gz, zone, old_pid)
    assert vm["autoboot"] is True
    assert zlogin(gz, zone, "cat /opt/local/etc/app.conf") == "before\n"
    assert zlogin(gz, zone, "stat -c '%a %u %g' /opt/local/etc/app.conf") == "640 1234 5678\n"
    assert zlogin(gz, zone, "test -e /var/tmp/new-file || echo gone") == "gone\n"
    assert zlogin(gz, zone, "test -e /etc/shells || echo gone") == "gone\n"  # still deleted over the host's
    assert names(gz, zone) == ["good"]  # the target itself is kept
    assert zlogin(gz, zone, "echo later > /opt/local/etc/app.conf; cat /opt/local/etc/app.conf") == "later\n"
    assert run(gz, "rollback-snapshot", zone, "good")[0] == 0  # as often as wanted
    assert zlogin(gz, zone, "cat /opt/local/etc/app.conf") == "before\n"


def test_rollback_halts_a_running_vm_and_runs_no_stop_method(gz, zone):
    mark = f"/dev/shm/smartos-sim-snapshot-{zone}.stopped"
    try:
        setup = "mkdir -p /opt/local/lib && cat > /opt/local/lib/marker && chmod 755 /opt/local/lib/marker"
        assert gz.zlogin(zone, setup, stdin=MARKER.format(mark=mark)).returncode == 0
        assert gz.zlogin(zone, "cat > /var/tmp/marker.xml", stdin=MANIFEST).returncode == 0
        zlogin(gz, zone, "svccfg import /var/tmp/marker.xml")
        online = lambda: zlogin(gz, zone, "svcs -H -o state svc:/site/marker:default").strip() == "online"  # noqa: E731
        wait_for(online, timeout=60, what="marker online")
        assert run(gz, "create-snapshot", zone, "with-marker")[0] == 0

        assert run(gz, "rollback-snapshot", zone, "with-marker")[0] == 0
        running_again(gz, zone)
        assert not os.path.exists(mark)  # halted, as VM.js's VM.stop with force

        wait_for(online, timeout=60, what="marker online again")  # the snapshot's services run again
        assert run(gz, "stop", zone)[0] == 0  # the control: a clean stop runs the stop method
        assert open(mark).read() == "stopped\n"
    finally:
        if os.path.exists(mark):
            os.unlink(mark)


def test_rollback_of_a_stopped_vm_boots_it(gz, zone):
    assert run(gz, "create-snapshot", zone, "s")[0] == 0
    assert run(gz, "stop", zone)[0] == 0
    assert gz.get(zone)["autoboot"] is False
    assert run(gz, "rollback-snapshot", zone, "s") == (0, "", f"Rolled back snapshot s for VM {zone}")
    vm = running_again(gz, zone)
    assert vm["autoboot"] is True  # VM.start's: started on purpose


def test_rollback_destroys_every_newer_snapshot(gz, zone):
    for name in ("one", "two", "three"):
        zlogin(gz, zone, f"echo {name} > /opt/local/etc/which")
        assert run(gz, "create-snapshot", zone, name)[0] == 0
    snaps = gz.get(zone)["snapshots"]
    assert sorted(s["name"] for s in snaps) == ["one", "three", "two"]
    stamps = [s["created_at"] for s in snaps]
    assert stamps == sorted(stamps, reverse=True)  # newest first

    assert run(gz, "rollback-snapshot", zone, "two")[0] == 0
    assert sorted(names(gz, zone)) == ["one", "two"]
    assert not os.path.exists(snap_dir(gz, zone, "three"))
    running_again(gz, zone)
    assert zlogin(gz, zone, "cat /opt/local/etc/which") == "two\n"
    assert run(gz, "rollback-snapshot", zone, "three") == (1, "", f'No snapshot named "three" for {zone}')

    assert run(gz, "rollback-snapshot", zone, "one")[0] == 0
    assert names(gz, zone) == ["one"]
    assert zlogin(gz, zone, "cat /opt/local/etc/which") == "one\n"


def test_delete_snapshot(gz, zone):
    for name in ("keep", "drop"):
        assert run(gz, "create-snapshot", zone, name)[0] == 0
    assert run(gz, "delete-snapshot", zone, "drop") == (0, "", f"Deleted snapshot drop for VM {zone}")
    assert names(gz, zone) == ["keep"]
    assert not os.path.exists(snap_dir(gz, zone, "drop"))
    assert gz.get(zone)["state"] == "running"
    missing = (1, "", f'No snapshot named "drop" for {zone}')
    assert run(gz, "delete-snapshot", zone, "drop") == missing
    assert run(gz, "rollback-snapshot", zone, "drop") == missing
    assert run(gz, "create-snapshot", zone, "drop")[0] == 0  # the name is free again
    assert sorted(names(gz, zone)) == ["drop", "keep"]

    zonepath = gz.get(zone)["zonepath"]
    assert run(gz, "delete", zone)[0] == 0  # a VM's snapshots go with it, as zfs destroy -r
    assert not os.path.exists(zonepath)


def test_symlinks_are_kept_as_links_never_followed(gz, zone):
    links = {"/opt/local/etc/to-root": "/", "/opt/local/etc/to-passwd": "/etc/passwd", "/etc/dangling": "../nowhere"}
    for link, target in links.items():
        zlogin(gz, zone, f"ln -s {target} {link}")
    zlogin(gz, zone, "mkdir -p /var/data && echo x > /var/data/f && ln /var/data/f /var/data/hard")
    assert run(gz, "create-snapshot", zone, "links")[0] == 0
    snap_root = os.path.join(snap_dir(gz, zone, "links"), "root")
    for link, target in links.items():
        assert os.readlink(os.path.join(snap_root, link.lstrip("/"))) == target
    assert gz.get(zone)["snapshots"][0]["size"] < 64  # MiB: not a copy of the host's /
    copied = [os.path.join(snap_root, "var/data", n) for n in ("f", "hard")]
    assert os.stat(copied[0]).st_ino == os.stat(copied[1]).st_ino  # a hard link stays one

    zlogin(gz, zone, "rm /opt/local/etc/to-root /etc/dangling /opt/local/etc/to-passwd")
    zlogin(gz, zone, "echo file > /opt/local/etc/to-passwd")
    assert run(gz, "rollback-snapshot", zone, "links")[0] == 0
    running_again(gz, zone)
    for link, target in links.items():
        assert os.readlink(zone_file(gz, zone, link)) == target
        assert zlogin(gz, zone, f"readlink {link}") == f"{target}\n"


@pytest.mark.parametrize(
    "name", ["", "with space", "semi;colon", "slash/name", "at@sign", "new\nline", "caf\u00e9", "x" * 65]
)
@pytest.mark.parametrize("command", COMMANDS)
def test_bad_snapshot_names(gz, command, name):
    """Checked before anything else: the VM need not exist."""
    assert run(gz, command, UNKNOWN, name) == (1, "", "Invalid snapshot name")


def test_names_zfs_allows(gz, zone):
    for name in ("x" * 64, "a-b_c.d:e%f", "0"):
        assert run(gz, "create-snapshot", zone, name) == (0, "", f"Created snapshot {name} for VM {zone}")
        assert run(gz, "delete-snapshot", zone, name)[0] == 0


def test_unknown_vm(gz):
    assert run(gz, "create-snapshot", UNKNOWN, "s") == (1, "", f"VM {UNKNOWN} not found")
    assert run(gz, "delete-snapshot", UNKNOWN, "s") == (1, "", f"VM {UNKNOWN} not found")
    # VM.load's error from vminfod, which vmadm rewrites for get only
    assert run(gz, "rollback-snapshot", UNKNOWN, "s") == (1, "", "bad statusCode: 404")


@pytest.mark.parametrize("command", COMMANDS)
def test_usage_errors_exit_2(gz, command):
    proc = gz.run("vmadm", command, "not-a-uuid", "s")
    assert (proc.returncode, proc.stderr.splitlines()[0]) == (2, f"Invalid or missing UUID for {command}")
    for args in ([UNKNOWN], [UNKNOWN, "a", "b"]):
        proc = gz.run("vmadm", command, *args)
        assert (proc.returncode, proc.stderr.splitlines()[0]) == (2, f'Wrong number of parameters to "{command}"')
    assert f"{command} <uuid> <snapname>" in gz.run("vmadm", "help").stdout


def test_snapshot_commands_are_counted(gz, tmp_path):
    """The bed's process count (``SMARTOS_SIM_ACCOUNT``) names the subcommand."""
    account = tmp_path / "account"
    env = dict(gz.env, SMARTOS_SIM_ACCOUNT=str(account))
    for command in COMMANDS:
        subprocess.run(["vmadm", command, UNKNOWN, "s"], env=env, capture_output=True, check=False, timeout=60)
    assert account.read_text().splitlines() == [f"gz-snapshots vmadm {c}" for c in COMMANDS]
