"""svccfg(8): import/validate manifests, delete entities, edit properties."""

import fnmatch
import getopt
import shlex
import sys

from . import fmri as fmrimod
from . import manifest, repository, volatile
from .dtd import TYPES

USAGE = """Usage:	svccfg [-v] [-s FMRI] [-f file]
	svccfg [-v] [-s FMRI] <command> [args]"""


class CfgError(Exception):
    def __init__(self, message, code=1):
        super().__init__(message)
        self.message = message
        self.code = code


def err(message):
    print(f"svccfg: {message}", file=sys.stderr)


# ------------------------------------------------------------------ import
def merge_pgs(target, pgs, keep_enabled):
    for name, pg in pgs.items():
        if name == "general" and name in target:
            props = dict(pg["props"])
            if keep_enabled:
                props.pop("enabled", None)
            target[name]["props"].update(props)
        else:
            target[name] = pg


def do_import(filename):
    try:
        bundle = manifest.load(filename)
    except manifest.ManifestError as exc:
        for line in exc.lines:
            print(line, file=sys.stderr)
        return 1
    refresh = []
    with repository.updated() as data:
        for s in bundle["services"]:
            svc = data["services"].setdefault(s["name"], {"pgs": {}, "instances": {}})
            merge_pgs(svc["pgs"], s["pgs"], keep_enabled=False)
            for iname, i in s["instances"].items():
                inst = svc["instances"].get(iname)
                if inst is None:
                    inst = {"pgs": {}, "snapshot": None}
                    svc["instances"][iname] = inst
                    general = {"type": "framework", "props": {}}
                    general["props"]["enabled"] = repository.prop("boolean", str(i["enabled"]).lower())
                    inst["pgs"]["general"] = general
                    merge_pgs(inst["pgs"], i["pgs"], keep_enabled=True)
                else:
                    merge_pgs(inst["pgs"], i["pgs"], keep_enabled=True)
                    refresh.append(f"svc:/{s['name']}:{iname}")
            for dep in s["dependents"]:
                tsvc, tinst = repository.lookup(data, dep["target"])
                if tsvc is not None:
                    (tinst or tsvc)["pgs"][dep["name"]] = dep["pg"]
            for inst in svc["instances"].values():
                repository.take_snapshot(svc, inst)
    for fmri in refresh:
        volatile.request(fmri, "refresh")
    volatile.wake_startd()
    return 0


def do_validate(filename):
    try:
        manifest.load(filename)
    except manifest.ManifestError as exc:
        for line in exc.lines:
            print(line, file=sys.stderr)
        return 1
    return 0


# ------------------------------------------------------------------ delete
def do_delete(args):
    opts, operands = getopt.getopt(args, "f")
    force = bool(opts)
    if len(operands) != 1:
        raise CfgError("Syntax error.\ndelete [-f] {name | fmri | pattern}", 1)
    pat = operands[0]
    data = repository.load()
    found = fmrimod.match_entity(data, pat)
    if not found:
        raise CfgError(f"Pattern '{pat}' doesn't match any instances or services")
    if len(found) > 1:
        raise CfgError(f"Pattern '{pat}' matches multiple instances or services")
    entity = found[0]
    sname, iname = repository.split_fmri(entity)
    insts = [iname] if iname else sorted(data["services"][sname]["instances"])
    vol = volatile.load()
    if not force:
        for i in insts:
            f = f"svc:/{sname}:{i}"
            rt = volatile.runtime(vol, f)
            if rt.get("state") in ("online", "degraded") or rt.get("next_state") not in (None, "none"):
                raise CfgError(f"Instance {f} may be running.  Use delete -f if it is not.")
    with repository.updated() as rw:
        svc = rw["services"].get(sname)
        if svc is not None:
            if iname:
                svc["instances"].pop(iname, None)
            else:
                rw["services"].pop(sname)
    with volatile.updated() as vw:
        for i in insts:
            vw["overrides"].pop(f"svc:/{sname}:{i}", None)
    volatile.wake_startd()
    return 0


# ------------------------------------------------------------------ properties
def select(pattern):
    data = repository.load()
    found = fmrimod.match_entity(data, pattern)
    if not found:
        raise CfgError(f"Pattern '{pattern}' doesn't match any instances or services")
    if len(found) > 1:
        raise CfgError(f"Pattern '{pattern}' matches multiple instances or services")
    return found[0]


