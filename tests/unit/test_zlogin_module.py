"""Unit tests of _modules/zlogin.py with canned zlogin results."""

import os
import re
import shlex
import shutil
import signal
import subprocess
import time

import pytest
from salt.exceptions import CommandExecutionError, SaltInvocationError
from support import FakeRun, load_salt_module

ZONE = "5c1b5a8e-0c55-4b2c-8b3a-2d7d0e6d0f7e"


@pytest.fixture
def run():
    return FakeRun()


@pytest.fixture
def zlogin(run):
    aliases = {"zoneA": ZONE}

    def resolve(name):
        if name not in aliases:
            raise CommandExecutionError(f"vmadm: no VM has the alias '{name}'")
        return aliases[name]

    return load_salt_module("_modules", "zlogin", salt={"cmd.run_all": run, "vmadm.uuid": resolve})


def reply(stdout="", stderr="", retcode=0):
    return {"stdout": stdout, "stderr": stderr, "retcode": retcode}


def test_run_argv_and_result(zlogin, run):
    run.results[("zlogin",)] = reply("out\n", "err\n", 3)
    assert zlogin.run("zoneA", "false") == {"stdout": "out\n", "stderr": "err\n", "retcode": 3}
    argv, kwargs = run.calls[0]
    assert argv == ["zlogin", "-Q", "-n", ZONE, "false"]  # no stdin: -n
    assert kwargs["python_shell"] is False


def test_stdin_and_user(zlogin, run):
    run.results[("zlogin",)] = reply()
    zlogin.run(ZONE, "cat", stdin="data", user="nobody")
    argv, kwargs = run.calls[0]
    assert argv == ["zlogin", "-Q", "-l", "nobody", ZONE, "cat"]
    assert kwargs["stdin"] == "data"
    assert kwargs["stdin_raw_newlines"] is True


def test_list_commands_are_quoted_for_the_zone_shell(zlogin, run):
    run.results[("zlogin",)] = reply()
    awkward = ["printf", "%s\n", "a b", "it's", "$HOME", "x;y", "back\\slash", "new\nline"]
    zlogin.run(ZONE, awkward)
    command = run.calls[0][0][-1]
    assert shlex.split(command) == awkward


@pytest.mark.parametrize(
    ("stderr", "message"),
    [
        (f"zlogin: zone '{ZONE}' unknown", f"zlogin: zone zoneA: zone '{ZONE}' unknown"),
        (
            f"zlogin: login allowed only to running zones ({ZONE} is 'installed').",
            f"zlogin: zone zoneA: login allowed only to running zones ({ZONE} is 'installed').",
        ),
    ],
)
def test_zlogins_own_failures_are_errors(zlogin, run, stderr, message):
    run.results[("zlogin",)] = reply(stderr=stderr + "\n", retcode=1)
    with pytest.raises(CommandExecutionError) as info:
        zlogin.run("zoneA", "true")
    assert str(info.value) == message


@pytest.mark.parametrize("zone", ["$(reboot)", "a b", "../x", "zone\0", "", None])
def test_bad_zone_names_run_nothing(run, zone):
    module = load_salt_module("_modules", "zlogin", salt={"cmd.run_all": run})  # no vmadm: UUIDs only
    with pytest.raises(SaltInvocationError):
        module.run(zone, "true")
    assert run.calls == []


@pytest.mark.parametrize("cmd", ["", "   ", [], None, "echo \0"])
def test_bad_commands_run_nothing(zlogin, run, cmd):
    with pytest.raises(SaltInvocationError):
        zlogin.run(ZONE, cmd)
    assert run.calls == []


@pytest.mark.parametrize("path", ["relative", "/a/../etc/passwd", "/a/./b", "//a", "/", "/a\0b", "/a\nb", None])
def test_bad_paths_run_nothing(zlogin, run, path):
    for call in (zlogin.file_read, zlogin.file_stat, zlogin.file_remove):
        with pytest.raises(SaltInvocationError):
            call(ZONE, path)
    with pytest.raises(SaltInvocationError):
        zlogin.file_write(ZONE, path, "x")
    assert run.calls == []


def test_file_write_sends_escaped_content_on_stdin(zlogin, run):
    run.results[("zlogin",)] = reply()
    zlogin.file_write(ZONE, "/opt/local/etc/x.pass", b"a\\b\n\x00\xff%", mode="0600", user="root", group="root")
    argv, kwargs = run.calls[0]
    assert kwargs["stdin"] == "a\\0134b\\0012\\0000\\0377%\n"  # one line: its own newline is escaped
    assert kwargs["output_loglevel"] == "quiet"
    assert "-n" not in argv
    assert shlex.split(argv[-1])[-4:] == ["no", "/opt/local/etc/x.pass", "0600", "root:root"]


