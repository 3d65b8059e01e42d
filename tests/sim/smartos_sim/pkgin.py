"""Simulated ``pkgin(1)`` of a SmartOS joyent zone (prefix ``/opt/local``).

The repository is the built-in catalogue of ``pkgsrc_catalog``; installed
packages live in the pkgsrc package database ``zone_path("opt/local/pkg")``
(``PKG_DBDIR``): one ``<name>-<version>/`` directory per package holding
``+CONTENTS``, ``+COMMENT``, ``+DESC``, ``+BUILD_INFO``, ``+SIZE_PKG``,
``+INSTALLED_INFO`` (``automatic=yes`` for dependencies) and
``+REQUIRED_BY``.  Files go under ``zone_path("opt/local")``.  An ``fcntl``
lock on ``PKG_DBDIR/.pkgdb.lock`` serialises concurrent runs.

Messages and transcripts follow NetBSDfr/pkgin (``messages.h``,
``actions.c``, ``impact.c``, ``pkglist.c``, ``main.c``; pkgin 23.8-24.x as on
current SmartOS images) as printed when stdout is not a terminal.  Two
choices differ from pkgin on purpose or by necessity:

* ``install`` checks every argument first and installs nothing at all when
  one is not in the repository (pkgin would install the others), exit 1;
* nothing is downloaded: the "downloading" lines are printed as pkgin does.

Answering the ``proceed ? [Y/n]`` prompt with ``n`` or EOF aborts with the
status pkgin uses there: ``exit(rc)`` with ``rc`` still ``EXIT_SUCCESS``.
"""

import fcntl
import fnmatch
import hashlib
import os
import re
import shutil
import sys
import time

from smartos_sim import pkgsrc_catalog as catalog
from smartos_sim.common import ToolError, zone_path

VERSION = "24.12.0"
COMMANDS = (
    ("list", "ls", "List installed local packages"),
    ("avail", "av", "List all available remote packages"),
    ("search", "se", "Search for a remote package"),
    ("install", "in", "Install or upgrade packages"),
    ("update", "up", "Refresh local and remote package lists"),
    ("upgrade", "ug", "Upgrade all packages"),
    ("full-upgrade", "fug", "Upgrade all packages (deprecated)"),
    ("remove", "rm", "Remove packages and any dependent packages"),
    ("show-deps", "sd", "List remote package direct dependencies"),
    ("pkg-descr", "pd", "Show remote package long-description"),
    ("clean", "cl", "Remove downloaded package files"),
)
# The other commands of pkgin's cmd.h, which the simulation does not implement.
UNSUPPORTED = {
    "keep": "ke",
    "unkeep": "uk",
    "export": "ex",
    "import": "im",
    "show-keep": "sk",
    "show-no-keep": "snk",
    "autoremove": "ar",
    "show-full-deps": "sfd",
    "show-rev-deps": "srd",
    "provides": "prov",
    "requires": "req",
    "show-category": "sc",
    "show-pkg-category": "spc",
    "show-all-categories": "sac",
    "pkg-content": "pc",
    "pkg-build-defs": "pbd",
    "stats": "st",
}
IS_INSTALLED_CODE = (
    "\n=: package is installed and up-to-date\n"
    "<: package is installed but newer version is available\n"
    ">: installed package has a greater version than available package\n"
)


class Exit(Exception):
    def __init__(self, code):
        super().__init__(code)
        self.code = code


def out(text):
    sys.stdout.write(text)


def errx(message, code=1):
    """BSD errx(3): ``pkgin: message`` on stderr and exit."""
    sys.stdout.flush()
    print(f"pkgin: {message}", file=sys.stderr)
    raise Exit(code)


def warn_stderr(text):
    sys.stdout.flush()
    sys.stderr.write(text)
    sys.stderr.flush()


# ----------------------------------------------------------------- versions


