"""On Salt older than the oldest tested (3006) every module of the formula
that Salt loads first refuses in ``__virtual__``, with the reason: never a
traceback at load time, never a half-working module. (The states need these
execution modules, so they refuse with them.)"""

import pytest
import salt.version
from support import load_salt_module

MODULES = [("_modules", "vmadm"), ("_modules", "imgadm"), ("_modules", "zlogin"), ("_modules", "ucarp"),
           ("_beacons", "ucarp"), ("_engines", "ucarp"), ("_runners", "ucarp")]  # fmt: skip


@pytest.mark.parametrize(("kind", "name"), MODULES, ids=[f"{k.strip('_')}.{n}" for k, n in MODULES])
def test_salt_before_3006_is_refused_with_the_reason(kind, name, monkeypatch):
    module = load_salt_module(kind, name)
    module.__utils__ = {}
    monkeypatch.setattr(salt.version, "__version_info__", (3005, 5))
    monkeypatch.setattr(salt.version, "__version__", "3005.5")
    assert module.__virtual__() == (False, f"{name}: needs Salt 3006 or newer, this is 3005.5")
