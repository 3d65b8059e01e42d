"""Process contracts, simulated by an environment marker.

Every process a method starts gets ``SMF_SIM_CTID=<boot id>:<ctid>`` in its
environment and its descendants inherit it; the members of a contract are
found by scanning ``/proc/*/environ``.  Zombies have an empty environ and
so drop out by themselves.
"""

import contextlib
import os
import signal

MARKER = "SMF_SIM_CTID"


def scan():
    """``{marker value: [pid, ...]}`` for every live marked process."""
    out = {}
    prefix = (MARKER + "=").encode()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as fh:
                env = fh.read()
        except OSError:
            continue
        for item in env.split(b"\0"):
            if item.startswith(prefix):
                out.setdefault(item[len(prefix) :].decode(errors="replace"), []).append(int(entry))
                break
    return out


def members(marker):
    return sorted(scan().get(marker, [])) if marker else []


def kill(pids, sig):
    for pid in pids:
        with contextlib.suppress(OSError):
            os.kill(pid, sig)


def kill_marker(marker, sig=signal.SIGKILL):
    pids = members(marker)
    kill(pids, sig)
    return pids


def comm(pid):
    try:
        with open(f"/proc/{pid}/comm", encoding="utf-8", errors="replace") as fh:
            return fh.read().strip()
    except OSError:
        return "?"


def start_time(pid):
    """Process start time in seconds since the epoch (None if unknown)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        ticks = int(fields[19])
        with open("/proc/stat", encoding="ascii") as fh:
            btime = next(int(line.split()[1]) for line in fh if line.startswith("btime"))
    except (OSError, ValueError, IndexError, StopIteration):
        return None
    return btime + ticks / os.sysconf("SC_CLK_TCK")
