"""Conformance of the simulated zlogin, and what a zone is on the test bed."""

import os
import shlex

import pytest
from support import UNKNOWN, recipe_gz, recipe_zone

pytestmark = pytest.mark.root


@pytest.fixture(scope="module")
def gz(bed):
    return recipe_gz(bed, "gz-zlogin")


@pytest.fixture(scope="module")
def zone(gz):
    return gz.create(recipe_zone("zlog", "192.0.2.41"))


@pytest.fixture(scope="module")
def other(gz):
    return gz.create(recipe_zone("zlog2", "192.0.2.42"))


def test_runs_the_joined_words_with_a_shell_in_the_zone(gz, zone):
    proc = gz.run("zlogin", zone, "echo", "$(hostname)", ";", "exit", "3")
    assert proc.returncode == 3
    assert proc.stdout == "zlog\n"


def test_quoted_arguments_arrive_unchanged(gz, zone):
    awkward = ["a b", "it's", '"dq"', "$HOME", "semi;colon", "back\\slash", "new\nline", "ünï"]
    command = "printf '%s\\0' " + " ".join(shlex.quote(a) for a in awkward)
    proc = gz.run("zlogin", zone, command)
    assert proc.returncode == 0
    assert proc.stdout.split("\0")[:-1] == awkward


def test_stdin_passes_through_and_n_closes_it(gz, zone):
    assert gz.run("zlogin", zone, "cat", stdin="hello\n").stdout == "hello\n"
    assert gz.run("zlogin", "-n", zone, "cat", stdin="hello\n").stdout == ""


def test_clean_login_environment(gz, zone):
    env = dict(line.split("=", 1) for line in gz.run("zlogin", zone, "env").stdout.splitlines() if "=" in line)
    assert env["HOME"] == "/root"
    assert env["LOGNAME"] == "root"
    assert "/opt/local/bin" in env["PATH"].split(":")
    assert "SMARTOS_SIM_ROOT" not in env  # nothing of the global zone leaks in


def test_user_option(gz, zone):
    assert gz.run("zlogin", "-l", "nobody", zone, "id -un").stdout.strip() == "nobody"


def test_unknown_zone(gz):
    for name in (UNKNOWN, "no-such-zone", "$(reboot)"):
        proc = gz.run("zlogin", name, "true")
        assert proc.returncode == 1
        assert proc.stderr.strip() == f"zlogin: zone '{name}' unknown"


def test_stopped_zone(gz):
    uuid = gz.create(recipe_zone("zlog-off", "192.0.2.43", autoboot=False))
    proc = gz.run("zlogin", uuid, "true")
    assert proc.returncode == 1
    assert proc.stderr.strip() == f"zlogin: login allowed only to running zones ({uuid} is 'installed')."
    gz.run("vmadm", "delete", uuid, check=True)


def test_zone_has_its_own_files_network_and_processes(gz, zone, other):
    gz.zlogin(zone, "echo mine > /opt/local/etc/owner && echo zoned > /etc/motd.zone")
    assert gz.zlogin(zone, "cat /opt/local/etc/owner").stdout == "mine\n"
    assert gz.zlogin(other, "cat /opt/local/etc/owner").returncode != 0
    assert not os.path.exists("/etc/motd.zone")  # the global zone's /etc is untouched
    assert gz.zlogin(zone, "hostname").stdout.strip() == "zlog"
    assert "192.0.2.41/24" in gz.zlogin(zone, "ip -o -4 addr show net0").stdout
    assert gz.zlogin(zone, "cat /etc/zonename").stdout.strip() == zone
    pids = gz.zlogin(zone, "ls /proc | grep -E '^[0-9]+$'").stdout.split()
    assert "1" in pids and len(pids) < 10  # its own PID namespace
    assert (
        gz.zlogin(zone, "ls -l /usr/sbin/svcadm /usr/bin/svcs /usr/sbin/ifconfig /opt/local/bin/pkgin").returncode == 0
    )


def test_files_survive_a_reboot_and_tmp_does_not(gz, zone):
    gz.zlogin(zone, "echo kept > /var/tmp/kept && echo gone > /tmp/gone")
    gz.run("vmadm", "reboot", zone, check=True)
    assert gz.zlogin(zone, "cat /var/tmp/kept").stdout == "kept\n"
    assert gz.zlogin(zone, "cat /tmp/gone").returncode != 0
