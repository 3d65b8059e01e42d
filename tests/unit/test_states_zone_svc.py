"""Unit tests of _states/zone_svc.py with fake zlogin functions (and the real zone_file state)."""

import hashlib
from unittest.mock import MagicMock

import pytest
from salt.exceptions import CommandExecutionError
from support import load_salt_module

ZONE = "zoneA"
FMRI = "svc:/network/ucarp:web"
MANIFEST = "/opt/local/lib/svc/manifest/ucarp.xml"
XML = "<?xml version='1.0'?>\n<service_bundle type='manifest' name='ucarp'/>\n"


class FakeSmf:
    """One zone's SMF instances ``{fmri: state}`` and files ``{path: text}``."""

    def __init__(self):
        self.states = {}
        self.files = {}
        self.enable = MagicMock(side_effect=lambda zone, fmri, temporary=False: self._set(fmri, "online"))
        self.disable = MagicMock(side_effect=lambda zone, fmri: self._set(fmri, "disabled"))
        self.clear = MagicMock(side_effect=lambda zone, fmri, wait=True: self._set(fmri, "offline"))
        self.restart = MagicMock(return_value=True)
        self.refresh = MagicMock(return_value=True)
        self.delete = MagicMock(side_effect=self._delete)
        self.import_ = MagicMock(side_effect=lambda zone, path: self.states.setdefault(FMRI, "disabled") and True)
        self.write = MagicMock(side_effect=self._write)

    def _set(self, fmri, state):
        self.states[fmri] = state
        return True

    def _delete(self, zone, fmri):
        gone = [f for f in self.states if f == fmri or f.startswith(fmri + ":")]
        for f in gone:
            del self.states[f]
        return bool(gone)

    def _write(self, zone, path, content, mode, user, group, makedirs):
        self.files[path] = content
        return True

    def instances(self, zone, pattern):
        return {f: s for f, s in self.states.items() if f == pattern or f.startswith(pattern + ":")}

    def state(self, zone, fmri):
        return self.states.get(fmri)

    def file_hash(self, zone, path):
        text = self.files.get(path)
        return None if text is None else hashlib.sha256(text.encode()).hexdigest()

    def file_stat(self, zone, path):
        return {"type": "file", "mode": "0444", "user": "root", "group": "root"} if path in self.files else None

    def salt(self):
        return {
            "zlogin.run": MagicMock(side_effect=AssertionError("states ask zlogin.svc_instances, never run svcs")),
            "zlogin.svc_instances": self.instances,
            "zlogin.svc_state": self.state,
            "zlogin.svc_enable": self.enable,
            "zlogin.svc_disable": self.disable,
            "zlogin.svc_clear": self.clear,
            "zlogin.svc_restart": self.restart,
            "zlogin.svc_refresh": self.refresh,
            "zlogin.svc_delete": self.delete,
            "zlogin.svc_import": self.import_,
            "zlogin.file_hash": self.file_hash,
            "zlogin.file_stat": self.file_stat,
            "zlogin.file_read": lambda zone, path: self.files[path],
            "zlogin.file_write": self.write,
        }


@pytest.fixture
def smf():
    return FakeSmf()


@pytest.fixture(params=[False, True], ids=["run", "test"])
def test_mode(request):
    return request.param


def load(smf, test=False):
    salt, opts = smf.salt(), {"test": test}
    zone_file = load_salt_module("_states", "zone_file", salt=salt, opts=opts)
    zone_svc = load_salt_module("_states", "zone_svc", salt=salt, opts=opts)
    zone_svc.__states__ = {"zone_file.managed": zone_file.managed}
    return zone_svc


def maintenance_error(action):
    return CommandExecutionError(
        f"zlogin: zone zoneA: svcadm {action} {FMRI}: svc:/network/ucarp:web is in maintenance\n"
        "svc:/network/ucarp:web (UCARP)\n Reason: Start method failed repeatedly, last exited with status 1."
    )


