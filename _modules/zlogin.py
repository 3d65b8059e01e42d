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

import concurrent.futures
import hashlib
import logging
import posixpath
import re
import shlex
import subprocess
import time

import salt.utils.path
import salt.version
from salt.exceptions import CommandExecutionError, SaltInvocationError

try:  # pip-installed as a Salt extension, whose utils Salt's loader does not read
    from saltext.ucarp.utils import run_cache as _packaged_run_cache
    from saltext.ucarp.utils import zone_root as _packaged_zone_root
except ImportError:  # a formula: the utils are synced and come through __utils__
    _packaged_run_cache = _packaged_zone_root = None

log = logging.getLogger(__name__)


class ZoneFileMissing(CommandExecutionError):
    """A file asked for in a zone does not exist there."""


class ServiceNotFound(CommandExecutionError):
    """An FMRI matches no service instance in the zone."""


class ZoneNotRunning(CommandExecutionError):
    """zlogin refused: the zone is not running (it may have stopped during the run)."""


class ServiceFailed(CommandExecutionError):
    """svcadm could not bring an instance where it was asked (exit 3): it is
    in maintenance, or another entity disabled or enabled it."""


__virtualname__ = "zlogin"

UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
USER_RE = re.compile(r"^[a-z_][a-z0-9_.-]{0,31}$")
PKG_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9+_.-]*$")
FMRI_RE = re.compile(r"^(svc:/)?[A-Za-z0-9][A-Za-z0-9_.,/-]*(:[A-Za-z0-9_.,*-]+)?$")
MODE_RE = re.compile(r"^0?[0-7]{3,4}$")
PKGIN = "/opt/local/bin/pkgin"
PKG_DBDIR = "/opt/local/pkg"  # pkgsrc's package database in a SmartOS zone (one directory per package)
SETTLED = ("online", "offline", "disabled", "maintenance", "degraded")
NOT_RUNNING = re.compile(r"^zlogin: login allowed only to running zones")
ZLOGIN_OWN = (
    re.compile(r"^zlogin: zone '.*' unknown"),
    NOT_RUNNING,
    re.compile(r"^zlogin: (could not|failed to|unable to)"),
)
VM_LIST = "vmadm.vms"  # the vmadm module's run store of the VM list (its CACHE)


def __virtual__():
    if salt.version.__version_info__ < (3006,):
        return (False, f"zlogin: needs Salt 3006 or newer, this is {salt.version.__version__}")
    if salt.utils.path.which("zlogin"):
        return __virtualname__
    return (False, "zlogin: the zlogin command was not found (it exists in a SmartOS global zone)")


def _util(module, name):
    """A function of the formula's ``run_cache`` or ``zone_root`` util."""
    packaged = {"run_cache": _packaged_run_cache, "zone_root": _packaged_zone_root}[module]
    return getattr(packaged, name) if packaged else __utils__[f"{module}.{name}"]


def _remember(name, compute):
    """``compute()`` once per run's store under ``name`` (every time outside one)."""
    store = _util("run_cache", "current")(__context__)
    if store is None:
        return compute()
    if name not in store:
        store[name] = compute()
    return store[name]


def _in_run():
    return _util("run_cache", "current")(__context__) is not None


def _wrote(zone):
    """Count a change this run made in a zone (see ``fresh``). One count for
    all zones: a watched state may have changed another zone than its
    instance's, and a count per zone would not see it."""
    store = _util("run_cache", "current")(__context__)
    if store is not None:
        store["zlogin.writes"] = store.get("zlogin.writes", 0) + 1


def _started(zone, fmri, running):
    """Note that this run (re)started ``fmri`` in ``zone`` now, or stopped it."""
    store = _util("run_cache", "current")(__context__)
    if store is None:
        return
    name = _zonename(zone)
    started = store.setdefault("zlogin.started", {})
    key = f"{name} {fmri}"
    if running:
        started[key] = store.get("zlogin.writes", 0)
    else:
        started.pop(key, None)


