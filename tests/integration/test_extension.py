"""The formula pip-installed as a Salt extension, with no ``saltutil.sync_all``.

The wheel is built from this repository (``pip wheel``, as ``make wheel``
does) and installed, with this Salt version, into a fresh virtualenv. Salt's
loader finds the modules, states, beacon and runner through the package's
``salt.loader`` entry point; the SLS come from the folder that
``python -m saltext.ucarp`` names. Then ``state.apply ucarp`` on two
simulated hypervisors gives a cluster with one master.
"""

import json
import os
import subprocess
import sys

import pytest
import salt.version
from support import REPO, Minion, wait_for

pytestmark = [pytest.mark.root, pytest.mark.matrix]

CLUSTER = {
    "ext": {
        "vip": "192.0.2.120",
        "vhid": 120,
        "password": "ext-Secret-1",
        "nodes": {"ext-a": {"host": "gz1", "ip": "192.0.2.31"}, "ext-b": {"host": "gz2", "ip": "192.0.2.32"}},
    }
}


def formula_version():
    with open(os.path.join(REPO, "FORMULA"), encoding="utf-8") as fh:
        return next(line.split(":", 1)[1].strip() for line in fh if line.startswith("version:"))


def lock_file():
    """The constraints this Salt version's test environment was built from."""
    major = salt.version.__version_info__[0]
    versioned = os.path.join(REPO, "requirements", f"salt{major}.lock")
    return versioned if os.path.exists(versioned) else os.path.join(REPO, "requirements.lock")


def synced(minion):
    """The custom modules a sync left in the minion's cache (none, here)."""
    return sorted(str(p) for p in (minion.cachedir / "extmods").rglob("*.py"))


def run(*argv, **kwargs):
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=600, check=False, **kwargs)
    assert proc.returncode == 0, f"{argv}: {proc.stdout}{proc.stderr}"
    return proc.stdout


@pytest.fixture(scope="module")
def venv(tmp_path_factory):
    """A fresh virtualenv with this Salt and the formula's wheel, nothing else."""
    base = tmp_path_factory.mktemp("extension")
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    run(*pip, "wheel", "-q", "--no-deps", "-w", str(base / "dist"), REPO)
    (wheel,) = (base / "dist").glob("ucarp_formula-*.whl")
    assert wheel.name.startswith(f"ucarp_formula-{formula_version()}-")  # one version: FORMULA's
    run(sys.executable, "-m", "venv", str(base / "venv"))
    bin_dir = base / "venv" / "bin"
    run(str(bin_dir / "pip"), "install", "-q", "--disable-pip-version-check", "-c", lock_file(),
        f"salt=={salt.version.__version__}", str(wheel))  # fmt: skip
    return bin_dir


@pytest.fixture(scope="module")
def minions(bed, tmp_path_factory, pillar_dir, venv, set_pillar):
    file_roots = run(str(venv / "python"), "-m", "saltext.ucarp").strip()
    assert file_roots.startswith(str(venv.parent)) and os.path.isfile(os.path.join(file_roots, "ucarp", "init.sls"))
    set_pillar(CLUSTER)
    return {
        name: Minion(
            bed.gz(name), tmp_path_factory.mktemp(f"ext-{name}"), pillar_dir, str(venv / "salt-call"), [file_roots]
        )  # fmt: skip
        for name in ("gz1", "gz2")
    }


def test_modules_load_from_the_package_without_a_sync(minions, venv):
    gz1 = minions["gz1"]
    docs = gz1.call("sys.doc", "vmadm")
    assert "CLI Example:" in docs["vmadm.list"] and "vmadm.create" in docs
    assert set(gz1.call("sys.list_functions", "ucarp")) >= {"ucarp.validate", "ucarp.plan", "ucarp.status"}
    assert set(gz1.call("sys.list_state_functions", "zone_file", "smartos_vm", "ucarp")) >= {
        "zone_file.managed",
        "smartos_vm.present",
        "ucarp.pruned",
    }
    assert gz1.call("ucarp.validate") == []
    assert synced(gz1) == []

    # The beacon, the engine and the runner are found the same way (no minion needed).
    loaded = run(
        str(venv / "python"),
        "-c",
        "import json, salt.config, salt.loader\n"
        "opts = salt.config.minion_config(None)\n"
        "beacons = salt.loader.beacons(opts, {})\n"
        "engines = salt.loader.engines(opts, {}, [], {})\n"
        "runners = salt.loader.runner(salt.config.master_config(None))\n"
        "print(json.dumps({'beacon': 'ucarp.deliver' in beacons, 'engine': 'ucarp.start' in engines,\n"
        "                  'runner': 'ucarp.status' in runners, 'file': runners['ucarp.status'].__module__}))",
    )
    found = json.loads(loaded.strip().splitlines()[-1])
    assert found["beacon"] is True and found["engine"] is True and found["runner"] is True, found


def test_state_apply_gives_one_master(minions, bed):
    for minion in minions.values():
        results = minion.apply("ucarp")
        assert any(r["changes"] for r in results.values())
        assert synced(minion) == []

    def masters():
        found = []
        for alias, node in CLUSTER["ext"]["nodes"].items():
            gz = minions[node["host"]].gz
            uuid = gz.run("vmadm", "lookup", "-1", f"alias={alias}", check=True).stdout.strip()
            if f"inet {CLUSTER['ext']['vip']} " in gz.zlogin(uuid, "/usr/sbin/ifconfig -a").stdout:
                found.append(alias)
        return found

    (master,) = wait_for(lambda: (m := masters()) and len(m) == 1 and m, timeout=60, what="one holder of the VIP")
    status = minions[CLUSTER["ext"]["nodes"][master]["host"]].call("ucarp.status")
    assert [(n["zone"], n["holds_vip"]) for n in status if n["cluster"] == "ext"] == [(master, True)]
