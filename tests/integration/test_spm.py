"""``spm build`` makes a package that installs, and whose states render."""

import json
import os
import subprocess
import sys

import pytest
import yaml
from support import REPO

pytestmark = pytest.mark.matrix

BIN = os.path.dirname(sys.executable)


def test_spm_package_installs_and_renders(tmp_path):
    out = tmp_path / "out"
    env = dict(os.environ, SPM=os.path.join(BIN, "spm"), PATH=f"{BIN}:{os.environ['PATH']}")
    build = subprocess.run(
        [os.path.join(REPO, "scripts", "build-spm"), str(out)], capture_output=True, text=True, env=env, check=False
    )
    assert build.returncode == 0, build.stdout + build.stderr
    (package,) = out.glob("ucarp-*.spm")

    # Install it as an operator would, into a formula path of its own.
    root = tmp_path / "spm"
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "spm").write_text(
        yaml.safe_dump(
            {
                "formula_path": str(root / "salt"),
                "pillar_path": str(root / "pillar"),
                "reactor_path": str(root / "reactor"),
                "spm_db": str(root / "spm.db"),
                "spm_cache_dir": str(root / "cache"),
                "spm_logfile": str(root / "spm.log"),
                "spm_build_dir": str(out),
            }
        )
    )
    install = subprocess.run(
        [os.path.join(BIN, "spm"), "-c", str(conf), "-y", "local", "install", str(package)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert install.returncode == 0, install.stdout + install.stderr
    installed = root / "salt"
    assert (installed / "ucarp" / "init.sls").is_file()
    assert (installed / "_modules" / "vmadm.py").is_file()
    assert (installed / "_utils" / "ucarp_model.py").is_file()

    # Render the formula from the installed files with the installed example pillar.
    pillar = tmp_path / "pillar"
    pillar.mkdir()
    (pillar / "top.sls").write_text("base:\n  '*':\n    - ucarp\n")
    (pillar / "ucarp.sls").write_text((root / "pillar" / "ucarp.sls.orig").read_text())
    minion = tmp_path / "minion"
    minion.mkdir()
    (minion / "minion").write_text(
        json.dumps(
            {
                "id": "gz1",
                "file_client": "local",
                "root_dir": str(tmp_path / "root"),
                "file_roots": {"base": [str(installed)]},
                "pillar_roots": {"base": [str(pillar)]},
            }
        )
    )
    sim_bin = os.path.join(REPO, "tests", "sim", "bin")
    call_env = dict(os.environ, PATH=f"{sim_bin}:{BIN}:{os.environ['PATH']}")

    def salt_call(*args):
        proc = subprocess.run(
            [os.path.join(BIN, "salt-call"), "--local", "-c", str(minion), "--out=json", *args],
            capture_output=True,
            text=True,
            env=call_env,
            check=False,
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return json.loads(proc.stdout)["local"]

    salt_call("saltutil.sync_all")
    rendered = salt_call("state.show_sls", "ucarp")
    assert isinstance(rendered, dict), rendered
    assert {"ucarp-zone-present-web-a", "ucarp-zone-present-db-a", "ucarp-service-running-web-web-a"} <= set(rendered)
    assert "ucarp-zone-present-web-b" not in rendered  # gz2's zone
    assert "s3cret" not in json.dumps(rendered)  # the password stays in pillar