def test_virtual_needs_zlogin(smf):
    assert load(smf).__virtual__() == "zone_svc"
    bare = load_salt_module("_states", "zone_svc", salt={})
    assert bare.__virtual__() == (False, "zone_svc: needs the zlogin execution module (SmartOS global zone)")


# manifest_imported ------------------------------------------------------------


def test_new_manifest_written_and_imported(smf, test_mode):
    ret = load(smf, test=test_mode).manifest_imported(MANIFEST, ZONE, contents=XML, service=FMRI)
    assert ret["changes"]["new"] == "file created"
    assert ret["changes"]["mode"] == {"old": None, "new": "0444"}
    assert ret["changes"]["imported"] is True
    if test_mode:
        assert ret["result"] is None
        assert "would be imported" in ret["comment"]
        smf.write.assert_not_called()
        smf.import_.assert_not_called()
    else:
        assert ret["result"] is True
        smf.write.assert_called_once_with(ZONE, MANIFEST, XML, mode="0444", user="root", group="root", makedirs=True)
        smf.import_.assert_called_once_with(ZONE, MANIFEST)


def test_manifest_in_place_and_service_known(smf, test_mode):
    smf.files[MANIFEST] = XML
    smf.states[FMRI] = "online"
    ret = load(smf, test=test_mode).manifest_imported(MANIFEST, ZONE, contents=XML, service=FMRI)
    assert ret["result"] is True
    assert ret["changes"] == {}
    smf.import_.assert_not_called()


def test_unchanged_manifest_imported_when_service_unknown(smf, test_mode):
    smf.files[MANIFEST] = XML
    ret = load(smf, test=test_mode).manifest_imported(MANIFEST, ZONE, contents=XML, service=FMRI)
    assert ret["changes"] == {"imported": True}
    assert ret["result"] is (None if test_mode else True)
    assert "is not known to SMF" in ret["comment"]
    assert smf.import_.called is not test_mode


def test_changed_manifest_reimported(smf):
    smf.files[MANIFEST] = XML
    smf.states[FMRI] = "online"
    ret = load(smf).manifest_imported(MANIFEST, ZONE, contents=XML.replace("ucarp'", "ucarp2'"))
    assert set(ret["changes"]) == {"diff", "imported"}
    smf.import_.assert_called_once()


def test_import_error_keeps_file_changes(smf):
    smf.import_.side_effect = CommandExecutionError(
        "zlogin: zone zoneA: svccfg import /x.xml failed (exit 1): svccfg: parser error"
    )
    ret = load(smf).manifest_imported(MANIFEST, ZONE, contents=XML)
    assert ret["result"] is False
    assert "parser error" in ret["comment"]
    assert ret["changes"]["new"] == "file created"
    assert "imported" not in ret["changes"]


def test_manifest_file_error(smf):
    smf.write.side_effect = CommandExecutionError("zlogin: zone zoneA: login allowed only to running zones")
    ret = load(smf).manifest_imported(MANIFEST, ZONE, contents=XML, service=FMRI)
    assert ret["result"] is False
    assert "running zones" in ret["comment"]
    smf.import_.assert_not_called()


# running ----------------------------------------------------------------------


@pytest.mark.parametrize("state", ["disabled", "offline"])
def test_running_enables(smf, test_mode, state):
    smf.states[FMRI] = state
    ret = load(smf, test=test_mode).running(FMRI, ZONE)
    assert ret["changes"] == {"state": {"old": state, "new": "online"}}
    if test_mode:
        assert ret["result"] is None
        smf.enable.assert_not_called()
    else:
        assert ret["result"] is True
        smf.enable.assert_called_once_with(ZONE, FMRI, temporary=False)


def test_running_temporary(smf):
    smf.states[FMRI] = "disabled"
    load(smf).running(FMRI, ZONE, enable=False)
    smf.enable.assert_called_once_with(ZONE, FMRI, temporary=True)


def test_running_clears_maintenance(smf):
    smf.states[FMRI] = "maintenance"
    ret = load(smf).running(FMRI, ZONE)
    assert ret["result"] is True
    assert ret["changes"] == {"state": {"old": "maintenance", "new": "online"}}
    smf.clear.assert_called_once_with(ZONE, FMRI, wait=False)
    smf.enable.assert_called_once()


