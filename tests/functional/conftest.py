"""``salt-call --local`` against the SmartOS test bed.

One minion configuration for the session whose file_roots is this
repository; the formula's custom modules reach it the way an operator's do,
with ``saltutil.sync_all``.  Each call runs in the environment of one
simulated global zone.
"""

import json
import subprocess

import pytest
from support import IMAGE, REPO, SALT_CALL


class SaltCall:
    """``salt-call --local`` on one simulated global zone."""

    def __init__(self, confdir, gz):
        self.confdir = confdir
        self.gz = gz

    def run(self, fun, *args, **kwargs):
        argv = [SALT_CALL, "--local", "-c", self.confdir, "--out=json", "--retcode-passthrough", fun]
        argv += [a if isinstance(a, str) else json.dumps(a) for a in args]
        argv += [f"{k}={v if isinstance(v, str) else json.dumps(v)}" for k, v in kwargs.items()]
        return subprocess.run(argv, capture_output=True, text=True, env=self.gz.env, timeout=300, check=False)

    def __call__(self, fun, *args, **kwargs):
        """The function's return; a failed call fails the test with its message."""
        proc = self.run(fun, *args, **kwargs)
        assert proc.returncode == 0, f"salt-call {fun} failed ({proc.returncode}): {proc.stdout}{proc.stderr}"
        return json.loads(proc.stdout)["local"]

    def error(self, fun, *args, **kwargs):
        """The error message of a call that must fail."""
        proc = self.run(fun, *args, **kwargs)
        assert proc.returncode != 0, f"salt-call {fun} should have failed: {proc.stdout}"
        return proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def minion_conf(bed, tmp_path_factory):
    base = tmp_path_factory.mktemp("salt-call")
    conf = base / "conf"
    conf.mkdir()
    (conf / "minion").write_text(
        json.dumps(
            {
                "id": "gz",
                "file_client": "local",
                "root_dir": str(base / "root"),
                "file_roots": {"base": [REPO]},
                "log_file": str(base / "root" / "minion.log"),  # Salt puts paths under root_dir
                "log_level_logfile": "debug",
            }
        )
    )
    gz = bed.gz("gz-func")
    synced = SaltCall(str(conf), gz)("saltutil.sync_all")
    assert "modules.vmadm" in synced["modules"] and "modules.zlogin" in synced["modules"]
    return str(conf), base / "root" / "minion.log"


@pytest.fixture(scope="module")
def salt_call(bed, minion_conf):
    return SaltCall(minion_conf[0], bed.gz("gz-func"))


@pytest.fixture(scope="module")
def recipe_image(salt_call):
    """The recipe's first step, through the formula's imgadm module: a fresh
    hypervisor has no image for vmadm create."""
    imported = salt_call("imgadm.import", IMAGE)
    assert list(imported) == [IMAGE], imported
    return IMAGE
