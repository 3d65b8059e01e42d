"""Conformance tests of the simulated SMF (svccfg, svcs, svcadm, svcprop, svc.startd).

Stand-alone: every test gets its own zone root (``SMARTOS_SIM_ZONEROOT``) and
its own svc.startd; teardown ends that startd and every process of its
contracts by pid.
"""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

SIM = Path(__file__).resolve().parents[1] / "sim"
BIN = SIM / "bin"
sys.path.insert(0, str(SIM))

from smartos_sim.smf import contracts  # noqa: E402

WAIT = 15.0


def wait_until(predicate, timeout=WAIT, what="condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def alive(pid):
    """A live (not zombie) process."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


MANIFEST = """<?xml version="1.0"?>
<!DOCTYPE service_bundle SYSTEM "/usr/share/lib/xml/dtd/service_bundle.dtd.1">
<service_bundle type="manifest" name="{name}">
  <service name="network/{name}" type="service" version="1">
    <dependency name="network" grouping="{grouping}" restart_on="{restart_on}" type="service">
      <service_fmri value="{dep}"/>
    </dependency>
    <exec_method type="method" name="start" exec="{start}" timeout_seconds="60"/>
    <exec_method type="method" name="stop" exec="{stop}" timeout_seconds="10"/>
    <property_group name="startd" type="framework">
      <propval name="duration" type="astring" value="{duration}"/>
    </property_group>
{instances}
    <stability value="Unstable"/>
    <template>
      <common_name><loctext xml:lang="C">{name} test service</loctext></common_name>
    </template>
  </service>
</service_bundle>
"""

INSTANCE = """    <instance name="{inst}" enabled="{enabled}">
      <property_group name="config" type="application">
        <propval name="vhid" type="count" value="{vhid}"/>
        <propval name="note" type="astring" value="two words"/>
      </property_group>
    </instance>"""


class Zone:
    """A stand-alone zone root with its own svc.startd."""

    def __init__(self, root):
        self.root = root
        self.env = dict(os.environ, SMARTOS_SIM_ZONEROOT=str(root), PYTHONPATH=str(SIM))
        self.startd = None

    # -- processes
    def start_startd(self):
        with open(self.root / "startd.err", "ab") as err:
            self.startd = subprocess.Popen(
                [sys.executable, "-m", "smartos_sim.smf.startd"],
                cwd="/",
                env=self.env,
                stdout=subprocess.DEVNULL,
                stderr=err,
                start_new_session=True,
            )
        pidfile = self.root / "etc/svc/volatile/svc.startd.pid"
        wait_until(
            lambda: pidfile.exists() and pidfile.read_text().strip() == str(self.startd.pid),
            what="startd pid file",
        )

    def stop_startd(self):
        if self.startd and self.startd.poll() is None:
            os.kill(self.startd.pid, signal.SIGTERM)
            self.startd.wait(timeout=10)
        self.startd = None

    def boot_id(self):
        try:
            return json.loads((self.root / "etc/svc/volatile/svc_sim.json").read_text())["boot_id"]
        except (OSError, ValueError, KeyError):
            return None

    def contract_pids(self):
        boot = self.boot_id()
        if not boot:
            return []
        return [p for m, pids in contracts.scan().items() if m.startswith(boot + ":") for p in pids]

    def kill_contracts(self):
        for pid in self.contract_pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass

    # -- tools
    def run(self, tool, *args):
        return subprocess.run(
            [str(BIN / tool), *args], env=self.env, capture_output=True, text=True, timeout=60, check=False
        )

    def state(self, fmri):
        out = self.run("svcs", "-H", "-o", "state", fmri)
        return out.stdout.strip()

    def wait_state(self, fmri, state, timeout=WAIT):
        return wait_until(lambda: self.state(fmri) == state, timeout, f"{fmri} {state}")

    def pids(self, fmri):
        out = self.run("svcs", "-Hp", fmri).stdout.splitlines()[1:]
        return [int(line.split()[1]) for line in out]

    def log(self, name, inst="web"):
        path = self.root / f"var/svc/log/network-{name}:{inst}.log"
        return path.read_text() if path.exists() else ""

    # -- files
    def script(self, name, body):
        path = self.root / "scripts" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("#!/bin/sh\n" + body + "\n")
        path.chmod(0o755)
        return str(path)

    def manifest(self, name, start, *, stop=":kill", duration="contract", enabled="false", vhid=42, **kw):
        insts = kw.pop("instances", [("web", enabled, vhid)])
        text = MANIFEST.format(
            name=name,
            start=start,
            stop=stop,
            duration=duration,
            dep=kw.pop("dep", "svc:/milestone/network:default"),
            grouping=kw.pop("grouping", "require_all"),
            restart_on=kw.pop("restart_on", "error"),
            instances="\n".join(INSTANCE.format(inst=i, enabled=e, vhid=v) for i, e, v in insts),
        )
        path = self.root / f"{name}.xml"
        path.write_text(text)
        return str(path)

    def daemon(self, name="ucarp", **kw):
        """Import a contract service whose method backgrounds ``sleep 1000``."""
        script = self.script(f"{name}-start", "/bin/sleep 1000 &\nexit 0")
        path = self.manifest(name, f"{script} %m", **kw)
        res = self.run("svccfg", "import", path)
        assert res.returncode == 0, res.stderr
        return f"svc:/network/{name}:web"


@pytest.fixture
def zone(tmp_path):
    z = Zone(tmp_path)
    z.start_startd()
    try:
        yield z
    finally:
        z.stop_startd()
        z.kill_contracts()


# ---------------------------------------------------------------- svccfg import


def test_import_shows_disabled(zone):
    fmri = zone.daemon()
    res = zone.run("svcs", "-H", "-o", "state,fmri", "ucarp")
    assert res.returncode == 0
    assert res.stdout.split() == ["disabled", fmri]
    assert zone.run("svcs", "-H", "-o", "state", "svc:/milestone/network:default").stdout.strip() == "online"


BAD = {
    "missing timeout_seconds": (
        lambda t: t.replace(' timeout_seconds="60"', ""),
        "element exec_method: validity error : Element exec_method does not carry attribute timeout_seconds",
    ),
    "bad grouping": (
        lambda t: t.replace("require_all", "require_some"),
        'Value "require_some" for attribute grouping of dependency is not among the enumerated set',
    ),
    "element out of order": (
        lambda t: t.replace('    <stability value="Unstable"/>\n', "").replace(
            "    <instance ", '    <stability value="Unstable"/>\n    <instance '
        ),
        "Element service content does not follow the DTD",
    ),
    "unknown element": (
        lambda t: t.replace("    <dependency ", "    <frobnicate/>\n    <dependency "),
        "No declaration for element frobnicate",
    ),
    "instance without enabled": (
        lambda t: t.replace(' enabled="false"', ""),
        "Element instance does not carry attribute enabled",
    ),
    "service without version": (
        lambda t: t.replace(' version="1"', ""),
        "Element service does not carry attribute version",
    ),
    "bad count": (lambda t: t.replace('value="42"', 'value="4x"'), 'illegal value "4x" for count'),
    "no DTD": (lambda t: re.sub(r"<!DOCTYPE[^>]*>", "", t), "svccfg: document has no DTD"),
    "malformed": (lambda t: t.replace("</service_bundle>", ""), "svccfg: couldn't parse document"),
    "profile": (lambda t: t.replace('type="manifest"', 'type="profile"'), "document is not a manifest."),
}


@pytest.mark.parametrize("kind", sorted(BAD))
def test_invalid_manifest_rejected(zone, kind):
    good = Path(zone.manifest("bad", "/bin/true"))
    mutate, message = BAD[kind]
    good.write_text(mutate(good.read_text()))
    for cmd in ("validate", "import"):
        res = zone.run("svccfg", cmd, str(good))
        assert res.returncode == 1, (cmd, res)
        assert message in res.stderr
    if "DTD" not in message and "parse" not in message and "manifest" not in message and "count" not in message:
        assert res.stderr.rstrip().endswith("svccfg: Document is not valid.")
    res = zone.run("svcs", "bad")
    assert res.returncode == 1
    assert res.stderr.strip() == "svcs: Pattern 'bad' doesn't match any instances"


def test_validate_does_not_import(zone):
    path = zone.manifest("val", "/bin/true")
    assert zone.run("svccfg", "validate", path).returncode == 0
    assert zone.run("svcs", "val").returncode == 1


def test_reimport_keeps_enabled_state_and_updates(zone):
    fmri = zone.daemon()
    assert zone.run("svcadm", "enable", "-s", fmri).returncode == 0
    path = zone.manifest("ucarp", zone.script("ucarp-start", "/bin/sleep 1000 &"), vhid=7)
    assert zone.run("svccfg", "import", path).returncode == 0
    assert zone.state(fmri) == "online"
    assert zone.run("svcprop", "-p", "general/enabled", fmri).stdout.strip() == "true"
    assert zone.run("svcprop", "-p", "config/vhid", fmri).stdout.strip() == "7"
    wait_until(lambda: "Rereading configuration." in zone.log("ucarp"), what="refresh logged")


def test_delete_refuses_online_instance_without_f(zone):
    fmri = zone.daemon()
    assert zone.run("svcadm", "enable", "-s", fmri).returncode == 0
    pids = zone.pids(fmri)
    res = zone.run("svccfg", "delete", fmri)
    assert res.returncode == 1
    assert res.stderr.strip() == f"svccfg: Instance {fmri} may be running.  Use delete -f if it is not."
    assert zone.run("svccfg", "delete", "-f", fmri).returncode == 0
    assert zone.run("svcs", fmri).returncode == 1
    wait_until(lambda: not any(alive(p) for p in pids), what="processes stopped")


# ---------------------------------------------------------------- svcadm / startd


def test_enable_s_goes_online_with_contract_process(zone):
    fmri = zone.daemon()
    res = zone.run("svcadm", "enable", "-s", "ucarp")
    assert res.returncode == 0, res.stderr
    assert zone.state(fmri) == "online"
    pids = zone.pids(fmri)
    assert len(pids) == 1
    assert Path(f"/proc/{pids[0]}/comm").read_text().strip() == "sleep"
    ctid = zone.run("svcs", "-H", "-o", "ctid", fmri).stdout.strip()
    assert ctid.isdigit()
    assert zone.run("svcprop", "-p", "restarter/contract", fmri).stdout.strip() == ctid
    long = zone.run("svcs", "-l", fmri).stdout
    assert re.search(r"^state\s+online$", long, re.M)
    assert re.search(rf"^contract_id\s+{ctid}$", long, re.M)


def test_sigkill_of_daemon_restarts_it(zone):
    fmri = zone.daemon()
    assert zone.run("svcadm", "enable", "-s", fmri).returncode == 0
    (old,) = zone.pids(fmri)
    os.kill(old, signal.SIGKILL)
    new = wait_until(lambda: [p for p in zone.pids(fmri) if p != old], what="restarted daemon")
    zone.wait_state(fmri, "online")  # the new process shows before its start method has returned
    assert "Stopping because all processes in service exited." in zone.log("ucarp")
    assert new[0] != old


def test_daemon_that_keeps_dying_goes_to_maintenance(zone):
    start = zone.script("flaky-start", "/bin/sleep 0.1 &\nexit 0")
    assert zone.run("svccfg", "import", zone.manifest("flaky", start)).returncode == 0
    fmri = "svc:/network/flaky:web"
    res = zone.run("svcadm", "enable", "-s", fmri)
    # -s may return 0 while it is online between deaths; it ends in maintenance either way
    if res.returncode == 0:
        zone.wait_state(fmri, "maintenance")
        res = zone.run("svcadm", "enable", "-s", fmri)
    assert res.returncode == 3
    assert res.stderr.strip() == f'svcadm: Instance "{fmri}" is in maintenance state.'
    assert zone.log("flaky").count("Executing start method") == 4
    assert "Restarting too quickly, changing state to maintenance." in zone.log("flaky")
    explain = zone.run("svcs", "-x").stdout
    assert f"{fmri} (flaky test service)" in explain
    assert "Reason: Restarting too quickly." in explain
    assert "See: http://illumos.org/msg/SMF-8000-L5" in explain
    assert f"See: {zone.root}/var/svc/log/network-flaky:web.log" in explain
    assert "Impact: This service is not running." in explain
    # fix the daemon, clear: it comes back
    zone.script("flaky-start", "/bin/sleep 1000 &\nexit 0")
    assert zone.run("svcadm", "clear", fmri).returncode == 0
    zone.wait_state(fmri, "online")
    assert zone.run("svcadm", "clear", fmri).returncode == 1


def test_start_method_failing_goes_to_maintenance(zone):
    start = zone.script("broken-start", "echo cannot start >&2\nexit 1")
    assert zone.run("svccfg", "import", zone.manifest("broken", start)).returncode == 0
    fmri = "svc:/network/broken:web"
    res = zone.run("svcadm", "enable", "-s", fmri)
    assert res.returncode == 3
    log = zone.log("broken")
    assert log.count('Method "start" exited with status 1.') == 3
    assert "cannot start" in log
    explain = zone.run("svcs", "-x", fmri).stdout
    assert "Reason: Start method failed repeatedly, last exited with status 1." in explain
    assert zone.run("svcprop", "-p", "restarter/auxiliary_state", fmri).stdout.strip() == "fault_threshold_reached"


def test_disable_s_kills_contract(zone):
    fmri = zone.daemon()
    assert zone.run("svcadm", "enable", "-s", fmri).returncode == 0
    pids = zone.pids(fmri)
    res = zone.run("svcadm", "disable", "-s", fmri)
    assert res.returncode == 0
    assert zone.state(fmri) == "disabled"
    assert not any(alive(p) for p in pids)
    assert "Executing stop method (:kill)." in zone.log("ucarp")
    assert zone.run("svcprop", "-p", "general/enabled", fmri).stdout.strip() == "false"


def test_temporary_enable_is_volatile(zone):
    fmri = zone.daemon()
    assert zone.run("svcadm", "enable", "-st", fmri).returncode == 0
    assert zone.state(fmri) == "online"
    assert zone.run("svcprop", "-p", "general/enabled", fmri).stdout.strip() == "false"
    assert zone.run("svcprop", "-p", "general_ovr/enabled", fmri).stdout.strip() == "true"
    assert re.search(r"^enabled\s+true \(temporary\)$", zone.run("svcs", "-l", fmri).stdout, re.M)
    # zone reboot: processes gone, volatile emptied, startd started again
    zone.stop_startd()
    zone.kill_contracts()
    for f in (zone.root / "etc/svc/volatile").iterdir():
        f.unlink()
    zone.start_startd()
    zone.wait_state(fmri, "disabled")
    assert zone.pids(fmri) == []


def test_persistent_enable_survives_reboot(zone):
    fmri = zone.daemon()
    assert zone.run("svcadm", "enable", "-s", fmri).returncode == 0
    zone.stop_startd()
    zone.kill_contracts()
    for f in (zone.root / "etc/svc/volatile").iterdir():
        f.unlink()
    zone.start_startd()
    zone.wait_state(fmri, "online")
    assert len(zone.pids(fmri)) == 1


def test_startd_restart_readopts_contract(zone):
    fmri = zone.daemon()
    assert zone.run("svcadm", "enable", "-s", fmri).returncode == 0
    (pid,) = zone.pids(fmri)
    zone.stop_startd()
    assert alive(pid)
    zone.start_startd()
    assert zone.state(fmri) == "online"
    assert zone.pids(fmri) == [pid]
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: [p for p in zone.pids(fmri) if p != pid], what="restart by the new startd")


def test_restart_gives_new_process(zone):
    fmri = zone.daemon()
    assert zone.run("svcadm", "enable", "-s", fmri).returncode == 0
    (old,) = zone.pids(fmri)
    assert zone.run("svcadm", "restart", fmri).returncode == 0
    wait_until(lambda: [p for p in zone.pids(fmri) if p != old], what="restarted process")
    assert "Stopping because service restarting." in zone.log("ucarp")


def test_unsatisfied_dependency(zone):
    fmri = zone.daemon(dep="svc:/network/base:web")
    base = zone.manifest("base", zone.script("base-start", "/bin/sleep 1000 &"))
    assert zone.run("svccfg", "import", base).returncode == 0
    res = zone.run("svcadm", "enable", "-s", fmri)
    assert res.returncode == 4
    assert res.stderr.strip() == f'svcadm: Instance "{fmri}" has unsatisfied dependencies.'
    zone.wait_state(fmri, "offline")
    assert "Reason: Service svc:/network/base:web is disabled." in zone.run("svcs", "-x", fmri).stdout
    assert zone.run("svcadm", "enable", "-r", fmri).returncode == 0
    zone.wait_state(fmri, "online")
    assert zone.state("svc:/network/base:web") == "online"


@pytest.mark.parametrize("grouping", ["require_all", "optional_all"])
def test_a_restart_on_none_dependency_never_stops_its_dependent(zone, grouping):
    """smf(7): with restart_on="none" the dependent is not stopped or
    restarted when the dependency stops, is refreshed or restarts; the
    dependency only orders the start."""
    fmri = zone.daemon(dep="svc:/network/base:web", grouping=grouping, restart_on="none")
    base = zone.manifest("base", zone.script("base-start", "/bin/sleep 1000 &"))
    assert zone.run("svccfg", "import", base).returncode == 0
    assert zone.run("svcadm", "enable", "-s", "svc:/network/base:web").returncode == 0
    assert zone.run("svcadm", "enable", "-s", fmri).returncode == 0
    pid = zone.run("svcs", "-Hp", fmri).stdout.split()[-2]
    assert zone.run("svcadm", "disable", "-s", "svc:/network/base:web").returncode == 0
    assert zone.run("svcadm", "enable", "-s", "svc:/network/base:web").returncode == 0  # offline, then online
    assert zone.run("svcadm", "restart", "svc:/network/base:web").returncode == 0
    zone.wait_state("svc:/network/base:web", "online")
    assert zone.state(fmri) == "online"
    assert zone.run("svcs", "-Hp", fmri).stdout.split()[-2] == pid  # never stopped
    assert "dependency activity" not in zone.log("ucarp")


# ---------------------------------------------------------------- patterns and exit codes


def test_patterns_and_exit_codes(zone):
    zone.daemon()
    full = "svc:/network/ucarp:web"
    for pat in (full, "network/ucarp:web", "ucarp:web", "ucarp", "web", "network/uc*", "svc:/network/ucarp"):
        res = zone.run("svcs", "-H", "-o", "fmri", pat)
        assert (res.returncode, res.stdout.strip()) == (0, full), pat
    res = zone.run("svcs", "-H", "-o", "fmri", "nope", "ucarp")
    assert res.returncode == 1
    assert res.stdout.strip() == full
    assert res.stderr.strip() == "svcs: Pattern 'nope' doesn't match any instances"
    res = zone.run("svcadm", "enable", "nope")
    assert (res.returncode, res.stderr.strip()) == (1, "svcadm: Pattern 'nope' doesn't match any instances")
    assert zone.run("svcadm").returncode == 2
    assert zone.run("svcadm", "frob", "ucarp").returncode == 2
    assert zone.run("svcadm", "enable", "-x", "ucarp").returncode == 2
    res = zone.run("svcadm", "clear", "ucarp")
    assert res.returncode == 1
    assert "is not in a maintenance or degraded state." in res.stderr
    two = zone.manifest("pair", "/bin/true", instances=[("a", "false", 1), ("b", "false", 2)])
    assert zone.run("svccfg", "import", two).returncode == 0
    res = zone.run("svcadm", "enable", "pair")
    assert res.returncode == 1
    assert res.stderr.splitlines() == [
        "svcadm: Pattern 'pair' matches multiple instances:",
        "    svc:/network/pair:a",
        "    svc:/network/pair:b",
    ]
    assert len(zone.run("svcs", "-H", "pair").stdout.splitlines()) == 2
    header = zone.run("svcs", "ucarp").stdout.splitlines()[0]
    assert header == "STATE          STIME    FMRI"


def test_state_shows_transition_star(zone):
    start = zone.script("slow-start", "sleep 1.5\n/bin/sleep 1000 &")
    assert zone.run("svccfg", "import", zone.manifest("slow", start)).returncode == 0
    assert zone.run("svcadm", "enable", "slow").returncode == 0
    wait_until(lambda: zone.state("slow") == "offline*", what="offline*")
    assert zone.run("svcs", "-H", "-o", "nstate", "slow").stdout.strip() == "online"
    zone.wait_state("slow", "online")


# ---------------------------------------------------------------- svcprop, tokens, logs


def test_svcprop_values(zone):
    fmri = zone.daemon()
    assert zone.run("svcprop", "-p", "config/vhid", "ucarp").stdout == "42\n"
    assert zone.run("svcprop", "-p", "config/note", fmri).stdout == "two\\ words\n"
    lines = zone.run("svcprop", fmri).stdout.splitlines()
    assert "config/vhid count 42" in lines
    assert "startd/duration astring contract" in lines
    assert "general/enabled boolean false" in lines
    assert zone.run("svcprop", "-p", "config", fmri).stdout.splitlines() == [
        "config/note astring two\\ words",
        "config/vhid count 42",
    ]
    res = zone.run("svcprop", "-p", "config/nope", fmri)
    assert res.returncode == 1
    assert res.stderr.strip() == f"svcprop: Couldn't find property `config/nope' for instance `{fmri}'."
    res = zone.run("svcprop", "-q", "-p", "config/nope", fmri)
    assert (res.returncode, res.stdout, res.stderr) == (1, "", "")
    assert zone.run("svcprop", "-q", "-p", "config/vhid", fmri).returncode == 0
    # setprop without refresh: the running snapshot still has the old value
    assert zone.run("svccfg", "-s", fmri, "setprop", "config/vhid", "=", "43").returncode == 0
    assert zone.run("svcprop", "-p", "config/vhid", fmri).stdout.strip() == "42"
    assert zone.run("svcprop", "-c", "-p", "config/vhid", fmri).stdout.strip() == "43"
    assert zone.run("svccfg", "-s", fmri, "refresh").returncode == 0
    assert zone.run("svcprop", "-p", "config/vhid", fmri).stdout.strip() == "43"
    res = zone.run("svccfg", "-s", fmri, "setprop", "config/new", "=", "1")
    assert (res.returncode, res.stderr.strip()) == (1, "svccfg: Type required for new properties.")
    assert zone.run("svccfg", "-s", fmri, "setprop", "config/new", "=", "astring:", "a b").returncode == 0
    listing = zone.run("svccfg", "-s", fmri, "listprop", "config/*").stdout
    assert re.search(r'^config/new\s+astring\s+"a b"$', listing, re.M)
    assert zone.run("svcprop", "nope").returncode == 1


def test_method_tokens_environment_and_log(zone, tmp_path):
    (tmp_path / "etc").mkdir(exist_ok=True)
    (tmp_path / "etc/zonename").write_text("zone-a\n")
    start = "/bin/echo TOKENS %i %f %s %m %r %{config/vhid} 100%%; /usr/bin/env"
    path = zone.manifest("tok", start, stop=":true", duration="transient")
    assert zone.run("svccfg", "import", path).returncode == 0
    assert zone.run("svcadm", "enable", "-s", "tok").returncode == 0
    log = zone.log("tok")
    assert "TOKENS web svc:/network/tok:web network/tok start svc.startd 42 100%" in log
    # the method runs as `exec <method>`: nothing after the first command runs
    assert "SMF_FMRI=" not in log
    stamp = r"\[ [A-Z][a-z]{2} [ 0-9]\d \d\d:\d\d:\d\d "
    assert re.search(stamp + r"Enabled\. \]$", log, re.M)
    assert re.search(stamp + re.escape('Executing start method ("/bin/echo TOKENS web svc:/network/tok:web'), log, re.M)
    assert re.search(stamp + re.escape('Method "start" exited with status 0.') + r" \]$", log, re.M)

    env_path = zone.manifest("envy", "/usr/bin/env", stop=":true", duration="transient")
    assert zone.run("svccfg", "import", env_path).returncode == 0
    assert zone.run("svcadm", "enable", "-s", "envy").returncode == 0
    env = dict(line.split("=", 1) for line in zone.log("envy").splitlines() if "=" in line and "[" not in line)
    assert env["SMF_FMRI"] == "svc:/network/envy:web"
    assert env["SMF_METHOD"] == "start"
    assert env["SMF_RESTARTER"] == "svc:/system/svc/restarter:default"
    assert env["SMF_ZONENAME"] == "zone-a"
    assert env["PATH"] == "/usr/sbin:/usr/bin:/opt/local/sbin:/opt/local/bin"
    assert zone.state("envy") == "online"
    assert zone.run("svcadm", "disable", "-s", "envy").returncode == 0
    assert "Executing stop method (null)." in zone.log("envy")


# ---------------------------------------------------------------- shutdown (milestone none)


def test_shutdown_stops_dependents_first_then_exits_leaving_enabled_alone(zone):
    """SIGUSR2, what the zone's init sends on ``shutdown -i 5``: every running
    instance is stopped, one that others depend on only after them, each by
    its stop method; then svc.startd exits. The repository still has them
    enabled for the next boot."""
    order = zone.root / "stopped.log"
    services = ((1001, "base", "svc:/milestone/network:default"), (1002, "app", "svc:/network/base:web"))
    for seconds, name, dep in services:
        start = zone.script(f"{name}-start", f"/bin/sleep {seconds} &\nexit 0")
        stop = zone.script(f"{name}-stop", f"echo {name} >> {order}\npkill -x -f '/bin/sleep {seconds}'\nexit 0")
        path = zone.manifest(name, f"{start} %m", stop=f"{stop} %m", enabled="true", dep=dep)
        assert zone.run("svccfg", "import", path).returncode == 0
    for name in ("base", "app"):
        zone.wait_state(f"svc:/network/{name}:web", "online")
    contract = zone.contract_pids()
    assert contract
    os.kill(zone.startd.pid, signal.SIGUSR2)
    assert zone.startd.wait(timeout=WAIT) == 0
    assert order.read_text().split() == ["app", "base"]  # the dependent first
    assert "Stopping because dependency activity requires stop." in zone.log("base")
    assert [p for p in contract if alive(p)] == []
    for name in ("base", "app"):
        assert zone.run("svcprop", "-p", "general/enabled", f"svc:/network/{name}:web").stdout.strip() == "true"
