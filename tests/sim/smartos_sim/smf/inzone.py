"""``svcs -z <zone>`` / ``svcs -Z`` from the global zone: SMF of the zones.

On illumos ``svcs`` binds to each zone's repository server through a door
and lists its instances, one process for every zone.  Here a zone's
repository and restarter state are files in its own mount namespace (its
``/etc/svc/volatile`` is a tmpfs only the zone sees), so ``svcs`` forks once
per zone, all at once, each child enters its zone's mount namespace
(``setns``) and reads them there, and sends its rows back.  A zone that is not running is
not listed by ``-Z``; with ``-z`` it is an error, as ``svcs`` says when it
cannot bind (exit 1).
"""

import ctypes
import json
import os

from smartos_sim import gz, vmobj, zone

CLONE_NEWNS = 0x00020000


def in_global_zone():
    """The simulated tools run in a global zone when it names its state directory."""
    return bool(os.environ.get("SMARTOS_SIM_ROOT"))


def running_zones():
    """``[(zonename, init pid)]`` of the running zones, in zone_list order."""
    found = []
    for uuid in gz.vm_uuids():
        pid = zone.init_pid(uuid)
        if pid is not None:
            found.append((uuid, pid))
    return found


def known(zonename):
    return bool(vmobj.UUID_RE.match(zonename)) and gz.load_vm(zonename) is not None


def _enter(pid):
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(f"/proc/{pid}/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
    try:
        if libc.setns(fd, CLONE_NEWNS) != 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))
    finally:
        os.close(fd)
    os.chdir("/")


def collect(pids, rows_of):
    """``rows_of()`` computed inside each zone whose init is in ``pids``, all
    at once (a child per zone, as illumos's svcs binds to each zone's
    repository); a list in the same order, None for a zone that could not be
    reached (it halted meanwhile)."""
    started = []
    for pid in pids:
        read_end, write_end = os.pipe()
        child = os.fork()
        if child == 0:  # pragma: no cover - child
            status = 1
            try:
                os.close(read_end)
                for other, _ in started:
                    os.close(other)
                _enter(pid)
                data = json.dumps(rows_of()).encode()
                with os.fdopen(write_end, "wb") as fh:
                    fh.write(data)
                status = 0
            finally:
                os._exit(status)
        os.close(write_end)
        started.append((read_end, child))
    found = []
    for read_end, child in started:  # each child writes, then ends: read them in turn
        with os.fdopen(read_end, "rb") as fh:
            data = fh.read()
        _, status = os.waitpid(child, 0)
        found.append(json.loads(data) if status == 0 and data else None)
    return found