def test_file_write_many_is_one_zlogin_with_a_line_per_file(zlogin, run):
    run.results[("zlogin",)] = reply()
    files = {
        "/opt/local/lib/ucarp/vip-up": {"content": "#!/bin/sh\nexit 0\n", "mode": "0755"},
        "/opt/local/etc/ucarp/web.pass": {"content": b"s3cret", "mode": "0600", "user": "nobody", "group": "other"},
    }
    assert zlogin.file_write_many(ZONE, files, makedirs=True) is True
    assert len(run.calls) == 1
    argv, kwargs = run.calls[0]
    assert shlex.split(argv[-1])[-7:] == [
        "yes",
        "/opt/local/lib/ucarp/vip-up",
        "0755",
        "root:root",
        "/opt/local/etc/ucarp/web.pass",
        "0600",
        "nobody:other",
    ]
    assert kwargs["stdin"] == "#!/bin/sh\\0012exit 0\\0012\ns3cret\n"
    assert kwargs["output_loglevel"] == "quiet"  # a file may be a secret


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({}, "at least one"),
        ({"/a": "text"}, "/a: give the file as"),
        ({"/a": {"content": "x", "owner": "root"}}, "/a: unknown file key(s) owner"),
        ({"/a": {"content": "x"}, "/b": {"content": "x", "mode": "75"}}, "/b: '75' is not an octal file mode"),
        ({"/a": {"content": "x"}, "relative": {"content": "x"}}, "'relative' is not an absolute path"),
        ({"/a": {"content": "x", "group": "$(id)"}}, "/a: '$(id)' is not a valid group name"),
    ],
)
def test_file_write_many_checks_every_file_before_writing_any(zlogin, run, files, message):
    with pytest.raises(SaltInvocationError, match=re.escape(message)):
        zlogin.file_write_many(ZONE, files)
    assert run.calls == []


