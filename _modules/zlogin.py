"""
Work inside SmartOS zones from the global zone, through ``zlogin``.

Everything this module does in a zone goes through ``zlogin``: commands,
files (carried over stdin and stdout, never through the global zone's view
of the zone's root, where a planted symlink could redirect a write), pkgin
packages and SMF services.  Zones are named by UUID or alias (resolved by
the ``vmadm`` module).

A command given as a list is quoted for the zone's shell, so every argument
arrives unchanged, whatever it holds; a command given as a string is run by
the zone's shell as it is.

:depends: the ``zlogin`` command (and ``vmadm`` for aliases)
:platform: SmartOS global zone
"""

import hashlib
import logging
import posixpath
import re
import shlex
import time

import salt.utils.path
import salt.version
from salt.exceptions import CommandExecutionError, SaltInvocationError

log = logging.getLogger(__name__)


class ZoneFileMissing(CommandExecutionError):
    """A file asked for in a zone does not exist there."""


__virtualname__ = "zlogin"

UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
USER_RE = re.compile(r"^[a-z_][a-z0-9_.-]{0,31}$")
PKG_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9+_.-]*$")
FMRI_RE = re.compile(r"^(svc:/)?[A-Za-z0-9][A-Za-z0-9_.,/-]*(:[A-Za-z0-9_.,-]+)?$")
MODE_RE = re.compile(r"^0?[0-7]{3,4}$")
PKGIN = "/opt/local/bin/pkgin"
SETTLED = ("online", "offline", "disabled", "maintenance", "degraded")
ZLOGIN_OWN = (
    re.compile(r"^zlogin: zone '.*' unknown"),
    re.compile(r"^zlogin: login allowed only to running zones"),
    re.compile(r"^zlogin: (could not|failed to|unable to)"),
)


def __virtual__():
    if salt.version.__version_info__ < (3006,):
        return (False, f"zlogin: needs Salt 3006 or newer, this is {salt.version.__version__}")
    if salt.utils.path.which("zlogin"):
        return __virtualname__
    return (False, "zlogin: the zlogin command was not found (it exists in a SmartOS global zone)")


def _zonename(zone):
    """The zonename (UUID) of a zone given by UUID or alias."""
    if isinstance(zone, str) and UUID_RE.match(zone):
        return zone.lower()
    if "vmadm.uuid" in __salt__:
        return __salt__["vmadm.uuid"](zone)
    raise SaltInvocationError(f"zlogin: {zone!r} is not a zone UUID (aliases need the vmadm module)")


def _quote(cmd):
    """The command line for the zone's shell."""
    if isinstance(cmd, bool):  # the CLI reads `true` as YAML
        cmd = "true" if cmd else "false"
    elif isinstance(cmd, (int, float)):
        cmd = str(cmd)
    if isinstance(cmd, (list, tuple)):
        words = [str(word) for word in cmd]
        if not words:
            raise SaltInvocationError("zlogin: the command is empty")
        text = " ".join(shlex.quote(word) for word in words)
    elif isinstance(cmd, str) and cmd.strip():
        text = cmd
    else:
        raise SaltInvocationError("zlogin: the command must be a non-empty string or list")
    if "\0" in text:
        raise SaltInvocationError("zlogin: the command contains a NUL byte")
    return text


def _path(path):
    """A file path in a zone: absolute, normalised, no NUL, no newline."""
    if not isinstance(path, str) or not path.startswith("/"):
        raise SaltInvocationError(f"zlogin: {path!r} is not an absolute path")
    if "\0" in path or "\n" in path:
        raise SaltInvocationError(f"zlogin: the path {path!r} contains a NUL byte or a newline")
    if posixpath.normpath(path) != path or path.startswith("//") or path == "/":
        raise SaltInvocationError(f"zlogin: {path!r} is not a normalised path to a file ('..', '.', '//')")
    return path


