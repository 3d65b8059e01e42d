"""Zone lifecycle: lay out a zone's files, boot it, halt it, find its init.

A running zone is a set of new Linux namespaces (mount, network, PID, UTS,
IPC) whose PID 1 is ``smartos_sim.zinit``.  Killing that init is a halt: the
kernel kills every other process of the zone's PID namespace with it, and
the zone's network namespace (its NICs, its addresses) goes too.
"""

import ctypes
import os
import shutil
import signal
import subprocess
import time

from . import gz, lan
from .common import ToolError

SIM_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

# A zone carries its own copy of the simulator (as a real zone carries its
# own binaries), run by the system Python: nothing inside a zone depends on
# where this checkout or its virtualenv lives, which /tmp or /var may hide.
ZONE_PYTHON = "/usr/bin/python3"
ZONE_SIM_DIR = "usr/lib/smartos-sim"

# Where the simulated illumos tools appear inside a zone (from the zone's
# copy of bin/, or of zonebin/ for those that must never run in a global
# zone of the test bed, whose PATH has bin/: shutdown signals init).
IN_ZONE_TOOLS = {
    "usr/sbin/ifconfig": "ifconfig",
    "usr/sbin/svcadm": "svcadm",
    "usr/sbin/svccfg": "svccfg",
    "usr/bin/svcs": "svcs",
    "usr/bin/svcprop": "svcprop",
    "opt/local/bin/pkgin": "pkgin",
}
ZONE_ONLY_TOOLS = {"usr/sbin/shutdown": "shutdown"}
LAYERS = ("etc", "usr", "opt")  # overlays on the host's, private to the zone
STOP_TIMEOUT = 60  # seconds a clean stop may take before vmadm halts the zone (VM.js)


def install(vm):
    """Lay out a new zone's own files (what installing the image does)."""
    zdir = gz.zone_dir(vm["uuid"])
    for layer in LAYERS:
        os.makedirs(os.path.join(zdir, "root", layer), exist_ok=True)
        os.makedirs(os.path.join(zdir, "work", layer), exist_ok=True)
    for sub in ("var/svc/log", "var/adm", "var/tmp", "var/log", "etc/svc", "opt/local/etc", "opt/local/sbin"):
        os.makedirs(os.path.join(zdir, "root", sub), exist_ok=True)
    os.chmod(os.path.join(zdir, "root", "var/tmp"), 0o1777)
    for folder, tools in (("bin", IN_ZONE_TOOLS), ("zonebin", ZONE_ONLY_TOOLS)):
        for path, tool in tools.items():
            target = os.path.join(zdir, "root", path)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            if not os.path.lexists(target):
                os.symlink(os.path.join("/", ZONE_SIM_DIR, folder, tool), target)
    with open(os.path.join(zdir, "root", "etc", "zonename"), "w") as fh:
        fh.write(vm["zonename"] + "\n")
    os.symlink("/run", os.path.join(zdir, "root", "var", "run"))


