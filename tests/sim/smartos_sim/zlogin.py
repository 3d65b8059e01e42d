"""Simulated ``zlogin``: run a command inside a zone.

``zlogin [-l user] [-nQES] <zonename> command...``: the words are joined with
spaces and run by ``/bin/sh -c`` inside the zone (its namespaces), with a
clean login environment; the exit status is the command's.  zlogin's own
failures exit 1 with illumos's messages.
"""

import os
import sys

from . import gz
from .common import ToolError

ZONE_PATH = "/usr/bin:/usr/sbin:/opt/local/bin:/opt/local/sbin"


def _usage():
    return ToolError("usage: zlogin [ -dnQCES ] [ -e cmdchar ] [-l user] [-i] zonename [command [argument ...]]", 2)


def parse(argv):
    args = list(argv)
    user, stdin_null = "root", False
    while args and args[0].startswith("-") and args[0] != "-":
        arg = args.pop(0)
        if arg == "--":
            break
        letters = arg[1:]
        while letters:
            letter, letters = letters[0], letters[1:]
            if letter == "l":
                if letters:
                    user, letters = letters, ""
                elif args:
                    user = args.pop(0)
                else:
                    raise _usage()
            elif letter == "n":
                stdin_null = True
            elif letter in "QESCdi":
                pass
            elif letter == "e":
                if not letters and not args:
                    raise _usage()
                if not letters:
                    args.pop(0)  # the escape character: no console here
                letters = ""
            else:
                raise ToolError(f"zlogin: illegal option -- {letter}\n" + _usage().message, 2)
    if not args:
        raise _usage()
    return user, stdin_null, args[0], args[1:]


def main(argv):
    user, stdin_null, zonename, words = parse(argv)
    if "\0" in zonename or "/" in zonename:  # any other name that is no VM's is unknown below
        raise ToolError(f"zlogin: zone '{zonename}' unknown", 1)
    if not os.path.isfile(gz.vm_path(zonename)):
        raise ToolError(f"zlogin: zone '{zonename}' unknown", 1)
    pid = gz.init_pid(zonename)
    if pid is None:
        raise ToolError(f"zlogin: login allowed only to running zones ({zonename} is 'installed').", 1)
    if not words:
        raise ToolError("zlogin: interactive login is not available on the test bed; give a command", 1)
    command = " ".join(words)
    home = "/root" if user == "root" else f"/home/{user}"
    env = [f"PATH={ZONE_PATH}", f"HOME={home}", f"LOGNAME={user}", f"USER={user}", "SHELL=/bin/sh",
           "LANG=C.UTF-8", "TZ=UTC"]  # fmt: skip
    argv = ["nsenter", "-t", str(pid), "-m", "-n", "-p", "-u", "-i", "--"]
    if user != "root":
        argv += ["runuser", "-u", user, "--"]
    argv += ["/usr/bin/env", "-i", *env, "/bin/sh", "-c", command]
    if stdin_null:
        fd = os.open(os.devnull, os.O_RDONLY)
        os.dup2(fd, 0)
    sys.stdout.flush()
    os.execvp("nsenter", argv)