def run(zone, cmd, stdin=None, user=None, timeout=None, output_loglevel="debug"):
    """
    Run a command in a zone; return its ``stdout``, ``stderr`` and ``retcode``.

    A command that fails is not an error here (look at ``retcode``); a zone
    that is unknown or not running is.

    zone
        The zone's UUID or alias.

    cmd
        A string, run by the zone's shell as it is, or a list of arguments,
        each quoted so that it arrives unchanged (spaces, quotes, ``$``,
        ``;``, backslashes, newlines).

    stdin
        Text given to the command on its standard input (none by default:
        the command reads ``/dev/null``).

    user
        Run as this user in the zone (``zlogin -l``); root by default.

    timeout
        Seconds after which the command is killed.

    CLI Example:

    .. code-block:: bash

        salt gz1 zlogin.run zoneA 'svcs -x'
        salt gz1 zlogin.run zoneA '["ls", "-l", "/opt/local/etc"]'
        salt gz1 zlogin.run zoneA 'cat > /tmp/x' stdin='hello'
    """
    name = _zonename(zone)
    command = _quote(cmd)
    argv = ["zlogin", "-Q"]
    if user:
        if not USER_RE.match(str(user)):
            raise SaltInvocationError(f"zlogin: {user!r} is not a valid user name")
        argv += ["-l", str(user)]
    if stdin is None:
        argv.append("-n")
    argv += [name, command]
    started = time.monotonic()
    res = __salt__["cmd.run_all"](
        argv,
        python_shell=False,
        stdin=stdin,
        stdin_raw_newlines=True,
        timeout=timeout,
        ignore_retcode=True,
        output_loglevel=output_loglevel,
    )
    stderr = res.get("stderr") or ""
    if res["retcode"] == 1 and any(p.match(stderr) for p in ZLOGIN_OWN):
        raise CommandExecutionError(f"zlogin: zone {zone}: {stderr.strip().removeprefix('zlogin: ')}")
    if timeout and res["retcode"] == 1 and time.monotonic() - started >= timeout:
        raise CommandExecutionError(f"zlogin: zone {zone}: command timed out after {timeout}s: {command}")
    return {"stdout": res.get("stdout") or "", "stderr": stderr, "retcode": res["retcode"]}


def run_stdout(zone, cmd, stdin=None, user=None, timeout=None):
    """
    Run a command in a zone and return its standard output only.

    Takes the arguments of ``zlogin.run``.

    CLI Example:

    .. code-block:: bash

        salt gz1 zlogin.run_stdout zoneA 'cat /etc/release'
    """
    return run(zone, cmd, stdin=stdin, user=user, timeout=timeout)["stdout"]


def retcode(zone, cmd, stdin=None, user=None, timeout=None):
    """
    Run a command in a zone and return its exit status only.

    Takes the arguments of ``zlogin.run``.

    CLI Example:

    .. code-block:: bash

        salt gz1 zlogin.retcode zoneA 'test -x /opt/local/sbin/ucarp'
    """
    return run(zone, cmd, stdin=stdin, user=user, timeout=timeout)["retcode"]


def _check(zone, cmd, stdin=None, what=None, output_loglevel="debug"):
    """Run ``cmd``; a non-zero exit raises with the zone, the command and stderr."""
    res = run(zone, cmd, stdin=stdin, output_loglevel=output_loglevel)
    if res["retcode"] != 0:
        detail = (res["stderr"] or res["stdout"]).strip()
        shown = what or _quote(cmd)
        raise CommandExecutionError(
            f"zlogin: zone {zone}: {shown} failed (exit {res['retcode']}): {detail}",
        )
    return res


# Files ----------------------------------------------------------------------
#
# Content crosses zlogin as text only (Salt passes stdin and stdout as text):
# reads come back as ``od`` hex, writes go in as ``printf %b`` octal escapes
# for every byte that is not printable ASCII.  Both tools are POSIX and in
# every zone.

_READ = r"""p=$1
if [ ! -e "$p" ] && [ ! -L "$p" ]; then echo "no such file" >&2; exit 3; fi
if [ ! -f "$p" ]; then echo "not a regular file" >&2; exit 4; fi
exec od -A n -v -t x1 "$p"
"""

_WRITE = r"""p=$1 mode=$2 owner=$3 makedirs=$4
d=$(dirname "$p") || exit 1
if [ ! -d "$d" ]; then
  if [ "$makedirs" = yes ]; then mkdir -p "$d" || exit 1; else echo "no such directory: $d" >&2; exit 3; fi
fi
if [ -d "$p" ]; then echo "is a directory" >&2; exit 4; fi
umask 077
t=$(mktemp "$d/.salt-zlogin.XXXXXX") || exit 1
trap 'rm -f "$t"' EXIT
printf '%b' "$(cat)" > "$t" || exit 1
chown "$owner" "$t" || exit 1
chmod "$mode" "$t" || exit 1
mv -f "$t" "$p" || exit 1
trap - EXIT
"""

_STAT = r"""p=$1
if [ ! -e "$p" ] && [ ! -L "$p" ]; then exit 3; fi
ls -ldn "$p" && ls -ld "$p"
"""