def entity_of(data, selected):
    svc, inst = repository.lookup(data, selected)
    if svc is None:
        raise CfgError("Entity has been deleted.")
    return inst if inst is not None else svc


def quote(value, ptype):
    if ptype in ("astring", "ustring") and (value == "" or any(c in value for c in ' \t"\\')):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return value


def do_listprop(selected, args):
    data = repository.load()
    ent = entity_of(data, selected)
    pattern = args[0] if args else None
    rows = []
    for pgname in sorted(ent["pgs"]):
        pg = ent["pgs"][pgname]
        if pattern is None or fnmatch.fnmatchcase(pgname, pattern):
            rows.append((pgname, pg["type"], None))
        for pname in sorted(pg["props"]):
            full = f"{pgname}/{pname}"
            if pattern is None or fnmatch.fnmatchcase(full, pattern) or fnmatch.fnmatchcase(pgname, pattern):
                p = pg["props"][pname]
                rows.append((full, p["type"], " ".join(quote(v, p["type"]) for v in p["values"])))
    width = max([len(r[0]) for r in rows] + [25]) + 2
    for name, ptype, vals in rows:
        if vals is None:
            print(f"{name:<{width}}{ptype}")
        else:
            print(f"{name:<{width}}{ptype:<9}{vals}".rstrip())
    return 0


def parse_setprop(args):
    """``pg/prop = [type:] value`` or ``(values...)`` -> (pg, prop, type, values)."""
    if len(args) < 3 or args[1] != "=" or "/" not in args[0]:
        raise CfgError("Syntax error.\nsetprop pg/name = [type:] value\nsetprop pg/name = [type:] ([value...])")
    pgname, pname = args[0].split("/", 1)
    rest = args[2:]
    ptype = None
    head = rest[0]
    if head.endswith(":") and head[:-1] in TYPES:
        ptype, rest = head[:-1], rest[1:]
    elif ":" in head and head.split(":", 1)[0] in TYPES and not head.startswith("("):
        ptype, value = head.split(":", 1)
        rest = ([value] if value else []) + rest[1:]
    if not rest:
        raise CfgError("Syntax error.")
    if rest[0].startswith("("):
        joined = " ".join(rest).strip()
        if not joined.endswith(")"):
            raise CfgError("Syntax error.")
        values = shlex.split(joined[1:-1])
    else:
        if len(rest) != 1:
            raise CfgError("Syntax error.")
        values = [rest[0]]
    return pgname, pname, ptype, values


def check_value(ptype, value):
    if ptype == "boolean" and value not in ("true", "false"):
        raise CfgError(f'Invalid boolean value "{value}".')
    if ptype in ("count", "integer"):
        try:
            n = int(value)
        except ValueError:
            raise CfgError(f'Invalid {ptype} value "{value}".') from None
        if ptype == "count" and n < 0:
            raise CfgError(f'Invalid count value "{value}".')


def do_setprop(selected, args):
    pgname, pname, ptype, values = parse_setprop(args)
    with repository.updated() as data:
        ent = entity_of(data, selected)
        pg = ent["pgs"].get(pgname)
        if pg is None:
            raise CfgError(f'No such property group "{pgname}".')
        old = pg["props"].get(pname)
        if ptype is None:
            if old is None:
                raise CfgError("Type required for new properties.")
            ptype = old["type"]
        for v in values:
            check_value(ptype, v)
        pg["props"][pname] = repository.prop(ptype, *values)
    return 0


def do_delprop(selected, args):
    if len(args) != 1:
        raise CfgError("Syntax error.\ndelprop pg[/name]")
    pgname, _, pname = args[0].partition("/")
    with repository.updated() as data:
        ent = entity_of(data, selected)
        pg = ent["pgs"].get(pgname)
        if pg is None:
            raise CfgError(f'No such property group "{pgname}".')
        if not pname:
            ent["pgs"].pop(pgname)
        elif pname in pg["props"]:
            pg["props"].pop(pname)
        else:
            raise CfgError(f'No such property "{args[0]}".')
    return 0


def do_addpg(selected, args):
    if len(args) not in (2, 3):
        raise CfgError("Syntax error.\naddpg name type [P]")
    with repository.updated() as data:
        ent = entity_of(data, selected)
        if args[0] in ent["pgs"]:
            raise CfgError(f'Property group "{args[0]}" already exists.')
        ent["pgs"][args[0]] = {"type": args[1], "props": {}}
    return 0