def fresh(zone, fmri):
    """
    Whether this state run started (or restarted) an SMF instance and has
    changed nothing in any zone through this module since: the instance
    then runs with every file, package and manifest the run wrote, and a
    ``watch`` that would refresh or restart it has nothing to give it.
    Always False outside a state run.

    CLI Example:

    .. code-block:: bash

        salt gz1 zlogin.fresh zoneA svc:/network/ucarp:web
    """
    store = _util("run_cache", "current")(__context__)
    if store is None:
        return False
    name = _zonename(zone)
    started = store.get("zlogin.started", {}).get(f"{name} {_fmri(fmri)}")
    return started is not None and started == store.get("zlogin.writes", 0)


def _stopped(zone):
    """``zone`` is not running, whatever this run read of it before (it stopped
    halfway through): forget the run's VM list and the zone's SMF states, so
    that nothing later in the run acts on them. Its next states ask again and
    fail with the reason; the other zones' states go on."""
    _util("run_cache", "drop")(__context__, VM_LIST)
    _changed_smf(zone)


def _zone_root(zone):
    """The zone's root as the global zone sees it, in a run and for a running zone
    only (from the run's one ``vmadm lookup``); None otherwise: use ``zlogin``."""
    if not _in_run() or "vmadm.get" not in __salt__:
        return None
    try:
        vm = __salt__["vmadm.get"](zone)
    except CommandExecutionError:
        return None
    if vm.get("state") != "running" or not vm.get("zonepath"):
        return None
    return posixpath.join(vm["zonepath"], "root")


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
    if res["retcode"] == 1 and NOT_RUNNING.match(stderr):
        _stopped(zone)
        raise ZoneNotRunning(f"zlogin: zone {zone}: {stderr.strip().removeprefix('zlogin: ')}")
    if res["retcode"] == 1 and any(p.match(stderr) for p in ZLOGIN_OWN):
        raise CommandExecutionError(f"zlogin: zone {zone}: {stderr.strip().removeprefix('zlogin: ')}")
    if timeout and res["retcode"] == 1 and time.monotonic() - started >= timeout:
        raise CommandExecutionError(f"zlogin: zone {zone}: command timed out after {timeout}s: {command}")
    return {"stdout": res.get("stdout") or "", "stderr": stderr, "retcode": res["retcode"]}


PARALLEL = 8  # zlogin processes run_each keeps going at once


def run_each(commands, timeout=60):
    """
    Run one command in each of several zones at once (at most 8 ``zlogin``
    at a time); return ``{zone: {"stdout", "stderr", "retcode"}}``, or
    ``{"error": ...}`` for a zone ``zlogin`` could not enter.

    A question asked of every zone (``ifconfig -a`` for ``ucarp.status``)
    still costs one process per zone, but not one after the other.

    commands
        ``{zone: command}``; a command as for ``zlogin.run``.

    CLI Example:

    .. code-block:: bash

        salt gz1 zlogin.run_each '{"zoneA": "uptime", "zoneB": "uptime"}'
    """
    if not isinstance(commands, dict):
        raise SaltInvocationError("zlogin: run_each takes {zone: command}")
    argvs = {zone: ["zlogin", "-Q", "-n", _zonename(zone), _quote(cmd)] for zone, cmd in commands.items()}

    def one(argv):
        try:
            done = subprocess.run(  # noqa: S603 - an argument list, no shell
                argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout, check=False
            )
        except subprocess.TimeoutExpired:
            return {"error": f"command timed out after {timeout}s"}
        except OSError as exc:
            return {"error": str(exc)}
        if done.returncode == 1 and any(p.match(done.stderr) for p in ZLOGIN_OWN):
            return {"error": done.stderr.strip().removeprefix("zlogin: ")}
        return {"stdout": done.stdout, "stderr": done.stderr, "retcode": done.returncode}

    with concurrent.futures.ThreadPoolExecutor(max_workers=PARALLEL) as pool:
        futures = {zone: pool.submit(one, argv) for zone, argv in argvs.items()}
        return {zone: future.result() for zone, future in futures.items()}


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

