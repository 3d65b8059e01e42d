"""Running SMF methods: token expansion, environment, instance log lines."""

import grp
import os
import pwd
import re
import subprocess
import time

from smartos_sim.common import zone_path

from . import repository
from .contracts import MARKER

SMF_EXIT_NODAEMON = 94
SMF_EXIT_ERR_FATAL = 95
SMF_EXIT_ERR_CONFIG = 96
SMF_EXIT_ERR_NOSMF = 99
SMF_EXIT_ERR_PERM = 100
NOT_RETRYABLE = (SMF_EXIT_ERR_FATAL, SMF_EXIT_ERR_CONFIG, SMF_EXIT_ERR_NOSMF, SMF_EXIT_ERR_PERM)
METHOD_PATH = "/usr/sbin:/usr/bin:/opt/local/sbin:/opt/local/bin"


def log_line(fmri, message):
    """Append ``[ Nov 25 20:33:33 message ]`` to the instance log."""
    path = repository.log_path(fmri)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    stamp = time.strftime("%b %e %H:%M:%S")
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(f"[ {stamp} {message} ]\n")


def zonename():
    try:
        with open(zone_path("etc/zonename"), encoding="utf-8") as fh:
            return fh.read().strip() or "global"
    except OSError:
        return "global"


def expand(text, fmri, method, pgs):
    """Substitute %i %f %s %m %r %% and %{pg/prop} as svc.startd does."""
    sname, iname = repository.split_fmri(fmri)

    def prop_value(name):
        pg, _, p = name.partition("/")
        if not p:
            pg, p = method, pg
        vals = pgs.get(pg, {}).get("props", {}).get(p, {}).get("values", [])
        return " ".join(vals)

    table = {"i": iname, "f": fmri, "s": sname, "m": method, "r": "svc.startd", "%": "%"}

    def repl(m):
        if m.group(1) is not None:
            return prop_value(m.group(1))
        return table.get(m.group(2), m.group(0))

    return re.sub(r"%\{([^}]*)\}|%(.)", repl, text)


def context(pgs, method):
    """Method context properties: the method's own, else the entity's method_context."""
    ctx = dict(pgs.get("method_context", {}).get("props", {}))
    ctx.update(pgs.get(method, {}).get("props", {}))
    return {k: v["values"] for k, v in ctx.items()}


def environment(fmri, method, ctx):
    env = {
        "PATH": METHOD_PATH,
        "SMF_FMRI": fmri,
        "SMF_METHOD": method,
        "SMF_RESTARTER": repository.RESTARTER_FMRI,
        "SMF_ZONENAME": zonename(),
        "LANG": "C",
    }
    if os.environ.get("SMARTOS_SIM_ZONEROOT"):
        env["SMARTOS_SIM_ZONEROOT"] = os.environ["SMARTOS_SIM_ZONEROOT"]
    for item in ctx.get("environment", []):
        key, _, value = item.partition("=")
        env[key] = value
    return env


class MethodSetupError(Exception):
    pass


def spawn(fmri, method, command, marker, pgs):
    """Start ``/bin/sh -c "exec <command>"`` for ``method`` in contract ``marker``."""
    ctx = context(pgs, method)
    env = environment(fmri, method, ctx)
    env[MARKER] = marker
    kwargs = {}
    user = (ctx.get("user") or [""])[0]
    group = (ctx.get("group") or [""])[0]
    if os.geteuid() == 0:
        try:
            if user and user != "root":
                pw = pwd.getpwnam(user)
                kwargs["user"] = pw.pw_uid
                kwargs["group"] = pw.pw_gid
                env.setdefault("HOME", pw.pw_dir)
                env["LOGNAME"] = env["USER"] = user
            if group and group not in ("root", ":default"):
                kwargs["group"] = grp.getgrnam(group).gr_gid
        except KeyError:
            raise MethodSetupError("Missing passwd entry for user.") from None
    cwd = (ctx.get("working_directory") or ["/"])[0]
    if cwd == ":default" or not os.path.isdir(cwd):
        cwd = "/"
    path = repository.log_path(fmri)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "ab") as logf:
        return subprocess.Popen(
            ["/bin/sh", "-c", f"exec {command}"],
            stdin=subprocess.DEVNULL,
            stdout=logf,
            stderr=logf,
            env=env,
            cwd=cwd,
            start_new_session=True,
            close_fds=True,
            **kwargs,
        )
