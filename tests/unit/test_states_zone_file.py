"""Unit tests of _states/zone_file.py with a fake zlogin execution module."""

import hashlib
from unittest.mock import MagicMock

import pytest
from salt.exceptions import CommandExecutionError, SaltInvocationError
from support import load_salt_module

ZONE = "zoneA"
PATH = "/opt/local/etc/ucarp/web.conf"
SECRET = "s3cr3t-VIP-password"


def pillar():
    """The in-memory pillar, as the minion holds it: on Salt 3008 a masked
    dict (plain values inside, ``**********`` when shown), plain on 3006/3007."""
    data = {"ucarp": {"clusters": {"web": {"password": SECRET}}}}
    try:
        import salt.utils.secret  # new in Salt 3008
    except ImportError:
        return data
    return salt.utils.secret.hide(data)


class FakeZone:
    """Files of one zone: ``{path: (text, {"mode", "user", "group"})}``."""

    def __init__(self, files=None):
        self.files = dict(files or {})
        self.write = MagicMock(side_effect=self._write)
        self.read = MagicMock(side_effect=self._read)
        self.remove = MagicMock(side_effect=lambda zone, path: self.files.pop(path, None) is not None)
        self.write_many = MagicMock(side_effect=self._write_many)

    def _write(self, zone, path, content, mode, user, group, makedirs):
        self.files[path] = (content, {"type": "file", "mode": mode, "user": user, "group": group})
        return True

    def _write_many(self, zone, files, makedirs):
        for path, spec in files.items():
            self._write(zone, path, spec["content"], spec["mode"], spec["user"], spec["group"], makedirs)
        return True

    def _read(self, zone, path):
        return self.files[path][0]

    def hash(self, zone, path):
        if path not in self.files:
            return None
        return hashlib.sha256(self.files[path][0].encode("utf-8")).hexdigest()

    def stat(self, zone, path):
        return dict(self.files[path][1]) if path in self.files else None

    def salt(self, **extra):
        return {
            "zlogin.run": MagicMock(),
            "zlogin.file_hash": self.hash,
            "zlogin.file_stat": self.stat,
            "zlogin.file_read": self.read,
            "zlogin.file_write": self.write,
            "zlogin.file_write_many": self.write_many,
            "zlogin.file_remove": self.remove,
            "cp.get_file_str": lambda url: {"salt://ucarp/web.conf": "from master\n"}.get(url, False),
            **extra,
        }


def meta(mode="0644", user="root", group="root"):
    return {"type": "file", "mode": mode, "user": user, "group": group}


@pytest.fixture
def zone():
    return FakeZone()


@pytest.fixture(params=[False, True], ids=["run", "test"])
def test_mode(request):
    return request.param


def load(zone, test=False, **extra):
    module = load_salt_module("_states", "zone_file", salt=zone.salt(**extra), opts={"test": test})
    module.__pillar__ = pillar()
    return module


def test_virtual_needs_zlogin(zone):
    assert load(zone).__virtual__() == "zone_file"
    bare = load_salt_module("_states", "zone_file", salt={})
    assert bare.__virtual__() == (False, "zone_file: needs the zlogin execution module (SmartOS global zone)")


def test_missing_file_is_created(zone, test_mode):
    ret = load(zone, test=test_mode).managed(PATH, ZONE, contents="a\n", makedirs=True)
    assert ret["changes"] == {
        "new": "file created",
        "mode": {"old": None, "new": "0644"},
        "user": {"old": None, "new": "root"},
        "group": {"old": None, "new": "root"},
    }
    if test_mode:
        assert ret["result"] is None
        assert "would be created" in ret["comment"]
        zone.write.assert_not_called()
    else:
        assert ret["result"] is True
        zone.write.assert_called_once_with(ZONE, PATH, "a\n", mode="0644", user="root", group="root", makedirs=True)


def test_file_in_desired_state(zone, test_mode):
    zone.files[PATH] = ("a\n", meta())
    ret = load(zone, test=test_mode).managed(PATH, ZONE, contents="a\n")
    assert ret == {
        "name": PATH,
        "result": True,
        "changes": {},
        "comment": f"File {PATH} in zone {ZONE} is in the desired state",
    }
    zone.write.assert_not_called()


def test_changed_content_shows_a_diff(zone, test_mode):
    zone.files[PATH] = ("a\nb\n", meta())
    ret = load(zone, test=test_mode).managed(PATH, ZONE, contents="a\nc\n")
    assert ret["result"] is (None if test_mode else True)
    assert list(ret["changes"]) == ["diff"]
    assert "-b\n" in ret["changes"]["diff"] and "+c\n" in ret["changes"]["diff"]
    assert zone.write.called is not test_mode