# Several files in one zlogin: every file goes to a 0600 temporary file in
# its directory first (content on stdin, one escaped line per file), and only
# once all of them are written are they renamed into place.  A file that
# cannot be written, or the script cut short, removes every temporary file:
# nothing is replaced.
_WRITE = r"""mk=$1; shift
n=0 t='' q=''
undo() { while [ "$n" -gt 0 ]; do n=$((n - 1)); eval "rm -f \"\$t$n\""; done; [ -z "$t" ] || rm -f "$t"; }
fail() { undo; echo "$2" >&2; exit "$1"; }
trap undo EXIT
trap 'exit 1' HUP INT TERM
while [ "$#" -ge 3 ]; do
  p=$1 mode=$2 owner=$3; shift 3
  IFS= read -r data || fail 1 "$p: no content given"
  d=$(dirname "$p") || fail 1 "$p: no directory"
  if [ ! -d "$d" ]; then
    [ "$mk" = yes ] || fail 3 "$p: no such directory: $d"
    mkdir -p "$d" || fail 1 "$p: cannot create $d"
  fi
  [ ! -d "$p" ] || fail 4 "$p: is a directory"
  t=$(umask 077 && mktemp "$d/.salt-zlogin.XXXXXX") || fail 1 "$p: cannot create a temporary file in $d"
  { printf '%b' "$data" > "$t" && chown "$owner" "$t" && chmod "$mode" "$t"; } || fail 1 "$p: cannot write it"
  eval "t$n=\$t p$n=\$p"
  n=$((n + 1)) t=''
done
i=0
while [ "$i" -lt "$n" ]; do
  eval "mv -f \"\$t$i\" \"\$p$i\"" || {
    eval "q=\$p$i"; j=$i
    while [ "$j" -lt "$n" ]; do eval "rm -f \"\$t$j\""; j=$((j + 1)); done
    echo "$q: cannot rename it into place ($i of $n files replaced)" >&2; exit 5
  }
  i=$((i + 1))
done
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


def file_read(zone, path, encoding="utf-8", missing_ok=False):
    """
    Return the content of a file inside a zone, read through ``zlogin``.

    zone
        UUID or alias.

    path
        Absolute path inside the zone.

    encoding
        How to decode the bytes (``utf-8`` by default); ``None`` returns bytes.

    missing_ok
        Return None when there is no such file (by default that is an
        error, ``ZoneFileMissing``).

    CLI Example:

    .. code-block:: bash

        salt gz1 zlogin.file_read zoneA /opt/local/etc/ucarp/web.conf
    """
    path = _path(path)
    data = _under_root("try_read", zone, path)
    if data is MISSING:
        if missing_ok:
            return None
        raise ZoneFileMissing(f"zlogin: zone {zone}: {path}: No such file")
    if data is None:
        try:
            data = _read_through_zlogin(zone, path)
        except ZoneFileMissing:
            if missing_ok:
                return None
            raise
    return data if encoding is None else data.decode(encoding)


MISSING = object()  # what _under_root answers for nothing at that path (never a file's content)


def _under_root(how, zone, path):
    """``zone_root.<how>`` of ``path`` below the zone's root, in a run: its
    value, ``MISSING``, or None when it is not read there (no run, the zone
    not running, or refused: the reason is kept for ``zlogin.refused``).

    The zone's root is what the zone sees at ``/``, except below a
    filesystem mounted inside the zone (a ``filesystems`` lofs mount, the
    zone's own tmpfs): manage files that lie on the zone's root dataset.
    """
    root = _zone_root(zone)
    if root is None:
        return None
    outcome, value = _util("zone_root", how)(root, path)
    if outcome == "ok":
        return value
    if outcome == "missing":
        return MISSING
    log.info("zlogin: zone %s: %s is read through zlogin, not under the zone root: %s", zone, path, value)
    store = _util("run_cache", "current")(__context__)
    store.setdefault("zlogin.refused", {})[(_zonename(zone), path)] = value
    return None


def refused(zone, path):
    """
    Why this run read ``path`` through ``zlogin`` rather than under the zone's
    root (a symlink, a file that is not regular, one too big), or None.

    CLI Example:

    .. code-block:: bash

        salt gz1 zlogin.refused zoneA /opt/local/etc/ucarp/web.conf
    """
    store = _util("run_cache", "current")(__context__) or {}
    return store.get("zlogin.refused", {}).get((_zonename(zone), _path(path)))


def _read_through_zlogin(zone, path):
    res = run(zone, _script(_READ, path), output_loglevel="quiet")  # the content may be a secret
    if res["retcode"] == 3:
        raise ZoneFileMissing(f"zlogin: zone {zone}: {path}: No such file")
    if res["retcode"] != 0:
        raise CommandExecutionError(f"zlogin: zone {zone}: cannot read {path}: {res['stderr'].strip()}")
    return bytes.fromhex("".join(res["stdout"].split()))


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
    file_write_many(zone, {path: {"content": content, "mode": mode, "user": user, "group": group}}, makedirs=makedirs)
    return True


def _wanted_file(path, spec):
    """``(path, mode, "user:group", data)`` of one file to write, checked."""
    path = _path(path)
    if not isinstance(spec, dict) or "content" not in spec:
        raise SaltInvocationError(f"zlogin: {path}: give the file as {{content, mode, user, group}}")
    unknown = sorted(set(spec) - {"content", "mode", "user", "group"})
    if unknown:
        raise SaltInvocationError(f"zlogin: {path}: unknown file key(s) {', '.join(unknown)}")
    mode = str(spec.get("mode", "0644"))
    if not MODE_RE.match(mode):
        raise SaltInvocationError(f"zlogin: {path}: {mode!r} is not an octal file mode such as 0644")
    owner = []
    for label in ("user", "group"):
        value = str(spec.get(label, "root"))
        if not USER_RE.match(value):
            raise SaltInvocationError(f"zlogin: {path}: {value!r} is not a valid {label} name")
        owner.append(value)
    content = spec["content"]
    data = content.encode("utf-8") if isinstance(content, str) else bytes(content)
    return path, mode, ":".join(owner), data


def file_write_many(zone, files, makedirs=False):
    """
    Write several files inside a zone with one ``zlogin``, all or none.

    Each file is written to a temporary file created with mode 0600 in its
    directory and given its owner and mode; only once every one of them is
    written are they renamed over their paths. A file that cannot be
    written (no such directory, a directory in its place, a full disk)
    removes every temporary file and raises, naming the file: nothing was
    replaced. Each file on its own is replaced atomically (readers see the
    old or the new file, never a part).

    zone
        UUID or alias.

    files
        ``{path: {"content": ..., "mode": "0644", "user": "root", "group": "root"}}``:
        absolute paths inside the zone; content as text (written as UTF-8)
        or bytes; mode, user and group as for ``file_write``.

    makedirs
        Create missing parent directories (no by default: an error).

    CLI Example:

    .. code-block:: bash

        salt gz1 zlogin.file_write_many zoneA '{"/etc/motd": {"content": "hi"}, "/etc/issue": {"content": "x"}}'
    """
    if not isinstance(files, dict) or not files:
        raise SaltInvocationError("zlogin: file_write_many takes {path: {content, mode, user, group}}, at least one")
    wanted = [_wanted_file(path, spec) for path, spec in files.items()]  # all checked before anything is written
    args = ["yes" if makedirs else "no"]
    for path, mode, owner, _data in wanted:
        args += [path, mode, owner]
    stdin = "".join(_encode(data) + "\n" for *_, data in wanted)  # one line each: newlines are escaped
    names = wanted[0][0] if len(wanted) == 1 else f"{len(wanted)} files"
    _wrote(zone)
    _check(zone, _script(_WRITE, *args), stdin=stdin, what=f"writing {names}", output_loglevel="quiet")
    return True


def file_stat(zone, path):
    """
    Return a file's type, mode, owner, group and size in a zone, or None.

    CLI Example:

    .. code-block:: bash

        salt gz1 zlogin.file_stat zoneA /opt/local/etc/ucarp/web.pass
    """
    path = _path(path)
    found = _under_root("try_stat", zone, path)
    if found is MISSING:
        return None
    if found is not None and found["uid"] == 0 and found["gid"] == 0:
        # uid and gid 0 are root and root in every illumos zone; other owners'
        # names are the zone's to say.
        return dict(found, user="root", group="root")
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
    data = file_read(zone, path, encoding=None, missing_ok=True)
    return None if data is None else hashlib.new(algorithm, data).hexdigest()


def file_remove(zone, path):
    """
    Remove a file in a zone; return whether there was one.

    CLI Example:

    .. code-block:: bash

        salt gz1 zlogin.file_remove zoneA /opt/local/etc/ucarp/old.conf
    """
    path = _path(path)
    script = 'if [ -e "$1" ] || [ -L "$1" ]; then rm -f "$1" && echo removed; fi'
    _wrote(zone)
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

    In a state run it is read from the zone's pkgsrc database under the
    zone's root when that can be read safely (no process); otherwise
    pkgin in the zone is asked.

    CLI Example:

    .. code-block:: bash

        salt gz1 zlogin.pkg_version zoneA ucarp
    """
    name = _pkg_name(name)
    found = _installed_under_root(zone, name)
    if found is NOT_INSTALLED:
        return None
    return found if found is not None else pkg_list(zone).get(name)


NOT_INSTALLED = object()  # the zone's package database, read, has no such package


def _installed_under_root(zone, name):
    """In a run: the version of ``name`` in the zone's pkgsrc database
    (``/opt/local/pkg/<name>-<version>/+CONTENTS``, read under the zone's
    root), ``NOT_INSTALLED`` when the database has no entry of that name,
    or None: ask pkgin in the zone (no database there, an entry that is no
    complete package, or nothing readable here)."""
    listed = _under_root("try_entries", zone, PKG_DBDIR)
    if listed is None or listed is MISSING:
        return None
    named = [entry for entry in listed if entry.rpartition("-")[0] == name and entry.rpartition("-")[2]]
    if not named:
        return NOT_INSTALLED
    for entry in named:
        if isinstance(_under_root("try_stat", zone, f"{PKG_DBDIR}/{entry}/+CONTENTS"), dict):
            return entry.rpartition("-")[2]
    return None


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
    before = pkg_version(zone, name)
    if before is None:
        _wrote(zone)
        _check(zone, [PKGIN, "-y", "install", name], what=f"pkgin install {name}")
    after = pkg_version(zone, name)
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
    _wrote(zone)
    _check(zone, [PKGIN, "-y", "remove", name], what=f"pkgin remove {name}")
    return True


# SMF --------------------------------------------------------------------------


def _fmri(fmri):
    if not isinstance(fmri, str) or not FMRI_RE.match(fmri):
        raise SaltInvocationError(f"zlogin: {fmri!r} is not a service FMRI such as svc:/network/ucarp:web")
    return fmri


def svc_states():
    """
    Return the SMF state of every service instance in every running zone,
    ``{zonename: {FMRI: state}}``, from one ``svcs -Z`` in the global zone.

    A zone that is not running, or whose repository ``svcs`` cannot reach
    (a zone booting or halting), is left out.

    CLI Example:

    .. code-block:: bash

        salt gz1 zlogin.svc_states
    """
    res = __salt__["cmd.run_all"](
        ["svcs", "-Z", "-a", "-H", "-o", "zone,state,fmri"],
        python_shell=False,
        ignore_retcode=True,
        output_loglevel="debug",
    )
    if res["retcode"] != 0:
        raise CommandExecutionError(f"zlogin: svcs -Z failed (exit {res['retcode']}): {res['stderr'].strip()}")
    found = {}
    for line in res["stdout"].splitlines():
        words = line.split()
        if len(words) == 3:
            found.setdefault(words[0], {})[words[2]] = words[1]
    return found


def _snapshot(zone, ask=True):
    """This run's SMF states of ``zone`` (``{FMRI: state}``), or None: ask the
    zone.  With ``ask`` False, only if the run has already run its ``svcs -Z``
    and nothing was done to the zone's SMF since."""
    store = _util("run_cache", "current")(__context__)
    if store is None or (not ask and "zlogin.smf" not in store):
        return None
    states = _remember("zlogin.smf", svc_states)
    name = _zonename(zone)
    stale = store.setdefault("zlogin.smf.stale", set())
    if ask and name in stale:  # something was done to it: ask svcs -z again, once
        stale.discard(name)
        again = _zone_states(name)
        if again is not None:
            states[name] = again
    return states.get(name)


def _zone_states(name):
    """``{FMRI: state}`` of one zone from ``svcs -z`` in the global zone, or
    None when svcs cannot reach the zone's repository (it is not running)."""
    res = __salt__["cmd.run_all"](
        ["svcs", "-z", name, "-a", "-H", "-o", "state,fmri"],
        python_shell=False,
        ignore_retcode=True,
        output_loglevel="debug",
    )
    return None if res["retcode"] != 0 else _state_lines(res["stdout"])


def _state_lines(text):
    """``{FMRI: state}`` from ``svcs -H -o state,fmri`` lines."""
    found = {}
    for line in text.splitlines():
        words = line.split()
        if len(words) == 2:
            found[words[1]] = words[0]
    return found


def _changed_smf(zone):
    """Forget this run's SMF states of ``zone``: something was just done to it."""
    store = _util("run_cache", "current")(__context__)
    if store is not None and "zlogin.smf" in store:
        name = _zonename(zone)
        store["zlogin.smf"].pop(name, None)
        store.setdefault("zlogin.smf.stale", set()).add(name)


def _matches(fmri, pattern):
    """Whether the instance ``fmri`` is what ``pattern`` names: the instance
    itself, its service (``svc:/network/ucarp``) or ``<service>:*``."""
    service = fmri.rsplit(":", 1)[0]
    return pattern in (fmri, service, f"{service}:*")


def svc_instances(zone, pattern):
    """
    Return ``{FMRI: state}`` of the service instances ``pattern`` matches in a
    zone (an instance, a service with all its instances, or ``<service>:*``);
    empty when it matches none.

    In a state run the answer comes from the run's one ``svcs -Z`` for every
    zone; otherwise from ``svcs`` in the zone.

    CLI Example:

    .. code-block:: bash

        salt gz1 zlogin.svc_instances zoneA svc:/network/ucarp
    """
    _fmri(pattern)
    known = _snapshot(zone)
    if known is not None and pattern.startswith("svc:/"):
        return {fmri: state for fmri, state in known.items() if _matches(fmri, pattern)}
    try:
        return _live_instances(zone, pattern)
    except ServiceNotFound:
        return {}


def _live_instances(zone, pattern):
    """``{FMRI: state}`` from ``svcs`` in the zone; ``ServiceNotFound`` when nothing matches."""
    res = run(zone, ["svcs", "-H", "-o", "state,fmri", _fmri(pattern)])
    if res["retcode"] != 0:
        # svcs says "Pattern '<x>' doesn't match any instances" and exits 1:
        # its message is the only way it tells this from a failure.
        if "doesn't match any instances" in res["stderr"]:
            raise ServiceNotFound(f"zlogin: zone {zone}: no service instance matches {pattern}")
        raise CommandExecutionError(f"zlogin: zone {zone}: svcs {pattern}: {res['stderr'].strip()}")
    return _state_lines(res["stdout"])


def svc_state(zone, fmri):
    """
    Return the SMF state of a service instance in a zone, or None if unknown.

    The state ends in ``*`` while the instance is moving to another. In a
    state run, an instance's FMRI in full (``svc:/network/ucarp:web``) is
    answered from the run's one ``svcs -Z``.

    CLI Example:

    .. code-block:: bash

        salt gz1 zlogin.svc_state zoneA svc:/network/ucarp:web
    """
    _fmri(fmri)
    known = _snapshot(zone)
    if known is not None and re.match(r"^svc:/[^:]+:[^:]+$", fmri):
        return known.get(fmri)
    return _live_state(zone, fmri)


def _live_state(zone, fmri):
    try:
        states = list(_live_instances(zone, fmri).values())
    except ServiceNotFound:
        return None
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
    _changed_smf(zone)
    res = run(zone, ["svcadm", action, *flags, _fmri(fmri)])
    if res["retcode"] == 0:
        return True
    detail = res["stderr"].strip()
    if res["retcode"] == 3:
        raise ServiceFailed(
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
        Clear it out of maintenance first, if it is there: as the run's
        ``svcs -Z`` saw it, or else as ``svcadm enable -s`` says when it
        cannot bring it online (it is then cleared and enabled again).

    CLI Example:

    .. code-block:: bash

        salt gz1 zlogin.svc_enable zoneA svc:/network/ucarp:web
    """
    flags = [f for f, on in (("-s", wait), ("-t", temporary), ("-r", recursive)) if on]
    known = _snapshot(zone, ask=False)  # this run's svcs -Z, if it has one (no process here)
    was = known.get(fmri) if known is not None else None
    if clear and (was == "maintenance" or (was is None and not wait and _live_state(zone, fmri) == "maintenance")):
        _svcadm(zone, "clear", fmri)
    try:
        _svcadm(zone, "enable", fmri, flags)
    except ServiceFailed:
        if not clear or was == "maintenance" or _live_state(zone, fmri) != "maintenance":
            raise
        _svcadm(zone, "clear", fmri)  # svcadm -s found it in maintenance: clear it, and enable it again
        _svcadm(zone, "enable", fmri, flags)
    if was is not None and was not in ("online", "degraded"):
        _started(zone, _fmri(fmri), True)  # it starts now, with what is in the zone now
    return True


def svc_disable(zone, fmri, wait=True, temporary=False):
    """
    Disable a service in a zone; by default wait until its processes are gone.

    CLI Example:

    .. code-block:: bash

        salt gz1 zlogin.svc_disable zoneA svc:/network/ucarp:web
    """
    flags = [f for f, on in (("-s", wait), ("-t", temporary)) if on]
    _started(zone, _fmri(fmri), False)
    return _svcadm(zone, "disable", fmri, flags)


def svc_restart(zone, fmri, wait=True, timeout=60):
    """
    Restart a service in a zone; by default wait until it is online again.

    CLI Example:

    .. code-block:: bash

        salt gz1 zlogin.svc_restart zoneA svc:/network/ucarp:web
    """
    _svcadm(zone, "restart", fmri)
    _started(zone, _fmri(fmri), True)
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
        current = _live_state(zone, fmri)
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
    _changed_smf(zone)
    _wrote(zone)
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
    if not svc_instances(zone, fmri):
        return False
    _changed_smf(zone)
    _wrote(zone)
    _check(zone, ["svccfg", "delete", "-f", _fmri(fmri)], what=f"svccfg delete {fmri}")
    return True
