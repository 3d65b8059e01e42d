"""The formula's ``vmadm`` and ``imgadm`` beside Salt's own, through Salt's loader.

On Salt 3006 and 3007 a SmartOS global zone loads Salt's ``smartos_vmadm``
and ``smartos_imgadm`` under the same names. The loader searches the
formula's modules first (custom module dirs come before Salt's own) and
never lets a later module replace a function already loaded: so every
function the formula defines is the formula's, and the ones it leaves out
(``vmadm.sysrq``, ``imgadm.vacuum``...) still come from Salt. Salt 3008 has
neither module: there the formula's are the only ones.

Salt's modules load only where ``is_smartos_globalzone()`` holds; here that
check and ``which`` are made to say yes, so the real loader does the rest.
"""

import importlib.util

import pytest
import salt.config
import salt.loader
import salt.utils.path
import salt.utils.platform
from support import REPO

SALT_HAS_SMARTOS = importlib.util.find_spec("salt.modules.smartos_vmadm") is not None
TOOLS = ("vmadm", "imgadm", "zlogin", "zfs")


@pytest.fixture
def functions(monkeypatch, tmp_path):
    which = salt.utils.path.which
    monkeypatch.setattr(salt.utils.platform, "is_smartos_globalzone", lambda: True)
    monkeypatch.setattr(salt.utils.path, "which", lambda name: f"/usr/sbin/{name}" if name in TOOLS else which(name))
    opts = salt.config.minion_config(None)
    opts.update(
        {
            "module_dirs": [REPO],  # the formula's _modules/, as salt-call -m would take them
            "cachedir": str(tmp_path / "cache"),
            "extension_modules": str(tmp_path / "extmods"),
            "grains": {"os": "SmartOS", "kernel": "SunOS"},
            "pillar": {},
        }
    )
    return salt.loader.minion_mods(opts, utils=salt.loader.utils(opts), context={})


def origin(functions, name):
    return functions[name].__module__.rsplit(".", 1)[-1]


def test_the_formulas_functions_come_first(functions):
    for name in ("vmadm.list", "vmadm.get", "vmadm.create", "vmadm.update", "vmadm.start", "vmadm.stop",
                 "vmadm.reboot", "vmadm.delete", "vmadm.lookup", "vmadm.info"):  # fmt: skip
        assert origin(functions, name) == "vmadm", name
    for name in ("imgadm.list", "imgadm.get", "imgadm.import", "imgadm.avail", "imgadm.sources", "imgadm.delete",
                 "imgadm.docker_to_uuid", "imgadm.source_add", "imgadm.source_delete"):  # fmt: skip
        assert origin(functions, name) == "imgadm", name


@pytest.mark.skipif(not SALT_HAS_SMARTOS, reason="Salt 3008 has no smartos_vmadm or smartos_imgadm")
def test_salts_own_modules_fill_what_the_formula_leaves_out(functions):
    for name in ("vmadm.sysrq", "vmadm.send", "vmadm.receive", "vmadm.reprovision", "vmadm.create_snapshot"):
        assert origin(functions, name) == "smartos_vmadm", name
    for name in ("imgadm.vacuum", "imgadm.version", "imgadm.update"):
        assert origin(functions, name) == "smartos_imgadm", name


@pytest.mark.skipif(SALT_HAS_SMARTOS, reason="Salt before 3008 still ships smartos_vmadm")
def test_on_3008_the_formulas_are_the_only_ones(functions):
    assert "vmadm.sysrq" not in functions
    assert "imgadm.vacuum" not in functions
