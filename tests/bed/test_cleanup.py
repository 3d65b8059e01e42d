"""Nothing of the test bed is left after a session, however it ends."""

import json
import os
import signal
import subprocess
import sys

import pytest
from support import wait_for

from smartos_sim import bed as simbed

pytestmark = pytest.mark.root

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))


def netns_names():
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False).stdout
    return {line.split()[0] for line in out.splitlines() if line.strip()}


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def leftovers(record):
    found = []
    names = netns_names()
    found += [n for n in [record["lan"], *record["hosts"]] if n in names]
    if alive(record["init"]):
        found.append(f"zone init {record['init']}")
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                if record["base"].encode() in fh.read() and alive(pid):
                    found.append(f"process {pid}")
        except OSError:
            continue
    if os.path.exists(record["base"]):
        found.append(record["base"])
    if os.path.exists(os.path.join(simbed.REGISTRY, record["id"] + ".json")):
        found.append("registry entry")
    return found


def run_scenario(tmp_path, mode):
    report = tmp_path / "report.json"
    env = dict(os.environ, SCENARIO_MODE=mode, SCENARIO_REPORT=str(report))
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", os.path.join(HERE, "scenario_session.py")],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    wait_for(lambda: report.exists() or proc.poll() is not None, timeout=120, what="the scenario's bed")
    assert report.exists(), proc.communicate()[0]
    return proc, json.loads(report.read_text())


@pytest.mark.parametrize(("mode", "sig"), [("fail", None), ("wait", signal.SIGINT), ("wait", signal.SIGTERM)])
def test_session_removes_its_bed(tmp_path, mode, sig):
    proc, record = run_scenario(tmp_path, mode)
    assert leftovers(record)  # the bed was really there
    (tmp_path / "report.json.go").touch()  # "fail" mode: now fail
    if sig:
        proc.send_signal(sig)
    output = proc.communicate(timeout=120)[0]
    assert proc.returncode != 0
    assert leftovers(record) == [], output


def test_sweep_removes_a_killed_sessions_bed(tmp_path):
    proc, record = run_scenario(tmp_path, "wait")
    proc.kill()
    proc.communicate(timeout=60)
    assert leftovers(record)  # SIGKILL: nothing could clean up
    assert record["id"] in simbed.sweep()
    assert leftovers(record) == []
