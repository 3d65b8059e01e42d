"""The zlogin execution module through ``salt-call --local`` on the test bed.

Binary file content cannot cross a command line, so the byte-exact round
trip goes through Salt's own loader in this process (``salt.client.Caller``,
the API states use) with the same minion configuration.
"""

import hashlib
import os

import pytest
from salt.exceptions import CommandExecutionError
from support import recipe_zone

pytestmark = [pytest.mark.root, pytest.mark.usefixtures("recipe_image")]

SERVICE = "svc:/site/func-sleeper:default"
MANIFEST = """<?xml version="1.0"?>
<!DOCTYPE service_bundle SYSTEM "/usr/share/lib/xml/dtd/service_bundle.dtd.1">
<service_bundle type="manifest" name="func-sleeper">
  <service name="site/func-sleeper" type="service" version="1">
    <create_default_instance enabled="false"/>
    <exec_method type="method" name="start" exec="/opt/local/lib/func-sleeper" timeout_seconds="30"/>
    <exec_method type="method" name="stop" exec=":kill" timeout_seconds="30"/>
  </service>
</service_bundle>
"""
GOOD_METHOD = "#!/bin/sh\nsleep 1000 </dev/null >/dev/null 2>&1 &\n"
FAILING_METHOD = "#!/bin/sh\necho 'cannot start: no config' >&2\nexit 1\n"


@pytest.fixture(scope="module")
def zone(salt_call):
    return salt_call("vmadm.create", recipe_zone("func-z", "192.0.2.86"))


@pytest.fixture(scope="module")
def caller(minion_conf, salt_call):
    import salt.client
    import salt.config

    saved = dict(os.environ)
    os.environ.update(salt_call.gz.env)
    try:
        opts = salt.config.minion_config(os.path.join(minion_conf[0], "minion"))
        yield salt.client.Caller(mopts=opts)
    finally:
        os.environ.clear()
        os.environ.update(saved)


def test_awkward_arguments_arrive_unchanged(salt_call, zone):
    awkward = ["a b", "it's", '"dq"', "$HOME", "semi;colon", "back\\slash", "new\nline", "ünï", "*"]
    res = salt_call("zlogin.run", zone, ["printf", "%s|", *awkward])
    assert res["retcode"] == 0
    assert res["stdout"].split("|")[:-1] == awkward


def test_string_command_is_run_by_the_zone_shell(salt_call, zone):
    res = salt_call("zlogin.run", "func-z", "echo $(hostname) >&2; exit 4")
    assert (res["retcode"], res["stderr"]) == (4, "func-z")
    assert salt_call("zlogin.run_stdout", zone, "cat", stdin="from stdin\n") == "from stdin"
    assert salt_call("zlogin.retcode", zone, "test -d /opt/local") == 0
    assert salt_call("zlogin.run_stdout", zone, "id -un", user="nobody") == "nobody"


def test_zone_not_running_or_unknown(salt_call):
    stopped = salt_call("vmadm.create", recipe_zone("func-off", "192.0.2.87", autoboot=False))
    message = salt_call.error("zlogin.run", stopped, "true")
    assert f"zone {stopped}: login allowed only to running zones ({stopped} is 'installed')" in message
    assert "no VM has the alias 'nowhere'" in salt_call.error("zlogin.run", "nowhere", "true")
    assert "is neither a VM UUID nor an alias" in salt_call.error("zlogin.run", "$(reboot)", "true")
    salt_call("vmadm.delete", stopped)


def test_text_file_round_trip_with_mode_and_owner(salt_call, zone):
    text = "héllo wörld ✓\nline two\\n stays\n\n"
    path = "/opt/local/etc/func/hello.txt"
    assert "no such directory" in salt_call.error("zlogin.file_write", zone, path, text)
    assert salt_call("zlogin.file_write", zone, path, text, mode="0640", user="nobody", group="nogroup", makedirs=True)
    assert salt_call("zlogin.file_read", zone, path) == text
    stat = salt_call("zlogin.file_stat", zone, path)
    assert (stat["type"], stat["mode"], stat["user"], stat["group"]) == ("file", "0640", "nobody", "nogroup")
    assert salt_call("zlogin.file_hash", zone, path) == hashlib.sha256(text.encode()).hexdigest()
    leftovers = salt_call("zlogin.run_stdout", zone, "ls -A /opt/local/etc/func")
    assert leftovers == "hello.txt"  # the temporary file was renamed into place
    assert salt_call("zlogin.file_remove", zone, path) is True
    assert salt_call("zlogin.file_remove", zone, path) is False
    assert salt_call("zlogin.file_stat", zone, path) is None
    assert "No such file" in salt_call.error("zlogin.file_read", zone, path)


def test_binary_round_trip(caller, zone):
    data = bytes(range(256)) * 3 + b"\n\n"
    assert caller.cmd("zlogin.file_write", zone, "/var/tmp/blob", data, mode="0600") is True
    assert caller.cmd("zlogin.file_read", zone, "/var/tmp/blob", encoding=None) == data
    assert caller.cmd("zlogin.file_hash", zone, "/var/tmp/blob") == hashlib.sha256(data).hexdigest()
    assert caller.cmd("zlogin.file_stat", zone, "/var/tmp/blob")["mode"] == "0600"


