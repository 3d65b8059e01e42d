"""Unit tests of _states/zone_pkg.py with a fake zlogin execution module."""

from unittest.mock import MagicMock

import pytest
from salt.exceptions import CommandExecutionError, SaltInvocationError
from support import load_salt_module

ZONE = "zoneA"


class FakePkgin:
    def __init__(self, installed=None):
        self.installed = dict(installed or {})
        self.install = MagicMock(side_effect=self._install)
        self.remove = MagicMock(side_effect=self._remove)

    def version(self, zone, name):
        return self.installed.get(name)

    def _install(self, zone, name):
        changed = name not in self.installed
        self.installed.setdefault(name, "1.5.2nb1")
        return {"name": name, "version": self.installed[name], "changed": changed}

    def _remove(self, zone, name):
        return self.installed.pop(name, None) is not None


@pytest.fixture
def pkgin():
    return FakePkgin()


@pytest.fixture(params=[False, True], ids=["run", "test"])
def test_mode(request):
    return request.param


def load(pkgin, test=False, **extra):
    salt = {
        "zlogin.run": MagicMock(),
        "zlogin.pkg_version": pkgin.version,
        "zlogin.pkg_install": pkgin.install,
        "zlogin.pkg_remove": pkgin.remove,
        **extra,
    }
    return load_salt_module("_states", "zone_pkg", salt=salt, opts={"test": test})


def test_virtual_needs_zlogin(pkgin):
    assert load(pkgin).__virtual__() == "zone_pkg"
    bare = load_salt_module("_states", "zone_pkg", salt={})
    assert bare.__virtual__() == (False, "zone_pkg: needs the zlogin execution module (SmartOS global zone)")


def test_installed_installs(pkgin, test_mode):
    ret = load(pkgin, test=test_mode).installed("ucarp", ZONE)
    if test_mode:
        assert ret["result"] is None
        assert ret["changes"] == {"ucarp": {"old": None, "new": "latest"}}
        assert ret["comment"] == "Package ucarp would be installed in zone zoneA"
        pkgin.install.assert_not_called()
    else:
        assert ret["result"] is True
        assert ret["changes"] == {"ucarp": {"old": None, "new": "1.5.2nb1"}}
        pkgin.install.assert_called_once_with(ZONE, "ucarp")


def test_installed_already(pkgin, test_mode):
    pkgin.installed["ucarp"] = "1.5.2"
    ret = load(pkgin, test=test_mode).installed("ucarp", ZONE)
    assert ret == {
        "name": "ucarp",
        "result": True,
        "changes": {},
        "comment": "Package ucarp 1.5.2 is installed in zone zoneA",
    }
    pkgin.install.assert_not_called()


@pytest.mark.parametrize(
    "error",
    [
        CommandExecutionError("zlogin: zone zoneA: pkgin install nope failed (exit 1): nope is not available"),
        SaltInvocationError("zlogin: '$(x)' is not a package name"),
    ],
)
def test_installed_error(pkgin, error):
    pkgin.install.side_effect = error
    ret = load(pkgin).installed("nope", ZONE)
    assert ret == {"name": "nope", "result": False, "changes": {}, "comment": str(error)}


def test_installed_zone_down(pkgin):
    def down(zone, name):
        raise CommandExecutionError("zlogin: zone zoneA: login allowed only to running zones")

    ret = load(pkgin, **{"zlogin.pkg_version": down}).installed("ucarp", ZONE)
    assert ret["result"] is False
    assert "running zones" in ret["comment"]


def test_removed(pkgin, test_mode):
    pkgin.installed["ucarp"] = "1.5.2"
    ret = load(pkgin, test=test_mode).removed("ucarp", ZONE)
    assert ret["changes"] == {"ucarp": {"old": "1.5.2", "new": None}}
    assert ret["result"] is (None if test_mode else True)
    assert pkgin.remove.called is not test_mode


def test_removed_already(pkgin):
    ret = load(pkgin).removed("ucarp", ZONE)
    assert ret["result"] is True and ret["changes"] == {}
    pkgin.remove.assert_not_called()


def test_removed_error(pkgin):
    pkgin.installed["ucarp"] = "1.5.2"
    pkgin.remove.side_effect = CommandExecutionError("zlogin: zone zoneA: pkgin remove ucarp failed (exit 1): locked")
    ret = load(pkgin).removed("ucarp", ZONE)
    assert ret["result"] is False
    assert ret["comment"].endswith("locked")