def test_file_write_many_failure_names_the_file(zlogin, run):
    run.results[("zlogin",)] = reply(stderr="/opt/x/b: no such directory: /opt/x\n", retcode=3)
    with pytest.raises(CommandExecutionError, match="writing 2 files failed \\(exit 3\\): /opt/x/b: no such directory"):
        zlogin.file_write_many(ZONE, {"/opt/y/a": {"content": "a"}, "/opt/x/b": {"content": "b"}})


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck is not installed (make test installs it)")
@pytest.mark.parametrize("script", ["_READ", "_WRITE", "_STAT"])
def test_the_scripts_run_in_zones_pass_shellcheck(zlogin, tmp_path, script):
    path = tmp_path / "script.sh"
    path.write_text("#!/bin/sh\n" + getattr(zlogin, script))
    done = subprocess.run(["shellcheck", "-s", "sh", str(path)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout


@pytest.mark.parametrize(("mode", "user"), [("777x", "root"), ("0644", "ro ot"), ("0644", "$(id)")])
def test_file_write_rejects_bad_mode_and_owner(zlogin, run, mode, user):
    with pytest.raises(SaltInvocationError):
        zlogin.file_write(ZONE, "/tmp/x", "x", mode=mode, user=user)
    assert run.calls == []


def test_file_read_decodes_od_output(zlogin, run):
    run.results[("zlogin",)] = reply(" 68 c3 a9 0a\n 00 ff\n")
    assert zlogin.file_read(ZONE, "/etc/x", encoding=None) == b"h\xc3\xa9\n\x00\xff"
    run.results[("zlogin",)] = reply(" 68 c3 a9\n")
    assert zlogin.file_read(ZONE, "/etc/x") == "hé"
    run.results[("zlogin",)] = reply(stderr="no such file\n", retcode=3)
    with pytest.raises(CommandExecutionError, match="/etc/x: No such file"):
        zlogin.file_read(ZONE, "/etc/x")
    assert zlogin.file_hash(ZONE, "/etc/x") is None


def test_file_stat_parses_ls(zlogin, run):
    run.results[("zlogin",)] = reply(
        "-rw-------   1 0        0             7 Nov 25 20:00 /a\n"
        "-rw-------   1 root     root          7 Nov 25 20:00 /a\n"
    )
    assert zlogin.file_stat(ZONE, "/a") == {
        "type": "file",
        "mode": "0600",
        "uid": 0,
        "gid": 0,
        "user": "root",
        "group": "root",
        "size": 7,
    }


@pytest.mark.parametrize(
    ("perms", "mode"),
    [("-rw-r--r--", "0644"), ("-rwsr-x---", "4750"), ("drwxrwxrwt", "1777"), ("-rwSr-lr-T", "7644")],
)
def test_mode_from_ls(zlogin, perms, mode):
    assert zlogin._mode(perms) == mode


def test_pkg_install_only_when_missing(zlogin, run):
    listing = {"n": 0}

    def pkgin_list(argv, kwargs):
        listing["n"] += 1
        return reply("libpcap-1.10.4;Packet capture\nucarp-1.5.2;CARP\n" if listing["n"] > 1 else "")

    run.results[("zlogin", "-Q", "-n", ZONE, "/opt/local/bin/pkgin -p list")] = pkgin_list
    run.results[("zlogin", "-Q", "-n", ZONE, "/opt/local/bin/pkgin -y install ucarp")] = reply(
        "pkg_install warnings: 0, errors: 0\n"
    )
    assert zlogin.pkg_install(ZONE, "ucarp") == {"name": "ucarp", "version": "1.5.2", "changed": True}
    assert zlogin.pkg_install(ZONE, "ucarp") == {"name": "ucarp", "version": "1.5.2", "changed": False}
    installs = [a for a in run.argvs() if a[-1].endswith("install ucarp")]
    assert len(installs) == 1


def test_pkg_install_unknown_package(zlogin, run):
    run.results[("zlogin", "-Q", "-n", ZONE, "/opt/local/bin/pkgin -p list")] = reply("")
    run.results[("zlogin", "-Q", "-n", ZONE, "/opt/local/bin/pkgin -y install nosuch")] = reply(
        stderr="nosuch is not available in the repository\n", retcode=1
    )
    with pytest.raises(CommandExecutionError, match="pkgin install nosuch failed .exit 1.: nosuch is not available"):
        zlogin.pkg_install(ZONE, "nosuch")
    with pytest.raises(SaltInvocationError):
        zlogin.pkg_install(ZONE, "ucarp; reboot")


def test_svc_state(zlogin, run):
    run.results[("zlogin",)] = reply("online*        svc:/network/ucarp:web\n")
    assert zlogin.svc_state(ZONE, "svc:/network/ucarp:web") == "online*"
    run.results[("zlogin",)] = reply(stderr="svcs: Pattern 'svc:/x:y' doesn't match any instances\n", retcode=1)
    assert zlogin.svc_state(ZONE, "svc:/x:y") is None
    with pytest.raises(SaltInvocationError):
        zlogin.svc_state(ZONE, "svc:/x y")


def test_svc_enable_maintenance_carries_svcs_x(zlogin, run):
    run.results[("zlogin", "-Q", "-n", ZONE, "svcadm enable -s svc:/network/ucarp:web")] = reply(
        stderr='svcadm: Instance "svc:/network/ucarp:web" is in maintenance state.\n', retcode=3
    )
    run.results[("zlogin", "-Q", "-n", ZONE, "svcs -x svc:/network/ucarp:web")] = reply(
        "svc:/network/ucarp:web (ucarp)\n State: maintenance\nReason: Restarting too quickly.\n"
    )
    with pytest.raises(CommandExecutionError) as info:
        zlogin.svc_enable(ZONE, "svc:/network/ucarp:web")
    assert "is in maintenance state" in str(info.value)
    assert "Reason: Restarting too quickly." in str(info.value)


def test_yaml_scalars_from_the_cli_become_commands(zlogin, run):
    run.results[("zlogin",)] = reply()
    zlogin.run(ZONE, True)
    zlogin.run(ZONE, 42)
    assert [argv[-1] for argv in run.argvs()] == ["true", "42"]


def test_run_each_asks_every_zone_at_once_and_names_the_one_it_could_not_enter(zlogin, monkeypatch):
    import subprocess

    other = "7d2c6b9f-1d66-4c3d-9c4b-3e8e1f7e1a8f"
    seen = []

    def fake(argv, **kwargs):
        seen.append(argv)
        assert kwargs["stdin"] is subprocess.DEVNULL and kwargs["check"] is False
        if argv[3] == other:
            return subprocess.CompletedProcess(
                argv, 1, "", f"zlogin: login allowed only to running zones ({other} is 'installed').\n"
            )
        return subprocess.CompletedProcess(argv, 0, "inet 192.0.2.100 netmask ffffff00\n", "")

    monkeypatch.setattr(zlogin.subprocess, "run", fake)
    got = zlogin.run_each({"zoneA": ["/usr/sbin/ifconfig", "-a"], other: "uptime"})
    assert got["zoneA"] == {"stdout": "inet 192.0.2.100 netmask ffffff00\n", "stderr": "", "retcode": 0}
    assert got[other] == {"error": f"login allowed only to running zones ({other} is 'installed')."}
    assert sorted(seen) == sorted(
        [["zlogin", "-Q", "-n", ZONE, "/usr/sbin/ifconfig -a"], ["zlogin", "-Q", "-n", other, "uptime"]]
    )
    with pytest.raises(SaltInvocationError):
        zlogin.run_each(["zoneA"])


def test_fresh_says_a_run_started_the_instance_after_its_last_change_in_the_zone(zlogin, run):
    """``fresh``: what lets a watch skip a refresh right after the run's own start."""
    fmri = "svc:/network/ucarp:web"
    run.results[("zlogin",)] = reply()
    run.results[("svcs", "-Z")] = reply(f"{ZONE} disabled {fmri}\n")
    assert zlogin.fresh(ZONE, fmri) is False  # outside a run: never
    zlogin.__utils__["run_cache.begin"](zlogin.__context__, "run-1")
    zlogin.file_write(ZONE, "/opt/local/etc/ucarp/web.conf", "--vhid=1\n")
    assert zlogin.fresh(ZONE, fmri) is False  # written, not started
    assert zlogin.svc_state(ZONE, fmri) == "disabled"  # as zone_svc.running asks first: the run's svcs -Z
    zlogin.svc_enable(ZONE, fmri)
    assert zlogin.fresh("zoneA", fmri) is True  # started after the write (by alias too)
    zlogin.file_write(ZONE, "/opt/local/etc/ucarp/web.checks", "interval 2\n")
    assert zlogin.fresh(ZONE, fmri) is False  # a change after the start
    zlogin.svc_restart(ZONE, fmri, wait=False)
    assert zlogin.fresh(ZONE, fmri) is True
    other = "6d2c6b9f-1d66-4c3d-9c4b-3e8e1f7e1a8f"
    zlogin.file_write(other, "/opt/local/etc/app.conf", "x\n")
    assert zlogin.fresh(ZONE, fmri) is False  # a change in another zone counts too: a watch may name it
    zlogin.svc_restart(ZONE, fmri, wait=False)
    zlogin.svc_disable(ZONE, fmri)
    assert zlogin.fresh(ZONE, fmri) is False


def test_enabling_an_online_instance_does_not_make_it_fresh(zlogin, run):
    fmri = "svc:/network/ucarp:web"
    run.results[("zlogin",)] = reply()
    run.results[("svcs", "-Z")] = reply(f"{ZONE} online {fmri}\n")
    zlogin.__utils__["run_cache.begin"](zlogin.__context__, "run-1")
    zlogin.svc_state(ZONE, fmri)
    zlogin.svc_enable(ZONE, fmri)
    assert zlogin.fresh(ZONE, fmri) is False  # it kept running: it did not read the zone again


def test_an_enable_with_no_svcs_of_the_run_asks_nothing_first_and_is_not_taken_for_a_start(zlogin, run):
    """A reaction's svc_enable (clear=True) runs svcadm alone; with no state
    known, a watch later in the run does not skip its refresh."""
    fmri = "svc:/network/ucarp:web"
    run.results[("zlogin",)] = reply()
    zlogin.__utils__["run_cache.begin"](zlogin.__context__, "run-1")
    assert zlogin.svc_enable(ZONE, fmri, clear=True) is True
    assert run.argvs() == [["zlogin", "-Q", "-n", ZONE, f"svcadm enable -s {fmri}"]]
    assert zlogin.fresh(ZONE, fmri) is False


def test_an_enable_that_finds_the_instance_in_maintenance_clears_it_and_enables_it_again(zlogin, run):
    fmri = "svc:/site/app:default"
    enables = []

    def enable(argv, kwargs):
        enables.append(True)
        if len(enables) == 1:
            return reply(stderr=f'svcadm: Instance "{fmri}" is in maintenance state.\n', retcode=3)
        return reply()

    run.results[("zlogin", "-Q", "-n", ZONE, f"svcadm enable -s {fmri}")] = enable
    run.results[("zlogin", "-Q", "-n", ZONE, f"svcs -x {fmri}")] = reply(f"{fmri}\n State: maintenance\n")
    run.results[("zlogin", "-Q", "-n", ZONE, f"svcs -H -o state,fmri {fmri}")] = reply(f"maintenance {fmri}\n")
    run.results[("zlogin", "-Q", "-n", ZONE, f"svcadm clear {fmri}")] = reply()
    assert zlogin.svc_enable(ZONE, fmri, clear=True) is True
    commands = [argv[-1] for argv in run.argvs()]
    assert commands[0] == f"svcadm enable -s {fmri}"
    assert commands[-2:] == [f"svcadm clear {fmri}", f"svcadm enable -s {fmri}"]


def test_an_enable_refused_for_another_reason_is_not_cleared(zlogin, run):
    fmri = "svc:/site/app:default"
    run.results[("zlogin", "-Q", "-n", ZONE, f"svcadm enable -s {fmri}")] = reply(
        stderr=f'svcadm: Instance "{fmri}" has been disabled by another entity.\n', retcode=3
    )
    run.results[("zlogin", "-Q", "-n", ZONE, f"svcs -x {fmri}")] = reply("")
    run.results[("zlogin", "-Q", "-n", ZONE, f"svcs -H -o state,fmri {fmri}")] = reply(f"disabled {fmri}\n")
    with pytest.raises(zlogin.ServiceFailed, match="disabled by another entity"):
        zlogin.svc_enable(ZONE, fmri, clear=True)
    assert f"svcadm clear {fmri}" not in [argv[-1] for argv in run.argvs()]


def test_an_instance_the_run_saw_in_maintenance_is_cleared_before_the_enable(zlogin, run):
    fmri = "svc:/site/app:default"
    run.results[("zlogin",)] = reply()
    run.results[("svcs", "-Z")] = reply(f"{ZONE} maintenance {fmri}\n")
    zlogin.__utils__["run_cache.begin"](zlogin.__context__, "run-1")
    assert zlogin.svc_state(ZONE, fmri) == "maintenance"
    zlogin.svc_enable(ZONE, fmri, clear=True)
    assert [argv[-1] for argv in run.argvs()][-2:] == [f"svcadm clear {fmri}", f"svcadm enable -s {fmri}"]


def test_a_zone_that_stopped_during_the_run_is_forgotten_by_the_run(zlogin, run):
    """A zone stops halfway through a run: zlogin says so with a typed error,
    and the run forgets its VM list and the zone's SMF states, so the next
    state of that zone asks again instead of trusting what was read before."""
    store = zlogin.__utils__["run_cache.begin"](zlogin.__context__, "run-1")
    store["vmadm.vms"] = [{"uuid": ZONE, "state": "running"}]
    store["zlogin.smf"] = {ZONE: {"svc:/network/ucarp:web": "online"}, "other": {"svc:/x:y": "online"}}
    run.results[("zlogin",)] = reply(
        stderr=f"zlogin: login allowed only to running zones ({ZONE} is 'installed').\n", retcode=1
    )
    with pytest.raises(zlogin.ZoneNotRunning) as info:
        zlogin.file_write(ZONE, "/opt/local/etc/ucarp/web.conf", "--vhid=1\n")
    assert isinstance(info.value, CommandExecutionError)
    assert str(info.value) == f"zlogin: zone {ZONE}: login allowed only to running zones ({ZONE} is 'installed')."
    assert "vmadm.vms" not in store
    assert store["zlogin.smf"] == {"other": {"svc:/x:y": "online"}}


@pytest.mark.parametrize("shell", ["sh", "bash"])
def test_a_write_cut_short_leaves_no_temporary_file(zlogin, tmp_path, shell):
    """The batch script, run by a real shell: killed (SIGTERM) once the first
    file is written to its temporary file, it removes that file and replaces
    nothing."""
    if shutil.which(shell) is None:
        pytest.skip(f"no {shell} here")
    owner = f"{os.getuid()}:{os.getgid()}"
    args = ["no", str(tmp_path / "a"), "0644", owner, str(tmp_path / "b"), "0644", owner]
    script = shlex.split(zlogin._script(zlogin._WRITE, *args))[2]  # what the zone's sh -c runs
    proc = subprocess.Popen([shell, "-c", script, "sh", *args], stdin=subprocess.PIPE, text=True)  # noqa: S603
    try:
        proc.stdin.write(zlogin._encode(b"first") + "\n")
        proc.stdin.flush()

        def written():  # the first file's temporary file, given its mode: the script holds its name
            return [p for p in tmp_path.iterdir() if p.name.startswith(".salt-zlogin.") and p.stat().st_mode & 0o044]

        for _ in range(500):
            if written():
                break
            time.sleep(0.01)
        assert written()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 1
    finally:
        proc.kill()
        proc.stdin.close()
    assert list(tmp_path.iterdir()) == []
