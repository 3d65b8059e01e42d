"""Runtime SMF state under ``/etc/svc/volatile`` (gone at every zone boot).

``svc_sim.json`` holds, per instance FMRI, the restarter's view (state,
next_state, stime, aux_state, contract), the temporary enable overrides of
``svcadm -t`` and the queue of administrative actions (restart, refresh,
clear, mark) that svc.startd consumes.
"""

import contextlib
import os
import signal

from smartos_sim.common import zone_path

from .jsonstore import read_json, updating


def _empty():
    return {"instances": {}, "overrides": {}, "actions": [], "next_ctid": 1}


def state_path():
    return zone_path("etc/svc/volatile/svc_sim.json")


def pid_path():
    return zone_path("etc/svc/volatile/svc.startd.pid")


def load():
    return read_json(state_path(), _empty)


def updated():
    return updating(state_path(), _empty)


def runtime(vol, fmri):
    return vol["instances"].get(fmri) or {"state": "uninitialized", "next_state": "none"}


def startd_pid():
    """Pid of the running svc.startd, or None."""
    try:
        with open(pid_path(), encoding="ascii") as fh:
            pid = int(fh.read().strip())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return None
    return pid


def wake_startd():
    pid = startd_pid()
    if pid:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGHUP)


def request(fmri, action, **extra):
    """Queue an administrative action for svc.startd and wake it."""
    with updated() as vol:
        vol["actions"].append({"fmri": fmri, "action": action, **extra})
    wake_startd()


def set_override(fmri, enabled):
    """Set (True/False) or clear (None) the temporary enable override."""
    with updated() as vol:
        if enabled is None:
            vol["overrides"].pop(fmri, None)
        else:
            vol["overrides"][fmri] = bool(enabled)


def effective_enabled(vol, fmri, persistent):
    ovr = vol["overrides"].get(fmri)
    return persistent if ovr is None else ovr