def _script(script, *args):
    """A command line running ``script`` with positional ``args``."""
    return "sh -c " + shlex.quote(script) + " sh " + " ".join(shlex.quote(str(a)) for a in args)


def _encode(data):
    out = []
    for byte in data:
        if 0x20 <= byte < 0x7F and byte != 0x5C:
            out.append(chr(byte))
        else:
            out.append(f"\\0{byte:03o}")
    return "".join(out)


def file_read(zone, path, encoding="utf-8"):
    """
    Return the content of a file inside a zone, read through ``zlogin``.

    zone
        UUID or alias.

    path
        Absolute path inside the zone.

    encoding
        How to decode the bytes (``utf-8`` by default); ``None`` returns bytes.

    CLI Example:

    .. code-block:: bash

        salt gz1 zlogin.file_read zoneA /opt/local/etc/ucarp/web.conf
    """
    path = _path(path)
    res = run(zone, _script(_READ, path), output_loglevel="quiet")  # the content may be a secret
    if res["retcode"] == 3:
        raise ZoneFileMissing(f"zlogin: zone {zone}: {path}: No such file")
    if res["retcode"] != 0:
        raise CommandExecutionError(f"zlogin: zone {zone}: cannot read {path}: {res['stderr'].strip()}")
    data = bytes.fromhex("".join(res["stdout"].split()))
    return data if encoding is None else data.decode(encoding)


def file_write(zone, path, content, mode="0644", user="root", group="root", makedirs=False):
    """
    Write a file inside a zone atomically, with its mode and owner.

    The content is written to a temporary file created with mode 0600 in the
    same directory, given its owner and mode, then renamed over ``path``:
    readers see the old or the new file, never a part, and a secret is never
    readable by others on the way.

    zone
        UUID or alias.

    path
        Absolute path inside the zone.

    content
        Text (written as UTF-8) or bytes.

    mode
        Octal mode as a string (``"0644"`` by default; ``"0600"`` for secrets).

    user, group
        Owner and group inside the zone (``root``).

    makedirs
        Create missing parent directories (no by default: an error).

    CLI Example:

    .. code-block:: bash

        salt gz1 zlogin.file_write zoneA /opt/local/etc/motd 'hello' mode=0644
    """
    path = _path(path)
    mode = str(mode)
    if not MODE_RE.match(mode):
        raise SaltInvocationError(f"zlogin: {mode!r} is not an octal file mode such as 0644")
    for label, value in (("user", user), ("group", group)):
        if not USER_RE.match(str(value)):
            raise SaltInvocationError(f"zlogin: {value!r} is not a valid {label} name")
    data = content.encode("utf-8") if isinstance(content, str) else bytes(content)
    script = _script(_WRITE, path, mode, f"{user}:{group}", "yes" if makedirs else "no")
    _check(zone, script, stdin=_encode(data), what=f"writing {path}", output_loglevel="quiet")
    return True


def file_stat(zone, path):
    """
    Return a file's type, mode, owner, group and size in a zone, or None.

    CLI Example:

    .. code-block:: bash

        salt gz1 zlogin.file_stat zoneA /opt/local/etc/ucarp/web.pass
    """
    path = _path(path)
    res = run(zone, _script(_STAT, path))
    if res["retcode"] == 3:
        return None
    if res["retcode"] != 0:
        raise CommandExecutionError(f"zlogin: zone {zone}: cannot stat {path}: {res['stderr'].strip()}")
    numeric, named = (line.split() for line in res["stdout"].splitlines()[:2])
    return {
        "type": {"-": "file", "d": "directory", "l": "link"}.get(numeric[0][0], "other"),
        "mode": _mode(numeric[0]),
        "uid": int(numeric[2]),
        "gid": int(numeric[3]),
        "user": named[2],
        "group": named[3],
        "size": int(numeric[4]),
    }


def _mode(perms):
    """``-rwsr-x---`` -> ``"4750"`` (``S``, ``T``, ``l``: the special bit without execute)."""
    bits = 0
    for i, char in enumerate(perms[1:10]):
        if char in "rwxst":
            bits |= 1 << (8 - i)
    if perms[3] in "sS":
        bits |= 0o4000
    if perms[6] in "sSlL":
        bits |= 0o2000
    if perms[9] in "tT":
        bits |= 0o1000
    return f"{bits:04o}"


def file_hash(zone, path, algorithm="sha256"):
    """
    Return the hex digest of a file in a zone, or None if it does not exist.

    CLI Example:

    .. code-block:: bash

        salt gz1 zlogin.file_hash zoneA /opt/local/etc/ucarp/web.conf
    """
    try:
        data = file_read(zone, path, encoding=None)
    except ZoneFileMissing:
        return None
    return hashlib.new(algorithm, data).hexdigest()