def test_several_files_are_written_with_one_zlogin_all_or_none(caller, zone):
    """file_write_many: every file with its mode; then a batch whose second
    file cannot be written (its directory is missing) replaces nothing and
    leaves no temporary file behind."""
    first, second = "/opt/local/etc/many/a.sh", "/opt/local/etc/many/sub/b.pass"
    files = {first: {"content": "#!/bin/sh\necho a\n", "mode": "0755"},
             second: {"content": b"s3cret\x00\xff", "mode": "0600", "user": "nobody", "group": "nogroup"}}  # fmt: skip
    assert caller.cmd("zlogin.file_write_many", zone, files, makedirs=True) is True
    assert caller.cmd("zlogin.file_read", zone, first) == "#!/bin/sh\necho a\n"
    assert caller.cmd("zlogin.file_read", zone, second, encoding=None) == b"s3cret\x00\xff"
    stat = caller.cmd("zlogin.file_stat", zone, second)
    assert (stat["mode"], stat["user"], stat["group"]) == ("0600", "nobody", "nogroup")
    assert caller.cmd("zlogin.file_stat", zone, first)["mode"] == "0755"
    broken = {first: {"content": "changed\n"}, "/opt/local/etc/many/none/c": {"content": "c\n"}}
    with pytest.raises(CommandExecutionError, match="/opt/local/etc/many/none/c: no such directory"):
        caller.cmd("zlogin.file_write_many", zone, broken)
    assert caller.cmd("zlogin.file_read", zone, first) == "#!/bin/sh\necho a\n"  # not replaced
    assert caller.cmd("zlogin.run_stdout", zone, "ls -A /opt/local/etc/many") == "a.sh\nsub"


def test_writes_replace_a_planted_symlink_instead_of_following_it(salt_call, zone):
    salt_call("zlogin.run", zone, "echo original > /var/tmp/victim && ln -sf /var/tmp/victim /var/tmp/link")
    assert salt_call("zlogin.file_write", zone, "/var/tmp/link", "new\n")
    assert salt_call("zlogin.file_read", zone, "/var/tmp/victim") == "original\n"
    assert salt_call("zlogin.file_stat", zone, "/var/tmp/link")["type"] == "file"


def test_bad_paths_are_refused(salt_call, zone, tmp_path):
    for path in ("etc/passwd", "/opt/../etc/passwd", "/opt/./x"):
        assert "zlogin: " in salt_call.error("zlogin.file_write", zone, path, "x")
    assert "is not an octal file mode" in salt_call.error("zlogin.file_write", zone, "/var/tmp/m", "x", mode="rwx")


def test_pkgin_install_of_ucarp(salt_call, zone):
    assert salt_call("zlogin.pkg_version", zone, "ucarp") is None
    first = salt_call("zlogin.pkg_install", zone, "ucarp")
    assert first == {"name": "ucarp", "version": "1.5.2", "changed": True}
    assert salt_call("zlogin.pkg_install", zone, "ucarp")["changed"] is False
    assert salt_call("zlogin.retcode", zone, "test -x /opt/local/sbin/ucarp") == 0
    assert "nosuchpkg is not available in the repository" in salt_call.error("zlogin.pkg_install", zone, "nosuchpkg")
    assert "is not a package name" in salt_call.error("zlogin.pkg_install", zone, "ucarp;reboot")


def test_smf_import_enable_restart_disable(salt_call, zone):
    salt_call("zlogin.file_write", zone, "/opt/local/lib/func-sleeper", GOOD_METHOD, mode="0755", makedirs=True)
    salt_call("zlogin.file_write", zone, "/var/tmp/func-sleeper.xml", MANIFEST)
    assert salt_call("zlogin.svc_import", zone, "/var/tmp/func-sleeper.xml") is True
    assert salt_call("zlogin.svc_state", zone, SERVICE) == "disabled"
    assert salt_call("zlogin.svc_state", zone, "svc:/site/nothing:here") is None
    assert salt_call("zlogin.svc_enable", zone, SERVICE) is True
    assert salt_call("zlogin.svc_state", zone, SERVICE) == "online"
    assert salt_call("zlogin.svc_restart", zone, SERVICE) is True
    assert salt_call("zlogin.svc_state", zone, SERVICE) == "online"
    assert salt_call("zlogin.svc_disable", zone, SERVICE) is True
    assert salt_call("zlogin.svc_state", zone, SERVICE) == "disabled"


def test_smf_maintenance_is_reported_with_svcs_x(salt_call, zone):
    salt_call("zlogin.file_write", zone, "/opt/local/lib/func-sleeper", FAILING_METHOD, mode="0755", makedirs=True)
    salt_call("zlogin.file_write", zone, "/var/tmp/func-sleeper.xml", MANIFEST)
    salt_call("zlogin.svc_import", zone, "/var/tmp/func-sleeper.xml")
    message = salt_call.error("zlogin.svc_enable", zone, SERVICE)
    assert "maintenance" in message
    assert "Reason: Start method failed repeatedly, last exited with status 1." in message
    salt_call("zlogin.file_write", zone, "/opt/local/lib/func-sleeper", GOOD_METHOD, mode="0755")
    assert salt_call("zlogin.svc_clear", zone, SERVICE) is True
    assert salt_call("zlogin.svc_state", zone, SERVICE) == "online"
    assert salt_call("zlogin.svc_delete", zone, SERVICE) is True
    assert salt_call("zlogin.svc_state", zone, SERVICE) is None


def test_invalid_manifest_is_refused_with_svccfgs_message(salt_call, zone):
    salt_call("zlogin.file_write", zone, "/var/tmp/broken.xml", MANIFEST.replace(' timeout_seconds="30"', "", 1))
    message = salt_call.error("zlogin.svc_import", zone, "/var/tmp/broken.xml")
    assert "svccfg import /var/tmp/broken.xml failed" in message
    assert "timeout_seconds" in message


def test_docs_are_a_manual(salt_call):
    docs = salt_call("sys.doc", "zlogin")
    assert {"zlogin.run", "zlogin.file_write", "zlogin.pkg_install", "zlogin.svc_enable"} <= set(docs)
    for name, text in docs.items():
        assert "CLI Example:" in text, name