def test_mode_and_owner_changes(zone):
    zone.files[PATH] = ("a\n", meta(mode="0644", user="nobody"))
    ret = load(zone).managed(PATH, ZONE, contents="a\n", mode="0600")
    assert ret["changes"] == {"mode": {"old": "0644", "new": "0600"}, "user": {"old": "nobody", "new": "root"}}
    assert zone.files[PATH][1]["mode"] == "0600"
    zone.read.assert_not_called()  # content unchanged: nothing to diff


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        (644, "0644"),
        (600, "0600"),
        ("644", "0644"),
        ("0o644", "0644"),
        ("0600", "0600"),
        (4755, "4755"),
        ("00644", "0644"),
    ],
)
def test_mode_is_normalised(zone, mode, expected):
    load(zone).managed(PATH, ZONE, contents="a", mode=mode)
    assert zone.write.call_args.kwargs["mode"] == expected


@pytest.mark.parametrize("mode", ["rw-r--r--", 988, "12345", True])
def test_bad_mode_is_refused(zone, mode):
    ret = load(zone).managed(PATH, ZONE, contents="a", mode=mode)
    assert ret["result"] is False
    assert "is not an octal file mode" in ret["comment"]
    zone.write.assert_not_called()


@pytest.mark.parametrize("how", ["secret", "contents_pillar"])
def test_secret_never_read_nor_shown(zone, test_mode, how, caplog):
    caplog.set_level("DEBUG")
    zone.files[PATH] = ("old secret\n", meta(mode="0600"))
    kwargs = (
        {"contents": SECRET, "secret": True} if how == "secret" else {"contents_pillar": "ucarp:clusters:web:password"}
    )
    ret = load(zone, test=test_mode).managed(PATH, ZONE, mode="0600", **kwargs)
    assert ret["result"] is (None if test_mode else True)
    assert ret["changes"] == {"diff": "<secret contents changed>"}
    assert SECRET not in repr(ret) and "old secret" not in repr(ret)
    assert SECRET not in caplog.text
    zone.read.assert_not_called()
    if not test_mode:
        assert zone.files[PATH][0] == SECRET


def test_secret_new_file(zone):
    ret = load(zone).managed(PATH, ZONE, contents_pillar="ucarp:clusters:web:password", mode=600)
    assert ret["changes"]["new"] == "<secret>"
    assert SECRET not in repr(ret)
    zone.read.assert_not_called()


def test_source_from_master(zone):
    ret = load(zone).managed(PATH, ZONE, source="salt://ucarp/web.conf")
    assert ret["result"] is True
    assert zone.files[PATH][0] == "from master\n"


def test_missing_source_names_it(zone):
    ret = load(zone).managed(PATH, ZONE, source="salt://ucarp/nope.conf")
    assert ret["result"] is False
    assert "salt://ucarp/nope.conf" in ret["comment"]
    zone.write.assert_not_called()


def test_missing_pillar_names_the_key(zone):
    ret = load(zone).managed(PATH, ZONE, contents_pillar="ucarp:clusters:db:password")
    assert ret["result"] is False
    assert "ucarp:clusters:db:password" in ret["comment"]


@pytest.mark.parametrize("kwargs", [{}, {"contents": "a", "source": "salt://ucarp/web.conf"}])
def test_exactly_one_content_source(zone, kwargs):
    ret = load(zone).managed(PATH, ZONE, **kwargs)
    assert ret["result"] is False
    assert "exactly one of contents, source or contents_pillar" in ret["comment"]


def test_empty_contents_is_allowed(zone):
    assert load(zone).managed(PATH, ZONE, contents="")["result"] is True
    assert zone.files[PATH][0] == ""


def test_write_error_is_a_failed_state(zone):
    error = CommandExecutionError("zlogin: zone zoneA: writing /x/y failed (exit 3): no such directory: /x")
    mod = load(zone, **{"zlogin.file_write": MagicMock(side_effect=error)})
    ret = mod.managed("/x/y", ZONE, contents="a")
    assert ret["result"] is False
    assert ret["comment"] == str(error)
    assert ret["changes"] == {}


def test_bad_path_is_a_failed_state(zone):
    def refuse(zone_, path):
        raise SaltInvocationError(f"zlogin: {path!r} is not an absolute path")

    ret = load(zone, **{"zlogin.file_hash": refuse}).managed("etc/x", ZONE, contents="a")
    assert ret["result"] is False
    assert "not an absolute path" in ret["comment"]


def test_binary_old_content(zone):
    zone.files[PATH] = ("a", meta())
    zone.read.side_effect = UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte")
    ret = load(zone).managed(PATH, ZONE, contents="b")
    assert ret["changes"] == {"diff": "<binary contents replaced>"}


def test_absent(zone, test_mode):
    zone.files[PATH] = ("a", meta())
    ret = load(zone, test=test_mode).absent(PATH, ZONE)
    assert ret["changes"] == {"removed": {"old": PATH, "new": None}}
    assert ret["result"] is (None if test_mode else True)
    assert zone.remove.called is not test_mode
    assert (PATH in zone.files) is test_mode


def test_absent_already(zone):
    ret = load(zone).absent(PATH, ZONE)
    assert ret["result"] is True and ret["changes"] == {}
    zone.remove.assert_not_called()


