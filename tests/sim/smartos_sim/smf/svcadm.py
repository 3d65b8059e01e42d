"""svcadm(8): enable, disable, restart, refresh, clear, mark."""

import getopt
import sys
import time

from . import repository, volatile
from .svcctl import dependency_pgs, entity_instances, has_potential, is_enabled, resolve, warn

EXIT_SVC_FAILURE = 3
EXIT_DEP_FAILURE = 4
USAGE = """Usage: svcadm [-v] [cmd [args ... ]]

\tsvcadm enable [-rst] <service> ...\t- enable and online service(s)
\tsvcadm disable [-st] <service> ...\t- disable and offline service(s)
\tsvcadm restart <service> ...\t\t- restart specified service(s)
\tsvcadm refresh <service> ...\t\t- re-read service configuration
\tsvcadm mark [-It] <state> <service> ...\t- set maintenance state
\tsvcadm clear <service> ...\t\t- clear maintenance state
\tsvcadm milestone [-d] <milestone>\t- advance to a service milestone

\tServices can be specified using an FMRI, abbreviation, or fnmatch(5)
\tpattern, as shown in these examples for svc:/network/smtp:sendmail

\tsvcadm <cmd> svc:/network/smtp:sendmail
\tsvcadm <cmd> network/smtp:sendmail
\tsvcadm <cmd> network/*mail
\tsvcadm <cmd> network/smtp
\tsvcadm <cmd> smtp:sendmail
\tsvcadm <cmd> smtp
\tsvcadm <cmd> sendmail"""


class Usage(Exception):
    pass


def usage():
    print(USAGE, file=sys.stderr)
    return 2


def set_enabled(fmri, enable, temporary, verbose):
    word = "enabled" if enable else "disabled"
    if temporary:
        volatile.set_override(fmri, enable)
        if verbose:
            print(f"{fmri} temporarily {word}.")
    else:
        with repository.updated() as data:
            _svc, inst = repository.lookup(data, fmri)
            if inst is not None:
                general = inst["pgs"].setdefault("general", {"type": "framework", "props": {}})
                general["props"]["enabled"] = repository.prop("boolean", str(enable).lower())
        volatile.set_override(fmri, None)
        if verbose:
            print(f"{fmri} {word}.")


def enable_recursive(data, fmri, temporary, verbose, visited):
    if fmri in visited:
        return
    visited.add(fmri)
    set_enabled(fmri, True, temporary, verbose)
    for _n, grouping, _ro, dtype, entities in dependency_pgs(data, fmri):
        if dtype != "service" or grouping not in ("require_all", "require_any"):
            continue
        for ent in entities:
            insts = entity_instances(data, ent)
            if len(insts) == 1:
                enable_recursive(data, insts[0], temporary, verbose, visited)
            elif len(insts) > 1:
                warn("svcadm", f"{fmri} depends on {ent}, which has multiple instances.")


def wait_for(fmri, enable):
    while True:
        data = repository.load()
        vol = volatile.load()
        rt = volatile.runtime(vol, fmri)
        state = rt.get("state")
        if enable and state in ("online", "degraded"):
            return 0
        if not enable and state == "disabled":
            return 0
        if enable and state == "maintenance":  # disabling moves it out of maintenance
            warn("svcadm", f'Instance "{fmri}" is in maintenance state.')
            return EXIT_SVC_FAILURE
        if is_enabled(data, vol, fmri) != enable:
            other = "disabled" if enable else "enabled"
            warn("svcadm", f'Instance "{fmri}" has been {other} by another entity.')
            return EXIT_SVC_FAILURE
        if enable and not has_potential(data, vol, fmri):
            warn("svcadm", f'Instance "{fmri}" has unsatisfied dependencies.')
            return EXIT_DEP_FAILURE
        time.sleep(0.05)


def cmd_enable(args, verbose, enable):
    opts, operands = getopt.getopt(args, "rst" if enable else "st")
    flags = {o for o, _ in opts}
    if not operands:
        raise Usage
    data = repository.load()
    fmris, status = resolve("svcadm", data, operands, multiple=False)
    for fmri in fmris:
        if enable and "-r" in flags:
            enable_recursive(data, fmri, "-t" in flags, verbose, set())
        else:
            set_enabled(fmri, enable, "-t" in flags, verbose)
    volatile.wake_startd()
    if "-s" in flags and status == 0:
        for fmri in fmris:
            rc = wait_for(fmri, enable)
            if rc == EXIT_SVC_FAILURE or (rc and not status):
                status = rc
    return status


def cmd_action(args, verbose, action):
    if not args:
        raise Usage
    data = repository.load()
    fmris, status = resolve("svcadm", data, args, multiple=False)
    vol = volatile.load()
    for fmri in fmris:
        state = volatile.runtime(vol, fmri).get("state")
        if action == "clear" and state not in ("maintenance", "degraded"):
            warn("svcadm", f'Instance "{fmri}" is not in a maintenance or degraded state.')
            status = 1
            continue
        if action == "refresh":
            with repository.updated() as rw:
                svc, inst = repository.lookup(rw, fmri)
                if inst is not None:
                    repository.take_snapshot(svc, inst)
        volatile.request(fmri, action)
        if verbose:
            print(f"Action {action} set for {fmri}.")
    return status


def cmd_mark(args, verbose):
    opts, operands = getopt.getopt(args, "It")
    flags = {o for o, _ in opts}
    if len(operands) < 2 or operands[0] not in ("maintenance", "degraded"):
        raise Usage
    data = repository.load()
    fmris, status = resolve("svcadm", data, operands[1:], multiple=False)
    vol = volatile.load()
    for fmri in fmris:
        if operands[0] == "degraded" and volatile.runtime(vol, fmri).get("state") != "online":
            warn("svcadm", f'Instance "{fmri}" is not online.')
            status = 1
            continue
        volatile.request(fmri, operands[0], immediate="-I" in flags, temporary="-t" in flags)
        if verbose:
            print(f"Action {operands[0]} set for {fmri}.")
    return status


def main(argv):
    try:
        opts, rest = getopt.getopt(argv, "vz:Z")
        verbose = any(o == "-v" for o, _ in opts)
        if not rest:
            raise Usage
        cmd, args = rest[0], rest[1:]
        if cmd in ("enable", "disable"):
            return cmd_enable(args, verbose, cmd == "enable")
        if cmd in ("restart", "refresh", "clear"):
            return cmd_action(args, verbose, cmd)
        if cmd == "mark":
            return cmd_mark(args, verbose)
        if cmd == "milestone":
            return 0
        raise Usage
    except (Usage, getopt.GetoptError) as exc:
        if isinstance(exc, getopt.GetoptError):
            print(f"svcadm: illegal option -- {exc.opt}", file=sys.stderr)
        return usage()