def test_running_online_already(smf, test_mode):
    smf.states[FMRI] = "online"
    ret = load(smf, test=test_mode).running(FMRI, ZONE)
    assert ret == {"name": FMRI, "result": True, "changes": {}, "comment": f"Service {FMRI} is online in zone {ZONE}"}
    smf.enable.assert_not_called()


def test_running_unknown(smf):
    ret = load(smf).running(FMRI, ZONE)
    assert ret["result"] is False
    assert ret["comment"] == f"Service {FMRI} is not known to SMF in zone {ZONE} (import its manifest first)"


def test_running_maintenance_error_carries_explanation(smf):
    smf.states[FMRI] = "disabled"
    smf.enable.side_effect = maintenance_error("enable")
    ret = load(smf).running(FMRI, ZONE)
    assert ret["result"] is False
    assert "Start method failed repeatedly" in ret["comment"]
    assert ret["changes"] == {}


# mod_watch --------------------------------------------------------------------


def test_mod_watch_restarts_online(smf, test_mode):
    smf.states[FMRI] = "online"
    ret = load(smf, test=test_mode).mod_watch(FMRI, ZONE, sfun="running")
    assert ret["changes"] == {"restarted": True}
    if test_mode:
        assert ret["result"] is None
        assert "would be restarted" in ret["comment"]
        smf.restart.assert_not_called()
    else:
        assert ret["result"] is True
        smf.restart.assert_called_once_with(ZONE, FMRI)


def test_mod_watch_with_reload_refreshes_online(smf, test_mode):
    """``reload: true``: a watch refreshes the instance (its refresh method re-reads), it is not stopped."""
    smf.states[FMRI] = "online"
    ret = load(smf, test=test_mode).mod_watch(FMRI, ZONE, sfun="running", reload=True)
    assert ret["changes"] == {"refreshed": True}
    smf.restart.assert_not_called()
    if test_mode:
        assert ret["result"] is None and "would be refreshed" in ret["comment"]
        smf.refresh.assert_not_called()
    else:
        assert ret["result"] is True and ret["comment"] == f"Service {FMRI} refreshed in zone {ZONE}"
        smf.refresh.assert_called_once_with(ZONE, FMRI)


@pytest.mark.parametrize("reload", [False, True])
def test_mod_watch_leaves_an_instance_this_run_started_after_the_changes(smf, reload):
    """First apply: the files, then the start, then the watch: nothing left to refresh."""
    smf.states[FMRI] = "online"
    module = load(smf)
    module.__salt__["zlogin.fresh"] = MagicMock(return_value=True)
    module.__low__ = {"watch": [{"zone_file": "conf"}, {"zone_file": "passfile"}]}
    ret = module.mod_watch(FMRI, ZONE, sfun="running", reload=reload)
    verb = "refreshed" if reload else "restarted"
    assert ret == {
        "name": FMRI,
        "result": True,
        "changes": {},
        "comment": f"Service {FMRI} in zone {ZONE} was started by this run after what it watches changed: not {verb}",
    }
    smf.refresh.assert_not_called()
    smf.restart.assert_not_called()
    module.__salt__["zlogin.fresh"].assert_called_once_with(ZONE, FMRI)


@pytest.mark.parametrize(
    "watch",
    [
        [{"zone_file": "conf"}, {"file": "a global zone file"}],  # a change zlogin did not count
        [],
    ],
)
def test_mod_watch_refreshes_when_it_cannot_know_the_instance_saw_the_change(smf, watch):
    smf.states[FMRI] = "online"
    module = load(smf)
    module.__salt__["zlogin.fresh"] = MagicMock(return_value=True)
    module.__low__ = {"watch": watch}
    ret = module.mod_watch(FMRI, ZONE, sfun="running", reload=True)
    assert ret["changes"] == {"refreshed": True}
    smf.refresh.assert_called_once_with(ZONE, FMRI)
    module.__salt__["zlogin.fresh"].assert_not_called()