def file_remove(zone, path):
    """
    Remove a file in a zone; return whether there was one.

    CLI Example:

    .. code-block:: bash

        salt gz1 zlogin.file_remove zoneA /opt/local/etc/ucarp/old.conf
    """
    path = _path(path)
    script = 'if [ -e "$1" ] || [ -L "$1" ]; then rm -f "$1" && echo removed; fi'
    return _check(zone, _script(script, path), what=f"removing {path}")["stdout"].strip() == "removed"


# Packages (pkgin) -------------------------------------------------------------


def _pkg_name(name):
    if not isinstance(name, str) or not PKG_RE.match(name):
        raise SaltInvocationError(f"zlogin: {name!r} is not a package name")
    return name


def pkg_list(zone):
    """
    Return the packages installed in a zone as ``{name: version}`` (pkgin).

    CLI Example:

    .. code-block:: bash

        salt gz1 zlogin.pkg_list zoneA
    """
    res = run(zone, [PKGIN, "-p", "list"])
    if res["retcode"] != 0 and "empty local package list" not in res["stderr"] + res["stdout"]:
        raise CommandExecutionError(f"zlogin: zone {zone}: pkgin list failed: {res['stderr'].strip()}")
    found = {}
    for line in res["stdout"].splitlines():
        fullname = line.split(";", 1)[0].strip()
        if "-" in fullname:
            name, version = fullname.rsplit("-", 1)
            found[name] = version
    return found


def pkg_version(zone, name):
    """
    Return the installed version of a package in a zone, or None.

    CLI Example:

    .. code-block:: bash

        salt gz1 zlogin.pkg_version zoneA ucarp
    """
    return pkg_list(zone).get(_pkg_name(name))


def pkg_install(zone, name):
    """
    Install a package in a zone with ``pkgin -y install``.

    Returns ``{"name", "version", "changed"}``; ``changed`` is False when the
    package was there already. An unknown package is an error.

    CLI Example:

    .. code-block:: bash

        salt gz1 zlogin.pkg_install zoneA ucarp
    """
    name = _pkg_name(name)
    before = pkg_list(zone).get(name)
    if before is None:
        _check(zone, [PKGIN, "-y", "install", name], what=f"pkgin install {name}")
    after = pkg_list(zone).get(name)
    if after is None:
        raise CommandExecutionError(f"zlogin: zone {zone}: pkgin install {name} left it not installed")
    return {"name": name, "version": after, "changed": before is None}


def pkg_remove(zone, name):
    """
    Remove a package from a zone with ``pkgin -y remove``; return whether it was there.

    CLI Example:

    .. code-block:: bash

        salt gz1 zlogin.pkg_remove zoneA ucarp
    """
    name = _pkg_name(name)
    if name not in pkg_list(zone):
        return False
    _check(zone, [PKGIN, "-y", "remove", name], what=f"pkgin remove {name}")
    return True


# SMF --------------------------------------------------------------------------


def _fmri(fmri):
    if not isinstance(fmri, str) or not FMRI_RE.match(fmri):
        raise SaltInvocationError(f"zlogin: {fmri!r} is not a service FMRI such as svc:/network/ucarp:web")
    return fmri


def svc_state(zone, fmri):
    """
    Return the SMF state of a service instance in a zone, or None if unknown.

    The state ends in ``*`` while the instance is moving to another.

    CLI Example:

    .. code-block:: bash

        salt gz1 zlogin.svc_state zoneA svc:/network/ucarp:web
    """
    res = run(zone, ["svcs", "-H", "-o", "state", _fmri(fmri)])
    if res["retcode"] != 0:
        if "doesn't match any instances" in res["stderr"]:
            return None
        raise CommandExecutionError(f"zlogin: zone {zone}: svcs {fmri}: {res['stderr'].strip()}")
    states = res["stdout"].split()
    if len(states) != 1:
        raise CommandExecutionError(f"zlogin: zone {zone}: {fmri} matches {len(states)} instances; name one")
    return states[0]


def svc_explain(zone, fmri=None):
    """
    Return ``svcs -x`` for a service in a zone (or for every troubled one).

    CLI Example:

    .. code-block:: bash

        salt gz1 zlogin.svc_explain zoneA svc:/network/ucarp:web
    """
    return run(zone, ["svcs", "-x", *([_fmri(fmri)] if fmri else [])])["stdout"]