def _version_key(version):
    """A rough pkgsrc dewey ordering: numbers, alpha < beta < rc, ``nbN``."""
    key = []
    for token in re.findall(r"nb|alpha|beta|pre|rc|pl|[0-9]+|[a-z]", version.lower()):
        if token.isdigit():
            key.append((1, int(token)))
        elif token == "nb":
            key.append((0, 0))
        else:
            rank = {"alpha": -3, "beta": -2, "pre": -1, "rc": -1, "pl": 0}.get(token)
            key.append((-1, rank) if rank is not None else (1, 0, ord(token) - ord("a") + 1))
    return key


def compare_versions(a, b):
    ka, kb = _version_key(a), _version_key(b)
    return (ka > kb) - (ka < kb)


def split_full(full):
    name, _, version = full.rpartition("-")
    return (name, version) if name else (full, "")


def pattern_matches(pattern, full):
    """pkg_match(3) for the forms used in practice: name, name-version,
    shell globs (``ucarp-[0-9]*``) and dewey patterns (``libpcap>=0.6.0``)."""
    name, version = split_full(full)
    dewey = re.fullmatch(r"([^<>=]+?)(>=|<=|>|<)([^<>=]+?)(?:(<=|<)(.+))?", pattern)
    if dewey:
        if dewey.group(1) != name:
            return False
        ops = [(dewey.group(2), dewey.group(3))]
        if dewey.group(4):
            ops.append((dewey.group(4), dewey.group(5)))
        for op, bound in ops:
            cmp = compare_versions(version, bound)
            if not {">=": cmp >= 0, "<=": cmp <= 0, ">": cmp > 0, "<": cmp < 0}[op]:
                return False
        return True
    if any(ch in pattern for ch in "*?["):
        return fnmatch.fnmatchcase(full, pattern)
    return pattern in (full, name)


# ------------------------------------------------------------- repository


class RemotePkg:
    def __init__(self, name, data):
        self.name = name
        self.version = data["version"]
        self.full = f"{name}-{self.version}"
        self.data = data
        self.comment = data["comment"]
        self.depends = list(data.get("depends", []))


def remote_packages():
    return [RemotePkg(name, data) for name, data in catalog.PACKAGES.items()]


def find_remote(pattern):
    """find_preferred_pkg(): the best (highest) matching remote package."""
    matches = [p for p in remote_packages() if pattern_matches(pattern, p.full)]
    if not matches:
        return None
    best = matches[0]
    for pkg in matches[1:]:
        if compare_versions(pkg.version, best.version) > 0:
            best = pkg
    return best


# ---------------------------------------------------------------- local db


def pkg_dbdir():
    return zone_path("opt", "local", "pkg")


class LocalPkg:
    def __init__(self, full):
        self.full = full
        self.name, self.version = split_full(full)
        self.dir = os.path.join(pkg_dbdir(), full)
        self.comment = self._read("+COMMENT").strip()
        contents = self._read("+CONTENTS").splitlines()
        self.depends = [line.split(None, 1)[1] for line in contents if line.startswith("@pkgdep ")]
        self.files = [line for line in contents if line and not line.startswith("@")]
        self.dirrms = [line.split(None, 1)[1] for line in contents if line.startswith("@dirrm ")]
        self.automatic = "automatic=yes" in self._read("+INSTALLED_INFO")

    def _read(self, name):
        try:
            with open(os.path.join(self.dir, name), encoding="utf-8") as handle:
                return handle.read()
        except OSError:
            return ""


def local_packages():
    try:
        entries = sorted(os.listdir(pkg_dbdir()))
    except OSError:
        return []
    return [
        LocalPkg(entry)
        for entry in entries
        if not entry.startswith(".") and os.path.isfile(os.path.join(pkg_dbdir(), entry, "+CONTENTS"))
    ]


def find_local(pattern, pkgs=None):
    for pkg in local_packages() if pkgs is None else pkgs:
        if pattern_matches(pattern, pkg.full):
            return pkg
    return None


