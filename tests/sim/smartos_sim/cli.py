"""Entry point shared by every simulated command in ``tests/sim/bin``.

A simulated tool never ends in a Python traceback: its own errors exit with
the message and code of the SmartOS tool, and anything unexpected is reported
in one line on stderr with exit status 1.
"""

import importlib
import os
import sys

TOOLS = {
    "vmadm": "smartos_sim.vmadm",
    "imgadm": "smartos_sim.imgadm",
    "svcs": "smartos_sim.smf.svcs",
    "svcadm": "smartos_sim.smf.svcadm",
    "svccfg": "smartos_sim.smf.svccfg",
    "svcprop": "smartos_sim.smf.svcprop",
    "pkgin": "smartos_sim.pkgin",
    "ifconfig": "smartos_sim.ifconfig",
    "shutdown": "smartos_sim.shutdown",
    "hypervisor": "smartos_sim.hypervisor",
}


def account(tool, argv):
    """With ``SMARTOS_SIM_ACCOUNT`` set (benchmarks do), append a line naming
    this global zone and the tool (with vmadm's and imgadm's subcommand) to
    that file: the bed's process count.
    Tools inside zones get a clean environment (zlogin), so only the global
    zone's processes are counted. ``bin/zlogin``, a shell script, appends
    its own line the same way."""
    path = os.environ.get("SMARTOS_SIM_ACCOUNT")
    if not path:
        return
    what = next((a for a in argv if not a.startswith("-")), "") if tool in ("vmadm", "imgadm") else ""
    line = f"{os.path.basename(os.environ.get('SMARTOS_SIM_ROOT') or '-')} {tool} {what}".rstrip().encode() + b"\n"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, line)  # one write of a short line: appends do not interleave
    finally:
        os.close(fd)


def main(tool, argv=None):
    argv = sys.argv[1:] if argv is None else argv
    account(tool, argv)
    from smartos_sim.common import ToolError

    try:
        module = importlib.import_module(TOOLS[tool])
        return module.main(argv) or 0
    except ToolError as exc:
        print(exc.message, file=sys.stderr)
        return exc.code
    except SystemExit:
        raise
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 1
    except Exception as exc:  # noqa: BLE001 - the last line of defence: no tracebacks
        print(f"{tool}: internal error: {exc.__class__.__name__}: {exc}", file=sys.stderr)
        return 1