def test_absent_error(zone):
    zone.files[PATH] = ("a", meta())
    zone.remove.side_effect = CommandExecutionError("zlogin: zone zoneA: removing /p failed (exit 1): busy")
    ret = load(zone).absent(PATH, ZONE)
    assert ret == {
        "name": PATH,
        "result": False,
        "changes": {},
        "comment": "zlogin: zone zoneA: removing /p failed (exit 1): busy",
    }


HOOKS = {"/opt/local/lib/ucarp/vip-up": "#!/bin/sh\nup\n", "/opt/local/lib/ucarp/vip-down": "#!/bin/sh\ndown\n"}


def hook_files(**extra):
    files = {path: {"contents": text, "mode": "0755"} for path, text in HOOKS.items()}
    files.update(extra)
    return files


def test_files_managed_writes_what_differs_with_one_write(zone, test_mode):
    up, down = HOOKS
    zone.files[up] = (HOOKS[up], meta("0755"))
    zone.files[down] = ("#!/bin/sh\nold\n", meta("0755"))
    conf = "/opt/local/etc/ucarp/web.conf"
    files = hook_files(**{conf: {"source": "salt://ucarp/web.conf"}})
    ret = load(zone, test=test_mode).files_managed("ucarp hooks", ZONE, files, makedirs=True)
    assert set(ret["changes"]) == {down, conf}
    assert "-old" in ret["changes"][down]["diff"] and "+down" in ret["changes"][down]["diff"]
    assert ret["changes"][conf]["new"] == "file created"
    if test_mode:
        assert ret["result"] is None
        assert ret["comment"] == f"2 of 3 files in zone {ZONE} would be written: {down}, {conf}"
        zone.write_many.assert_not_called()
        return
    assert ret["result"] is True
    assert ret["comment"] == f"2 of 3 files in zone {ZONE} written: {down}, {conf}"
    zone.write_many.assert_called_once_with(
        ZONE,
        {
            down: {"content": HOOKS[down], "mode": "0755", "user": "root", "group": "root"},
            conf: {"content": "from master\n", "mode": "0644", "user": "root", "group": "root"},
        },
        makedirs=True,
    )
    zone.write.assert_not_called()


def test_files_managed_in_desired_state_writes_nothing(zone, test_mode):
    for path, text in HOOKS.items():
        zone.files[path] = (text, meta("0755"))
    ret = load(zone, test=test_mode).files_managed("ucarp hooks", ZONE, hook_files())
    assert ret == {
        "name": "ucarp hooks",
        "result": True,
        "changes": {},
        "comment": f"All 2 files in zone {ZONE} are in the desired state",
    }
    zone.write_many.assert_not_called()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"/opt/x": {"contents": "x", "owner": "root"}}, "files: /opt/x: unknown key(s) owner (known: contents,"),
        ({"/opt/x": {"contents": "x", "mode": "99"}}, "/opt/x: zone_file: '99' is not an octal file mode"),
        ({"/opt/x": {"source": "salt://nope"}}, "/opt/x: zone_file: the source salt://nope was not found"),
        ({"/opt/x": {"contents": "x", "source": "salt://ucarp/web.conf"}}, "/opt/x: zone_file: give exactly one"),
        ({"/opt/x": "text"}, "files: /opt/x: give its contents, source or contents_pillar"),
    ],
)
def test_files_managed_bad_file_fails_before_anything_is_written(zone, extra, message):
    ret = load(zone).files_managed("ucarp hooks", ZONE, hook_files(**extra))
    assert ret["result"] is False
    assert message in ret["comment"], ret["comment"]
    assert ret["changes"] == {}
    zone.write_many.assert_not_called()


@pytest.mark.parametrize("files", [{}, None, ["/opt/x"]])
def test_files_managed_needs_files(zone, files):
    ret = load(zone).files_managed("ucarp hooks", ZONE, files)
    assert ret["result"] is False
    assert "files: give {path:" in ret["comment"]


def test_files_managed_write_error_is_a_failed_state_naming_the_file(zone):
    error = CommandExecutionError(f"zlogin: zone {ZONE}: writing 2 files failed (exit 3): /opt/x: no such directory")
    ret = load(zone, **{"zlogin.file_write_many": MagicMock(side_effect=error)}).files_managed(
        "ucarp hooks", ZONE, hook_files()
    )
    assert ret["result"] is False
    assert ret["changes"] == {}
    assert ret["comment"] == str(error)


def test_files_managed_keeps_secrets_out_of_changes_and_comment(zone, caplog):
    pass_path = "/opt/local/etc/ucarp/web.pass"
    zone.files[pass_path] = ("old-password", meta("0600"))
    files = hook_files(**{pass_path: {"contents_pillar": "ucarp:clusters:web:password", "mode": "0600"}})
    with caplog.at_level("DEBUG"):
        ret = load(zone).files_managed("ucarp files", ZONE, files)
    assert ret["result"] is True
    assert ret["changes"][pass_path] == {"diff": "<secret contents changed>"}
    zone.read.assert_not_called()
    assert SECRET not in repr(ret) and SECRET not in caplog.text
    assert zone.files[pass_path][0] == SECRET
