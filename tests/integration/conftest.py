"""The formula applied to simulated hypervisors.

Each global zone of the test bed gets a masterless minion (``salt-call
--local``) whose id is the hypervisor's name, with the formula's file_roots
(``salt/`` for the SLS, the repository root for ``_modules`` and friends,
then a directory for SLS files a test writes) and a pillar directory the
tests rewrite.
"""

import os

import pytest
import yaml
from support import REPO, Minion


@pytest.fixture(scope="module")
def pillar_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("pillar")
    (path / "top.sls").write_text("base:\n  '*':\n    - ucarp\n")
    return path


@pytest.fixture(scope="module")
def set_pillar(pillar_dir):
    def write(clusters, defaults=None):
        data = {"ucarp": {"clusters": clusters}}
        if defaults:
            data["ucarp"]["defaults"] = defaults
        (pillar_dir / "ucarp.sls").write_text(yaml.safe_dump(data))

    return write


@pytest.fixture(scope="module")
def sls_dir(tmp_path_factory):
    """A last file root, after the formula's, for SLS files a test writes."""
    return tmp_path_factory.mktemp("sls")


@pytest.fixture(scope="module")
def minions(bed, tmp_path_factory, pillar_dir, sls_dir):
    out = {}
    roots = [os.path.join(REPO, "salt"), REPO, str(sls_dir)]
    for name in ("gz1", "gz2"):
        minion = Minion(bed.gz(name), tmp_path_factory.mktemp(f"minion-{name}"), pillar_dir, file_roots=roots)
        synced = minion.call("saltutil.sync_all")
        assert "modules.vmadm" in synced["modules"] and "states.zone_file" in synced["states"], synced
        out[name] = minion
    return out