class DbLock:
    def __enter__(self):
        os.makedirs(pkg_dbdir(), exist_ok=True)
        self.handle = open(os.path.join(pkg_dbdir(), ".pkgdb.lock"), "a+")  # noqa: SIM115
        fcntl.flock(self.handle, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        self.handle.close()


def log_tag(text):
    """actions.c log_tag(): to stdout and, time-stamped, to the error log."""
    out(text)
    path = zone_path("var", "db", "pkgin", "pkg_install-err.log")
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(time.strftime("%Y-%m-%dT%H:%M:%SZ ", time.gmtime()) + text)
    except OSError:
        pass


# ------------------------------------------------------------ pkg_add/delete


def missing_host_files(pkg):
    return [
        f["copy"] for f in pkg.data["files"] if "copy" in f and not f.get("optional") and not os.path.isfile(f["copy"])
    ]


def pkg_size(pkg):
    size = 0
    for spec in pkg.data["files"]:
        if "copy" in spec:
            if os.path.isfile(spec["copy"]):
                size += os.path.getsize(spec["copy"])
        else:
            size += len(spec["text"].encode())
    return size


def pkg_add(pkg, automatic, local_by_name):
    prefix = zone_path(catalog.PREFIX)
    contents = [f"@name {pkg.full}"]
    contents += [f"@pkgdep {dep}" for dep in pkg.depends]
    contents += ["@comment PKG_FORMAT_REVISION:1.1", f"@cwd {catalog.PREFIX}"]
    dirs = set()
    size = 0
    for spec in pkg.data["files"]:
        target = os.path.join(prefix, spec["path"])
        os.makedirs(os.path.dirname(target), exist_ok=True)
        if "copy" in spec:
            if not os.path.isfile(spec["copy"]):
                continue  # optional, checked before
            shutil.copyfile(spec["copy"], target)
        else:
            with open(target, "w", encoding="utf-8") as handle:
                handle.write(spec["text"])
        os.chmod(target, spec.get("mode", 0o644))
        with open(target, "rb") as handle:
            data = handle.read()
        size += len(data)
        contents += [spec["path"], f"@comment MD5:{hashlib.md5(data).hexdigest()}"]  # noqa: S324 - pkgsrc's own digest
        parent = os.path.dirname(spec["path"])
        if parent.startswith("share/") and parent.count("/") >= 2 and parent.split("/")[1] in ("doc", "examples"):
            dirs.add(parent)
    contents += [f"@dirrm {d}" for d in sorted(dirs, reverse=True)]
    dbdir = os.path.join(pkg_dbdir(), pkg.full)
    os.makedirs(dbdir, exist_ok=True)
    meta = {
        "+CONTENTS": "\n".join(contents) + "\n",
        "+COMMENT": pkg.comment + "\n",
        "+DESC": pkg.data.get("descr", pkg.comment + "\n"),
        "+SIZE_PKG": f"{size}\n",
        "+BUILD_INFO": (
            f"CATEGORIES={pkg.data.get('category', '')}\nHOMEPAGE={pkg.data.get('homepage', '')}\n"
            f"LICENSE={pkg.data.get('license', '')}\nLOCALBASE={catalog.PREFIX}\nMACHINE_ARCH=x86_64\n"
            f"OPSYS=SunOS\nOS_VERSION=5.11\nPKGPATH={pkg.data.get('pkgpath', '')}\n"
            f"PKG_SYSCONFBASE={catalog.PREFIX}/etc\n"
        ),
    }
    if automatic:
        meta["+INSTALLED_INFO"] = "automatic=yes\n"
    for name, text in meta.items():
        with open(os.path.join(dbdir, name), "w", encoding="utf-8") as handle:
            handle.write(text)
    for dep in pkg.depends:
        provider = next((p for p in local_by_name.values() if pattern_matches(dep, p.full)), None)
        if provider is not None:
            path = os.path.join(provider.dir, "+REQUIRED_BY")
            lines = set(provider._read("+REQUIRED_BY").split())
            lines.add(pkg.full)
            with open(path, "w", encoding="utf-8") as handle:
                handle.write("\n".join(sorted(lines)) + "\n")


def pkg_delete(pkg):
    prefix = zone_path(catalog.PREFIX)
    for rel in pkg.files:
        try:
            os.unlink(os.path.join(prefix, rel))
        except OSError:
            pass
    for rel in pkg.dirrms:
        try:
            os.rmdir(os.path.join(prefix, rel))
        except OSError:
            pass
    # pkg_delete removes the directories its files leave empty.
    for parent in sorted({os.path.dirname(f) for f in pkg.files}, key=len, reverse=True):
        rel = parent
        while rel:
            try:
                os.rmdir(os.path.join(prefix, rel))
            except OSError:
                break
            rel = os.path.dirname(rel)
    shutil.rmtree(pkg.dir, ignore_errors=True)
    for other in local_packages():
        path = os.path.join(other.dir, "+REQUIRED_BY")
        lines = other._read("+REQUIRED_BY").split()
        if pkg.full in lines:
            lines.remove(pkg.full)
            if lines:
                with open(path, "w", encoding="utf-8") as handle:
                    handle.write("\n".join(lines) + "\n")
            else:
                os.unlink(path)


# ----------------------------------------------------------------- commands


class Options:
    def __init__(self):
        self.yes = False
        self.no = False
        self.parsable = not sys.stdout.isatty()
        self.pflag = False


def humanize(size):
    """humanize_number(HN_AUTOSCALE | HN_B | HN_NOSPACE | HN_DECIMAL)."""
    value = float(size)
    for unit in ("B", "K", "M", "G", "T"):
        if value < 1000 or unit == "T":
            if unit == "B":
                return f"{int(value)}B"
            return f"{value:.1f}{unit}" if value < 9.95 else f"{round(value)}{unit}"
        value /= 1024
    return f"{size}B"


def action_list(names):
    return "  " + " ".join(names)


def check_yesno(opts, default_yes=True):
    if opts.yes:
        return True
    if opts.no:
        return False
    out("proceed ? [Y/n] " if default_yes else "proceed ? [y/N] ")
    sys.stdout.flush()
    line = sys.stdin.readline()
    if line.startswith("\n"):
        return default_yes
    return line[:1].lower() == "y"


def deps_spinner_start(opts):
    if opts.parsable:
        out("calculating dependencies...")
        sys.stdout.flush()


def deps_spinner_end(opts):
    out("done.\n" if opts.parsable else "\rcalculating dependencies...done.\n")


def local_summary_update():
    out("reading local summary...\nprocessing local summary...\n")


def cmd_install(opts, args):
    if not args:
        errx("specify at least one package to install")
    with DbLock():
        local = {p.name: p for p in local_packages()}
        deps_spinner_start(opts)
        wanted, unknown = [], []
        for arg in args:
            pkg = find_remote(arg)
            if pkg is None:
                unknown.append(arg)
                warn_stderr(f"{arg} is not available in the repository\n")
            else:
                wanted.append(pkg)
        impact = {}  # full name -> (RemotePkg, automatic)

        def add(pkg, automatic):
            installed = local.get(pkg.name)
            if installed is not None and compare_versions(installed.version, pkg.version) >= 0:
                return
            if pkg.full in impact:
                if not automatic:
                    impact[pkg.full] = (pkg, False)
                return
            impact[pkg.full] = (pkg, automatic)
            for dep in pkg.depends:
                if any(pattern_matches(dep, p.full) for p in local.values()):
                    continue
                provider = find_remote(dep)
                if provider is not None:
                    add(provider, True)

        if not unknown:
            for pkg in wanted:
                add(pkg, False)
        deps_spinner_end(opts)
        rc = 1 if unknown else 0
        if not impact:
            out("nothing to do.\n")
            return rc
        for pkg, _ in impact.values():
            missing = missing_host_files(pkg)
            if missing:
                errx(
                    f"cannot install {pkg.full} in the simulation: the host lacks {', '.join(missing)}"
                    " (install Debian's ucarp package)"
                )
        names = sorted(impact)
        count = len(names)
        out("\n")
        out(
            f"1 package to install:\n{action_list(names)}\n\n"
            if count == 1
            else f"{count} packages to install:\n{action_list(names)}\n\n"
        )
        out(f"0 to remove, 0 to refresh, 0 to upgrade, {count} to install\n")
        file_size = sum(pkg.data.get("file_size", 0) for pkg, _ in impact.values())
        size_pkg = sum(pkg_size(pkg) for pkg, _ in impact.values())
        out(f"{humanize(file_size)} to download, {humanize(size_pkg)} of additional disk space will be used\n")
        if not opts.no:
            out("\n")
        if not check_yesno(opts):
            return rc
        for i, full in enumerate(names, 1):
            out(
                f"[{i}/{count}] downloading {full}.tgz done.\n" if opts.parsable else f"[{i}/{count}] {full}.tgz 100%\n"
            )
        order = install_order([impact[n][0] for n in names])
        for i, pkg in enumerate(order, 1):
            log_tag(f"[{i}/{count}] installing {pkg.full}...\n")
            pkg_add(pkg, impact[pkg.full][1], {p.name: p for p in local_packages()})
        out("pkg_install warnings: 0, errors: 0\n")
        local_summary_update()
        return rc


def install_order(pkgs):
    """order_install(): dependencies before the packages needing them."""
    ordered, seen = [], set()

    def visit(pkg):
        if pkg.full in seen:
            return
        seen.add(pkg.full)
        for dep in pkg.depends:
            for other in pkgs:
                if pattern_matches(dep, other.full):
                    visit(other)
        ordered.append(pkg)

    for pkg in pkgs:
        visit(pkg)
    return ordered


def cmd_remove(opts, args):
    if not args:
        errx("specify at least one package to remove")
    with DbLock():
        local = local_packages()
        if not local:
            errx("empty local package list.")
        rc = 0
        selected = {}
        for arg in args:
            pkg = find_local(arg, local)
            if pkg is None:
                out(f"no such installed package {arg}\n")
                rc = 1
                continue
            selected[pkg.full] = pkg
            queue = [pkg]
            while queue:  # full reverse dependencies
                current = queue.pop()
                for other in local:
                    if other.full not in selected and any(pattern_matches(d, current.full) for d in other.depends):
                        selected[other.full] = other
                        queue.append(other)
        if not selected:
            out("no packages to delete\n")
            return rc
        order = list(reversed(install_order(sorted(selected.values(), key=lambda p: p.full))))
        out(f"{len(order)} packages to delete: \n{action_list(p.full for p in order)}\n")
        if not opts.no:
            out("\n")
        if check_yesno(opts):
            for i, pkg in enumerate(order, 1):
                log_tag(f"[{i}/{len(order)}] removing {pkg.full}...\n")
                pkg_delete(pkg)
            out("pkg_install warnings: 0, errors: 0\n")
            local_summary_update()
        return rc


def print_list(opts, rows):
    if not rows:
        warn_stderr("Requested list is empty.\n")
        return 0
    for full, comment in rows:
        out(f"{full};{comment}\n" if opts.pflag else f"{full:<20} {comment}\n")
    return 0


def cmd_list(opts, args):
    return print_list(opts, [(p.full, p.comment) for p in local_packages()])


def cmd_avail(opts, args):
    return print_list(opts, sorted((p.full, p.comment) for p in remote_packages()))


def cmd_search(opts, args):
    if not args:
        errx("missing search string")
    pattern = args[0]
    try:
        regex = re.compile(pattern, re.IGNORECASE)
    except re.error as exc:
        errx(f"regcomp: {pattern}: {exc}")
    local = {p.name: p for p in local_packages()}
    found = []
    for pkg in sorted(remote_packages(), key=lambda p: (p.name, p.version)):
        if regex.search(pkg.name) or regex.search(pkg.full) or regex.search(pkg.comment):
            flag = ""
            installed = local.get(pkg.name)
            if installed is not None:
                cmp = compare_versions(installed.version, pkg.version)
                flag = "=" if cmp == 0 else (">" if cmp > 0 else "<")
            found.append((pkg, flag))
    if not found:
        out(f"No results found for {pattern}\n")
        return 1
    for pkg, flag in found:
        if opts.pflag:
            out(f"{pkg.full};{flag};{pkg.comment}\n")
        else:
            out(f"{pkg.full + ' ' + flag:<20} {pkg.comment}\n")
    out(IS_INSTALLED_CODE)
    return 0


def cmd_update(opts, args):
    os.makedirs(pkg_dbdir(), exist_ok=True)
    out(f"processing remote summary ({catalog.REPO_URL})...\n")
    out(f"database for {catalog.REPO_URL} is up-to-date\n")
    return 0


def cmd_upgrade(opts, args):
    if not local_packages():
        errx("empty local package list.")
    deps_spinner_start(opts)
    deps_spinner_end(opts)
    out("nothing to do.\n")
    return 0


def cmd_show_deps(opts, args):
    if not args:
        errx("missing package name")
    pkg = find_remote(args[0])
    if pkg is None:
        return 1
    out(f"direct dependencies for {pkg.full}\n")
    for dep in pkg.depends:
        out(f"\t{dep}\n")
    return 0


def cmd_pkg_descr(opts, args):
    if not args:
        errx("missing package name")
    pkg = find_remote(args[0])
    if pkg is None:
        warn_stderr(f"{args[0]} is not available in the repository\n")
        return 1
    out(pkg.data.get("descr", ""))
    return 0


def cmd_clean(opts, args):
    return 0


HANDLERS = {
    "list": cmd_list,
    "avail": cmd_avail,
    "search": cmd_search,
    "install": cmd_install,
    "update": cmd_update,
    "upgrade": cmd_upgrade,
    "full-upgrade": cmd_upgrade,
    "remove": cmd_remove,
    "show-deps": cmd_show_deps,
    "pkg-descr": cmd_pkg_descr,
    "clean": cmd_clean,
}


def usage(status):
    stream = sys.stderr if status else sys.stdout
    sys.stdout.flush()
    stream.write("Usage: pkgin [-46cdfhlnPtvVy] command [package ...]\n\nCommands and shortcuts:\n")
    for name, short, descr in COMMANDS:
        stream.write(f"{name:<19} ({short:<4}) - {descr}\n")
    raise Exit(status)


def parse_options(argv, opts):
    """getopt(3) with ``46dhyfPvVl:nc:t:p``."""
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            return argv[i + 1 :]
        if not arg.startswith("-") or arg == "-":
            return argv[i:]
        j = 1
        while j < len(arg):
            ch = arg[j]
            if ch in "lct":
                if j + 1 < len(arg):
                    pass
                elif i + 1 < len(argv):
                    i += 1
                else:
                    warn_stderr(f"pkgin: option requires an argument -- {ch}\n")
                    usage(1)
                break
            if ch == "y":
                opts.yes, opts.no = True, False
            elif ch == "n":
                opts.yes, opts.no = False, True
            elif ch == "p":
                opts.parsable = opts.pflag = True
            elif ch == "v":
                out(f"pkgin {VERSION} (using SQLite 3.45.1)\n")
                raise Exit(0)
            elif ch == "h":
                usage(0)
            elif ch not in "46dfPV":
                warn_stderr(f"pkgin: unknown option -- {ch}\n")
                usage(1)
            j += 1
        i += 1
    return []


def run(argv):
    opts = Options()
    rest = parse_options(list(argv), opts)
    if not rest:
        usage(1)
    command = None
    for name, short, _ in COMMANDS:
        if rest[0] in (name, short):
            command = name
    for name, short in UNSUPPORTED.items():
        if rest[0] in (name, short):
            errx(f"{name}: not supported by the SmartOS simulation")
    if command is None:
        usage(1)
    return HANDLERS[command](opts, rest[1:])


def main(argv):
    try:
        return run(argv)
    except Exit as stop:
        return stop.code
    except ToolError as exc:
        warn_stderr(exc.message + "\n")
        return exc.code
    finally:
        sys.stdout.flush()
