"""Simulated ``/usr/sbin/shutdown`` inside a zone (illumos ``shutdown(8)``).

``shutdown [-y] [-g grace-period] [-i init-state]``: after the grace period
(60 s unless ``-g``) it takes the zone to the init state: 0 or 5 halt it
(init asks SMF to stop every service, see ``zinit``). vmadm's own stop runs
``shutdown -y -g 0 -i 5``. A zone cannot boot itself again on the test bed
(there is no zoneadmd), so ``-i 6`` is refused: ``vmadm reboot`` does it
from the global zone. Without ``-y`` it would ask for confirmation, which a
zone on the test bed never can: refused.
"""

import os
import signal
import sys
import time

from .common import ToolError

USAGE = "Usage: shutdown [-y] [-g grace-period] [-i init-state]"
HALT_STATES = ("0", "5")


def parse(argv):
    args = list(argv)
    grace, state, yes = 60, "s", False
    while args:
        arg = args.pop(0)
        if arg == "-y":
            yes = True
        elif arg in ("-g", "-i") and args:
            value = args.pop(0)
            if arg == "-g":
                if not value.isdigit():
                    raise ToolError(f"shutdown: Invalid grace period: {value}\n{USAGE}", 1)
                grace = int(value)
            else:
                state = value
        else:
            raise ToolError(USAGE, 1)
    return grace, state, yes


def in_a_zone():
    """Whether PID 1 here is a simulated zone's init (never the host's)."""
    try:
        with open("/proc/1/cmdline", "rb") as fh:
            return b"smartos_sim.zinit" in fh.read()
    except OSError:
        return False


def main(argv):
    if not in_a_zone():
        raise ToolError("shutdown: the test bed's shutdown runs only inside a simulated zone", 1)
    grace, state, yes = parse(argv)
    if os.geteuid() != 0:
        raise ToolError("shutdown: Only root can run /usr/sbin/shutdown", 1)
    if state not in HALT_STATES:
        raise ToolError(f"shutdown: init state {state} is not available on the test bed (use vmadm reboot)", 1)
    if not yes:
        raise ToolError("shutdown: give -y: a zone on the test bed has no terminal to confirm on", 1)
    print(f"\nShutdown started.    {time.strftime('%a %b %e %H:%M:%S %Z %Y')}\n")
    sys.stdout.flush()
    time.sleep(grace)
    print(f"Changing to init state {state} - please wait")
    sys.stdout.flush()
    os.kill(1, signal.SIGTERM)  # the zone's init
    return 0