def _copy_simulator(zdir):
    """Refresh the zone's own copy of the simulator (at every boot)."""
    target = os.path.join(zdir, "root", ZONE_SIM_DIR)
    shutil.rmtree(target, ignore_errors=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for part in ("bin", "zonebin", "smartos_sim"):
        shutil.copytree(os.path.join(SIM_DIR, part), os.path.join(target, part), ignore=ignore, symlinks=True)


# A running zone's init (kept in gz: svcs needs nothing heavier; bin/zlogin
# checks init.pid's PID and start time the same way).
_starttime = gz.starttime
init_pid = gz.init_pid


def boot(vm):
    """Boot a zone: new namespaces, its init, its NICs, then its services."""
    uuid = vm["uuid"]
    zdir = gz.zone_dir(uuid)
    _copy_simulator(zdir)
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the forked child
        _spawn_init(vm, zdir, read_end, write_end)
    os.close(write_end)
    os.waitpid(child, 0)
    with os.fdopen(read_end) as pipe:
        first = pipe.readline().strip()
        status = pipe.readline().strip()
    if not first.isdigit() or status != "mounted":
        raise ToolError(f"Failed to boot VM {uuid}: {status or first or 'zone init did not start'}", 1)
    pid = int(first)
    with open(os.path.join(zdir, "init.pid"), "w") as fh:
        fh.write(f"{pid} {_starttime(pid)}\n")
    try:
        for index, nic in enumerate(vm.get("nics") or []):
            lan.plug(uuid, index, nic, pid)
    except ToolError:
        halt(vm)
        raise
    os.kill(pid, signal.SIGUSR1)  # network is up: start the services
    return pid


def _spawn_init(vm, zdir, read_end, write_end):  # pragma: no cover - child
    try:
        os.close(read_end)
        os.setsid()
        libc = ctypes.CDLL(None, use_errno=True)
        flags = CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWPID | CLONE_NEWUTS | CLONE_NEWIPC
        if libc.unshare(flags) != 0:
            err = ctypes.get_errno()
            os.write(write_end, f"unshare: {os.strerror(err)}\n".encode())
            os._exit(1)
        pid = os.fork()
        if pid == 0:
            devnull = os.open(os.devnull, os.O_RDWR)
            log = os.open(os.path.join(zdir, "zinit.log"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            os.dup2(devnull, 0)
            os.dup2(log, 1)
            os.dup2(log, 2)
            os.set_inheritable(write_end, True)
            sim = os.path.join(zdir, "root", ZONE_SIM_DIR)
            env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "PYTHONPATH": sim, "LANG": "C.UTF-8"}
            argv = [ZONE_PYTHON, "-m", "smartos_sim.zinit", zdir, vm["uuid"], vm.get("hostname") or vm["uuid"]]
            os.execve(ZONE_PYTHON, [*argv, str(write_end)], env)
        os.write(write_end, f"{pid}\n".encode())
        os._exit(0)
    except BaseException as exc:  # noqa: BLE001 - report, never return into the parent's code
        try:
            os.write(write_end, f"\n{exc}\n".encode())
        finally:
            os._exit(1)


def in_zone(pid, argv, timeout):
    """Run ``argv`` inside the zone whose init is ``pid`` (as zlogin does)."""
    env = ["PATH=/usr/bin:/usr/sbin:/opt/local/bin:/opt/local/sbin", "HOME=/root", "LOGNAME=root", "LANG=C.UTF-8"]
    command = ["nsenter", "-t", str(pid), "-m", "-n", "-p", "-u", "-i", "--", "/usr/bin/env", "-i", *env, *argv]
    try:
        return subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return None


def shutdown(vm, timeout=STOP_TIMEOUT):
    """Shut a zone down cleanly, as ``vmadm stop`` does: ``shutdown -y -g 0
    -i 5`` in it (SMF stops every service, running its stop method), then
    wait for its init to end; a zone still up after ``timeout`` seconds is
    halted. Returns whether it went down by itself."""
    pid = init_pid(vm["uuid"])
    clean = True
    if pid is not None:
        started = _starttime(pid)
        deadline = time.monotonic() + timeout
        in_zone(pid, ["/usr/sbin/shutdown", "-y", "-g", "0", "-i", "5"], timeout)
        while _starttime(pid) == started and time.monotonic() < deadline:
            time.sleep(0.05)
        clean = _starttime(pid) != started
    halt(vm)  # the zone's NICs and state; its init too if the timer ran out
    return clean


def halt(vm, timeout=15.0):
    """Halt a zone abruptly: its init and every process in it die at once."""
    uuid = vm["uuid"]
    pid = init_pid(uuid)
    if pid is not None:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + timeout
        while _starttime(pid) is not None and time.monotonic() < deadline:
            time.sleep(0.02)
    for index, _nic in enumerate(vm.get("nics") or []):
        lan.unplug(lan.port_name(uuid, index))
    try:
        os.unlink(os.path.join(gz.zone_dir(uuid), "init.pid"))
    except FileNotFoundError:
        pass


def remove(vm):
    """Remove every trace of a (halted) zone."""
    shutil.rmtree(gz.zone_dir(vm["uuid"]), ignore_errors=True)
    try:
        os.unlink(gz.vm_path(vm["uuid"]))
    except FileNotFoundError:
        pass
