"""The formula applied to simulated hypervisors.

Each global zone of the test bed gets a masterless minion (``salt-call
--local``) whose id is the hypervisor's name, with the formula's file_roots
(``salt/`` for the SLS, the repository root for ``_modules`` and friends)
and a pillar directory the tests rewrite.
"""

import json
import os
import sys

import pytest
import yaml
from support import REPO

SALT_CALL = os.path.join(os.path.dirname(sys.executable), "salt-call")


class Minion:
    """A masterless salt minion on one simulated global zone."""

    def __init__(self, gz, base, pillar_dir):
        self.gz = gz
        self.id = gz.name
        self.confdir = base / "conf"
        self.confdir.mkdir(parents=True)
        self.log = base / "root" / "minion.log"  # Salt puts paths under root_dir
        (self.confdir / "minion").write_text(
            json.dumps(
                {
                    "id": self.id,
                    "file_client": "local",
                    "root_dir": str(base / "root"),
                    "file_roots": {"base": [os.path.join(REPO, "salt"), REPO]},
                    "pillar_roots": {"base": [str(pillar_dir)]},
                    "log_file": str(self.log),
                    "log_level_logfile": "debug",
                    "state_output": "mixed",
                }
            )
        )

    def run(self, fun, *args, timeout=600):
        argv = [SALT_CALL, "--local", "-c", str(self.confdir), "--out=json", "--retcode-passthrough", fun, *args]
        return self.gz.run(*argv, timeout=timeout)

    def call(self, fun, *args):
        proc = self.run(fun, *args)
        assert proc.returncode == 0, f"{self.id}: salt-call {fun} failed: {proc.stdout}{proc.stderr}"
        return json.loads(proc.stdout)["local"]

    def apply(self, *args):
        """``state.apply`` and its per-state results (a failed state fails the test)."""
        proc = self.run("state.apply", *args)
        try:
            results = json.loads(proc.stdout)["local"]
        except (ValueError, KeyError):
            raise AssertionError(f"{self.id}: state.apply {args}: {proc.stdout}{proc.stderr}") from None
        assert isinstance(results, dict), f"{self.id}: state.apply {args}: {results}"
        failed = {k: v["comment"] for k, v in results.items() if v["result"] is False}
        assert not failed, f"{self.id}: failed states: {json.dumps(failed, indent=2)}"
        return results


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
def minions(bed, tmp_path_factory, pillar_dir):
    out = {}
    for name in ("gz1", "gz2"):
        minion = Minion(bed.gz(name), tmp_path_factory.mktemp(f"minion-{name}"), pillar_dir)
        synced = minion.call("saltutil.sync_all")
        assert "modules.vmadm" in synced["modules"] and "states.zone_file" in synced["states"], synced
        out[name] = minion
    return out