def _svcadm(zone, action, fmri, flags=()):
    res = run(zone, ["svcadm", action, *flags, _fmri(fmri)])
    if res["retcode"] == 0:
        return True
    detail = res["stderr"].strip()
    if res["retcode"] == 3:
        raise CommandExecutionError(
            f"zlogin: zone {zone}: svcadm {action} {fmri}: {detail}\n{svc_explain(zone, fmri).strip()}",
        )
    raise CommandExecutionError(
        f"zlogin: zone {zone}: svcadm {action} {fmri} failed (exit {res['retcode']}): {detail}",
    )


def svc_enable(zone, fmri, wait=True, temporary=False, recursive=False, clear=False):
    """
    Enable a service in a zone; by default wait until it is online.

    A service that goes to maintenance instead is an error that carries the
    ``svcs -x`` explanation.

    wait
        Wait for the online state (``svcadm enable -s``).

    temporary
        Until the zone reboots only (``-t``).

    recursive
        Enable what it depends on too (``-r``).

    clear
        Clear it out of maintenance first, if it is there.

    CLI Example:

    .. code-block:: bash

        salt gz1 zlogin.svc_enable zoneA svc:/network/ucarp:web
    """
    flags = [f for f, on in (("-s", wait), ("-t", temporary), ("-r", recursive)) if on]
    if clear and svc_state(zone, fmri) == "maintenance":
        _svcadm(zone, "clear", fmri)
    return _svcadm(zone, "enable", fmri, flags)


def svc_disable(zone, fmri, wait=True, temporary=False):
    """
    Disable a service in a zone; by default wait until its processes are gone.

    CLI Example:

    .. code-block:: bash

        salt gz1 zlogin.svc_disable zoneA svc:/network/ucarp:web
    """
    flags = [f for f, on in (("-s", wait), ("-t", temporary)) if on]
    return _svcadm(zone, "disable", fmri, flags)


def svc_restart(zone, fmri, wait=True, timeout=60):
    """
    Restart a service in a zone; by default wait until it is online again.

    CLI Example:

    .. code-block:: bash

        salt gz1 zlogin.svc_restart zoneA svc:/network/ucarp:web
    """
    _svcadm(zone, "restart", fmri)
    return _settle(zone, fmri, timeout) if wait else True


def svc_clear(zone, fmri, wait=True, timeout=60):
    """
    Clear a service in a zone out of maintenance; by default wait until it settles.

    CLI Example:

    .. code-block:: bash

        salt gz1 zlogin.svc_clear zoneA svc:/network/ucarp:web
    """
    _svcadm(zone, "clear", fmri)
    return _settle(zone, fmri, timeout) if wait else True


def svc_refresh(zone, fmri):
    """
    Refresh a service in a zone (re-read its configuration).

    CLI Example:

    .. code-block:: bash

        salt gz1 zlogin.svc_refresh zoneA svc:/network/ucarp:web
    """
    return _svcadm(zone, "refresh", fmri)


def _settle(zone, fmri, timeout):
    """Wait (bounded) until an instance is online; maintenance is an error."""
    deadline = time.monotonic() + timeout
    current = None
    while time.monotonic() < deadline:
        current = svc_state(zone, fmri)
        if current in ("online", "degraded"):
            return True
        if current == "maintenance":
            raise CommandExecutionError(
                f"zlogin: zone {zone}: {fmri} is in maintenance\n{svc_explain(zone, fmri).strip()}"
            )
        time.sleep(0.2)
    raise CommandExecutionError(f"zlogin: zone {zone}: {fmri} did not come online within {timeout}s (it is {current})")


def svc_import(zone, path):
    """
    Import an SMF manifest that is already in the zone (``svccfg import``).

    Import never changes whether an existing instance is enabled.

    CLI Example:

    .. code-block:: bash

        salt gz1 zlogin.svc_import zoneA /opt/local/lib/svc/manifest/ucarp.xml
    """
    _check(zone, ["svccfg", "import", _path(path)], what=f"svccfg import {path}")
    return True


def svc_delete(zone, fmri):
    """
    Delete a service or instance from a zone's SMF repository (``svccfg delete -f``);
    return whether it existed.

    CLI Example:

    .. code-block:: bash

        salt gz1 zlogin.svc_delete zoneA svc:/network/ucarp:old
    """
    res = run(zone, ["svcs", "-H", _fmri(fmri)])
    if res["retcode"] != 0 and "doesn't match any instances" in res["stderr"]:
        return False
    _check(zone, ["svccfg", "delete", "-f", _fmri(fmri)], what=f"svccfg delete {fmri}")
    return True