def do_refresh(selected):
    sname, iname = repository.split_fmri(selected)
    with repository.updated() as data:
        svc = data["services"][sname]
        names = [iname] if iname else list(svc["instances"])
        for n in names:
            repository.take_snapshot(svc, svc["instances"][n])
    for n in names:
        volatile.request(f"svc:/{sname}:{n}", "refresh")
    return 0


def do_list(args):
    data = repository.load()
    pat = args[0] if args else "*"
    for sname in sorted(data["services"]):
        if fnmatch.fnmatchcase(sname, pat):
            print(sname)
    return 0


def do_listpg(selected):
    data = repository.load()
    ent = entity_of(data, selected)
    width = max([len(n) for n in ent["pgs"]] + [16]) + 2
    for name in sorted(ent["pgs"]):
        print(f"{name:<{width}}{ent['pgs'][name]['type']}")
    return 0


def do_export(args):
    if len(args) != 1:
        raise CfgError("Syntax error.\nexport [-a] {service | pattern} [> file]")
    data = repository.load()
    selected = select(args[0])
    sname, _iname = repository.split_fmri(selected)
    svc = data["services"][sname]
    out = [
        "<?xml version='1.0'?>",
        "<!DOCTYPE service_bundle SYSTEM '/usr/share/lib/xml/dtd/service_bundle.dtd.1'>",
        "<service_bundle type='manifest' name='export'>",
        f"  <service name='{sname}' type='service' version='0'>",
    ]
    for iname, inst in sorted(svc["instances"].items()):
        enabled = repository.get_value(inst["pgs"], "general", "enabled", "false")
        out.append(f"    <instance name='{iname}' enabled='{enabled}'/>")
    out += ["  </service>", "</service_bundle>"]
    print("\n".join(out))
    return 0


ENTITY_COMMANDS = {"listprop", "setprop", "delprop", "addpg", "delpg", "refresh", "listpg"}


def run_command(selected, words):
    cmd, args = words[0], words[1:]
    if cmd == "import":
        args = [a for a in args if a not in ("-V",)]
        if len(args) != 1:
            raise CfgError("Syntax error.\nimport [-V] file")
        return do_import(args[0])
    if cmd == "validate":
        if len(args) != 1:
            raise CfgError("Syntax error.\nvalidate file")
        return do_validate(args[0])
    if cmd == "delete":
        return do_delete(args)
    if cmd == "list":
        return do_list(args)
    if cmd == "export":
        return do_export(args)
    if cmd == "select":
        return select(args[0]) if args else None
    if cmd in ENTITY_COMMANDS:
        if selected is None:
            raise CfgError("Not properly selected.")  # illumos: emsg_entity_not_selected
        if cmd == "listprop":
            return do_listprop(selected, args)
        if cmd == "listpg":
            return do_listpg(selected)
        if cmd == "setprop":
            return do_setprop(selected, args)
        if cmd in ("delprop", "delpg"):
            return do_delprop(selected, args)
        if cmd == "addpg":
            return do_addpg(selected, args)
        return do_refresh(selected)
    raise CfgError(f'Unknown command "{cmd}".' if cmd else "Syntax error.")


def main(argv):
    try:
        opts, rest = getopt.getopt(argv, "vs:f:")
    except getopt.GetoptError as exc:
        print(f"svccfg: illegal option -- {exc.opt}", file=sys.stderr)
        print(USAGE, file=sys.stderr)
        return 2
    selected = None
    script = None
    try:
        for o, v in opts:
            if o == "-s":
                selected = select(v)
            elif o == "-f":
                script = v
        if rest:
            return run_command(selected, rest)
        lines = open(script, encoding="utf-8").read().splitlines() if script else sys.stdin.read().splitlines()
        status = 0
        for line in lines:
            words = shlex.split(line, comments=True)
            if not words:
                continue
            if words[0] == "select":
                selected = select(words[1])
                continue
            if words[0] in ("end", "exit", "quit"):
                break
            try:
                status = run_command(selected, words) or status
            except CfgError as exc:
                err(exc.message)
                status = 1
        return status
    except CfgError as exc:
        err(exc.message)
        return exc.code
    except getopt.GetoptError as exc:
        err(f"illegal option -- {exc.opt}")
        return 2
