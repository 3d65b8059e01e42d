"""Helpers shared by the simulated tools."""

import os
import sys


class ToolError(Exception):
    """An error a simulated tool reports as its real counterpart does.

    ``message`` goes to stderr as it is, ``code`` is the exit status.
    """

    def __init__(self, message, code=1):
        super().__init__(message)
        self.message = message
        self.code = code


def fail(message, code=1):
    """Print ``message`` on stderr and exit with ``code``."""
    print(message, file=sys.stderr)
    sys.exit(code)


def zone_path(*parts):
    """Path of a file as seen from inside a zone.

    Inside a simulated zone the tools see the zone's own files at their
    illumos paths, so this is ``/`` joined with ``parts``.  The variable
    ``SMARTOS_SIM_ZONEROOT`` moves that root for the test bed's own
    stand-alone tests of the in-zone tools; zones never set it.
    """
    root = os.environ.get("SMARTOS_SIM_ZONEROOT") or "/"
    return os.path.join(root, *[p.lstrip("/") for p in parts])