def test_mod_watch_refreshes_an_instance_not_fresh(smf):
    smf.states[FMRI] = "online"
    module = load(smf)
    module.__salt__["zlogin.fresh"] = MagicMock(return_value=False)
    module.__low__ = {"watch": [{"zone_file": "conf"}]}
    assert module.mod_watch(FMRI, ZONE, sfun="running", reload=True)["changes"] == {"refreshed": True}
    smf.refresh.assert_called_once_with(ZONE, FMRI)


def test_mod_watch_starts_what_is_not_online(smf):
    smf.states[FMRI] = "disabled"
    ret = load(smf).mod_watch(FMRI, ZONE, sfun="running", enable=True, __reqs__={})
    assert ret["result"] is True
    assert ret["changes"] == {"state": {"old": "disabled", "new": "online"}}
    smf.restart.assert_not_called()
    smf.enable.assert_called_once()


def test_mod_watch_restart_error(smf):
    smf.states[FMRI] = "online"
    smf.restart.side_effect = maintenance_error("restart")
    ret = load(smf).mod_watch(FMRI, ZONE, sfun="running")
    assert ret["result"] is False
    assert "maintenance" in ret["comment"]


def test_mod_watch_dead_and_unknown_sfun(smf):
    smf.states[FMRI] = "online"
    assert load(smf).mod_watch(FMRI, ZONE, sfun="dead")["changes"] == {"state": {"old": "online", "new": "disabled"}}
    ret = load(smf).mod_watch(FMRI, ZONE, sfun="absent")
    assert ret["result"] is False
    assert ret["comment"] == "Unable to trigger watch for zone_svc.absent"


# dead and absent --------------------------------------------------------------


def test_dead(smf, test_mode):
    smf.states[FMRI] = "online"
    ret = load(smf, test=test_mode).dead(FMRI, ZONE)
    assert ret["changes"] == {"state": {"old": "online", "new": "disabled"}}
    assert ret["result"] is (None if test_mode else True)
    assert smf.disable.called is not test_mode


@pytest.mark.parametrize("state", [None, "disabled"])
def test_dead_nothing_to_do(smf, state):
    if state:
        smf.states[FMRI] = state
    ret = load(smf).dead(FMRI, ZONE)
    assert ret["result"] is True and ret["changes"] == {}
    smf.disable.assert_not_called()


def test_dead_error(smf):
    smf.states[FMRI] = "online"
    smf.disable.side_effect = CommandExecutionError("zlogin: zone zoneA: svcadm disable x failed (exit 1): denied")
    ret = load(smf).dead(FMRI, ZONE)
    assert ret["result"] is False and ret["comment"].endswith("denied")


def test_absent_disables_and_deletes(smf, test_mode):
    smf.states[FMRI] = "online"
    ret = load(smf, test=test_mode).absent(FMRI, ZONE)
    assert ret["changes"] == {"state": {"old": "online", "new": None}}
    if test_mode:
        assert ret["result"] is None
        smf.disable.assert_not_called()
        smf.delete.assert_not_called()
    else:
        assert ret["result"] is True
        smf.disable.assert_called_once_with(ZONE, FMRI)
        smf.delete.assert_called_once_with(ZONE, FMRI)
        assert smf.states == {}


def test_absent_service_with_instances(smf):
    smf.states.update({FMRI: "online", "svc:/network/ucarp:db": "disabled"})
    ret = load(smf).absent("svc:/network/ucarp", ZONE)
    assert ret["changes"] == {"state": {"old": {FMRI: "online", "svc:/network/ucarp:db": "disabled"}, "new": None}}
    smf.disable.assert_called_once_with(ZONE, FMRI)
    smf.delete.assert_called_once_with(ZONE, "svc:/network/ucarp")


def test_absent_unknown(smf):
    ret = load(smf).absent(FMRI, ZONE)
    assert ret["result"] is True and ret["changes"] == {}
    smf.delete.assert_not_called()
