"""A whole test bed: simulated hypervisors on one LAN, plus client hosts.

Tests and the demo build one ``Bed``, use its global zones through the same
commands an operator types on SmartOS, and ``destroy()`` it at the end, which
ends every zone (by its init's PID), removes the LAN and client namespaces
and the state directories.  Each bed registers itself under
``/run/smartos-sim/beds`` with its owner's PID, so ``sweep()`` can remove
what a killed session left behind.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from . import lan

SIM_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN_DIR = os.path.join(SIM_DIR, "bin")
REGISTRY = "/run/smartos-sim/beds"


def unavailable():
    """Why the namespace-based test bed cannot run here, or None."""
    if os.geteuid() != 0:
        return "needs root: the SmartOS test bed builds network namespaces and mounts"
    path = os.environ.get("PATH", "") + ":/usr/sbin:/sbin"
    for tool in ("ip", "nft", "nsenter", "ucarp", "mount"):
        if not shutil.which(tool, path=path):
            return f"needs the '{tool}' command (run 'make setup')"
    if not os.path.exists("/usr/bin/python3"):
        return "needs /usr/bin/python3 for the tools inside zones (run 'make setup')"
    return None


class GlobalZone:
    """One simulated hypervisor: a state directory on the shared LAN."""

    def __init__(self, bed, name):
        self.bed = bed
        self.name = name
        self.root = os.path.join(bed.base, name)

    @property
    def env(self):
        env = dict(os.environ)
        env.update(
            SMARTOS_SIM_ROOT=self.root,
            SMARTOS_SIM_LAN=self.bed.lan,
            PATH=BIN_DIR + os.pathsep + env.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
        )
        return env

    def run(self, *argv, stdin=None, check=False, timeout=120):
        """Run a command in this global zone (e.g. ``gz.run("vmadm", "list")``)."""
        return subprocess.run(
            list(argv),
            input=stdin,
            capture_output=True,
            text=True,
            env=self.env,
            check=check,
            timeout=timeout,
        )

    def zlogin(self, uuid, command, stdin=None, timeout=120):
        return self.run("zlogin", uuid, command, stdin=stdin, timeout=timeout)

    def import_image(self, uuid):
        """``imgadm import`` from the image sources (the recipe's first step: a
        fresh hypervisor has no image)."""
        proc = self.run("imgadm", "import", uuid)
        if proc.returncode != 0:
            raise RuntimeError(f"imgadm import failed on {self.name}: {proc.stderr.strip()}")
        return proc.stdout

    def create(self, payload):
        """``vmadm create`` from a dict; returns the new VM's UUID."""
        proc = self.run("vmadm", "create", stdin=json.dumps(payload), check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"vmadm create failed on {self.name}: {proc.stderr.strip()}")
        return proc.stderr.strip().rsplit(" ", 1)[1]

    def isolate(self, uuid, on=True):
        """Cut the zone's net0 from the other zones whose link is cut (or restore it)."""
        lan.isolate(lan.port_name(uuid, 0), on, self.bed.lan)

    def get(self, uuid):
        return json.loads(self.run("vmadm", "get", uuid, check=True).stdout)

    def reboot(self, daemons=(), timeout=300):
        """Reboot this hypervisor as SmartOS does: its salt-minion stops (the
        ``daemons`` given, each with ``terminate()`` and ``start()``), every
        running zone shuts down cleanly, all at once, the zones whose
        ``autoboot`` is true boot again, and the daemons start. Returns
        what the reboot printed, a line per zone."""
        for daemon in daemons:
            daemon.terminate()
        try:
            env = dict(self.env, PYTHONPATH=SIM_DIR)
            proc = subprocess.run(
                [sys.executable, "-m", "smartos_sim.hypervisor", "reboot"],
                capture_output=True, text=True, env=env, timeout=timeout, check=False,
            )  # fmt: skip
        finally:
            for daemon in daemons:
                daemon.start()
        if proc.returncode != 0:
            raise RuntimeError(f"reboot of {self.name} failed: {proc.stderr.strip()}")
        return proc.stdout.splitlines()


class Bed:
    """Simulated global zones sharing one LAN, and plain client hosts."""

    def __init__(self, prefix="smartossim", base=None):
        self.id = f"{prefix}{os.getpid()}x{int(time.time() * 1000) % 100000}"
        self.lan = f"{self.id}-lan"
        self.base = base or tempfile.mkdtemp(prefix=f"{self.id}-", dir="/var/tmp")
        self.hosts = []
        self.zones = {}
        os.makedirs(REGISTRY, exist_ok=True)
        self._register()

    def _register(self):
        record = {"owner": os.getpid(), "lan": self.lan, "base": self.base, "hosts": self.hosts}
        with open(os.path.join(REGISTRY, self.id + ".json"), "w") as fh:
            json.dump(record, fh)

    def gz(self, name):
        if name not in self.zones:
            self.zones[name] = GlobalZone(self, name)
        return self.zones[name]

    def host(self, name, cidr, tag="admin"):
        """A client host (network namespace) on the LAN; returns its name."""
        netns = f"{self.id}-{name}"
        self.hosts.append(netns)
        self._register()
        lan.add_host(netns, cidr, tag, self.lan)
        return netns

    def in_host(self, netns, *argv, timeout=30):
        return subprocess.run(
            ["ip", "netns", "exec", netns, *argv], capture_output=True, text=True, timeout=timeout, check=False
        )

    def destroy(self):
        destroy_record({"lan": self.lan, "base": self.base, "hosts": self.hosts})
        try:
            os.unlink(os.path.join(REGISTRY, self.id + ".json"))
        except FileNotFoundError:
            pass


def _zone_pids(base):
    pids = []
    for gz_name in os.listdir(base) if os.path.isdir(base) else []:
        zones = os.path.join(base, gz_name, "zones")
        for uuid in os.listdir(zones) if os.path.isdir(zones) else []:
            try:
                with open(os.path.join(zones, uuid, "init.pid")) as fh:
                    pid, start = fh.read().split()
                with open(f"/proc/{pid}/stat") as fh:
                    if fh.read().rsplit(")", 1)[1].split()[19] == start:
                        pids.append(int(pid))
            except (OSError, ValueError, IndexError):
                continue
    return pids


def destroy_record(record):
    """End the zones of a bed, remove its namespaces and its files."""
    pids = _zone_pids(record["base"])
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 15
    while pids and time.monotonic() < deadline:
        pids = [p for p in pids if os.path.exists(f"/proc/{p}") and _alive(p)]
        time.sleep(0.02)
    for host in record.get("hosts", []):
        lan.remove_host(host)
    lan.destroy(record["lan"])
    shutil.rmtree(record["base"], ignore_errors=True)


def _alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


def sweep():
    """Remove beds whose owning process is gone (a killed session's)."""
    if not os.path.isdir(REGISTRY):
        return []
    swept = []
    for name in os.listdir(REGISTRY):
        path = os.path.join(REGISTRY, name)
        try:
            with open(path) as fh:
                record = json.load(fh)
        except (OSError, ValueError):
            continue
        if _alive(record.get("owner", 0)):
            continue
        destroy_record(record)
        os.unlink(path)
        swept.append(name[:-5])
    return swept
